"""County dashboard and village inbox through the API over HTTP, at 50 concurrent clients.

    python bench/dashboard.py --keep                     # once: 1,000,000 cases of city 3307
    python bench/graphql_http.py --reuse bench_xxxxxxxx  # 2 API processes, 50 clients

On a database that ``bench/dashboard.py --keep`` loaded, ``--processes`` API processes
are started, each ``create_app`` (middlewares, token check, casbin, limits, strawberry)
under uvicorn on a port of its own, as the API Deployment's replicas run behind their
Service, with a pool of ``--pool`` connections each (``ZONGZHI_POOL_SIZE``). The clients
are ``--clients`` asyncio tasks in this process (aiohttp, one kept-alive connection each,
dealt round-robin over the processes), each sending its next request when the last is
answered, for ``--duration`` seconds a kind after 3 seconds of warm-up:

floor      a random county's director: ``center(code) { code }``, a request's fixed cost
dashboard  a random county's director: the web client's dashboard overview in one
           request (the kept dashboard with its KPIs and rollup, the children's names,
           and the 20 cases overdue longest in the subtree)
inbox      a random village's clerk: its inbox (20 rows)

Printed per kind: requests/s, latency p50/p90/p99/max as the clients saw it, and the
CPU each request cost in the API processes, in PostgreSQL and in the clients (which
share the machine's cores). Every answer is checked (HTTP 200, no GraphQL error, the
rows present); nothing is asserted on time.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This script's folder is on sys.path, and its name would hide the ``projections``
# package: leave the folder out until the packages are imported (then ``_common``).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import aiohttp  # noqa: E402
import psutil  # noqa: E402
import uvicorn  # noqa: E402

from api.app import create_app  # noqa: E402
from api.auth import TokenService  # noqa: E402
from tenants.service import Tenants  # noqa: E402
from zongzhi.servers import free_port  # noqa: E402

sys.path.append(str(_HERE))
from _common import ROOT, bench_module, fresh_database, met, print_header, table  # noqa: E402
from _queries import OVERVIEW  # noqa: E402
from _queries import QUERIES as GRAPHQL  # noqa: E402

_dashboard_bench = bench_module("dashboard")
CITY: str = _dashboard_bench.CITY
NOW = _dashboard_bench.NOW  # the instant the dashboard bench asks at
TARGET_P99_MS: float = _dashboard_bench.TARGET_P99_MS
QUERIES = {"floor": GRAPHQL["floor"], "dashboard": OVERVIEW, "inbox": GRAPHQL["inbox"]}
WARM_UP_S = 3.0


# -- the API processes ---------------------------------------------------------------------


def serve(url: str, key_file: Path, port: int, pool: int) -> None:
    """One API process (``--serve``): the product's app under uvicorn on ``port``."""
    tenants = Tenants(url, key_file.read_bytes(), pool_size=pool, cache_size=5000)
    app = create_app(tenants, clock=lambda: NOW, web=None)
    try:
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    finally:
        tenants.close()


def start_servers(url: str, key_file: Path, processes: int, pool: int
                  ) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    procs, ports = [], []
    for _ in range(processes):
        port = free_port()
        procs.append(subprocess.Popen(
            [sys.executable, __file__, "--serve", url, "--key-file", str(key_file),
             "--port", str(port), "--pool", str(pool)], cwd=ROOT))
        ports.append(port)
    return procs, ports


async def wait_ready(ports: list[int], procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession() as session:
        for port, proc in zip(ports, procs, strict=True):
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"the API process on port {port} exited ({proc.returncode})")
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"the API process on port {port} did not start in 120 s")
                await asyncio.sleep(0.2)


# -- the clients -----------------------------------------------------------------------------


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    measuring: bool = False
    stop: bool = False


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    """The embedded server's processes (its postmaster and every backend)."""
    pid_file = data_dir / "pg" / "postmaster.pid"
    if not pid_file.is_file():
        return []
    master = psutil.Process(int(pid_file.read_text().split()[0]))
    return [master, *master.children(recursive=True)]


async def client(session: aiohttp.ClientSession, base: str, kind: str, codes: list[str],
                 tokens: dict[str, str], rng: random.Random, run: Run) -> None:
    query = QUERIES[kind]
    rows = {"floor": None, "dashboard": "overdue", "inbox": "inbox"}[kind]
    while not run.stop:
        code = rng.choice(codes)
        started = time.perf_counter()
        async with session.post(f"{base}/graphql", json={"query": query, "variables": {"c": code}},
                                headers={"Authorization": f"Bearer {tokens[code]}"}) as r:
            body = await r.json()
        elapsed = time.perf_counter() - started
        center = (body.get("data") or {}).get("center") or {}
        if r.status != 200 or body.get("errors") or center.get("code", code) != code or (
                rows is not None and "nodes" not in center[rows]):
            run.stop = True
            raise RuntimeError(f"{kind} for {code}: HTTP {r.status} {str(body)[:300]}")
        if run.measuring:
            run.latencies.append(elapsed)


async def measure(kind: str, ports: list[int], clients: int, duration: float, codes: list[str],
                  tokens: dict[str, str], servers: list[psutil.Process],
                  postgres: list[psutil.Process]) -> list[str]:
    run = Run()
    rng = random.Random(20261207)
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
                for _ in range(clients)]
    try:
        bases = [f"http://127.0.0.1:{ports[i % len(ports)]}" for i in range(clients)]
        tasks = [asyncio.create_task(client(sessions[i], bases[i], kind, codes, tokens,
                                            random.Random(rng.random()), run))
                 for i in range(clients)]
        await asyncio.sleep(WARM_UP_S)
        before = (cpu_seconds(servers), cpu_seconds(postgres), time.process_time())
        run.measuring = True
        began = time.perf_counter()
        await asyncio.sleep(duration)
        run.measuring = False
        seconds = time.perf_counter() - began
        after = (cpu_seconds(servers), cpu_seconds(postgres), time.process_time())
        run.stop = True
        await asyncio.gather(*tasks)
    finally:
        for s in sessions:
            await s.close()
    lat = sorted(x * 1000 for x in run.latencies)
    n = len(lat)
    if n < 100:
        raise SystemExit(f"{kind}: only {n} answers in {duration:.0f} s; run longer")
    q = statistics.quantiles(lat, n=100)
    per = [f"{(a - b) / n * 1000:.2f}" for a, b in zip(after, before, strict=True)]
    if not postgres:  # a server named by ZONGZHI_DATABASE_URL: its CPU is not ours to read
        per[1] = "-"
    p99 = q[98]
    print(f"{kind}: {n / seconds:.0f}/s  p50 {q[49]:.1f} ms  p99 {p99:.1f} ms  "
          f"CPU a request: API {per[0]} ms, PostgreSQL {per[1]} ms, clients {per[2]} ms",
          flush=True)
    return [kind, f"{n / seconds:.0f}", f"{q[49]:.1f}", f"{q[89]:.1f}", f"{p99:.1f}",
            f"{lat[-1]:.1f}", *per, met(p99 < TARGET_P99_MS)]


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reuse", metavar="DATABASE",
                   help="a database bench/dashboard.py --keep loaded (its name is printed)")
    p.add_argument("--processes", type=int, default=2, help="API processes (2: one a core)")
    p.add_argument("--clients", type=int, default=50, help="concurrent clients (50)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds a kind (20)")
    p.add_argument("--pool", type=int, default=2,
                   help="connections an API process (2; the product's default is 10)")
    p.add_argument("--serve", metavar="URL", help=argparse.SUPPRESS)
    p.add_argument("--key-file", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv[1:])
    if args.serve:
        serve(args.serve, args.key_file, args.port, args.pool)
        return
    if args.reuse is None:
        p.error("--reuse DATABASE is required: load one with bench/dashboard.py --keep")
    for name in ("processes", "clients", "pool"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1; got {getattr(args, name)}")
    if args.duration < 1:
        p.error(f"--duration must be at least 1 second; got {args.duration}")
    data_dir = ROOT / ".zongzhi" / "bench"
    with fresh_database(data_dir, reuse=args.reuse, keep=True) as db:
        print_header("bench/graphql_http.py: dashboard and inbox through the API over HTTP",
                     db, argv)
        key_file = data_dir / f"{db.name}.key"
        tenants = Tenants(db.url, key_file.read_bytes(), pool_size=1)
        counties = [c.code for c in tenants.registry.children(CITY)]
        villages = [c.code for c in tenants.registry.subtree(CITY) if len(c.code) == 12]
        issuer = TokenService.from_env(tenants.registry)
        tokens = {c: issuer.issue(c, ["director"]) for c in counties}
        tokens.update({c: issuer.issue(c, ["clerk"]) for c in villages})
        tenants.close()
        procs, ports = start_servers(db.url, key_file, args.processes, args.pool)
        rows = []
        try:
            asyncio.run(wait_ready(ports, procs))
            servers = [psutil.Process(p.pid) for p in procs]
            postgres = postgres_processes(data_dir)
            for kind, codes in (("floor", counties), ("dashboard", counties),
                                ("inbox", villages)):
                rows.append(asyncio.run(measure(kind, ports, args.clients, args.duration,
                                                codes, tokens, servers, postgres)))
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    print()
    print(table(rows, ["request", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms",
                       "API CPU ms", "PG CPU ms", "client CPU ms",
                       f"p99 < {TARGET_P99_MS:.0f} ms"]))
    print(f"\n{args.clients} clients over {args.processes} API processes (pool {args.pool} "
          f"each), {args.duration:.0f} s a kind after {WARM_UP_S:.0f} s of warm-up; CPU is per "
          f"answered request, on {os.cpu_count()} cores shared by all three")


if __name__ == "__main__":
    main(sys.argv)
