"""Provision every Zhejiang tenant, then touch 2,000 random ones.

    python bench/provision.py            # all 27,035 tenants, touch 2,000 (about 1-2 minutes)
    python bench/provision.py --quick    # one city (3301), touch 200

Phase 1 imports the division files (``Tenants.import_divisions``, scope: the
whole province by default): one registry event per tenant, the ``centers``
table row written with it, and one-time DDL per city log group.
Phase 2 touches ``--touch`` tenants drawn at random (seeded) from the registry,
from ``--threads`` threads: each opens the tenant's ``CenterApp`` through the
LRU cache and receives one case (a new data key for the tenant, a case number
from the city's sequence, personal fields encrypted, one commit), then reads
it back. Phase 3 opens as many other random tenants' ``CenterApp`` objects,
from one thread, without a command: the cost of a cache miss.

Measured, from a side thread every 50 ms: the peak number of connections to
the bench database (``pg_stat_activity``; the sampler's own excluded) against
the pool size, and the peak RSS of this process (also ``ru_maxrss``); and the
PostgreSQL relations (``pg_class`` rows) before, after provisioning and after
touching, to show that relations do not grow with tenants.
Figures are printed; nothing is asserted on time.
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from _common import (
    DIVISIONS,
    BenchDatabase,
    Sampler,
    connect_aside,
    fresh_database,
    max_rss_mib,
    met,
    print_header,
    rss_mib,
    table,
)

from domain import Channel, Party, Personal, Place
from tenants import persistence
from tenants.service import DEFAULT_CACHE_SIZE, Tenants

GIB = 1024.0


@dataclass
class Catalog:
    relations: int  # every pg_class row of the bench database
    user_relations: int  # outside pg_catalog, information_schema and pg_toast
    log_group_relations: dict[str, int]  # per lg_* schema
    database_mib: float

    @classmethod
    def read(cls, db: BenchDatabase) -> Catalog:
        with connect_aside(db.url) as conn:
            total, user = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE n.nspname NOT IN "
                "('pg_catalog', 'information_schema', 'pg_toast')) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace").fetchone()
            groups = dict(conn.execute(
                "SELECT n.nspname, count(*) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname LIKE 'lg\\_%' GROUP BY n.nspname ORDER BY 1").fetchall())
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return cls(int(total), int(user), {str(k): int(v) for k, v in groups.items()},
                   int(size[0]) / 2**20 if size else 0.0)

    def describe(self) -> str:
        groups = self.log_group_relations
        per = sorted(set(groups.values()))
        return (f"{self.relations} relations ({self.user_relations} outside the system "
                f"catalogs; {len(groups)} log group schemas with {per} relations each), "
                f"database {self.database_mib:.0f} MiB")


@dataclass
class Phase:
    name: str
    seconds: float
    peak_connections: int
    peak_rss_mib: float
    rss_after_mib: float
    catalog: Catalog


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scope", default=None,
                   help="division scope to provision (default: the whole province)")
    p.add_argument("--touch", type=int, default=2000, help="tenants to touch (default 2000)")
    p.add_argument("--threads", type=int, default=16,
                   help="threads touching tenants (default 16, more than the pool)")
    p.add_argument("--pool-size", type=int, default=persistence.DEFAULT_POOL_SIZE,
                   help=f"the one pool's size (default {persistence.DEFAULT_POOL_SIZE}, "
                        "the product's)")
    p.add_argument("--cache-size", type=int, default=DEFAULT_CACHE_SIZE,
                   help=f"CenterApp LRU size (default {DEFAULT_CACHE_SIZE}, the product's)")
    p.add_argument("--seed", type=int, default=20261123)
    p.add_argument("--quick", action="store_true", help="one city (3301), touch 200")
    args = p.parse_args(argv[1:])
    if args.quick:
        args.scope, args.touch = args.scope or "3301", min(args.touch, 200)

    with fresh_database() as db:
        print_header("bench/provision.py: provision every tenant, then touch random ones",
                     db, argv)
        print(f"scope {args.scope or 'the whole province (33)'}; touch {args.touch} from "
              f"{args.threads} threads; pool size {args.pool_size}; LRU cache "
              f"{args.cache_size}; seed {args.seed}\n", flush=True)
        phases: list[Phase] = []
        start_rss = rss_mib()
        before = Catalog.read(db)
        print(f"before:              {before.describe()}", flush=True)

        with Sampler(db.url) as sampler:
            # phase 0: open the process's entry (pool, keyring, registry)
            t0 = time.perf_counter()
            tenants = Tenants(db.url, secrets.token_bytes(32), pool_size=args.pool_size,
                              cache_size=args.cache_size)
            opened = time.perf_counter() - t0

            # phase 1: provision
            t0 = time.perf_counter()
            report = tenants.import_divisions(DIVISIONS, scope=args.scope, by="bench",
                                              at=datetime.now(UTC))
            seconds = time.perf_counter() - t0
            catalog = Catalog.read(db)
            phases.append(Phase("provision", seconds, sampler.peak_connections,
                                sampler.peak_rss_mib, rss_mib(), catalog))
            codes = [c.code for c in tenants.registry.all()]
            print(f"provisioned:         {catalog.describe()}", flush=True)
            print(f"  import: {report} ({len(report.cities)} cities) in {seconds:.1f} s "
                  f"= {report.registered / seconds:.0f} tenants/s; registry holds "
                  f"{len(codes)} centers", flush=True)

            # phase 2: touch random tenants
            sampler.reset()
            chosen = random.Random(args.seed).sample(codes, min(args.touch, len(codes)))
            latencies: list[float] = []
            checkpoints: list[tuple[int, float, int]] = []
            lock = threading.Lock()
            jobs = iter(enumerate(chosen))
            at = datetime(2026, 11, 23, 9, tzinfo=UTC)

            def toucher() -> None:
                while True:
                    with lock:
                        job = next(jobs, None)
                    if job is None:
                        return
                    n, code = job
                    t = time.perf_counter()
                    app = tenants.center(code)
                    case = app.receive_case(
                        channel=Channel.WINDOW, category="neighbour-dispute",
                        summary="楼上住户装修噪声扰民，申请调解。",
                        parties=[Party(name=Personal("张三"), phone=Personal("13800000000"))],
                        place=Place(code, "幸福小区3幢2单元501室"), by="bench",
                        at=at + timedelta(seconds=n))
                    assert app.get_case(case.id).parties[0].name.text == "张三"
                    elapsed = time.perf_counter() - t
                    with lock:
                        latencies.append(elapsed)
                        if len(latencies) % max(1, args.touch // 4) == 0:
                            checkpoints.append((len(latencies), rss_mib(),
                                                sampler.peak_connections))

            t0 = time.perf_counter()
            threads = [threading.Thread(target=toucher) for _ in range(args.threads)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            seconds = time.perf_counter() - t0
            catalog = Catalog.read(db)
            phases.append(Phase(f"touch {len(chosen)}", seconds, sampler.peak_connections,
                                sampler.peak_rss_mib, rss_mib(), catalog))
            print(f"touched {len(latencies)}:        {catalog.describe()}", flush=True)

            # phase 3: open (construct) CenterApps of other random tenants, one thread,
            # no command: what a cache miss costs
            sampler.reset()
            touched_codes = set(chosen)
            others = [c for c in codes if c not in touched_codes]
            opened_codes = random.Random(args.seed + 1).sample(
                others, min(args.touch, len(others)))
            t0 = time.perf_counter()
            for code in opened_codes:
                tenants.center(code)
            seconds = time.perf_counter() - t0
            phases.append(Phase(f"open {len(opened_codes)}", seconds, sampler.peak_connections,
                                sampler.peak_rss_mib, rss_mib(), Catalog.read(db)))
            cached = len(tenants._apps)
            tenants.close()

        print(f"\nopening Tenants (pool, keyring, registry): {opened * 1000:.0f} ms; "
              f"RSS at start {start_rss:.0f} MiB")
        print(table([[ph.name, f"{ph.seconds:.1f}", f"{ph.peak_connections}",
                      f"{ph.peak_rss_mib:.0f}", f"{ph.rss_after_mib:.0f}",
                      f"{ph.catalog.relations}"] for ph in phases],
                    ["phase", "seconds", "peak connections", "peak RSS MiB", "RSS after MiB",
                     "relations after"]))
        lat = sorted(latencies)
        print(f"\ntouch: {len(lat) / phases[1].seconds:.0f} tenants/s; per tenant (open + "
              f"receive one case + read it back) median {statistics.median(lat) * 1000:.1f} "
              f"ms, p95 {lat[int(0.95 * (len(lat) - 1))] * 1000:.1f} ms, max "
              f"{lat[-1] * 1000:.1f} ms; CenterApps cached at the end: {cached}")
        ph = phases[2]
        print(f"open: {len(opened_codes)} CenterApps of other random tenants (not cached, no "
              f"command) in {ph.seconds:.2f} s = {ph.seconds / len(opened_codes) * 1000:.2f} "
              f"ms each")
        print("RSS while touching (tenants touched, RSS MiB, peak connections so far): "
              + ", ".join(f"({n}, {r:.0f}, {c})" for n, r, c in checkpoints))
        peak_conn = max(ph.peak_connections for ph in phases)
        peak_rss = max(max(ph.peak_rss_mib for ph in phases), max_rss_mib())
        prov, touched = phases[0].catalog, phases[2].catalog
        print(f"ru_maxrss (peak RSS of the whole run): {max_rss_mib():.0f} MiB; connections "
              f"and RSS sampled every {sampler.interval * 1000:.0f} ms")
        print(f"relations: before {before.relations}, after provisioning {prov.relations} "
              f"(+{prov.relations - before.relations} for {len(codes)} tenants), after "
              f"touching and opening {touched.relations} "
              f"(+{touched.relations - prov.relations})")
        print()
        print(f"target: peak connections <= pool size: {peak_conn} <= {args.pool_size} -> "
              f"{met(peak_conn <= args.pool_size)}")
        print(f"target: process memory under 1 GiB: peak RSS {peak_rss:.0f} MiB -> "
              f"{met(peak_rss < GIB)}")
        print(f"target: relations independent of the tenant count after touching "
              f"{len(chosen)}: {prov.relations} -> {touched.relations} -> "
              f"{met(touched.relations == prov.relations)}")


if __name__ == "__main__":
    main(sys.argv)
