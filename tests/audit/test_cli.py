"""``zongzhi audit``: chain and sign, verify a live tenant and an export (exit
status 1 naming the first broken link), export, history, as-of, public key."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest
from audit_support import Log, drive
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from psycopg.conninfo import make_conninfo
from support import MASTER_KEY

from audit.checkpoints import AUDIT_KEY, public_key_text
from tenants.service import Tenants
from zongzhi.cli import main
from zongzhi.servers import DATABASE_URL


@pytest.fixture
def configured(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
               signing_key: Ed25519PrivateKey) -> None:
    seed = signing_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    # Another URL of the same database: the command's own pool, which it closes when
    # done, is then not the session's (one pool per URL in a process).
    monkeypatch.setenv(DATABASE_URL, make_conninfo(database_url, application_name="audit-cli"))
    monkeypatch.setenv("ZONGZHI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ZONGZHI_MASTER_KEY", base64.urlsafe_b64encode(MASTER_KEY).decode())
    monkeypatch.setenv(AUDIT_KEY, base64.urlsafe_b64encode(seed).decode())
    monkeypatch.delenv("ZONGZHI_NATS_URL", raising=False)


def test_chain_checkpoint_verify_export_and_a_tampered_log_exits_1(
        configured: None, tenants: Tenants, city_tree: dict[str, list[str]], city: str,
        signing_key: Ed25519PrivateKey, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    log = drive(tenants, city, city_tree["county"][0], cases=2, chain=False)
    events = len(log.rows())

    assert main(["audit", "public-key"]) == 0
    assert capsys.readouterr().out.strip() == public_key_text(signing_key.public_key())
    assert main(["audit", "chain", "--city", city]) == 0
    assert f"audit chain {city}: {events} notifications chained" in capsys.readouterr().out
    assert main(["audit", "checkpoint", "--city", city]) == 0
    assert "1 tenants signed" in capsys.readouterr().out
    assert main(["audit", "verify", "--tenant", log.tenant]) == 0
    out = capsys.readouterr().out
    assert f"{events} links verified" in out and "OK: the log verifies" in out

    export = tmp_path / "export.jsonl"
    assert main(["audit", "export", "--tenant", log.tenant, "--out", str(export)]) == 0
    assert f"{events} events of {log.tenant}" in capsys.readouterr().out
    assert main(["audit", "verify", "--file", str(export)]) == 0
    assert "OK: the log verifies" in capsys.readouterr().out

    target = log.row(3)
    with log.connect() as conn:
        conn.execute(f"UPDATE {log.schema}.events SET state = state || ' '::bytea "
                     "WHERE tenant = %s AND tenant_position = 3", (log.tenant,))
    assert main(["audit", "verify", "--tenant", log.tenant]) == 1
    out = capsys.readouterr().out
    assert "BROKEN: edited at position 3" in out and str(target["originator_id"]) in out
    assert main(["audit", "export", "--tenant", log.tenant, "--out", str(export)]) == 0
    assert main(["audit", "verify", "--file", str(export)]) == 1
    assert "BROKEN: edited at position 3" in capsys.readouterr().out


def test_history_and_as_of_print_the_case(
        configured: None, log: Log, capsys: pytest.CaptureFixture[str]) -> None:
    case_id = log.cases[0]
    assert main(["audit", "history", "--case", str(case_id)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 9 and "Received by clerk-1" in lines[0] and "Closed" in lines[-1]
    assert "王小明" not in "".join(lines)
    assert main(["audit", "history", "--tenant", log.tenant, "--type", "Closed"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert main(["audit", "as-of", "--case", str(case_id), "--at",
                 datetime.now(UTC).isoformat()]) == 0
    assert "version 9, status closed" in capsys.readouterr().out
    assert main(["audit", "as-of", "--case", str(case_id), "--at",
                 "2020-01-01T00:00+08:00"]) == 0
    assert "did not exist yet" in capsys.readouterr().out


def test_bad_input_exits_2(configured: None, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", "--file", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "other.jsonl").write_text('{"kind": "something else"}\n')
    assert main(["audit", "verify", "--file", str(tmp_path / "other.jsonl")]) == 2
    assert "not a zongzhi audit export" in capsys.readouterr().err
    assert main(["audit", "verify", "--tenant", "659999"]) == 2
    assert "659999" in capsys.readouterr().err
