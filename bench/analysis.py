"""The dashboard's Period analysis: one request's time for a city and a county.

    python bench/dashboard.py --keep                 # once: 1,000,000 cases of city 3307
    python bench/analysis.py --reuse bench_xxxxxxxx

On a database that ``bench/dashboard.py --keep`` loaded, the request the web client's
Period analysis tab sends (the period's KPIs and figures, its top 40 hot spots, and the
figures of each of the 8 weeks before its end) is executed through the GraphQL schema
in this process for the city and for each of its first ``--counties`` counties, as
their director, for periods of 30 and 365 days ending when the dashboard bench asks.
Each is run ``--rounds`` times; the median and the slowest wall time are printed with
the number of matters the period held. The KPI statements read the case view
(``projections.kpis``): these times are PostgreSQL's aggregation over the period's
cases. Figures only; nothing is asserted on time.
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
import statistics  # noqa: E402
import time  # noqa: E402
from datetime import timedelta  # noqa: E402

from api.auth import TokenService  # noqa: E402
from api.authz import default_authorizer  # noqa: E402
from api.context import Context, Services  # noqa: E402
from api.schema import schema  # noqa: E402
from api.subscriptions import CaseFeed  # noqa: E402
from tenants.service import Tenants  # noqa: E402

sys.path.append(str(_HERE))
from _common import ROOT, bench_module, fresh_database, print_header, table  # noqa: E402
from _queries import FIGURES, KPIS  # noqa: E402

_dashboard_bench = bench_module("dashboard")
CITY: str = _dashboard_bench.CITY
NOW = _dashboard_bench.NOW
WEEK = timedelta(days=7)
#: The web client's Period analysis request (web/src/views/DashboardView.vue).
TREND = "\n".join(f"w{i}: figures(from: $w{i}, to: $w{i + 1}) {{ {FIGURES} }}"
                  for i in range(8))
ANALYSIS = (
    "query($c: String!, $from: DateTime!, $to: DateTime!, "
    + ", ".join(f"$w{i}: DateTime!" for i in range(9)) + ") { center(code: $c) { "
    f"kpis(from: $from, to: $to) {{ {KPIS} }} figures(from: $from, to: $to) {{ {FIGURES} }} "
    "hotSpots(from: $from, to: $to, top: 40) { category division week matters } "
    f"{TREND} }} }}")


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reuse", metavar="DATABASE", required=True,
                   help="a database bench/dashboard.py --keep loaded (its name is printed)")
    p.add_argument("--rounds", type=int, default=3, help="requests a center and period (3)")
    p.add_argument("--counties", type=int, default=2, help="counties besides the city (2)")
    args = p.parse_args(argv[1:])
    if args.rounds < 1 or args.counties < 0:
        p.error(f"--rounds must be at least 1 and --counties at least 0; got {args.rounds} "
                f"and {args.counties}")
    with fresh_database(reuse=args.reuse, keep=True) as db:
        print_header("bench/analysis.py: the Period analysis request", db, argv)
        key = (ROOT / ".zongzhi" / "bench" / f"{db.name}.key").read_bytes()
        tenants = Tenants(db.url, key, cache_size=5000)
        tokens = TokenService.from_env(tenants.registry)
        services = Services(tenants=tenants, tokens=tokens, authorizer=default_authorizer(),
                            clock=lambda: NOW, feed=CaseFeed(tenants), alerts=None)
        codes = [CITY, *[c.code for c in tenants.registry.children(CITY)][:args.counties]]
        rows = []

        async def ask(code: str, days: int) -> tuple[float, int]:
            principal = tokens.verify("Bearer " + tokens.issue(code, ["director"]))
            weeks = {f"w{i}": (NOW - (8 - i) * WEEK).isoformat() for i in range(9)}
            started = time.perf_counter()
            result = await schema.execute(
                ANALYSIS, variable_values={"c": code, "from": (NOW - timedelta(days=days))
                                           .isoformat(), "to": NOW.isoformat(), **weeks},
                context_value=Context(services, principal, None))
            elapsed = time.perf_counter() - started
            if result.errors or result.data is None:
                raise RuntimeError(f"{code}: {result.errors}")
            return elapsed, int(result.data["center"]["kpis"]["matters"])

        async def run() -> None:
            for days in (30, 365):
                for code in codes:
                    timed = [await ask(code, days) for _ in range(args.rounds)]
                    walls = sorted(t * 1000 for t, _ in timed)
                    rows.append([code, f"{days} d", f"{timed[0][1]:,}",
                                 f"{statistics.median(walls):.0f}", f"{walls[-1]:.0f}"])
                    print(f"{code} {days} d: {timed[0][1]:,} matters, median "
                          f"{statistics.median(walls):.0f} ms", flush=True)

        asyncio.run(run())
        tenants.close()
    print()
    print(table(rows, ["center", "period", "matters", "median ms", "slowest ms"]))
    print(f"\n{args.rounds} requests each, one at a time, in this process (pool of 10)")


if __name__ == "__main__":
    main(sys.argv)
