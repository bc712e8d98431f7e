"""Hand-overs: latency through the router under load, and the router's throughput.

    python bench/handover.py                    # full run (about 2-2.5 minutes on 2 cores)
    python bench/handover.py --quick            # a smaller run (under a minute)
    python bench/handover.py --writer-rate 5    # writers paced at 5 commands/s each

Two parts, in one fresh database, in the villages and townships of one county
(330109) of city 3301, i.e. one log group:

latency     ``--handovers`` (1,000) village cases, triaged beforehand (not timed),
            are escalated to their townships at a steady offered rate
            (``--rate``, open loop: escalation *i* is due at start + i/rate,
            whatever happened before) while ``--writers`` (10) other village
            centers run ordinary case commands flat out, each in its own center
            (receive, triage, dispatch to a unit, accept, 4 progress reports,
            resolve: 9 commits a case), from threads of a separate process. The
            router runs as the product runs it: ``zongzhi router --city 3301``,
            a subprocess that waits on LISTEN/NOTIFY. Latency of one hand-over:
            from the call of ``escalate_case`` (an upper bound; also printed from
            its return, after its commit and its NOTIFY, which the router can
            beat) to the moment a watcher, woken by NOTIFY on the log group's
            channel, finds the linked case's ``Received`` committed in the
            township (it is then readable; every linked case is read back with
            ``get_case`` afterwards, not timed).
catch-up    ``--catch-up`` (2,000) escalations are made with no router running;
            then a ``Router`` in this process catches up (``catch_up()``), timed:
            hand-overs per second sustained by one router with nothing else
            running.

The escalating thread and the watcher run in this process, the writers in
another one (so that their GIL does not delay the watcher). Figures are printed;
nothing is asserted on time.
"""

from __future__ import annotations

import argparse
import base64
import csv
import multiprocessing
import os
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psutil
import psycopg
from _common import DIVISIONS, ROOT, fresh_database, met, print_header, run_writers, table
from eventsourcing.utils import get_topic

from domain import (
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
)
from flows.router import TOPICS, Router
from tenants.persistence import log_group_schema
from tenants.service import Tenants

CITY, COUNTY = "3301", "330109"
BASE = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)  # business time of the cases (2026 calendar)
SUMMARY = "楼上住户装修噪声扰民，多次协商未果，申请人要求调解并赔偿损失。"
NOTE = "走访双方当事人，已组织调解，约定下周复查。"
UNIT = Assignee(AssigneeKind.UNIT, "justice-office", lead=True)
RECEIVED = get_topic(Case.Received)  # type: ignore[attr-defined]


class BusinessClock:
    """Business time that never runs backwards in this process: BASE + elapsed."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self) -> datetime:
        return BASE + timedelta(seconds=time.monotonic() - self.t0)


def new_case(tenants: Tenants, code: str, serial: int, clock: Callable[[], datetime]) -> Case:
    """A received and triaged case of village ``code`` (2 commits)."""
    app = tenants.center(code)
    case = app.receive_case(
        channel=Channel.WINDOW, category="neighbour-dispute", summary=SUMMARY,
        parties=[Party(name=Personal("张三"), phone=Personal(f"138{serial:08d}"))],
        place=Place(code, "幸福小区3幢2单元501室"), by="clerk", at=clock())
    return app.triage_case(case.id, Severity.YELLOW, HandlingClass.COMPLEX, "clerk", clock())


def villages_of(county: str) -> list[tuple[str, str]]:
    """(village, township) of the county, in the division files' order."""
    with (DIVISIONS / "villages.csv").open(encoding="utf-8-sig", newline="") as f:
        return [(r["code"], r["streetCode"]) for r in csv.DictReader(f)
                if r["areaCode"] == county]


# -- the writers: ordinary case commands in their own centers, in another process ----------


@dataclass(frozen=True)
class WriterResult:
    commits: int
    seconds: float
    cpu_seconds: float


def _writers_process(url: str, master_key: bytes, codes: list[str], rate: float,
                     ready: Any, stop: Any, results: Any) -> None:
    try:
        tenants = Tenants(url, master_key, pool_size=len(codes))
        clock = BusinessClock()
        counts = [0] * len(codes)
        started = threading.Barrier(len(codes) + 1)

        def one(i: int) -> None:
            code, serial = codes[i], i * 1_000_000
            started.wait()
            t0 = time.perf_counter()

            def paced() -> bool:  # open loop: the k-th command is due at t0 + k / rate
                counts[i] += 1
                if rate > 0:
                    pause = t0 + counts[i] / rate - time.perf_counter()
                    if pause > 0:
                        stop.wait(pause)
                return not stop.is_set()

            while not stop.is_set():
                serial += 1
                case = new_case(tenants, code, serial, clock)  # 2 commits
                app = tenants.center(code)
                for _ in range(2):
                    paced()
                if paced():
                    app.dispatch_case(case.id, [UNIT], "dispatcher", clock())
                if paced():
                    app.accept_case(case.id, UNIT.ref, "officer", clock())
                for _ in range(4):
                    if paced():
                        app.report_progress(case.id, NOTE, "officer", clock())
                if paced():
                    app.resolve_case(case.id, Outcome.MEDIATED, "已调解", "officer", clock())

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(codes))]
        for t in threads:
            t.start()
        me = psutil.Process()
        started.wait()
        cpu0, t0 = sum(me.cpu_times()[:2]), time.perf_counter()
        ready.set()
        for t in threads:
            t.join()
        seconds, cpu = time.perf_counter() - t0, sum(me.cpu_times()[:2]) - cpu0
        results.put(WriterResult(sum(counts), seconds, cpu))
        tenants.close()
    except BaseException as e:
        results.put(f"{type(e).__name__}: {e}")
        ready.set()
        raise


class Writers:
    """``n`` writer threads in a process of their own, running until stopped."""

    def __init__(self, url: str, master_key: bytes, codes: list[str], rate: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.ready, self.stop, self.results = ctx.Event(), ctx.Event(), ctx.Queue()
        self.proc = ctx.Process(target=_writers_process, args=(
            url, master_key, codes, rate, self.ready, self.stop, self.results))
        self.none = not codes

    def __enter__(self) -> Writers:
        if self.none:
            return self
        self.proc.start()
        if not self.ready.wait(timeout=120):
            raise RuntimeError("the writers did not start")
        return self

    def finish(self) -> WriterResult:
        if self.none:
            return WriterResult(0, 1.0, 0.0)
        self.stop.set()
        result = self.results.get(timeout=120)
        self.proc.join(timeout=60)
        if not isinstance(result, WriterResult):
            raise RuntimeError(f"writers failed: {result}")
        return result

    def __exit__(self, *exc: object) -> None:
        if not self.none and self.proc.is_alive():
            self.stop.set()
            self.proc.join(timeout=60)


# -- the router as the product runs it ---------------------------------------------------


class RouterProcess:
    """``python -m zongzhi.cli router --city CITY``, stopped with SIGTERM."""

    def __init__(self, url: str, master_key: bytes) -> None:
        self.env = {**os.environ, "ZONGZHI_DATABASE_URL": url,
                    "ZONGZHI_MASTER_KEY": base64.urlsafe_b64encode(master_key).decode()}
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> RouterProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zongzhi.cli", "router", "--city", CITY], cwd=ROOT,
            env=self.env, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("routing"):
            raise RuntimeError(f"the router did not start: {line!r}")
        self.ps = psutil.Process(self.proc.pid)
        return self

    def cpu_seconds(self) -> float:
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the watcher: when does the linked case become readable? ---------------------------------


class Watcher:
    """LISTENs on the log group's channel; on every NOTIFY reads the new ``Received``
    rows of the log group and timestamps the expected linked cases among them."""

    def __init__(self, url: str, expected: set[UUID]) -> None:
        schema = log_group_schema(CITY)
        self.query = (f'SELECT notification_id, originator_id FROM "{schema}".events '
                      "WHERE notification_id > %s AND topic = %s ORDER BY notification_id")
        self.channel = f"{schema}_events"
        self.expected = expected
        self.seen: dict[UUID, float] = {}
        self.wakeups = 0
        self._stop = threading.Event()
        self._conn = psycopg.connect(url, autocommit=True)
        row = self._conn.execute(f'SELECT coalesce(max(notification_id), 0) FROM "{schema}".'
                                 "events").fetchone()
        self.position = int(row[0]) if row else 0
        self._conn.execute(f'LISTEN "{self.channel}"')
        self._thread = threading.Thread(target=self._run, name="watcher", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for _ in self._conn.notifies(timeout=0.2, stop_after=1):
                pass
            self.wakeups += 1
            rows = self._conn.execute(self.query, (self.position, RECEIVED)).fetchall()
            now = time.perf_counter()
            for notification_id, originator_id in rows:
                self.position = notification_id
                if originator_id in self.expected and originator_id not in self.seen:
                    self.seen[originator_id] = now
            if len(self.seen) == len(self.expected):
                return

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def wait(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._conn.close()


# -- the two parts -----------------------------------------------------------------------------


def prepare(tenants: Tenants, sources: list[tuple[str, str]], n: int, threads: int,
            clock: Callable[[], datetime], serial0: int) -> list[tuple[str, str, Case]]:
    """``n`` triaged cases spread over the source villages (not timed)."""
    made: list[tuple[str, str, Case] | None] = [None] * n

    def one(i: int) -> int:
        for k in range(i, n, threads):
            village, township = sources[k % len(sources)]
            made[k] = (village, township, new_case(tenants, village, serial0 + k, clock))
        return len(range(i, n, threads))

    run_writers(threads, one)
    return [m for m in made if m is not None]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def latency_part(args: Any, tenants: Tenants, url: str, master_key: bytes,
                 writer_codes: list[str], sources: list[tuple[str, str]]) -> float:
    clock = BusinessClock()
    t0 = time.perf_counter()
    cases = prepare(tenants, sources, args.handovers, 8, clock, 0)
    expected = {Case.linked_id(c.id, c.version + 1, township): township
                for _, township, c in cases}
    print(f"\n[latency] {len(cases)} triaged cases in {len({v for v, _, _ in cases})} "
          f"villages prepared in {time.perf_counter() - t0:.1f} s (not timed)", flush=True)

    committed: dict[UUID, float] = {}  # escalate_case returned (its events committed)
    called: dict[UUID, float] = {}  # escalate_case called
    probe = Router(tenants, CITY)  # reads the router's position only
    writers_ = Writers(url, master_key, writer_codes, args.writer_rate)
    with RouterProcess(url, master_key) as router, writers_ as writers, \
            Watcher(url, set(expected)) as watcher:
        cpu0 = router.cpu_seconds()
        start = time.perf_counter()
        late = 0.0
        for i, (village, township, case) in enumerate(cases):
            due = start + i / args.rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            else:
                late = max(late, -pause)
            calling = time.perf_counter()
            escalated = tenants.center(village).escalate_case(
                case.id, township, "村级无法调处", "director", clock())
            committed[escalated.links[-1].case_id] = time.perf_counter()
            called[escalated.links[-1].case_id] = calling
        offered = time.perf_counter() - start
        backlog = len(probe.recorder.select_notifications(
            probe.position(), 1_000_000, topics=TOPICS, inclusive_of_start=False))
        done = watcher.wait(timeout=300)
        finished = time.perf_counter() - start
        router_cpu = router.cpu_seconds() - cpu0
        written = writers.finish()
    if not done:
        print(f"  !! only {len(watcher.seen)} of {len(expected)} linked cases seen in time")

    latencies = [(watcher.seen[k] - t) * 1000 for k, t in committed.items()
                 if k in watcher.seen]
    from_call = [(watcher.seen[k] - t) * 1000 for k, t in called.items() if k in watcher.seen]
    readable = sum(tenants.center(township).get_case(linked_id).origin is not None
                   for linked_id, township in expected.items())
    print(f"offered {args.rate:g} escalations/s for {offered:.1f} s (largest lag behind the "
          f"schedule {late * 1000:.0f} ms); all seen {finished:.1f} s after the first; "
          f"watcher woke {watcher.wakeups} times")
    pace = f"{args.writer_rate:g} commands/s each" if args.writer_rate else "flat out"
    print("writers: none" if not writer_codes else
          f"writers: {len(writer_codes)} threads (own village each, one process, {pace}), "
          f"{written.commits} commits in {written.seconds:.1f} s = "
          f"{written.commits / written.seconds:.0f} commits/s, "
          f"{written.cpu_seconds / written.seconds:.2f} cores")
    print(f"router: {router_cpu:.1f} CPU s over {finished:.1f} s = "
          f"{router_cpu / finished:.2f} cores; notifications it still had to process when "
          f"the last escalation was committed: {backlog}")
    print(f"linked cases read back with get_case: {readable} of {len(expected)}\n")
    rows = [[f"{len(lat)}", what, f"{statistics.median(lat):.0f}",
             f"{percentile(lat, 90):.0f}", f"{percentile(lat, 99):.0f}", f"{max(lat):.0f}",
             f"{min(lat):.0f}"]
            for what, lat in (("escalate_case returned", latencies),
                              ("escalate_case called", from_call))]
    print(table(rows, ["hand-overs", "timed from", "median ms", "p90 ms", "p99 ms", "max ms",
                       "min ms"]))
    # escalate_case returns after its commit and the followers' NOTIFY, so the router can
    # finish first (a negative time); timed from the call, the figure bounds it from above
    return percentile(from_call, 99)


def catch_up_part(args: Any, tenants: Tenants, sources: list[tuple[str, str]]) -> float:
    router = Router(tenants, CITY)  # first what the writers left behind, if anything
    t0 = time.perf_counter()
    left = router.catch_up()
    if left:
        elapsed = time.perf_counter() - t0
        print(f"\n(the router had {left} notifications of the latency part left to read, "
              f"{router.handed_over} of them with something to do; caught up first, in "
              f"{elapsed:.1f} s = {1000 * elapsed / left:.1f} ms per notification)")
    clock = BusinessClock()
    t0 = time.perf_counter()
    cases = prepare(tenants, sources, args.catch_up, 8, clock, 10_000_000)
    prepared = time.perf_counter() - t0

    def escalate(i: int) -> int:
        for village, township, case in cases[i::8]:
            tenants.center(village).escalate_case(case.id, township, "村级无法调处",
                                                  "director", clock())
        return len(cases[i::8])

    escalated, seconds = run_writers(8, escalate)
    print(f"\n[catch-up] {len(cases)} triaged cases prepared in {prepared:.1f} s; "
          f"{escalated} escalations made in {seconds:.1f} s with no router running",
          flush=True)
    router = Router(tenants, CITY)
    me = psutil.Process()
    cpu0, t0 = sum(me.cpu_times()[:2]), time.perf_counter()
    read = router.catch_up()
    elapsed, cpu = time.perf_counter() - t0, sum(me.cpu_times()[:2]) - cpu0
    opened = sum(tenants.center(township).get_case(
        Case.linked_id(c.id, c.version + 1, township)).origin is not None
        for _, township, c in cases)
    rate = router.handed_over / elapsed
    print(f"Router.catch_up(): {read} notifications read, {router.handed_over} linked cases "
          f"opened in {elapsed:.2f} s = {rate:.0f} hand-overs/s; {cpu / elapsed:.2f} cores "
          f"of this process; {1000 * elapsed / max(1, read):.1f} ms per notification")
    print(f"linked cases read back with get_case: {opened} of {len(cases)}")
    return rate


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--handovers", type=int, default=1000,
                   help="hand-overs timed in the latency part (default 1000)")
    p.add_argument("--writers", type=int, default=10,
                   help="writer threads, own village center each (default 10)")
    p.add_argument("--writer-rate", type=float, default=0.0,
                   help="commands per second of each writer (default 0: as fast as it can)")
    p.add_argument("--rate", type=float, default=20.0,
                   help="escalations offered per second in the latency part (default 20)")
    p.add_argument("--catch-up", type=int, default=2000,
                   help="escalations the router catches up on in the second part "
                        "(default 2000)")
    p.add_argument("--skip-catch-up", action="store_true", help="skip the second part")
    p.add_argument("--quick", action="store_true",
                   help="a smaller run: 200 hand-overs at 40/s, catch-up of 300")
    args = p.parse_args(argv[1:])
    if args.quick:
        args.handovers, args.rate, args.catch_up = 200, 40.0, 300
    master_key = secrets.token_bytes(32)

    with fresh_database() as db:
        print_header("bench/handover.py: hand-over latency under load, router throughput",
                     db, argv)
        tenants = Tenants(db.url, master_key, pool_size=10)
        t0 = time.perf_counter()
        tenants.import_divisions(DIVISIONS, scope=COUNTY, by="bench", at=datetime.now(UTC))
        villages = villages_of(COUNTY)
        writer_codes = [v for v, _ in villages[:args.writers]]
        sources = villages[args.writers:args.writers + 40]
        print(f"provisioned county {COUNTY} ({len(villages)} villages) in "
              f"{time.perf_counter() - t0:.1f} s; writers in {len(writer_codes)} villages, "
              f"escalations from {len(sources)} others to their "
              f"{len({t for _, t in sources})} townships", flush=True)
        p99 = latency_part(args, tenants, db.url, master_key, writer_codes, sources)
        rate = 0.0 if args.skip_catch_up else catch_up_part(args, tenants, sources)
        tenants.close()
        pace = f" at {args.writer_rate:g} commands/s each" if args.writer_rate else " flat out"
        load = f"with {args.writers} writers{pace}" if args.writers else "without writers"
        print(f"\ntarget: hand-over p99 under 1 s {load}: "
              f"{p99:.0f} ms -> {met(p99 < 1000)}")
        if rate:
            print(f"router throughput (catch-up, one router, nothing else running): "
                  f"{rate:.0f} hand-overs/s")
        print(f"cpu count {os.cpu_count()}: writers, router, this process and PostgreSQL "
              "share these cores.")


if __name__ == "__main__":
    main(sys.argv)
