"""The case view's rebuild rate beside the raw rate of reading the same log.

    python bench/projections.py                 # 20,000 cases (a few minutes on 2 cores)
    python bench/projections.py --cases 2000    # a smaller run
    python bench/projections.py --quick         # 2,000 cases, one round

Workload: ``--cases`` cases in the county 330109 (its township and village
centers and the county itself) of city 3301, one log group, generated with the
domain's own commands (``Case.receive``, ``triage``, ``dispatch`` ... and, for
escalations, ``Case.take_over`` and ``note_linked_outcome`` as the router does)
over 60 days of business time: most cases run the whole loop, some are refused
and re-dispatched, urged, referred to court, rejected and resolved again,
escalated to the township, withdrawn, re-opened, or left open. The events are
encrypted by each center's ``CenterApp`` mapper (parties' personal fields) and
written in business-time order, 200 to a transaction, so the log interleaves
cases as a city's log does. Generation is not timed.

Timed, each ``--rounds`` times (interleaved; medians reported):

raw        ``select_notifications`` in the case view's rebuild batches (20,000; its
           topic filter) + ``mapper.to_domain_event`` of every notification with the
           center's own mapper (decrypting the parties, as any reader of the log
           must): no state, no writes.
raw/view   the same with the view's decoder (personal fields left unread).
case view  ``CaseView.rebuild()``: clear, then fold every event into its case and
           upsert each batch's touched cases with the position, one transaction a
           batch.
case index ``CaseIndex.rebuild()`` once (it loads every touched case with
           ``repository.get`` per batch: the approach the case view avoids).

Figures are printed; nothing is asserted on time.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This script's folder is on sys.path, and its name would hide the ``projections``
# package: leave the folder out until the package is imported (then ``_common``).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse  # noqa: E402
import csv  # noqa: E402
import random  # noqa: E402
import secrets  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

from domain import (  # noqa: E402
    CATEGORIES,
    Assignee,
    AssigneeKind,
    Case,
    Channel,
    Direction,
    HandlingClass,
    Instrument,
    Link,
    Outcome,
    Party,
    Personal,
    Place,
    Severity,
    WorkingCalendar,
    tenant_of,
)
from projections.cases import CaseIndex  # noqa: E402
from projections.follower import CASE_TOPICS  # noqa: E402
from projections.views import CaseView  # noqa: E402
from tenants.persistence import ANY_TENANT, LOG_GROUP, TENANT, Factory, TenantRecorder  # noqa: E402
from tenants.service import Tenants  # noqa: E402

sys.path.append(str(_HERE))
from _common import DIVISIONS, fresh_database, met, print_header, table  # noqa: E402

CITY, COUNTY = "3301", "330109"
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DAYS = 60
#: Events per insert. The library inserts in psycopg pipeline mode, which hung here on
#: ~1 MB of events in one call (the client waits for results the server cannot send
#: before it has read the whole message): 200 at a time stay well below that.
WRITE_CHUNK = 200


# -- the workload ---------------------------------------------------------------------------


@dataclass
class Log:
    """Events in the order they happen: (business time, sequence, tenant, event)."""

    entries: list[tuple[datetime, int, str, Any]] = field(default_factory=list)
    seq: int = 0

    def take(self, case: Case) -> None:
        for event in case.collect_events():
            when = getattr(event, "at", None) or event.received_at  # type: ignore[attr-defined]
            self.seq += 1
            self.entries.append((when, self.seq, case.tenant, event))


class Generator:
    """Cases of one county through the domain's commands, in memory."""

    def __init__(self, rng: random.Random, calendar: WorkingCalendar, centers: dict[str, str],
                 ) -> None:
        self.rng, self.calendar, self.log = rng, calendar, Log()
        self.centers = centers  # code -> parent code
        self.codes = list(centers)
        self.weights = [6 if len(c) == 12 else 3 if len(c) == 9 else 1 for c in self.codes]
        self.serial = 0
        self.fates: dict[str, int] = {}

    def number(self, tenant: str, at: datetime) -> str:
        self.serial += 1
        return f"{tenant}-{at:%Y%m%d}-B{self.serial:07d}"

    def case(self, i: int, cases: int) -> None:
        rng = self.rng
        code = rng.choices(self.codes, self.weights)[0]
        t = START + timedelta(seconds=DAYS * 86400 * i / cases)
        category = rng.choice(list(CATEGORIES))
        party = Party(name=Personal("张三"), phone=Personal(f"13{rng.randrange(10**9):09d}"),
                      id_number=Personal(f"330109199{rng.randrange(10**7):07d}X"),
                      address=Personal("幸福小区3幢2单元501室"))
        case = Case.receive(tenant=code, case_number=self.number(code, t),
                            channel=rng.choice(list(Channel)[:6]), category=category,
                            summary="楼上住户装修噪声扰民, 多次协商未果", parties=[party],
                            place=Place(code, "某路1号", 30.18, 120.26), received_at=t,
                            received_by="clerk")
        clock = Clock(rng, t)
        fate = rng.random()
        if fate < 0.03:
            self._fate("withdrawn")
            case.withdraw("当事人撤回", "clerk", clock(2))
            self.log.take(case)
            return
        case.triage(rng.choices(list(Severity), [2, 13, 55, 30])[0],
                    rng.choices(list(HandlingClass), [50, 40, 10])[0], self.calendar,
                    "dispatcher", clock(1))
        if case.escalated_to is None and fate < 0.10 and len(code) > 6:
            self._escalation(case, clock)
            return
        if case.escalated_to is not None:  # red below a county escalated by itself
            self._fate("left escalated (red)")
            self.log.take(case)
            return
        department = CATEGORIES[category].department
        lead = Assignee(AssigneeKind.UNIT, department, lead=True)
        if rng.random() < 0.08:  # a misrouted order, refused
            case.dispatch([Assignee(AssigneeKind.UNIT, "police", lead=True)], "d", clock(2))
            case.refuse("police", "不属本单位职责", "officer", clock(3))
        team = [lead] + ([Assignee(AssigneeKind.UNIT, "police")]
                         if rng.random() < 0.15 and department != "police" else [])
        case.dispatch(team, "dispatcher", clock(2))
        if fate > 0.95:
            self._fate("left dispatched")
            self.log.take(case)
            return
        for member in team:
            case.accept(member.ref, "officer", clock(8))
        if rng.random() < 0.2:
            case.urge(Instrument.WORK_PROMPT_LETTER, department, "超期", "director", clock(30))
        for _ in range(rng.randint(1, 3)):
            case.report_progress("已联系双方当事人, 正在核实", "officer", clock(20))
        if fate > 0.90:
            self._fate("left in progress")
            self.log.take(case)
            return
        self._resolve(case, clock)
        if rng.random() < 0.05:
            case.give_feedback("处理结果已告知", "clerk", clock(6))
            case.reject_result("对结果不满意", "party", clock(12))
            case.resolve(Outcome.MEDIATED, "再次调解达成一致", "officer", clock(48))
        self._close(case, clock)
        if rng.random() < 0.04:
            self._fate("re-opened")
            case.reopen("同一问题再次投诉", "clerk", clock(72))
        else:
            self._fate("closed")
        self.log.take(case)

    def _resolve(self, case: Case, clock: Clock) -> None:
        outcome = self.rng.choices(list(Outcome), [55, 35, 6, 4])[0]
        court = "(2026)浙0109民初1号" if outcome is Outcome.REFERRED_TO_COURT else None
        case.resolve(outcome, "已妥善处理", "officer", clock(48), court_reference=court)

    def _close(self, case: Case, clock: Clock) -> None:
        case.give_feedback("处理结果已告知当事人", "clerk", clock(6))
        case.confirm("party", clock(24))
        case.evaluate(self.rng.choices([5, 4, 3, 2, 1], [60, 25, 8, 4, 3])[0], "", "party",
                      clock(2))
        case.close("clerk", clock(2))

    def _escalation(self, case: Case, clock: Clock) -> None:
        """Escalated to the parent, handled there, the outcome relayed back (the router's
        part done with the same domain calls the router makes)."""
        parent = self.centers[case.tenant]
        case.escalate(parent, "矛盾升级, 需上级协调", "director", clock(4))
        self.log.take(case)
        link = case.links[-1]
        at = case.last_at
        upper = Case.take_over(
            case_id=link.case_id, case_number=self.number(parent, at),
            origin=Link(case.id, case.tenant, Direction.DOWN, lead=True),
            origin_case_number=case.case_number, reason="矛盾升级", source=case,
            calendar=self.calendar, by="router", at=at)
        unit = Assignee(AssigneeKind.UNIT, CATEGORIES[case.category].department, lead=True)
        upper.dispatch([unit], "dispatcher", clock(2))
        upper.accept(unit.ref, "officer", clock(6))
        self._resolve(upper, clock)
        self.log.take(upper)
        assert upper.outcome is not None
        case.note_linked_outcome(upper.id, upper.outcome, upper.resolution or "", "router",
                                 upper.last_at, court_reference=upper.court_reference)
        self._close(case, clock)
        self.log.take(case)
        upper.close_with_origin("router", case.last_at)
        self.log.take(upper)
        self._fate("escalated and closed")

    def _fate(self, what: str) -> None:
        self.fates[what] = self.fates.get(what, 0) + 1


class Clock:
    """A case's business time: each step a random while after the last."""

    def __init__(self, rng: random.Random, t: datetime) -> None:
        self.rng, self.t = rng, t

    def __call__(self, hours: float) -> datetime:
        self.t += timedelta(hours=self.rng.uniform(0.05, hours))
        return self.t


def centers_of(county: str) -> dict[str, str]:
    """Every center of the county (code -> parent), from the division files."""
    centers = {county: county[:4]}
    with (DIVISIONS / "townships.csv").open(encoding="utf-8-sig", newline="") as f:
        centers |= {r["code"]: county for r in csv.DictReader(f) if r["areaCode"] == county}
    with (DIVISIONS / "villages.csv").open(encoding="utf-8-sig", newline="") as f:
        centers |= {r["code"]: r["streetCode"] for r in csv.DictReader(f)
                    if r["areaCode"] == county}
    return centers


def write(tenants: Tenants, log: Log) -> int:
    recorder = Factory({**tenants.env, TENANT: ANY_TENANT, LOG_GROUP: CITY}) \
        .application_recorder()
    entries = sorted(log.entries, key=lambda e: (e[0], e[1]))
    for start in range(0, len(entries), WRITE_CHUNK):
        stored = [tenants.center(tenant).mapper.to_stored_event(event)
                  for _, _, tenant, event in entries[start:start + WRITE_CHUNK]]
        recorder.insert_events(stored)
    return len(entries)


# -- the timed parts -----------------------------------------------------------------------


def raw_read(tenants: Tenants, decode: Callable[[Any], Any]) -> int:
    """Every notification of the log group, in the case view's rebuild batches, decoded."""
    reader = TenantRecorder(Factory({**tenants.env, LOG_GROUP: CITY}).datastore, tenant=None)
    position, count = 0, 0
    while batch := reader.select_notifications(position, CaseView.rebuild_batch,
                                               topics=CASE_TOPICS, inclusive_of_start=False):
        for n in batch:
            decode(n)
        count += len(batch)
        position = batch[-1].id
    return count


def timed(work: Callable[[], int]) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = work()
    return n, time.perf_counter() - t0


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=20_000, help="cases generated (default 20000)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds (default 3)")
    p.add_argument("--cache", type=int, default=CaseView.cache_size,
                   help=f"cases the view keeps between batches (default {CaseView.cache_size})")
    p.add_argument("--seed", type=int, default=20261123)
    p.add_argument("--skip-index", action="store_true", help="do not time the case index")
    p.add_argument("--quick", action="store_true", help="2,000 cases, one round")
    args = p.parse_args(argv[1:])
    if args.quick:
        args.cases, args.rounds = 2000, 1
    CaseView.cache_size = args.cache

    with fresh_database() as db:
        print_header("bench/projections.py: case view rebuild vs. raw log read", db, argv)
        tenants = Tenants(db.url, secrets.token_bytes(32), pool_size=4)
        tenants.import_divisions(DIVISIONS, scope=COUNTY, by="bench", at=datetime.now(UTC))
        t0 = time.perf_counter()
        generator = Generator(random.Random(args.seed), tenants.calendar(), centers_of(COUNTY))
        for i in range(args.cases):
            generator.case(i, args.cases)
        generated = time.perf_counter() - t0
        events = write(tenants, generator.log)
        cases = len({e.originator_id for _, _, _, e in generator.log.entries})
        print(f"workload: {args.cases} matters -> {cases} cases ({cases - args.cases} opened by "
              f"escalations) in {len(generator.centers)} centers, {events} events "
              f"({events / cases:.1f} a case); generated in {generated:.1f} s, written in "
              f"{time.perf_counter() - t0 - generated:.1f} s")
        print("fates: " + ", ".join(f"{k} {v}" for k, v in sorted(generator.fates.items())))
        print(f"case view cache: {args.cache} cases; rebuilt in batches of "
              f"{CaseView.rebuild_batch} notifications (raw reads too)\n", flush=True)

        view = CaseView(tenants, CITY)
        own_mapper = {code: tenants.center(code).mapper for code in generator.centers}
        view_mapper = view.mapper

        def product_decode(n: Any) -> Any:
            return own_mapper[tenant_of(n.originator_id) or ""].to_domain_event(n)

        runs: dict[str, list[float]] = {"raw": [], "raw/view": [], "case view": []}
        misses: list[int] = []
        for rnd in range(1, args.rounds + 1):
            for name, work in (("raw", lambda: raw_read(tenants, product_decode)),
                               ("raw/view", lambda: raw_read(tenants,
                                                             view_mapper.to_domain_event)),
                               ("case view", view.rebuild)):
                view.hits = view.misses = 0
                n, seconds = timed(work)
                assert n == events, (name, n, events)
                runs[name].append(n / seconds)
                if name == "case view":
                    misses.append(view.misses)
                print(f"round {rnd}  {name:<10} {n} events in {seconds:6.2f} s = "
                      f"{n / seconds:8.0f} events/s", flush=True)
        index_rate = None
        if not args.skip_index:
            index = CaseIndex(tenants, CITY)
            n, seconds = timed(index.rebuild)
            index_rate = n / seconds
            print(f"once     case index {n} events in {seconds:6.2f} s = {index_rate:8.0f} "
                  "events/s", flush=True)
        with tenants.datastore.get_connection() as conn:
            rows = conn.execute(f"SELECT count(*) AS n FROM lg_{CITY}.case_view").fetchone()
        assert rows is not None and rows["n"] == cases
        tenants.close()

    med = {k: statistics.median(v) for k, v in runs.items()}
    print()
    result = [[k, f"{med[k]:.0f}", f"{min(v):.0f}-{max(v):.0f}"] for k, v in runs.items()]
    if index_rate is not None:
        result.append(["case index", f"{index_rate:.0f}", "(once)"])
    print(table(result, ["read", "events/s (median)", "range"]))
    # Ratios within each round (the same load on the machine), then their median.
    ratio = statistics.median(v / r for v, r in zip(runs["case view"], runs["raw"], strict=True))
    ratio_view = statistics.median(
        v / r for v, r in zip(runs["case view"], runs["raw/view"], strict=True))
    print(f"\ncase view rebuild / raw read, per round: product decoder "
          f"{[round(v / r, 2) for v, r in zip(runs['case view'], runs['raw'], strict=True)]}, "
          f"view decoder "
          f"{[round(v / r, 2) for v, r in zip(runs['case view'], runs['raw/view'], strict=True)]}")
    print(f"median ratio: {ratio:.2f} (product decoder), {ratio_view:.2f} (view decoder)")
    if index_rate is not None:
        print(f"case view rebuild / case index rebuild: {med['case view'] / index_rate:.1f}x")
    print(f"case view misses per rebuild (re-read cases): {statistics.median(misses):.0f}")
    print(f"target: rebuild >= 0.5 x raw read rate: {met(ratio >= 0.5)} "
          f"(against the view's own decoder: {met(ratio_view >= 0.5)})")


if __name__ == "__main__":
    main(sys.argv)
