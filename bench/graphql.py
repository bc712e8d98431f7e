"""What one GraphQL request costs in CPU, beside the read-side query it asks for.

    python bench/dashboard.py --keep             # once: loads 1,000,000 cases of city 3307
    python bench/graphql.py --reuse bench_xxxxxxxx

On a database that ``bench/dashboard.py --keep`` loaded, the API (``create_app``, with
its middlewares, token check, casbin, limits and strawberry) is called in this process
through FastAPI's ``TestClient``, one request at a time, with the queries the web client's
dashboard overview and inbox send:

floor      ``center(code) { code }`` for a random county: the fixed cost of a request
dashboard  the kept dashboard with its rollup and the county's children
overdue    the county's 20 cases overdue longest (the list's row fields)
inbox      a random village's inbox (the same row fields), as its clerk

Each is timed ``--requests`` times after 50 warm-up requests: CPU seconds of this process
per request (the test client's side included: an upper bound of the server's share) and
wall time. Beside them, the read-side call the resolvers make (``dashboards.dashboard``,
``queries.overdue``, ``queries.inbox``), timed the same way. Figures only; nothing is
asserted on time.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This script's folder is on sys.path, and its name would hide the ``projections``
# package: leave the folder out until the packages are imported (then ``_common``).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

from fastapi.testclient import TestClient  # noqa: E402

from api.app import create_app  # noqa: E402
from api.auth import TokenService  # noqa: E402
from projections.dashboards import dashboard  # noqa: E402
from projections.queries import inbox, overdue  # noqa: E402
from tenants.service import Tenants  # noqa: E402

sys.path.append(str(_HERE))
from _common import ROOT, bench_module, fresh_database, print_header, table  # noqa: E402
from _queries import QUERIES  # noqa: E402

_dashboard_bench = bench_module("dashboard")
CITY: str = _dashboard_bench.CITY
NOW = _dashboard_bench.NOW  # the instant the dashboard bench asks at

def timed(work: Callable[[], object], n: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per call of ``work`` over ``n`` calls, after 50 warm-ups."""
    for _ in range(50):
        work()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        work()
    return ((time.process_time() - cpu) / n * 1000, (time.perf_counter() - wall) / n * 1000)


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reuse", metavar="DATABASE", required=True,
                   help="a database bench/dashboard.py --keep loaded (its name is printed)")
    p.add_argument("--requests", type=int, default=500, help="timed requests a kind (500)")
    args = p.parse_args(argv[1:])
    if args.requests < 1:
        p.error(f"--requests must be at least 1; got {args.requests}")
    with fresh_database(reuse=args.reuse, keep=True) as db:
        print_header("bench/graphql.py: a GraphQL request's CPU beside its read-side query",
                     db, argv)
        key = (ROOT / ".zongzhi" / "bench" / f"{db.name}.key").read_bytes()
        tenants = Tenants(db.url, key, pool_size=4, cache_size=5000)
        app = create_app(tenants, clock=lambda: NOW, web=None)
        counties = [c.code for c in tenants.registry.children(CITY)]
        villages = [c.code for c in tenants.registry.subtree(CITY) if len(c.code) == 12]
        issuer = TokenService.from_env(tenants.registry)
        rng = random.Random(20261207)
        tokens: dict[str, str] = {}

        def token(code: str, role: str) -> str:
            if code not in tokens:
                tokens[code] = issuer.issue(code, [role])
            return tokens[code]

        rows = []
        with TestClient(app) as client:
            def ask(kind: str) -> Callable[[], object]:
                def one() -> object:
                    code = rng.choice(villages if kind == "inbox" else counties)
                    role = "clerk" if kind == "inbox" else "director"
                    r = client.post("/graphql", json={"query": QUERIES[kind],
                                                      "variables": {"c": code}},
                                    headers={"Authorization": f"Bearer {token(code, role)}"})
                    body = r.json()
                    if r.status_code != 200 or body.get("errors"):
                        raise RuntimeError(f"{kind}: {r.status_code} {str(body)[:300]}")
                    return body
                return one

            read_side: dict[str, Callable[[], object] | None] = {
                "floor": None,
                "dashboard": lambda: dashboard(tenants, rng.choice(counties), NOW),
                "overdue": lambda: overdue(tenants, rng.choice(counties), NOW, subtree=True,
                                           first=20),
                "inbox": lambda: inbox(tenants, rng.choice(villages), first=20),
            }
            for kind in QUERIES:
                cpu, wall = timed(ask(kind), args.requests)
                direct = read_side[kind]
                read_cpu = f"{timed(direct, args.requests)[0]:.2f}" if direct else "-"
                rows.append([kind, f"{cpu:.2f}", f"{wall:.2f}", read_cpu])
                print(f"{kind}: GraphQL {cpu:.2f} ms CPU, {wall:.2f} ms wall; read side "
                      f"{read_cpu} ms CPU", flush=True)
        tenants.close()
    print()
    print(table(rows, ["request", "GraphQL CPU ms", "GraphQL wall ms", "read side CPU ms"]))
    print(f"\none request at a time, {args.requests} a kind, in this process (FastAPI's "
          "TestClient: the client's side is in the CPU figure)")


if __name__ == "__main__":
    main(sys.argv)
