"""Rotating the checkpoint signing key: a new key signs the new checkpoints, the
old one stays published, and verification trusts the set of published keys,
picking each checkpoint's key by its ``key_id``; a checkpoint of a key that is
not trusted is reported naming that key."""

from __future__ import annotations

import base64
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from audit_support import Log, drive
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg.conninfo import make_conninfo
from support import MASTER_KEY

import audit.checkpoints as checkpoints
from audit.chain import AuditError
from audit.checkpoints import (
    AUDIT_KEY,
    PublishedKey,
    TrustedKeys,
    deployment_keys,
    key_id,
    load_signing_key,
    public_key_text,
    published_keys,
    rotate_signing_key,
    write_checkpoints,
)
from audit.verify import export_tenant, verify_file, verify_tenant
from tenants.service import Tenants
from zongzhi.cli import main
from zongzhi.servers import DATABASE_URL


@pytest.fixture
def data_dir(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A laptop deployment: the signing key lives in ``<data dir>/audit.key``."""
    monkeypatch.setenv(DATABASE_URL, make_conninfo(database_url, application_name="keys-cli"))
    monkeypatch.setenv("ZONGZHI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ZONGZHI_MASTER_KEY", base64.urlsafe_b64encode(MASTER_KEY).decode())
    monkeypatch.delenv(AUDIT_KEY, raising=False)
    monkeypatch.delenv("ZONGZHI_NATS_URL", raising=False)
    return tmp_path / "data"


def _more_events(log: Log) -> None:
    drive(log.tenants, log.city, log.tenant, cases=1)


def test_after_a_rotation_both_keys_verify_and_without_the_old_one_its_id_is_named(
        log: Log, nats_url: str) -> None:
    # given checkpoints signed (and witnessed) by key A, then, after a rotation, by key B
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    assert log.checkpoint(old, nats_url) == 1
    first = len(log.rows())
    rotated_at = datetime.now(UTC)
    _more_events(log)
    assert log.checkpoint(new, nats_url) == 1
    register = TrustedKeys([PublishedKey(new.public_key(), rotated_at, None),
                            PublishedKey(old.public_key(), None, rotated_at)])

    # when the log is verified trusting both published keys, then it is clean,
    # every checkpoint of both keys counted, in the database and at the witness
    report = verify_tenant(log.tenants, log.tenant, register, nats_url)
    assert report.ok, report.lines()
    assert (report.checkpoints, report.witnessed) == (2, 2)
    assert report.key_id == f"{key_id(new.public_key())}, {key_id(old.public_key())}"

    # when only the new key is trusted, then the old key's checkpoint is reported by key id
    broken = verify_tenant(log.tenants, log.tenant, new.public_key(), nats_url)
    assert broken.broken is not None and broken.broken.kind == "bad-signature"
    assert broken.broken.position == first
    assert f"signed by key {key_id(old.public_key())}, which is not among the trusted keys" \
        in broken.broken.detail
    assert any(key_id(old.public_key()) in note for note in broken.notes)  # the witness's too


def test_a_checkpoint_dated_after_its_key_was_retired_is_reported(log: Log) -> None:
    # given key A retired yesterday in the register, key B in use since
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    retired = datetime.now(UTC) - timedelta(days=1)
    register = TrustedKeys([PublishedKey(new.public_key(), retired, None),
                            PublishedKey(old.public_key(), None, retired)])
    # when the retired key signs a checkpoint today
    log.chain()
    write_checkpoints(log.tenants, log.city, datetime.now(UTC), old)
    # then verify reports it: a retired key in the wrong hands signs nothing new unnoticed
    broken = verify_tenant(log.tenants, log.tenant, register).broken
    assert broken is not None and broken.kind == "bad-signature"
    assert f"outside the period key {key_id(old.public_key())} was in use" in broken.detail


def test_rotate_key_signs_new_checkpoints_with_the_new_key_and_keeps_the_old_published(
        data_dir: Path, tenants: Tenants, city_tree: dict[str, list[str]], city: str,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # given a laptop deployment that signed a checkpoint with its first key
    log = drive(tenants, city, city_tree["county"][0], cases=1, chain=False)
    assert main(["audit", "checkpoint", "--city", city]) == 0
    assert main(["audit", "public-key"]) == 0
    old = capsys.readouterr().out.splitlines()[-1]

    # when the key is rotated
    assert main(["audit", "rotate-key"]) == 0
    out, err = capsys.readouterr()
    new = out.strip()
    # then the new public key is printed, audit.key holds it, and both are published
    assert new != old
    assert public_key_text(load_signing_key(data_dir, create=False).public_key()) == new
    assert {key_id(k.key) for k in published_keys(data_dir)} == {
        key_id(checkpoints.parse_public_key(old)), key_id(checkpoints.parse_public_key(new))}
    assert "retired" in err and key_id(checkpoints.parse_public_key(old)) in err

    # and the next checkpoint is signed by the new key
    _more_events(log)
    assert main(["audit", "checkpoint", "--city", city]) == 0
    with log.connect() as conn:
        signers = [r["key_id"] for r in conn.execute(
            f"SELECT key_id FROM {log.schema}.audit_checkpoints WHERE tenant = %s "
            "ORDER BY position", (log.tenant,))]
    old_id, new_id = (key_id(checkpoints.parse_public_key(k)) for k in (old, new))
    assert signers == [old_id, new_id]
    capsys.readouterr()

    # when verified with the deployment's keys (the default), then it is clean
    assert main(["audit", "verify", "--tenant", log.tenant]) == 0
    assert "2 checkpoints" in capsys.readouterr().out
    # when verified with the new key alone, then it fails naming the old key's id
    assert main(["audit", "verify", "--tenant", log.tenant, "--public-key", new]) == 1
    out = capsys.readouterr().out
    assert "BROKEN: bad-signature" in out and f"signed by key {old_id}" in out
    # when given both keys, or the register the deployment prints, then it is clean
    assert main(["audit", "verify", "--tenant", log.tenant, "--public-key", new,
                 "--public-key", old]) == 0
    capsys.readouterr()
    assert main(["audit", "public-key", "--all"]) == 0
    register = tmp_path / "register.txt"
    register.write_text(capsys.readouterr().out)
    assert len([line for line in register.read_text().splitlines()
                if not line.startswith("#")]) == 2
    assert main(["audit", "verify", "--tenant", log.tenant, "--keys", str(register)]) == 0
    assert "OK: the log verifies" in capsys.readouterr().out

    # and an export verifies offline against the register, not against the new key alone
    export = tmp_path / "export.jsonl"
    assert main(["audit", "export", "--tenant", log.tenant, "--out", str(export)]) == 0
    assert main(["audit", "verify", "--file", str(export), "--keys", str(register)]) == 0
    assert "OK: the log verifies" in capsys.readouterr().out
    assert main(["audit", "verify", "--file", str(export), "--public-key", new]) == 1
    assert f"signed by key {old_id}" in capsys.readouterr().out
    assert verify_file(export).ok  # the file names both keys: consistent with itself


def test_a_rotation_cut_short_is_finished_by_running_it_again(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a deployment key
    old = load_signing_key(data_dir).public_key()
    real = checkpoints.publish_key
    calls = 0

    def crash_before_the_new_key_is_published(folder: Path, key: PublishedKey) -> Path:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("process killed between the two publications")
        return real(folder, key)

    # when a rotation dies after making the new seed but before publishing it
    monkeypatch.setattr(checkpoints, "publish_key", crash_before_the_new_key_is_published)
    with pytest.raises(OSError):
        rotate_signing_key(data_dir, datetime.now(UTC))
    monkeypatch.setattr(checkpoints, "publish_key", real)
    # then the old key still signs (an unpublished key never signs a checkpoint)
    assert key_id(load_signing_key(data_dir).public_key()) == key_id(old)
    pending = (data_dir / checkpoints.NEXT_KEY_FILE).read_text()

    # when it is run again, then it finishes with the seed it had made
    done = rotate_signing_key(data_dir, datetime.now(UTC))
    assert (data_dir / "audit.key").read_text() == pending
    assert not (data_dir / checkpoints.NEXT_KEY_FILE).exists()
    keys = deployment_keys(data_dir)
    assert keys is not None and keys.ids[0] == done.new.key_id and key_id(old) in keys
    assert stat.S_IMODE(os.stat(data_dir / "audit.key").st_mode) == 0o600


def test_bad_keys_and_registers_are_refused_naming_the_rule(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    load_signing_key(data_dir)
    good = public_key_text(Ed25519PrivateKey.generate().public_key())
    cases = {
        "not an Ed25519 public key": f"{good} 2026-01-01\nnot-a-key 2026-02-01\n",
        "has no time zone": f"{good} 2026-01-01T08:00:00\n",
        "retired before it was introduced": f"{good} 2026-03-01 2026-01-01\n",
        "names no key": "# nothing here\n",
    }
    for rule, text in cases.items():
        # given a register with a bad line, when verify reads it, then exit 2 naming the rule
        register = tmp_path / "register.txt"
        register.write_text(text)
        assert main(["audit", "verify", "--file", str(register), "--keys",
                     str(register)]) == 2
        err = capsys.readouterr().err
        assert rule in err, (rule, err)
        assert rule == "names no key" or f"{register}:" in err  # the line is named

    # a published key's file must be named by its key id (16 lowercase hex digits)
    folder = data_dir / checkpoints.KEYS_DIR
    (folder / "old-key.pub").write_text(good + "\n")
    with pytest.raises(AuditError, match=r"old-key.pub: a published key's file is named by "
                                         r"its key id \(16 lowercase hex digits\)"):
        published_keys(data_dir)
    (folder / "old-key.pub").unlink()
    (folder / "0123456789abcdef.pub").write_text(good + "\n")
    with pytest.raises(AuditError, match=f"holds key {key_id(checkpoints.parse_public_key(good))}"):
        published_keys(data_dir)
    assert main(["audit", "public-key", "--all"]) == 2
    assert "named by its key id" in capsys.readouterr().err
    (folder / "0123456789abcdef.pub").unlink()

    # a laptop's key is replaced in place: a seed file for a secret store is refused
    assert main(["audit", "rotate-key", "--seed-out", str(tmp_path / "seed")]) == 2
    assert "which the rotation replaces itself" in capsys.readouterr().err
    assert not (tmp_path / "seed").exists()

    # a key given on the command line that is not a key
    assert main(["audit", "verify", "--tenant", "330100", "--public-key", "abc"]) == 2
    assert "not an Ed25519 public key" in capsys.readouterr().err


def test_with_the_key_in_a_secret_store_rotate_key_writes_the_new_seed_for_it(
        data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    current = Ed25519PrivateKey.generate()
    seed = current.private_bytes_raw()
    monkeypatch.setenv(AUDIT_KEY, base64.urlsafe_b64encode(seed).decode())
    # when rotate-key has nowhere to put the new seed, then it refuses, saying why
    assert main(["audit", "rotate-key"]) == 2
    assert "give --seed-out FILE" in capsys.readouterr().err
    # when given a file, then the new seed goes there (0600) and its public key is printed
    out = tmp_path / "audit-new.key"
    assert main(["audit", "rotate-key", "--seed-out", str(out)]) == 0
    printed = capsys.readouterr().out.strip()
    new = Ed25519PrivateKey.from_private_bytes(base64.urlsafe_b64decode(out.read_text()))
    assert printed == public_key_text(new.public_key())
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    # and the current key (from the environment) is unchanged and retired in the register
    assert key_id(load_signing_key(data_dir).public_key()) == key_id(current.public_key())
    retired = {k.key_id: k for k in published_keys(data_dir)}[key_id(current.public_key())]
    assert retired.until is not None
    # when the seed file exists already, then it is never written over
    assert main(["audit", "rotate-key", "--seed-out", str(out)]) == 2
    assert "never written over" in capsys.readouterr().err


def test_an_export_names_every_published_key(
        log: Log, data_dir: Path, tmp_path: Path) -> None:
    old = load_signing_key(data_dir)
    log.checkpoint(old)
    rotate_signing_key(data_dir, datetime.now(UTC))
    _more_events(log)
    log.checkpoint(load_signing_key(data_dir))
    keys = deployment_keys(data_dir)
    assert keys is not None
    path = tmp_path / "export.jsonl"
    export_tenant(log.tenants, log.tenant, path, keys)
    assert verify_file(path, keys).ok
    only_new = verify_file(path, keys.primary).broken
    assert only_new is not None and key_id(old.public_key()) in only_new.detail
