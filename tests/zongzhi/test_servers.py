"""The servers module: embedded servers start, are reused, stop cleanly, and
refuse unusable directories and ports with a clear message; configured URLs
are used as they are."""

from __future__ import annotations

import resource
import socket
import warnings
from pathlib import Path

import psycopg
import pytest

from zongzhi import servers as servers_module
from zongzhi.servers import (
    DATABASE_URL,
    NATS_URL,
    EmbeddedNats,
    EmbeddedPostgres,
    ServerError,
    Servers,
    free_port,
    shared_buffers_mb,
)


def test_embedded_servers_start_are_reused_and_stop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATABASE_URL, raising=False)  # this test is about the embedded ones
    monkeypatch.delenv(NATS_URL, raising=False)
    first = Servers(data_dir=tmp_path, nats_port=free_port()).start()
    with psycopg.connect(first.database_url) as conn:
        assert conn.execute("SHOW server_version").fetchone()[0].startswith("18")  # type: ignore[index]
        # sized to the machine, not initdb's 128 MB
        assert _shared_buffers_mb(conn) == shared_buffers_mb()
    again = Servers(data_dir=tmp_path, nats_port=free_port()).start()
    assert again.database_url == first.database_url
    assert again.nats_url == first.nats_url  # found running, not started twice
    again.stop()  # did not start them: leaves them running
    with psycopg.connect(first.database_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)

    first.stop()

    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(first.database_url, connect_timeout=2)
    assert not (tmp_path / "nats.pid").exists()


def test_an_unusable_data_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data directory should be")
    with pytest.raises(ServerError, match=r"data directory .*not-a-dir"):
        Servers(data_dir=blocker / "data", nats_port=free_port()).start()


def test_a_busy_nats_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServerError, match=f"port {port} is in use"):
            EmbeddedNats(tmp_path, port=port).start()


def test_configured_servers_are_used_and_nothing_is_started(
        tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATABASE_URL, database_url)
    monkeypatch.setenv(NATS_URL, "nats://127.0.0.1:4999")
    servers = Servers(data_dir=tmp_path / "unused").start()
    assert (servers.database_url, servers.nats_url) == (database_url, "nats://127.0.0.1:4999")
    assert not (tmp_path / "unused").exists()


def test_answers_waits_for_a_200_and_gives_up_on_a_dead_process() -> None:
    import http.server
    import threading
    import time as clock

    from zongzhi.servers import answers

    # given an HTTP server that answers 200, and a port nobody listens on
    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        live = f"http://127.0.0.1:{server.server_address[1]}/healthz"
        closed = f"http://127.0.0.1:{free_port()}/healthz"
        # then the live one answers, the closed one does not within its time
        assert answers(live, 5)
        started = clock.monotonic()
        assert not answers(closed, 0.5)
        assert clock.monotonic() - started < 5
        # and a process that has exited is not waited for at all
        started = clock.monotonic()
        assert not answers(closed, 60, alive=lambda: False)
        assert clock.monotonic() - started < 1
    finally:
        server.shutdown()


def _shared_buffers_mb(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    row = conn.execute("SELECT setting::bigint * 8 / 1024 FROM pg_settings "
                       "WHERE name = 'shared_buffers'").fetchone()
    assert row is not None
    return int(str(row[0]))


def test_shared_buffers_are_a_quarter_of_the_memory_within_bounds() -> None:
    gib = 2**30
    assert shared_buffers_mb(8 * gib) == 2048
    assert shared_buffers_mb(256 * 2**20) == 128  # never below initdb's
    assert shared_buffers_mb(128 * gib) == 4096  # it shares the machine


def test_a_shared_buffers_set_with_alter_system_is_kept(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path)
    url = pg.start()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET shared_buffers = '200MB'")
        pg.stop()
        url = pg.start()
        with psycopg.connect(url) as conn:
            assert _shared_buffers_mb(conn) == 200
    finally:
        pg.stop()


def test_a_machine_that_cannot_map_the_buffers_gets_a_server_with_initdbs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """1 TB of buffers under an address-space limit (which the server inherits):
    mapping them fails whatever the kernel's overcommit policy."""
    monkeypatch.setattr(servers_module, "shared_buffers_mb", lambda: 2**20)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:
        used = int(statm.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + 16 * 2**30, hard))
    pg = EmbeddedPostgres(tmp_path)
    try:
        with pytest.warns(RuntimeWarning, match="could not start with 1048576 MB"):
            url = pg.start()
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    try:
        with psycopg.connect(url) as conn:
            assert _shared_buffers_mb(conn) == 128
            assert conn.execute("SELECT 1").fetchone() == (1,)
        # and the next start keeps that, without trying (and warning) again
        pg.stop()
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            url = pg.start()
        with psycopg.connect(url) as conn:
            assert _shared_buffers_mb(conn) == 128
    finally:
        pg.stop()
