"""Commands per second: the Case service vs. the bare library vs. raw psycopg.

    python bench/commands.py            # full run (about 3-4 minutes on 2 cores)
    python bench/commands.py --quick    # a smaller run (under a minute)

Three layers, each measured with 1 and with 32 concurrent writer threads, in
one run, on one PostgreSQL, in one fresh database:

service  ``CenterApp.report_progress`` through ``Tenants.center(code)``: load the
         case (one SELECT of its events, decrypting its parties' personal
         fields), run the command, save (one transaction: LOCK the city's events
         table, NOTIFY, INSERT with the tenant position) = one commit.
bare     the same operation shape with the bare ``eventsourcing`` library: a
         minimal ``Aggregate`` with equivalent events (same fields, similar
         stored sizes, printed) in a plain ``Application`` on the library's own
         ``eventsourcing.postgres`` module (its own schema, its own pool):
         ``repository.get`` + command + ``save`` (LOCK TABLE, NOTIFY, INSERT) =
         one commit.
raw      one autocommit ``INSERT`` of one row of the same size into a plain
         table, one connection per writer = one commit.

Every aggregate gets the same history in the service and the bare runs: four
setup events (received, triaged, dispatched, accepted; not timed), then
``--per-case`` timed progress reports, round-robin over the writer's cases, so
both layers load histories of the same lengths.

Then the per-city lock test: 32 service writers, each on its own tenant, all in
ONE city's log group (one events table, one insert lock) vs. spread over the
11 cities (11 tables, 11 locks), same work.

Figures and ratios are printed; nothing is asserted on time.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psutil
import psycopg
from _common import (
    CITIES,
    DIVISIONS,
    BenchDatabase,
    Sampler,
    fresh_database,
    library_env,
    met,
    print_header,
    run_writers,
    table,
)
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import StoredEvent

from domain import (
    Assignee,
    AssigneeKind,
    Channel,
    HandlingClass,
    Party,
    Personal,
    Place,
    Severity,
    new_stream_id,
)
from tenants.service import Tenants

BASE = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)  # business time of the cases (deadlines in 2026)
NOTE = "走访双方当事人，已组织调解，约定下周复查。"  # a typical progress note
SUMMARY = "楼上住户装修噪声扰民，多次协商未果，申请人要求调解并赔偿损失。"
ACTOR = "clerk-0001"


# -- the bare library's equivalent aggregate ------------------------------------------


class Ticket(Aggregate):
    """The bare library's stand-in for a Case: the same events, the same fields,
    plain JSON (no encryption, no tenant column, no tenant position)."""

    @event("Received")
    def __init__(self, tenant: str, case_number: str, channel: str, category: str,
                 summary: str, parties: list[dict[str, str]], place: dict[str, Any],
                 received_at: datetime, received_by: str) -> None:
        self.tenant = tenant
        self.case_number = case_number
        self.status = "received"
        self.last_at = received_at
        self.parties = parties
        self.place = place
        self.summary = summary
        self.channel, self.category, self.received_by = channel, category, received_by
        self.progress_reports = 0

    @event("Triaged")
    def triage(self, severity: str, handling: str, respond_by: dict[str, Any],
               handle_by: dict[str, Any], by: str, at: datetime) -> None:
        self.status, self.last_at = "triaged", at
        self.respond_by, self.handle_by = respond_by, handle_by

    @event("Dispatched")
    def dispatch(self, assignees: list[dict[str, Any]], by: str, at: datetime) -> None:
        self.status, self.last_at = "dispatched", at
        self.assignees = assignees

    @event("Accepted")
    def accept(self, ref: str, lead: bool, by: str, at: datetime) -> None:
        self.status, self.last_at = "accepted", at

    @event("ProgressReported")
    def report_progress(self, note: str, by: str, at: datetime) -> None:
        if self.status != "accepted" or at < self.last_at:
            raise ValueError("illegal progress report")
        self.progress_reports += 1
        self.last_at = at


class BareApp(Application[UUID]):
    name = "BareBench"


def _cipher_like(n: int) -> str:
    """A base64 string as long as an AES-GCM ciphertext of ``n`` bytes of plaintext."""
    import base64

    return base64.b64encode(secrets.token_bytes(n + 28)).decode()


def new_ticket(tenant: str, number: int) -> Ticket:
    name, phone = "张三".encode(), b"13800000000"
    return Ticket(
        tenant=tenant, case_number=f"{tenant}-20260601-{number:06d}", channel="window",
        category="neighbour-dispute", summary=SUMMARY,
        parties=[{"name": _cipher_like(len(name)), "phone": _cipher_like(len(phone)),
                  "id_number": "", "address": "", "role": "applicant"}],
        place={"division": tenant, "address": "幸福小区3幢2单元501室", "lat": None,
               "lon": None},
        received_at=BASE, received_by=ACTOR)


def _deadline(at: datetime) -> dict[str, Any]:
    return {"due": at + timedelta(days=15), "working_days": 10, "basis": "calendar",
            "note": None}


# -- the three layers ------------------------------------------------------------------


@dataclass
class Work:
    """One writer's streams and the business clock of each."""

    code: str
    streams: list[UUID] = field(default_factory=list)
    clock: dict[UUID, datetime] = field(default_factory=dict)

    def tick(self, stream: UUID) -> datetime:
        self.clock[stream] += timedelta(seconds=1)
        return self.clock[stream]


@dataclass
class Run:
    layer: str
    writers: int
    commits: int
    seconds: float
    client_cores: float = 0.0
    server_cores: float | None = None
    lock_waiters: float = 0.0
    lock_waits: str = "-"  # the waiters by kind of lock (Sampler.lock_waits)

    @property
    def rate(self) -> float:
        return self.commits / self.seconds


class CpuMeter:
    """CPU seconds used by this process and by the PostgreSQL server (when it is
    a local process we can see), to tell a CPU-bound run from a lock-bound one."""

    def __init__(self, db: BenchDatabase) -> None:
        self.me = psutil.Process()
        self.postmaster: psutil.Process | None = None
        host = str(psycopg.conninfo.conninfo_to_dict(db.url).get("host", ""))
        # the embedded server's socket directory is its data directory
        pidfile = Path(host) / "postmaster.pid" if host.startswith("/") else None
        if pidfile is not None and pidfile.exists():
            self.postmaster = psutil.Process(int(pidfile.read_text().split()[0]))

    def _server(self) -> float | None:
        if self.postmaster is None:
            return None
        total = 0.0
        for p in [self.postmaster, *self.postmaster.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def snapshot(self) -> tuple[float, float | None]:
        t = self.me.cpu_times()
        return t.user + t.system, self._server()


def measured(layer: str, writers: int, db: BenchDatabase, meter: CpuMeter,
             work: Any) -> Run:
    with Sampler(db.url, interval=0.05) as sampler:
        c0, s0 = meter.snapshot()
        commits, seconds = run_writers(writers, work)
        c1, s1 = meter.snapshot()
    server = None if s0 is None or s1 is None else (s1 - s0) / seconds
    return Run(layer, writers, commits, seconds, (c1 - c0) / seconds, server,
               sampler.mean_lock_waiters, sampler.lock_waits)


class ServiceLayer:
    def __init__(self, url: str, pool_size: int, master_key: bytes,
                 provision: bool = True) -> None:
        self.tenants = Tenants(url, master_key, pool_size=pool_size)
        at = datetime.now(UTC)
        for city in CITIES if provision else ():
            # the first two counties of every city: enough villages, fast
            for county in [c.code for c in _counties() if c.city == city][:2]:
                self.tenants.import_divisions(DIVISIONS, scope=county, by="bench", at=at)

    def villages(self, city: str) -> list[str]:
        return [c.code for c in self.tenants.registry.all()
                if c.code.startswith(city) and len(c.code) == 12]

    def setup(self, codes: list[str], cases: int) -> list[Work]:
        works = [Work(code) for code in codes]

        def one(i: int) -> int:
            w = works[i]
            app = self.tenants.center(w.code)
            for _ in range(cases):
                case = app.receive_case(
                    channel=Channel.WINDOW, category="neighbour-dispute", summary=SUMMARY,
                    parties=[Party(name=Personal("张三"), phone=Personal("13800000000"))],
                    place=Place(w.code, "幸福小区3幢2单元501室"), by=ACTOR, at=BASE)
                w.streams.append(case.id)
                w.clock[case.id] = BASE
                app.triage_case(case.id, Severity.YELLOW, HandlingClass.COMPLEX, ACTOR,
                                w.tick(case.id))
                app.dispatch_case(case.id, [Assignee(AssigneeKind.UNIT, "justice-office",
                                                     lead=True)], ACTOR, w.tick(case.id))
                app.accept_case(case.id, "justice-office", ACTOR, w.tick(case.id))
            return 4 * cases

        run_writers(len(works), one)
        return works

    def work(self, works: list[Work], per_case: int) -> Any:
        def one(i: int) -> int:
            w = works[i]
            for _ in range(per_case):
                for stream in w.streams:
                    app = self.tenants.center(w.code)  # as a request would
                    app.report_progress(stream, NOTE, ACTOR, w.tick(stream))
            return per_case * len(w.streams)

        return one

    def recorder_work(self, codes: list[str], seconds: float, state: bytes) -> Any:
        """The persistence path alone: each commit is one new one-event stream
        through the tenant's own recorder (LOCK TABLE, NOTIFY, INSERT with the
        tenant position), without loading or reconstructing an aggregate."""
        recorders = [self.tenants.center(code).recorder for code in codes]

        def one(i: int) -> int:
            recorder, code = recorders[i], codes[i]
            deadline, n = time.perf_counter() + seconds, 0
            while time.perf_counter() < deadline:
                recorder.insert_events([StoredEvent(
                    originator_id=new_stream_id(code), originator_version=1,
                    topic="bench:Probe", state=state)])
                n += 1
            return n

        return one

    def stored_sizes(self, db: BenchDatabase) -> dict[str, float]:
        return _sizes(db, "SELECT topic, avg(length(state)) FROM lg_3301.events GROUP BY topic")

    def close(self) -> None:
        self.tenants.close()


class BareLayer:
    SCHEMA = "bare_lib"

    def __init__(self, db: BenchDatabase, pool_size: int) -> None:
        with psycopg.connect(db.url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.SCHEMA}")
        self.env = library_env(db.url, self.SCHEMA, pool_size)
        self._app: BareApp | None = None
        self.numbers = iter(range(1, 10**9))
        self.lock = threading.Lock()

    @property
    def app(self) -> BareApp:
        """Opened per run and closed after it, so that its pool (the library builds
        one per application) and the service's pool are not both held open."""
        if self._app is None:
            self._app = BareApp(env=self.env)
        return self._app

    def setup(self, codes: list[str], cases: int) -> list[Work]:
        works = [Work(code) for code in codes]
        app = self.app  # opened here, before the writer threads use it

        def one(i: int) -> int:
            w = works[i]
            for _ in range(cases):
                with self.lock:
                    number = next(self.numbers)
                ticket = new_ticket(w.code, number)
                app.save(ticket)
                w.streams.append(ticket.id)
                w.clock[ticket.id] = BASE
                for step in range(3):
                    t = app.repository.get(ticket.id)
                    at = w.tick(ticket.id)
                    if step == 0:
                        t.triage("yellow", "complex", _deadline(at), _deadline(at), ACTOR, at)
                    elif step == 1:
                        t.dispatch([{"assignee": {"kind": "unit", "ref": "justice-office",
                                                  "lead": True}, "accepted_at": None}],
                                   ACTOR, at)
                    else:
                        t.accept("justice-office", True, ACTOR, at)
                    app.save(t)
            return 4 * cases

        run_writers(len(works), one)
        return works

    def work(self, works: list[Work], per_case: int) -> Any:
        app = self.app

        def one(i: int) -> int:
            w = works[i]
            for _ in range(per_case):
                for stream in w.streams:
                    ticket = app.repository.get(stream)
                    ticket.report_progress(NOTE, ACTOR, w.tick(stream))
                    app.save(ticket)
            return per_case * len(w.streams)

        return one

    def stored_sizes(self, db: BenchDatabase) -> dict[str, float]:
        return _sizes(db, f"SELECT topic, avg(length(state)) FROM {self.SCHEMA}.barebench_events "
                          "GROUP BY topic")

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
            self._app = None


class RawLayer:
    def __init__(self, db: BenchDatabase, state_size: int) -> None:
        self.url = db.url
        self.state = secrets.token_bytes(state_size)
        with psycopg.connect(db.url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE raw_events (id bigserial PRIMARY KEY, originator_id uuid NOT NULL,"
                " originator_version bigint NOT NULL, topic text NOT NULL,"
                " state bytea NOT NULL)")

    def work(self, writers: int, seconds: float) -> tuple[Any, list[psycopg.Connection[Any]]]:
        conns = [psycopg.connect(self.url, autocommit=True) for _ in range(writers)]

        def one(i: int) -> int:
            conn, stream = conns[i], UUID(bytes=secrets.token_bytes(16))
            deadline, n = time.perf_counter() + seconds, 0
            while time.perf_counter() < deadline:
                conn.execute(
                    "INSERT INTO raw_events (originator_id, originator_version, topic, state)"
                    " VALUES (%s, %s, %s, %s)",
                    (stream, n, "bench:Ticket.ProgressReported", self.state), prepare=True)
                n += 1
            return n

        return one, conns


def _sizes(db: BenchDatabase, query: str) -> dict[str, float]:
    with psycopg.connect(db.url) as conn:
        return {str(t).rsplit(".", 1)[-1]: float(n) for t, n in conn.execute(query).fetchall()}


@dataclass(frozen=True)
class _County:
    code: str
    city: str


def _counties() -> list[_County]:
    import csv

    with (DIVISIONS / "counties.csv").open(encoding="utf-8-sig", newline="") as f:
        return [_County(r["code"], r["cityCode"]) for r in csv.DictReader(f)]


# -- the per-city lock test in several processes --------------------------------------


@dataclass(frozen=True)
class ProcessResult:
    commits: int
    started: float  # time.time(), comparable across processes
    ended: float
    cpu_seconds: float


def _city_process(url: str, master_key: bytes, codes: list[str], cases: int, per_case: int,
                  seconds: float, state: bytes, setup_lock: Any, barrier: Any,
                  results: Any) -> None:
    """One process of a multi-process per-city run: its own Tenants and pool,
    its share of the writers; the service run, then the recorder-only run."""
    try:
        me = psutil.Process()
        # One process at a time: opening Tenants and a city's first CenterApp runs
        # DDL that deadlocks when two processes run it at once (see the docs).
        with setup_lock:
            service = ServiceLayer(url, len(codes), master_key, provision=False)
            for code in codes:
                service.tenants.center(code)
        works = service.setup(codes, cases)
        for work in (service.work(works, per_case),
                     service.recorder_work(codes, seconds, state)):
            barrier.wait(timeout=600)
            cpu0, t0 = sum(me.cpu_times()[:2]), time.time()
            commits, _ = run_writers(len(codes), work)
            t1, cpu1 = time.time(), sum(me.cpu_times()[:2])
            results.put(ProcessResult(commits, t0, t1, cpu1 - cpu0))
        barrier.wait(timeout=600)  # the parent has read the server's CPU: close the pool
        service.close()
    except BaseException as e:
        results.put(f"{type(e).__name__}: {e}")
        barrier.abort()
        raise


def city_runs_in_processes(label: str, codes: list[str], processes: int, args: Any,
                           db: BenchDatabase, meter: CpuMeter, master_key: bytes,
                           state: bytes) -> list[Run]:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    setup_lock, barrier, results = ctx.Lock(), ctx.Barrier(processes + 1), ctx.Queue()
    procs = [ctx.Process(target=_city_process, args=(
        db.url, master_key, codes[k::processes], args.cases_each, args.per_case,
        args.raw_seconds, state, setup_lock, barrier, results)) for k in range(processes)]
    for proc in procs:
        proc.start()
    runs = []
    try:
        for kind in ("", ", recorder only"):
            with Sampler(db.url) as sampler:
                barrier.wait(timeout=600)
                _, s0 = meter.snapshot()
                got = [results.get(timeout=600) for _ in procs]
                _, s1 = meter.snapshot()
            failed = [g for g in got if not isinstance(g, ProcessResult)]
            if failed:
                raise RuntimeError(f"a writer process failed: {failed[0]}")
            done = [g for g in got if isinstance(g, ProcessResult)]
            wall = max(r.ended for r in done) - min(r.started for r in done)
            runs.append(Run(f"{label}{kind}", len(codes), sum(r.commits for r in done), wall,
                            sum(r.cpu_seconds for r in done) / wall,
                            None if s0 is None or s1 is None else (s1 - s0) / wall,
                            sampler.mean_lock_waiters, sampler.lock_waits))
        barrier.wait(timeout=600)
    except threading.BrokenBarrierError:
        raise RuntimeError(f"a writer process failed: {results.get(timeout=5)}") from None
    finally:
        for proc in procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.terminate()
    return runs


# -- main ------------------------------------------------------------------------------


def figure(values: list[float]) -> str:
    """The median, and the range when there are several rounds."""
    m = f"{statistics.median(values):.0f}"
    return f"{m} [{min(values):.0f}-{max(values):.0f}]" if len(values) > 1 else m


def cores(run: Run) -> list[str]:
    return [f"{run.client_cores:.2f}",
            "n/a" if run.server_cores is None else f"{run.server_cores:.2f}",
            f"{run.lock_waiters:.1f}", run.lock_waits]


class Villages:
    """Hands out villages not used yet: every run gets fresh tenants and cases."""

    def __init__(self, service: ServiceLayer) -> None:
        self.by_city = {city: [c.code for c in service.tenants.registry.all()
                               if c.code.startswith(city) and len(c.code) == 12]
                        for city in CITIES}
        self.taken = dict.fromkeys(CITIES, 0)

    def take(self, city: str) -> str:
        self.taken[city] += 1
        return self.by_city[city][self.taken[city] - 1]


def layers_test(args: Any, db: BenchDatabase, meter: CpuMeter, service: ServiceLayer,
                villages: Villages, pool_size: int) -> None:
    def cases_for(writers: int) -> int:
        return args.cases_single if writers == 1 else args.cases_each

    runs: list[Run] = []
    bare = BareLayer(db, pool_size)
    raw: RawLayer | None = None
    for rnd in range(1, args.rounds + 1):
        for writers in args.writers:
            # service: all writers in city 3301 (one log group, one lock), own tenant each
            codes = [villages.take("3301") for _ in range(writers)]
            works = service.setup(codes, cases_for(writers))
            runs.append(measured("service", writers, db, meter,
                                 service.work(works, args.per_case)))
            # the bare library: same shape, its own schema (one table, one lock), own pool
            works = bare.setup(codes, cases_for(writers))
            runs.append(measured("bare", writers, db, meter, bare.work(works, args.per_case)))
            bare.close()
            # raw psycopg: one row of a progress report's size per commit
            if raw is None:
                raw = RawLayer(db, round(bare.stored_sizes(db).get("ProgressReported", 242)))
            one, conns = raw.work(writers, args.raw_seconds)
            runs.append(measured("raw", writers, db, meter, one))
            for conn in conns:
                conn.close()
            print(f"  round {rnd}, {writers:>2} writer(s): " + ", ".join(
                f"{r.layer} {r.rate:.0f}" for r in runs[-3:]) + " commits/s", flush=True)
    service_sizes, bare_sizes = service.stored_sizes(db), bare.stored_sizes(db)

    print("\nstored event sizes (bytes, average per topic)")
    print(table([[k, f"{service_sizes.get(k, 0):.0f}", f"{bare_sizes.get(k, 0):.0f}"]
                 for k in ["Received", "Triaged", "Dispatched", "Accepted", "ProgressReported"]],
                ["event", "service", "bare"]))

    def rates(layer: str, writers: int) -> list[float]:
        return [r.rate for r in runs if r.layer == layer and r.writers == writers]

    print("\ncommits/s (one command = one commit), median of the rounds [min-max]")
    rows = []
    ratios: dict[int, float] = {}
    for w in args.writers:
        s, b, r = (statistics.median(rates(x, w)) for x in ("service", "bare", "raw"))
        ratios[w] = s / b
        rows.append([str(w)] + [figure(rates(x, w)) for x in ("service", "bare", "raw")]
                    + [f"{s / b:.2f}", f"{b / r:.2f}"])
    print(table(rows, ["writers", "service", "bare lib", "raw psycopg", "service/bare",
                       "bare/raw"]))
    print("\nwhere the time went, every run (cores: CPU seconds per wall second of this "
          "process\nand of all PostgreSQL processes; lock waiters: mean sessions waiting on a "
          "lock,\nsampled every 50 ms)")
    print(table([[f"{r.layer} x{r.writers}", f"{r.commits}", f"{r.seconds:.2f}",
                  f"{r.rate:.0f}", *cores(r)] for r in runs],
                ["run", "commits", "seconds", "commits/s", "client cores", "server cores",
                 "lock waiters", "waiting for"]))
    print()
    for w in args.writers:
        print(f"target: service within 80% of the bare library, {w} writer(s): "
              f"{ratios[w]:.2f} -> {met(ratios[w] >= 0.8)}")


def cities_test(args: Any, db: BenchDatabase, meter: CpuMeter, service: ServiceLayer,
                villages: Villages, master_key: bytes) -> None:
    writers = max(args.writers)
    where = (f"in {args.processes} processes (own pool each)" if args.processes > 1
             else "in this process")
    print(f"\nper-city lock test: {writers} service writers {where}, own tenant each, "
          f"{args.cases_each} cases x {args.per_case} reports each; then the recorder alone "
          f"for {args.raw_seconds:g} s", flush=True)
    runs: list[Run] = []
    state = secrets.token_bytes(242)
    for rnd in range(1, args.rounds + 1):
        shared = [villages.take("3301") for _ in range(writers)]
        spread = [villages.take(CITIES[i % len(CITIES)]) for i in range(writers)]
        for label, codes in [("one city", shared), ("11 cities", spread)]:
            if args.processes > 1:
                runs += city_runs_in_processes(label, codes, args.processes, args, db, meter,
                                               master_key, state)
                continue
            works = service.setup(codes, args.cases_each)
            runs.append(measured(label, writers, db, meter, service.work(works, args.per_case)))
            runs.append(measured(f"{label}, recorder only", writers, db, meter,
                                 service.recorder_work(codes, args.raw_seconds, state)))
        print(f"  round {rnd}: " + ", ".join(f"{r.layer} {r.rate:.0f}" for r in runs[-4:])
              + " commits/s", flush=True)
    print(table([[r.layer, f"{r.commits}", f"{r.seconds:.2f}", f"{r.rate:.0f}", *cores(r)]
                 for r in runs],
                ["log groups", "commits", "seconds", "commits/s", "client cores",
                 "server cores", "lock waiters", "waiting for"]))
    print()
    verdict = ""
    for suffix, what in [("", "service commands"), (", recorder only", "recorder alone")]:
        one = statistics.median([r.rate for r in runs if r.layer == "one city" + suffix])
        eleven = statistics.median([r.rate for r in runs if r.layer == "11 cities" + suffix])
        print(f"{what}: median commits/s one city (3301) {one:.0f}, 11 cities {eleven:.0f}, "
              f"ratio {eleven / one:.2f}x")
        if not suffix:
            verdict = f"{eleven / one:.2f}x -> {met(eleven / one >= 3)}"
    print(f"target: {writers} writers over 11 cities >= 3x one shared log "
          f"(service commands): {verdict}")


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--writers", type=int, nargs="+", default=[1, 32],
                   help="writer counts to measure (default: 1 32); the per-city test uses "
                        "the largest")
    p.add_argument("--per-case", type=int, default=20,
                   help="timed progress reports per case (default 20)")
    p.add_argument("--cases-single", type=int, default=80,
                   help="cases of the single writer (default 80: 1,600 timed commits)")
    p.add_argument("--cases-each", type=int, default=8,
                   help="cases of each writer when there are several (default 8: "
                        "32 writers x 8 x 20 = 5,120 timed commits)")
    p.add_argument("--raw-seconds", type=float, default=2.0,
                   help="duration of each raw psycopg and recorder-only run (default 2 s)")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds, interleaving the layers; medians are reported (default 3)")
    p.add_argument("--pool-size", type=int, default=0,
                   help="pool size of the service and the bare library "
                        "(default: the largest writer count)")
    p.add_argument("--processes", type=int, default=1,
                   help="run the per-city test's writers in this many processes "
                        "(default 1: threads of this process)")
    p.add_argument("--skip-layers", action="store_true",
                   help="skip the service / bare / raw comparison")
    p.add_argument("--skip-cities", action="store_true", help="skip the per-city lock test")
    p.add_argument("--quick", action="store_true",
                   help="a smaller run: 1 and 8 writers, 1 round, 5 reports per case")
    args = p.parse_args(argv[1:])
    if args.quick:
        args.writers, args.per_case, args.cases_single, args.cases_each = [1, 8], 5, 20, 2
        args.raw_seconds, args.rounds = 1.0, 1
    pool_size = args.pool_size or max(args.writers)
    master_key = secrets.token_bytes(32)

    with fresh_database() as db:
        print_header("bench/commands.py: commands/s, Case service vs. bare library vs. raw "
                     "psycopg", db, argv)
        print(f"writers {args.writers}, {args.rounds} round(s) interleaving the layers, "
              f"medians reported\nservice and bare: each case 4 setup events (not timed), "
              f"then {args.per_case} timed progress reports;\ncases per writer: "
              f"{args.cases_single} (1 writer), {args.cases_each} (more); raw: "
              f"{args.raw_seconds:g} s per run; pool size {pool_size}\n", flush=True)
        meter = CpuMeter(db)
        t0 = time.perf_counter()
        service = ServiceLayer(db.url, pool_size, master_key)
        villages = Villages(service)
        print(f"provisioned {len(service.tenants.registry.all())} tenants (first two counties "
              f"of each city) in {time.perf_counter() - t0:.1f} s", flush=True)
        if not args.skip_layers:
            layers_test(args, db, meter, service, villages, pool_size)
        if not args.skip_cities:
            cities_test(args, db, meter, service, villages, master_key)
        service.close()
        print(f"\ncpu count {os.cpu_count()}: every writer thread (one GIL per process) and "
              "every PostgreSQL backend share these cores.")


if __name__ == "__main__":
    main(sys.argv)
