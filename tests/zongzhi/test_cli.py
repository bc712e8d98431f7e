"""The command line rejects bad input with status 2 and one clear line, and
the demo drives real cases on the configured database."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import write_divisions

from zongzhi.cli import main
from zongzhi.servers import DATABASE_URL, EmbeddedTriton, http_ok


@pytest.fixture
def configured(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Its own connection string: a command closes its pool at exit, which must not be the
    # pool the session's other tests share for ``database_url``.
    monkeypatch.setenv(DATABASE_URL, f"{database_url} application_name=zongzhi-cli-test")
    monkeypatch.setenv("ZONGZHI_DATA_DIR", str(tmp_path / "data"))


def test_an_import_of_bad_files_exits_2_naming_the_row(
        configured: None, city: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_divisions(tmp_path / "div", city)
    with (tmp_path / "div" / "villages.csv").open("a", encoding="utf-8") as f:
        f.write("12,short\n")
    assert main(["tenants", "import", "--divisions", str(tmp_path / "div"), "--scope", city]) == 2
    err = capsys.readouterr().err
    assert "villages.csv:" in err and "nothing imported" in err


def test_missing_arguments_and_unknown_codes_exit_2(
        configured: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tenants", "shred-key"]) == 2
    assert "needs the center's code" in capsys.readouterr().err
    assert main(["tenants", "shred-key", "659999", "--reason", "test"]) == 2
    assert "no center is registered under code '659999'" in capsys.readouterr().err
    assert main(["calendar", "load"]) == 2
    assert "needs a schedule file" in capsys.readouterr().err


def test_the_demo_drives_cases_and_prints_a_summary_per_tier(
        configured: None, city: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_divisions(tmp_path / "div", city, counties=2, townships=2, villages=3)
    assert main(["demo", "--city", city, "--cases", "40", "--no-serve", "--divisions",
                 str(tmp_path / "div")]) == 0
    out = capsys.readouterr().out
    assert "Drove 40 cases" in out and "0 commands refused" in out
    for tier in ("city", "county", "township", "village"):
        assert any(line.startswith(tier) for line in out.splitlines())
    assert "resolution rate" in out


def test_servers_stop_stops_the_embedded_servers_and_starts_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    from zongzhi.servers import Servers, free_port

    monkeypatch.delenv(DATABASE_URL, raising=False)
    monkeypatch.setenv("ZONGZHI_DATA_DIR", str(tmp_path / "data"))
    running = Servers(data_dir=tmp_path / "data", nats_port=free_port()).start(triton=True)
    triton_pid, _, triton_http = (
        int(x) for x in (tmp_path / "data" / "triton" / "triton.pid").read_text().split())

    assert main(["servers", "stop"]) == 0

    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(running.database_url, connect_timeout=2)
    assert not http_ok(f"http://127.0.0.1:{triton_http}/v2/health/ready")
    started = next(s for s in running._owned if isinstance(s, EmbeddedTriton))
    assert started._proc is not None
    assert started._proc.wait(10) is not None  # reaped here: this test started it
    with pytest.raises(ProcessLookupError):  # its Python stubs, in its group, gone too
        os.killpg(triton_pid, 0)
    assert main(["servers", "stop"]) == 0  # nothing running: still fine, nothing started
    assert not (tmp_path / "data" / "nats.pid").exists()


def test_the_workers_refuse_a_code_that_is_not_a_registered_city(
        configured: None, city_tree: dict[str, list[str]], nats_url: str,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ZONGZHI_NATS_URL", nats_url)  # the alert service's NATS
    county = city_tree["county"][0]
    for command in (["router", "--once"], ["scheduler", "--once"], ["alerts"]):
        assert main([*command, "--city", county]) == 2
        assert f"{county} is not a city" in capsys.readouterr().err
        assert main([*command, "--city", "1998"]) == 2
        assert "no center is registered under code '1998'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: a time without a zone is ambiguous
        main(["scheduler", "--once", "--at", "2026-03-02T09:00"])
    assert "give a time zone" in capsys.readouterr().err
