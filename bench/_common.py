"""Shared setup of the bench scripts: servers, a fresh database, samplers, printing.

Every bench run gets its own database (``bench_<random>``) on the product's
PostgreSQL (``ZONGZHI_DATABASE_URL`` or the embedded server started in
``.zongzhi/bench``) and drops it at the end, so runs never see each other's
rows, tables or catalog entries. The scripts print figures and same-run
ratios; they never assert on time.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import resource
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from zongzhi.servers import Servers, free_port

ROOT = Path(__file__).resolve().parents[1]
DIVISIONS = ROOT / "data" / "divisions"
CITIES = [f"33{n:02d}" for n in range(1, 12)]  # Zhejiang's 11 cities: 3301..3311


def bench_module(name: str) -> ModuleType:
    """Another bench script (``bench/<name>.py``) as a module, for its constants."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@dataclass
class BenchDatabase:
    server_url: str  # the server's maintenance database
    url: str  # the fresh bench database
    name: str


@contextmanager
def fresh_database(data_dir: Path | None = None, *, reuse: str | None = None,
                   keep: bool = False) -> Iterator[BenchDatabase]:
    """A new database on the product's server, dropped again afterwards; or, with
    ``reuse``, a database an earlier run kept (``keep``), left in place."""
    servers = Servers(data_dir=(data_dir or ROOT / ".zongzhi" / "bench").resolve(),
                      nats_port=free_port()).start(nats=False)
    name = reuse or f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(servers.database_url, autocommit=True) as conn:
        if reuse is None:
            conn.execute(f"CREATE DATABASE {name}")
        elif conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                          (reuse,)).fetchone() is None:
            servers.stop()
            raise SystemExit(f"no database {reuse} to reuse on {servers.database_url}")
    db = BenchDatabase(servers.database_url, make_conninfo(servers.database_url, dbname=name),
                       name)
    try:
        yield db
    finally:
        from tenants.persistence import SharedDatastore

        for datastore in list(SharedDatastore._by_url.values()):
            with suppress(Exception):
                datastore.close()
        if keep or reuse is not None:
            print(f"database {name} kept (--reuse {name}; drop it with DROP DATABASE)")
        else:
            with psycopg.connect(servers.database_url, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        servers.stop()  # only what this run started


def library_env(url: str, schema: str, pool_size: int) -> dict[str, str]:
    """The environment of the library's own ``eventsourcing.postgres`` module
    for the database at ``url`` (a Unix-socket host is passed as its directory)."""
    params = conninfo_to_dict(url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(params.get("dbname", "postgres")),
        "POSTGRES_HOST": str(params.get("host", "127.0.0.1")),
        "POSTGRES_PORT": str(params.get("port", "5432")),
        "POSTGRES_USER": str(params.get("user", "postgres")),
        "POSTGRES_PASSWORD": str(params.get("password", "")),
        "POSTGRES_SCHEMA": schema,
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": "0",
    }


def server_facts(url: str) -> dict[str, str]:
    names = ["server_version", "max_connections", "shared_buffers", "fsync",
             "synchronous_commit", "wal_level"]
    with psycopg.connect(url) as conn:
        return {n: str(conn.execute(f"SHOW {n}").fetchone()[0])  # type: ignore[index]
                for n in names}


def print_header(title: str, db: BenchDatabase, argv: list[str]) -> None:
    facts = server_facts(db.url)
    where = "ZONGZHI_DATABASE_URL" if os.environ.get("ZONGZHI_DATABASE_URL") else "embedded"
    print("=" * 78)
    print(f"{title}")
    print(f"date        {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
    print(f"command     python {' '.join(argv)}")
    print(f"machine     {platform.node()}  {platform.machine()}  cpus={os.cpu_count()}  "
          f"python {platform.python_version()}")
    print(f"libraries   eventsourcing {version('eventsourcing')}, psycopg {version('psycopg')}")
    print(f"postgresql  {facts.pop('server_version')} ({where}, database {db.name})")
    print("settings    " + ", ".join(f"{k}={v}" for k, v in facts.items()))
    print("=" * 78, flush=True)


def rss_mib() -> float:
    """Current resident set size of this process, MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def max_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss), MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


ASIDE = "zongzhi-bench-aside"  # application_name of the bench's own observing connections


def connect_aside(url: str) -> psycopg.Connection[Any]:
    """A connection of the bench itself (sampler, catalog reads), left out of the
    connection counts."""
    return psycopg.connect(url, autocommit=True, application_name=ASIDE)


class Sampler:
    """Polls, from a side thread on its own connection, the number of client
    connections to the bench database (autovacuum workers and the bench's own
    observers left out) and this process's RSS; keeps the peaks."""

    def __init__(self, url: str, interval: float = 0.05) -> None:
        self.url = url
        self.interval = interval
        self.peak_connections = 0
        self.peak_rss_mib = 0.0
        self.samples = 0
        self._lock_waiters = 0
        #: lock waits sampled, by the kind of lock waited for (pg_stat_activity's
        #: wait_event: ``relation`` a table lock, ``object`` the NOTIFY queue's, ...)
        self.lock_kinds: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._conn = connect_aside(url)

    def poll(self) -> tuple[int, int]:
        """(connections to the bench database, how many of them wait on a lock)."""
        rows = self._conn.execute(
            "SELECT CASE WHEN wait_event_type = 'Lock' THEN wait_event END, count(*) "
            "FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND application_name <> %s GROUP BY 1",
            (ASIDE,)).fetchall()
        waiting = 0
        for kind, n in rows:
            if kind is not None:
                self.lock_kinds[kind] += n
                waiting += n
        return sum(n for _, n in rows), waiting

    def connections(self) -> int:
        return self.poll()[0]

    def _run(self) -> None:
        while not self._stop.is_set():
            connections, waiting = self.poll()
            self.peak_connections = max(self.peak_connections, connections)
            self._lock_waiters += waiting
            self.peak_rss_mib = max(self.peak_rss_mib, rss_mib())
            self.samples += 1
            self._stop.wait(self.interval)

    @property
    def mean_lock_waiters(self) -> float:
        return self._lock_waiters / self.samples if self.samples else 0.0

    @property
    def lock_waits(self) -> str:
        """Mean waiters by kind of lock, e.g. ``relation 28.1, object 0.4``."""
        return ", ".join(f"{kind} {n / self.samples:.1f}"
                         for kind, n in self.lock_kinds.most_common()
                         if self.samples and n / self.samples >= 0.05) or "-"

    def reset(self) -> None:
        self.peak_connections = 0
        self.peak_rss_mib = 0.0
        self.samples = 0
        self._lock_waiters = 0
        self.lock_kinds.clear()

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._conn.close()


def run_writers(writers: int, work: Callable[[int], int]) -> tuple[int, float]:
    """Run ``work(i)`` in ``writers`` threads started together; each returns the
    number of commits it made. Returns (total commits, wall seconds)."""
    barrier = threading.Barrier(writers + 1)
    counts = [0] * writers
    errors: list[BaseException] = []

    def target(i: int) -> None:
        barrier.wait()
        try:
            counts[i] = work(i)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return sum(counts), elapsed


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)), line]
    out += ["  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                      for i, (c, w) in enumerate(zip(r, widths, strict=True))) for r in rows]
    return "\n".join(out)


def met(ok: bool) -> str:
    return "MET" if ok else "NOT MET"
