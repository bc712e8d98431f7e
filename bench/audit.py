"""Audit verification rate beside the raw read rate, and as-of reconstruction time.

    python bench/audit.py                   # 100,000 events in one tenant (30-60 s on 2 cores)
    python bench/audit.py --events 20000    # a smaller run
    python bench/audit.py --quick           # 10,000 events, one round, fewer samples

Workload: ``--events`` events in ONE tenant (the county 330109 of city 3301),
cases driven through the domain's commands (``Case.receive``, ``triage``,
``dispatch``, ``accept``, 1-3 progress reports, sometimes an urging, a
rejected result resolved again, or a withdrawal; most closed, some left
open) and saved with the center's own ``CenterApp.save`` (its mapper encrypts
the parties' personal fields; its recorder assigns tenant positions), 50
cases a transaction. Not timed: generation. Timed once: the chainer catching
up over the whole log, and signing the checkpoint.

Timed, each ``--rounds`` times (interleaved; medians reported):

raw      every row of the tenant (position, notification id, originator id and
         version, topic, state) read in position order through the very cursor
         ``audit verify`` uses (server-side, binary, 2,000 rows a fetch, one
         REPEATABLE READ snapshot); nothing computed.
verify   ``audit.verify.verify_tenant`` end to end: the same read (by a fetch
         thread, 2,000 rows at a time), every link recomputed (SHA-256 over the
         stored bytes) and compared with the recorded chain every 2,000
         positions and at its end and with each checkpoint (Ed25519 signature
         checked); the chain's record count, the chainer's violations.
file     ``verify_file`` of an export of the same tenant (offline; JSON + base64
         decode of every line), and the export itself.

As of: ``case_as_of`` for ``--samples`` random cases, each at a random instant
inside its life, and each again at the end of its life (every event replayed),
p50/p99 in ms; one ``tenant_as_of`` (every case of the tenant replayed to the
log's middle instant) once.

Figures are printed; nothing is asserted on time.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This script's folder is on sys.path, and its name would hide the ``audit`` package:
# leave the folder out until the package is imported (then ``_common``).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse  # noqa: E402
import random  # noqa: E402
import secrets  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from uuid import UUID  # noqa: E402

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from audit.chain import Chainer  # noqa: E402
from audit.checkpoints import write_checkpoints  # noqa: E402
from audit.history import case_as_of, recorded_at, tenant_as_of  # noqa: E402
from audit.verify import export_tenant, read_events, verify_file, verify_tenant  # noqa: E402
from domain import (  # noqa: E402
    CATEGORIES,
    Assignee,
    AssigneeKind,
    Case,
    Channel,
    HandlingClass,
    Instrument,
    Outcome,
    Party,
    Personal,
    Place,
    Severity,
    WorkingCalendar,
)
from tenants.center import CenterApp  # noqa: E402
from tenants.service import Tenants  # noqa: E402

sys.path.append(str(_HERE))
from _common import DIVISIONS, fresh_database, met, print_header, table  # noqa: E402

CITY, TENANT = "3301", "330109"
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SAVE_CHUNK = 50  # cases a transaction


class Clock:
    """A case's business time: each step a random while after the last."""

    def __init__(self, rng: random.Random, t: datetime) -> None:
        self.rng, self.t = rng, t

    def __call__(self, hours: float) -> datetime:
        self.t += timedelta(hours=self.rng.uniform(0.05, hours))
        return self.t


def one_case(app: CenterApp, rng: random.Random, calendar: WorkingCalendar, serial: int,
             t: datetime) -> Case:
    category = rng.choice(list(CATEGORIES))
    party = Party(name=Personal("张三"), phone=Personal(f"13{rng.randrange(10**9):09d}"),
                  id_number=Personal(f"330109199{rng.randrange(10**7):07d}X"),
                  address=Personal("幸福小区3幢2单元501室"))
    case = Case.receive(tenant=TENANT, case_number=f"{TENANT}-{t:%Y%m%d}-A{serial:07d}",
                        channel=rng.choice(list(Channel)[:6]), category=category,
                        summary="楼上住户装修噪声扰民, 多次协商未果", parties=[party],
                        place=Place(TENANT, "某路1号", 30.18, 120.26), received_at=t,
                        received_by="clerk")
    clock = Clock(rng, t)
    fate = rng.random()
    if fate < 0.03:
        case.withdraw("当事人撤回", "clerk", clock(2))
        return case
    case.triage(rng.choices(list(Severity)[1:], [13, 55, 30])[0],
                rng.choices(list(HandlingClass), [50, 40, 10])[0], calendar, "dispatcher",
                clock(1))
    unit = Assignee(AssigneeKind.UNIT, CATEGORIES[category].department, lead=True)
    case.dispatch([unit], "dispatcher", clock(2))
    if fate > 0.95:
        return case
    case.accept(unit.ref, "officer", clock(8))
    if rng.random() < 0.2:
        case.urge(Instrument.WORK_PROMPT_LETTER, unit.ref, "超期", "director", clock(30))
    for _ in range(rng.randint(1, 3)):
        case.report_progress("已联系双方当事人, 正在核实", "officer", clock(20))
    if fate > 0.90:
        return case
    case.resolve(Outcome.MEDIATED, "已妥善处理", "officer", clock(48))
    if rng.random() < 0.05:
        case.give_feedback("处理结果已告知", "clerk", clock(6))
        case.reject_result("对结果不满意", "party", clock(12))
        case.resolve(Outcome.MEDIATED, "再次调解达成一致", "officer", clock(48))
    case.give_feedback("处理结果已告知当事人", "clerk", clock(6))
    case.confirm("party", clock(24))
    case.evaluate(rng.choices([5, 4, 3, 2, 1], [60, 25, 8, 4, 3])[0], "", "party", clock(2))
    case.close("clerk", clock(2))
    return case


def generate(tenants: Tenants, events: int, seed: int) -> list[UUID]:
    """Cases until ``events`` events are saved (the last chunk may overshoot a little)."""
    rng = random.Random(seed)
    app = tenants.center(TENANT)
    calendar = tenants.calendar()
    ids: list[UUID] = []
    saved, serial = 0, 0
    while saved < events:
        chunk = []
        while len(chunk) < SAVE_CHUNK and saved < events:
            serial += 1
            case = one_case(app, rng, calendar, serial,
                            START + timedelta(minutes=serial * 7))
            saved += len(case.pending_events)
            chunk.append(case)
        app.save(*chunk)
        ids += [c.id for c in chunk]
    return ids


def raw_read(tenants: Tenants) -> int:
    with tenants.datastore.get_connection() as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return sum(1 for _ in read_events(conn, f"lg_{CITY}", TENANT))


def timed(work: Callable[[], int]) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = work()
    return n, time.perf_counter() - t0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=100_000, help="events in the tenant")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5)")
    p.add_argument("--samples", type=int, default=500, help="cases timed as of an instant")
    p.add_argument("--seed", type=int, default=20261123)
    p.add_argument("--quick", action="store_true", help="10,000 events, one round")
    args = p.parse_args(argv[1:])
    if args.quick:
        args.events, args.rounds, args.samples = 10_000, 1, 100
    key = Ed25519PrivateKey.generate()

    with fresh_database() as db:
        print_header("bench/audit.py: audit verify vs. raw read; as-of replay", db, argv)
        tenants = Tenants(db.url, secrets.token_bytes(32), pool_size=4)
        tenants.import_divisions(DIVISIONS, scope=TENANT, by="bench", at=datetime.now(UTC))
        t0 = time.perf_counter()
        ids = generate(tenants, args.events, args.seed)
        generated = time.perf_counter() - t0
        chained, chain_s = timed(Chainer(tenants, CITY).catch_up)
        t1 = time.perf_counter()
        signed = write_checkpoints(tenants, CITY, datetime.now(UTC), key)
        sign_s = time.perf_counter() - t1
        with tenants.datastore.get_connection() as conn:
            row = conn.execute(f"SELECT count(*) AS n, avg(length(state)) AS size, "
                               f"pg_total_relation_size('lg_{CITY}.events') AS bytes "
                               f"FROM lg_{CITY}.events WHERE tenant = %s", (TENANT,)
                               ).fetchone()
        assert row is not None
        events = int(row["n"])
        print(f"workload: {len(ids)} cases, {events} events in tenant {TENANT} "
              f"({events / len(ids):.1f} a case, {float(row['size']):.0f} bytes of state on "
              f"average, events table {int(row['bytes']) / 2**20:.0f} MiB); generated and "
              f"saved in {generated:.1f} s")
        print(f"chainer: {chained} events chained in {chain_s:.2f} s = "
              f"{chained / chain_s:.0f} events/s; {len(signed)} checkpoint signed in "
              f"{sign_s * 1000:.1f} ms\n", flush=True)

        runs: dict[str, list[float]] = {"raw": [], "verify": []}
        for rnd in range(1, args.rounds + 1):
            for name, work in (("raw", lambda: raw_read(tenants)),
                               ("verify", lambda: verify_tenant(tenants, TENANT,
                                                                key.public_key()).events)):
                n, seconds = timed(work)
                assert n == events, (name, n, events)
                runs[name].append(n / seconds)
                print(f"round {rnd}  {name:<7} {n} events in {seconds:6.2f} s = "
                      f"{n / seconds:8.0f} events/s", flush=True)
        report = verify_tenant(tenants, TENANT, key.public_key())
        assert report.ok and report.verified == events and report.checkpoints == 1

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "export.jsonl"
            n, export_s = timed(lambda: export_tenant(tenants, TENANT, path,
                                                      key.public_key()))
            size = path.stat().st_size
            file_report = verify_file(path, key.public_key())
            n_file, file_s = timed(lambda: verify_file(path, key.public_key()).events)
            assert file_report.ok and n_file == events
        print(f"export  {n} events in {export_s:6.2f} s = {n / export_s:8.0f} events/s "
              f"({size / 2**20:.0f} MiB)")
        print(f"file    {n_file} events in {file_s:6.2f} s = {n_file / file_s:8.0f} "
              "events/s (verify_file, offline)\n", flush=True)

        rng = random.Random(args.seed + 1)
        app = tenants.center(TENANT)
        sample = rng.sample(ids, min(args.samples, len(ids)))
        timings: dict[str, list[float]] = {"inside its life": [], "at its end": []}
        lengths: dict[str, list[int]] = {"inside its life": [], "at its end": []}
        for case_id in sample:
            stored = app.store.select_events(case_id)
            first, last = recorded_at(stored[0].state), recorded_at(stored[-1].state)
            assert first is not None and last is not None
            for what, instant in (("inside its life", first + (last - first) * rng.random()),
                                  ("at its end", last)):
                t = time.perf_counter()
                case = case_as_of(tenants, case_id, instant)
                timings[what].append((time.perf_counter() - t) * 1000)
                assert case is not None
                lengths[what].append(case.version)
        assert lengths["at its end"] == [len(app.store.select_events(c)) for c in sample]
        middle = recorded_at(app.store.select_events(ids[len(ids) // 2])[0].state)
        assert middle is not None
        t = time.perf_counter()
        whole = tenant_as_of(tenants, TENANT, middle)
        whole_s = time.perf_counter() - t
        tenants.close()

    med = {k: statistics.median(v) for k, v in runs.items()}
    print(table([[k, f"{med[k]:.0f}", f"{min(v):.0f}-{max(v):.0f}"] for k, v in runs.items()],
                ["read", "events/s (median)", "range"]))
    ratio = med["verify"] / med["raw"]
    print(f"\nverify / raw read: {ratio:.2f}  target >= 0.5: {met(ratio >= 0.5)}")
    for what, ms in timings.items():
        p50, p99 = percentile(ms, 0.5), percentile(ms, 0.99)
        print(f"as-of one case, {what} ({len(ms)} cases, "
              f"{statistics.mean(lengths[what]):.1f} events replayed on average): p50 "
              f"{p50:.2f} ms, p99 {p99:.2f} ms, max {max(ms):.2f} ms  target p99 < 50 ms: "
              f"{met(p99 < 50)}")
    print(f"as-of the whole tenant at its middle instant: {len(whole)} cases replayed in "
          f"{whole_s:.2f} s")


if __name__ == "__main__":
    main(sys.argv)
