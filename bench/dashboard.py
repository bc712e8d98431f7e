"""County dashboard and village inbox latency at 50 concurrent clients over a real city.

    python bench/dashboard.py                    # 1,000,000 cases (long: see docs/performance.md)
    python bench/dashboard.py --cases 100000     # a smaller run
    python bench/dashboard.py --quick            # 20,000 cases, 10 s a kind

Workload: the real tree of city 3307 (金华: its counties, townships and villages,
imported from ``data/divisions``). ``--cases`` cases are generated with the domain's
own commands (``Case.receive``, ``triage``, ``dispatch``, ``accept``,
``report_progress``, ``resolve``) on ``Case`` objects with the registry's working
calendar, spread over 60 days of business time and over the centers (a village six
times, a township three times as likely as a county). Their fates: some left
received or triaged (in an inbox), some dispatched or accepted (some of them overdue
when the queries run), most resolved; 2 to 5 events a case. Each event is encrypted
by its center's ``CenterApp`` mapper and the stored events are bulk-loaded with
PostgreSQL ``COPY`` into ``lg_3307.events`` (``tenant_position`` counted per tenant
here), in chunks, one transaction a chunk. The case view is then built with
``CaseView.catch_up()`` and the table analyzed (as autovacuum would).

Timed, each kind for ``--duration`` seconds by ``--clients`` concurrent clients,
spread over ``--processes`` forked processes (default 5, as five API worker
processes would serve them; threads within each, sharing a pool of ``--pool``
connections, default the product's 10: what ``ZONGZHI_POOL_SIZE`` sets, see
docs/postgres.md):

dashboard  a random county: ``dashboards.dashboard`` (its KPIs and rollup with every
           child's figures, kept computed by the projection worker) +
           ``overdue(subtree=True, first=20)``: what the web client's dashboard
           overview asks for at each load (``dashboard`` and the 20 cases overdue
           longest; the child centers' names come from the registry in memory),
           one latency a dashboard.
inbox      a random village: ``inbox(first=20)``.

Before them, in the same run: the cost of keeping the dashboards (one
``dashboards.refresh`` of the whole city: every city, county and township
center's KPIs and rollup computed from the case view), and the live
computation of one county's dashboard (``dashboards.compute``, one client, each
county once): the read-time aggregation the kept dashboards replace.

Latencies are measured in the client threads, so they include the Python work of
each query (decoding rows) and waiting for a core: the clients share the 2 cores with
PostgreSQL. Figures are printed; nothing is asserted on time.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This script's folder is on sys.path, and its name would hide the ``projections``
# package: leave the folder out until the package is imported (then ``_common``).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse  # noqa: E402
import multiprocessing  # noqa: E402
import random  # noqa: E402
import secrets  # noqa: E402
import statistics  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

from domain import (  # noqa: E402
    CATEGORIES,
    Assignee,
    AssigneeKind,
    Case,
    Channel,
    HandlingClass,
    Outcome,
    Party,
    Personal,
    Place,
    Severity,
    WorkingCalendar,
)
from projections.dashboards import compute, dashboard, refresh  # noqa: E402
from projections.queries import inbox, overdue  # noqa: E402
from projections.views import CaseView  # noqa: E402
from tenants.persistence import DEFAULT_POOL_SIZE  # noqa: E402
from tenants.service import Tenants  # noqa: E402

sys.path.append(str(_HERE))
from _common import DIVISIONS, ROOT, fresh_database, met, print_header, table  # noqa: E402

CITY = "3307"
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DAYS = 60
NOW = START + timedelta(days=DAYS + 1)  # when the queries are asked
CHUNK = 10_000  # cases a COPY transaction
TARGET_P99_MS = 100.0
FIRST = 20


class Generator:
    """Cases of the city's centers through the domain's commands, in memory."""

    def __init__(self, rng: random.Random, calendar: WorkingCalendar, codes: list[str]) -> None:
        self.rng, self.calendar = rng, calendar
        self.codes = codes
        self.weights = [6 if len(c) == 12 else 3 if len(c) == 9 else 1 for c in codes]
        self.serial = 0
        self.fates: dict[str, int] = {}

    def cases(self, first: int, count: int, total: int) -> list[Case]:
        picks = self.rng.choices(self.codes, self.weights, k=count)
        return [self.case(first + i, total, code) for i, code in enumerate(picks)]

    def case(self, i: int, total: int, code: str) -> Case:
        rng = self.rng
        t = START + timedelta(seconds=DAYS * 86400 * i / total)
        self.serial += 1
        category = rng.choice(list(CATEGORIES))
        party = Party(name=Personal("张三"), phone=Personal(f"13{rng.randrange(10**9):09d}"),
                      id_number=Personal(f"330702199{rng.randrange(10**7):07d}X"),
                      address=Personal("幸福小区3幢2单元501室"))
        case = Case.receive(tenant=code, case_number=f"{code}-{t:%Y%m%d}-B{self.serial:07d}",
                            channel=rng.choice(list(Channel)[:6]), category=category,
                            summary="楼上住户装修噪声扰民, 多次协商未果", parties=[party],
                            place=Place(code, "某路1号", 29.08, 119.65), received_at=t,
                            received_by="clerk")
        clock = Clock(rng, t)
        fate = rng.random()
        if fate < 0.03:
            return self._fate(case, "left received")
        case.triage(rng.choices(list(Severity), [2, 13, 55, 30])[0],
                    rng.choices(list(HandlingClass), [50, 40, 10])[0], self.calendar,
                    "dispatcher", clock(1))
        if case.escalated_to is not None:  # red below a county escalates by itself
            return self._fate(case, "escalated (red)")
        if fate < 0.06:
            return self._fate(case, "left triaged")
        lead = Assignee(AssigneeKind.UNIT, CATEGORIES[category].department, lead=True)
        case.dispatch([lead], "dispatcher", clock(2))
        if fate < 0.10:
            return self._fate(case, "left dispatched")
        case.accept(lead.ref, "officer", clock(8))
        if fate < 0.16:
            if rng.random() < 0.5:
                case.report_progress("已联系双方当事人, 正在核实", "officer", clock(20))
            return self._fate(case, "left accepted")
        outcome = rng.choices(list(Outcome), [55, 35, 6, 4])[0]
        court = "(2026)浙0702民初1号" if outcome is Outcome.REFERRED_TO_COURT else None
        case.resolve(outcome, "已妥善处理", "officer", clock(48), court_reference=court)
        return self._fate(case, "resolved")

    def _fate(self, case: Case, what: str) -> Case:
        self.fates[what] = self.fates.get(what, 0) + 1
        return case


class Clock:
    """A case's business time: each step a random while after the last."""

    def __init__(self, rng: random.Random, t: datetime) -> None:
        self.rng, self.t = rng, t

    def __call__(self, hours: float) -> datetime:
        self.t += timedelta(hours=self.rng.uniform(0.05, hours))
        return self.t


class Loader:
    """Stored events into ``lg_<city>.events`` with COPY, ``tenant_position`` per tenant."""

    def __init__(self, tenants: Tenants) -> None:
        self.tenants = tenants
        self.positions: dict[str, int] = {}
        self.events = 0
        self.encode_s = 0.0
        self.copy_s = 0.0

    def load(self, cases: list[Case]) -> None:
        t0 = time.perf_counter()
        rows = []
        for case in cases:
            mapper = self.tenants.center(case.tenant).mapper
            for event in case.collect_events():
                stored = mapper.to_stored_event(event)
                position = self.positions.get(case.tenant, 0) + 1
                self.positions[case.tenant] = position
                rows.append((stored.originator_id, stored.originator_version, stored.topic,
                             stored.state, case.tenant, position))
        t1 = time.perf_counter()
        with self.tenants.datastore.get_connection() as conn, conn.transaction(), \
                conn.cursor() as curs, curs.copy(
                    f"COPY lg_{CITY}.events (originator_id, originator_version, topic, "
                    "state, tenant, tenant_position) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        self.encode_s += t1 - t0
        self.copy_s += time.perf_counter() - t1
        self.events += len(rows)


Work = Callable[[Tenants, random.Random], None]


def clients_run(url: str, clients: int, processes: int, pool: int, seconds: float,
                work: Work) -> tuple[list[float], float, int]:
    """``work`` over and over by ``clients`` concurrent clients for ``seconds``,
    spread over ``processes`` forked processes (threads within each sharing a pool
    of ``pool`` connections, as API worker processes would run them): (latencies in
    ms, wall seconds, errors)."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    start_at = time.time() + 2.0 + 0.2 * processes  # every process ready before it
    shares = [clients // processes + (1 if i < clients % processes else 0)
              for i in range(processes)]
    children = [context.Process(target=_client_process,
                                args=(url, i, share, pool, start_at, seconds, work, queue))
                for i, share in enumerate(shares) if share]
    for child in children:
        child.start()
    latencies: list[float] = []
    errors = 0
    first_error = ""
    for _ in children:
        got, failed, error = queue.get()
        latencies += got
        errors += failed
        first_error = first_error or error
    for child in children:
        child.join()
    if errors:
        print(f"  {errors} errors, first: {first_error}", flush=True)
    return latencies, seconds, errors


def _client_process(url: str, index: int, threads: int, pool_size: int, start_at: float,
                    seconds: float, work: Work, queue: Any) -> None:
    from tenants.persistence import SharedDatastore

    SharedDatastore._by_url.clear()  # the parent's pools are not ours to use
    tenants = Tenants(url, secrets.token_bytes(32), pool_size=pool_size)
    results: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    end_at = start_at + seconds

    def target(i: int) -> None:
        rng = random.Random(index * 1000 + i)
        own = results[i]
        time.sleep(max(0.0, start_at - time.time()))
        while time.time() < end_at:
            t0 = time.perf_counter()
            try:
                work(tenants, rng)
            except Exception as e:  # counted, the first one shown
                errors.append(e)
                continue
            own.append((time.perf_counter() - t0) * 1000)

    pool = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    queue.put(([x for r in results for x in r], len(errors), repr(errors[0]) if errors else ""))
    tenants.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=1_000_000, help="cases (default 1000000)")
    p.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds a kind (default 30)")
    p.add_argument("--processes", type=int, default=5,
                   help="client processes the clients are spread over (default 5)")
    p.add_argument("--pool", type=int, default=DEFAULT_POOL_SIZE,
                   help="connections per client process, as ZONGZHI_POOL_SIZE sizes an API "
                        f"process's pool (default {DEFAULT_POOL_SIZE}, the product's)")
    p.add_argument("--seed", type=int, default=20261123)
    p.add_argument("--quick", action="store_true", help="20,000 cases, 10 s a kind")
    p.add_argument("--keep", action="store_true",
                   help="keep the loaded database (and its master key beside the server's "
                        "data) for --reuse")
    p.add_argument("--reuse", metavar="DATABASE",
                   help="time the queries on a database an earlier --keep run loaded, "
                        "skipping the load (its view catches up, its indexes are created)")
    args = p.parse_args(argv[1:])
    if not 1 <= args.pool <= 1000:
        p.error(f"--pool must be 1 to 1000 connections a process; got {args.pool}")
    if args.quick:
        args.cases, args.duration = 20_000, 10.0

    with fresh_database(reuse=args.reuse, keep=args.keep) as db:
        print_header("bench/dashboard.py: county dashboard and village inbox, 50 clients",
                     db, argv)
        key_file = ROOT / ".zongzhi" / "bench" / f"{db.name}.key"
        master_key = key_file.read_bytes() if args.reuse else secrets.token_bytes(32)
        if args.keep:
            key_file.write_bytes(master_key)
            key_file.chmod(0o600)
        tenants = Tenants(db.url, master_key, pool_size=args.clients + 2, cache_size=5000)
        t0 = time.perf_counter()
        report = tenants.import_divisions(DIVISIONS, scope=CITY, by="bench",
                                          at=datetime.now(UTC))
        centers = [c.code for c in tenants.registry.subtree(CITY)]
        counties = [c.code for c in tenants.registry.children(CITY)]
        villages = [c for c in centers if len(c) == 12]
        for code in centers:  # each center's app and data key, before the timed load
            tenants.center(code)
        print(f"city {CITY}: {len(centers)} centers ({len(counties)} counties, "
              f"{len(villages)} villages; {report.registered} registered) in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)

        generator = Generator(random.Random(args.seed), tenants.calendar(), centers)
        loader = Loader(tenants)
        generate_s = 0.0
        t_load = time.perf_counter()
        if args.reuse:
            with tenants.datastore.get_connection() as conn:
                row = conn.execute(f"SELECT count(*) AS n FROM lg_{CITY}.case_view"
                                   ).fetchone()
            assert row is not None
            args.cases = int(row["n"])
            print(f"reusing {db.name}: {args.cases} cases, load skipped")
        for first in range(0, args.cases if not args.reuse else 0, CHUNK):
            t0 = time.perf_counter()
            batch = generator.cases(first, min(CHUNK, args.cases - first), args.cases)
            generate_s += time.perf_counter() - t0
            loader.load(batch)
            done = first + len(batch)
            if done % (10 * CHUNK) == 0 or done == args.cases:
                print(f"  {done} cases, {loader.events} events, "
                      f"{time.perf_counter() - t_load:.0f} s", flush=True)
        n = args.cases
        if not args.reuse:
            print(f"workload: {n} cases, {loader.events} events "
                  f"({loader.events / n:.1f} a case)")
            print(f"  generate (domain) {generate_s:7.1f} s = {n / generate_s:8.0f} cases/s")
            print(f"  encode (mappers)  {loader.encode_s:7.1f} s = "
                  f"{loader.events / loader.encode_s:8.0f} events/s")
            print(f"  COPY              {loader.copy_s:7.1f} s = "
                  f"{loader.events / loader.copy_s:8.0f} events/s")
            print("fates: " + ", ".join(f"{k} {v}"
                                        for k, v in sorted(generator.fates.items())),
                  flush=True)

        view = CaseView(tenants, CITY)
        view.batch = view.rebuild_batch  # a first catch-up over the whole log
        t0 = time.perf_counter()
        projected = view.catch_up()
        project_s = time.perf_counter() - t0
        print(f"case view: {projected} events projected in {project_s:.1f} s = "
              f"{projected / max(project_s, 1e-9):.0f} events/s", flush=True)
        t0 = time.perf_counter()
        with tenants.datastore.get_connection() as conn:
            conn.autocommit = True
            conn.execute(f"VACUUM ANALYZE lg_{CITY}.case_view")
            rows = conn.execute(f"SELECT count(*) AS n, pg_total_relation_size("
                                f"'lg_{CITY}.case_view') AS size FROM lg_{CITY}.case_view"
                                ).fetchone()
            conn.autocommit = False
        assert rows is not None and rows["n"] == n, rows
        print(f"case view: {rows['n']} rows, {rows['size'] / 2**20:.0f} MiB with indexes; "
              f"vacuum analyze {time.perf_counter() - t0:.1f} s\n", flush=True)

        t0 = time.perf_counter()
        kept = refresh(tenants, CITY, NOW)
        refresh_s = time.perf_counter() - t0
        print(f"dashboards kept: {kept} (city, counties, townships) computed in "
              f"{refresh_s:.1f} s = {refresh_s / max(kept, 1) * 1000:.0f} ms a center", flush=True)
        live_ms = []
        for county in counties:
            t0 = time.perf_counter()
            compute(tenants, county, NOW)
            live_ms.append((time.perf_counter() - t0) * 1000)
        print(f"a county's dashboard computed live (one client): median "
              f"{statistics.median(live_ms):.0f} ms, max {max(live_ms):.0f} ms", flush=True)

        def county_dashboard(own: Tenants, rng: random.Random) -> None:
            county = rng.choice(counties)
            found = dashboard(own, county, NOW)
            assert not found.live, "the kept dashboard was not served"
            overdue(own, county, NOW, subtree=True, first=FIRST)

        def village_inbox(own: Tenants, rng: random.Random) -> None:
            inbox(own, rng.choice(villages), first=FIRST)

        county_dashboard(tenants, random.Random(0))  # warm each kind once
        village_inbox(tenants, random.Random(0))
        results = []
        for name, work in (("dashboard", county_dashboard), ("inbox", village_inbox)):
            latencies, wall, errors = clients_run(db.url, args.clients, args.processes,
                                                  args.pool, args.duration, work)
            p50, p99 = pct(latencies, 0.50), pct(latencies, 0.99)
            results.append([name, str(len(latencies)), f"{len(latencies) / wall:.0f}",
                            f"{p50:.1f}", f"{p99:.1f}", f"{max(latencies):.1f}",
                            f"{statistics.mean(latencies):.1f}", str(errors),
                            met(p99 < TARGET_P99_MS)])
            print(f"{name}: {len(latencies)} in {wall:.1f} s, p50 {p50:.1f} ms, "
                  f"p99 {p99:.1f} ms", flush=True)
        tenants.close()

    print()
    print(table(results, ["query", "count", "per s", "p50 ms", "p99 ms", "max ms", "mean ms",
                          "errors", f"p99 < {TARGET_P99_MS:.0f} ms"]))
    print(f"\n{args.clients} clients in {args.processes} processes with {args.pool} pooled "
          f"connections each, {args.duration:.0f} s a kind, {args.cases} cases")


if __name__ == "__main__":
    main(sys.argv)
