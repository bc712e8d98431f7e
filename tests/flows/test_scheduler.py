"""The clock on real PostgreSQL: the urging ladder over simulated weeks, exactly
once with two schedulers or a killed one, and the automatic escalations.

Time is simulated: the scheduler is ticked at chosen instants (Beijing time) and
the working days are the store's official 2026 calendar (Labour Day May 1-5,
make-up working day Saturday May 9; Qingming April 4-6).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from handover_support import CST, intake
from psycopg.rows import dict_row
from psycopg.sql import SQL, Identifier
from support import MASTER_KEY, ROOT, product_env

import flows.scheduler
from domain import (
    Assignee,
    AssigneeKind,
    Case,
    Channel,
    Direction,
    HandlingClass,
    Instrument,
    Outcome,
    Severity,
    Status,
    WorkingCalendar,
)
from domain.supervision import SCHEDULER, Step, next_step
from flows.router import Router
from flows.scheduler import Issued, Scheduler
from tenants.center import CenterApp
from tenants.service import Tenants

UNIT = Assignee(AssigneeKind.UNIT, "justice-office", lead=True)
PROMPT = Instrument.WORK_PROMPT_LETTER
WARNING = Instrument.RISK_WARNING_LETTER
SHEET = Instrument.TASK_ASSIGNMENT_SHEET
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def at(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """An instant of 2026, Beijing time."""
    return datetime(2026, month, day, hour, minute, tzinfo=CST)


def every(start: datetime, end: datetime, step: timedelta = HOUR) -> Iterator[datetime]:
    now = start
    while now <= end:
        yield now
        now += step


def open_case(app: CenterApp, received: datetime, severity: Severity = Severity.YELLOW,
              handling: HandlingClass = HandlingClass.COMPLEX,
              phone: str = "13912345678") -> Case:
    """A case received, triaged and dispatched to a unit within half an hour."""
    case = intake(app, received, phone=phone)
    app.triage_case(case.id, severity, handling, "dispatcher", received + 10 * MINUTE)
    return app.dispatch_case(case.id, [UNIT], "dispatcher", received + 20 * MINUTE)


def what(issued: Issued) -> str:
    step = issued.step
    return step.instrument.value if step.instrument else f"escalation to {step.to_tenant}"


def tick(scheduler: Scheduler, times: Iterator[datetime] | list[datetime]
         ) -> list[tuple[datetime, str, str]]:
    """Tick at each time; what was issued, as (business time, case number, step)."""
    return [(i.at, i.case_number, what(i)) for now in times for i in scheduler.tick(now)]


def events(app: CenterApp, case: Case) -> list[str]:
    return [type(e).__name__ for e in app.case_events(case.id)]


def urgings(app: CenterApp, case: Case) -> list[tuple[str, str | None, str, datetime]]:
    """The Urged events of a case as stored: instrument, unit, issuer, business time."""
    return [(Instrument(e.instrument).value, e.responsible_unit, e.by, e.at)
            for e in app.case_events(case.id) if type(e).__name__ == "Urged"]


def issue(case: Case, now: datetime, calendar: WorkingCalendar) -> str | None:
    """The policy applied in process, the scheduler's way (for expectations)."""
    step = next_step(case, now, calendar)
    if step is None:
        return None
    when = max(now, case.last_at)
    if step.instrument is None:
        assert step.to_tenant is not None
        case.escalate(step.to_tenant, step.reason, SCHEDULER, when)
        return f"escalation to {step.to_tenant}"
    case.urge(step.instrument, step.responsible_unit, step.reason, SCHEDULER, when)
    return step.instrument.value


def ladder_of(case: Case) -> tuple[list[tuple[str, datetime]], Status, str | None]:
    return [(u.instrument.value, u.at) for u in case.urgings], case.status, case.escalated_to


# -- (a) the ladder over three weeks, across Labour Day ------------------------------------


def test_an_unanswered_village_case_climbs_the_ladder_across_labour_day_and_escalates(
        tenants: Tenants, city_tree: dict[str, list[str]], city: str) -> None:
    village, township = city_tree["village"][0], city_tree["township"][0]
    v_app, t_app = tenants.center(village), tenants.center(township)
    # Received Wed Apr 29: respond within 3 working days, Thu Apr 30, Wed May 6, Thu May 7.
    case = open_case(v_app, at(4, 29, 9))
    assert case.respond_by is not None and case.respond_by.by == at(5, 8)
    # A control: accepted in time and resolved before its 5 working days (Apr 30, May 6,
    # 7, 8 and the make-up Saturday May 9) ran out. The clock leaves it alone.
    answered = open_case(v_app, at(4, 29, 9, 30), phone="13900000001")
    v_app.accept_case(answered.id, UNIT.ref, "officer", at(4, 30, 10))

    scheduler = Scheduler(tenants, city)
    issued = tick(scheduler, every(at(4, 29, 10), at(5, 8, 23)))
    v_app.resolve_case(answered.id, Outcome.HANDLED, "已处理", "officer", at(5, 9, 10))
    issued += tick(scheduler, every(at(5, 9), at(5, 20)))

    number = case.case_number
    assert issued == [
        (at(5, 8), number, PROMPT.value),  # end of Thu May 7, the 3rd working day
        (at(5, 10), number, WARNING.value),  # grace: the make-up Saturday May 9
        (at(5, 12), number, SHEET.value),  # letter on Sunday: grace Monday May 11
        (at(5, 14), number, f"escalation to {township}"),  # sheet Tue: grace Wed May 13
    ]
    assert not [i for i in issued if date(2026, 4, 30) < i[0].date() < date(2026, 5, 8)]
    assert urgings(v_app, case) == [
        (PROMPT.value, UNIT.ref, SCHEDULER, at(5, 8)),
        (WARNING.value, UNIT.ref, SCHEDULER, at(5, 10)),
        (SHEET.value, UNIT.ref, SCHEDULER, at(5, 12)),  # names the responsible unit
    ]
    assert events(v_app, case) == [
        "Received", "Triaged", "Dispatched", "Urged", "Urged", "Urged", "Escalated"]
    assert events(v_app, answered) == [
        "Received", "Triaged", "Dispatched", "Accepted", "Resolved"]

    case = v_app.get_case(case.id)
    assert case.status is Status.ESCALATED and case.escalated_to == township
    Router(tenants, city).catch_up()
    linked = t_app.get_case(case.links[-1].case_id)
    assert linked.origin is not None and linked.origin.case_id == case.id
    assert linked.origin.direction is Direction.DOWN
    assert linked.status is Status.TRIAGED and linked.channel is Channel.HANDOVER
    assert linked.received_at == at(5, 14) and linked.severity is Severity.YELLOW
    assert linked.origin_case_number == number
    # The township files it (备案) and decides; the clock has nothing more to do.
    assert tick(scheduler, every(at(5, 20), at(6, 30), timedelta(days=1))) == []


# -- (b) exactly once: two schedulers, or one ticking the same time twice --------------------


def test_two_schedulers_and_repeated_ticks_issue_each_instrument_once(
        tenants: Tenants, database_url: str, city_tree: dict[str, list[str]],
        city: str) -> None:
    centers = city_tree["village"] + city_tree["township"]
    severities = [Severity.YELLOW, Severity.ORANGE, Severity.BLUE]
    cases = [
        open_case(tenants.center(centers[i % len(centers)]), at(3, 2, 9) + i * 5 * HOUR,
                  severities[i % 3], phone=f"1390000{i:04d}")
        for i in range(12)
    ]
    calendar = tenants.calendar()
    expected = {c.id: tenants.center(c.tenant).get_case(c.id) for c in cases}
    times = list(every(at(3, 2, 12), at(3, 27), 3 * HOUR))
    for now in times:
        for copy in expected.values():
            issue(copy, now, calendar)

    # A second process's view of the store: its own connection pool.
    other = Tenants(database_url + " application_name=second-scheduler", MASTER_KEY)
    try:
        first, second = Scheduler(tenants, city), Scheduler(other, city)
        reports: list[Issued] = []
        lock = threading.Lock()

        def run(scheduler: Scheduler, now: datetime, gate: threading.Barrier) -> None:
            gate.wait()
            issued = scheduler.tick(now)
            with lock:
                reports.extend(issued)

        for n, now in enumerate(times):
            if n % 2:  # both at once
                gate = threading.Barrier(2)
                threads = [threading.Thread(target=run, args=(s, now, gate))
                           for s in (first, second)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            else:  # interleaved
                reports += first.tick(now) + second.tick(now)
            reports += first.tick(now)  # the same time again
    finally:
        other.close()

    assert reports, "the clock issued nothing"
    for case in cases:
        app = tenants.center(case.tenant)
        stored = app.get_case(case.id)
        names = Counter(events(app, case))
        kinds = [u[0] for u in urgings(app, case)]
        assert len(kinds) == len(set(kinds)) == len(stored.urgings), case.case_number
        assert names["Escalated"] <= 1
        assert ladder_of(stored) == ladder_of(expected[case.id]), case.case_number
        # Every step is reported by the one scheduler that issued it.
        mine = Counter(what(r) for r in reports if r.case_number == case.case_number)
        assert sum(mine.values()) == names["Urged"] + names["Escalated"]
        assert max(mine.values()) == 1
    # By the end every ladder is done: three instruments and an escalation each.
    assert {ladder_of(expected[c.id])[1] for c in cases} == {Status.ESCALATED}


def test_a_scheduler_that_lost_the_race_to_another_issues_nothing(
        tenants: Tenants, city_tree: dict[str, list[str]], city: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Scheduler A decides on the case as it read it; scheduler B issues the same step
    # before A writes. A's write must fail, not issue the letter a second time.
    village = city_tree["village"][0]
    v_app = tenants.center(village)
    case = open_case(v_app, at(3, 2, 9))
    first, second = Scheduler(tenants, city), Scheduler(tenants, city)
    decide = flows.scheduler.next_step

    def decide_then_lose_the_race(case: Case, now: datetime,
                                  calendar: WorkingCalendar) -> Step | None:
        step = decide(case, now, calendar)
        monkeypatch.setattr(flows.scheduler, "next_step", decide)  # once
        assert [what(i) for i in second.tick(now)] == [PROMPT.value]
        return step

    monkeypatch.setattr(flows.scheduler, "next_step", decide_then_lose_the_race)
    assert first.tick(at(3, 6)) == []
    assert [u[0] for u in urgings(v_app, case)] == [PROMPT.value]
    # The ladder goes on as if one scheduler had run.
    assert tick(first, every(at(3, 6, 1), at(3, 14))) == [
        (at(3, 10), case.case_number, WARNING.value),
        (at(3, 12), case.case_number, SHEET.value),
        (at(3, 14), case.case_number, f"escalation to {city_tree['township'][0]}"),
    ]


# -- (c) accepted after the prompt letter ----------------------------------------------------


def test_accepted_after_the_prompt_letter_the_ladder_resumes_at_the_handling_deadline(
        tenants: Tenants, city_tree: dict[str, list[str]], city: str) -> None:
    village, township = city_tree["village"][0], city_tree["township"][0]
    v_app = tenants.center(village)
    # A difficult matter received Mon Mar 2 09:00: a solution is owed by Apr 2 09:00.
    case = open_case(v_app, at(3, 2, 9), handling=HandlingClass.DIFFICULT)
    scheduler = Scheduler(tenants, city)
    assert tick(scheduler, every(at(3, 2, 10), at(3, 6, 9))) == [
        (at(3, 6), case.case_number, PROMPT.value)]
    v_app.accept_case(case.id, UNIT.ref, "officer", at(3, 6, 10))

    # The letter's grace (to Tue Mar 10) passes quietly: the unit is working on it.
    issued = tick(scheduler, every(at(3, 6, 11), at(4, 8, 1)))
    assert issued == [
        (at(4, 2, 9), case.case_number, WARNING.value),
        (at(4, 4), case.case_number, SHEET.value),  # warning Thu: grace Fri Apr 3
        # Sheet on Sat Apr 4, Qingming Apr 4-6: the grace day is Tue Apr 7.
        (at(4, 8), case.case_number, f"escalation to {township}"),
    ]
    stored = v_app.get_case(case.id)
    assert "the handling deadline" in stored.urgings[1].reason
    assert stored.status is Status.ESCALATED


# -- (d) automatic escalation: red below a county, group matters -----------------------------


def test_a_red_matter_triaged_at_a_village_goes_up_to_the_county_at_once(
        tenants: Tenants, city_tree: dict[str, list[str]], city: str) -> None:
    village, township, county = (city_tree[t][0] for t in ("village", "township", "county"))
    v_app, t_app, c_app = (tenants.center(x) for x in (village, township, county))
    case = intake(v_app, at(3, 2, 9))
    case = v_app.triage_case(case.id, Severity.RED, HandlingClass.SIMPLE, "dispatcher",
                             at(3, 2, 9, 10))
    assert case.status is Status.ESCALATED and case.escalated_to == township
    assert events(v_app, case) == ["Received", "Triaged", "Escalated"]

    Router(tenants, city).catch_up()
    t_case = t_app.get_case(case.links[-1].case_id)
    assert t_case.origin is not None and t_case.origin.case_id == case.id
    assert t_case.severity is Severity.RED
    assert t_case.status is Status.ESCALATED and t_case.escalated_to == county
    c_case = c_app.get_case(t_case.links[-1].case_id)
    assert c_case.origin is not None and c_case.origin.case_id == t_case.id
    assert c_case.status is Status.TRIAGED and c_case.severity is Severity.RED
    assert c_case.respond_by is not None and c_case.respond_by.by == at(3, 2, 11, 10)

    # The clock urges none of the escalated cases; once the county dispatches, its
    # unit is urged at the red 2-hour deadline and again 2 hours later.
    scheduler = Scheduler(tenants, city)
    assert tick(scheduler, [at(3, 2, 10)]) == []
    c_app.dispatch_case(c_case.id, [UNIT], "dispatcher-c", at(3, 2, 10, 30))
    assert tick(scheduler, every(at(3, 2, 11), at(3, 2, 14), 10 * MINUTE)) == [
        (at(3, 2, 11, 10), c_case.case_number, PROMPT.value),
        (at(3, 2, 13, 10), c_case.case_number, WARNING.value),
    ]
    assert [u[1] for u in urgings(c_app, c_case)] == [UNIT.ref, UNIT.ref]
    assert urgings(v_app, case) == urgings(t_app, t_case) == []


def test_a_case_marked_a_group_matter_escalates_and_leaves_the_ladder(
        tenants: Tenants, city_tree: dict[str, list[str]], city: str) -> None:
    village, township = city_tree["village"][0], city_tree["township"][0]
    v_app, t_app = tenants.center(village), tenants.center(township)
    case = open_case(v_app, at(3, 2, 9))
    scheduler = Scheduler(tenants, city)
    assert tick(scheduler, [at(3, 6)]) == [(at(3, 6), case.case_number, PROMPT.value)]

    case = v_app.mark_group_matter(case.id, "三十余户联名上访", "director-v", at(3, 6, 9))
    assert case.group_matter and case.status is Status.ESCALATED
    assert case.escalated_to == township
    Router(tenants, city).catch_up()
    linked = t_app.get_case(case.links[-1].case_id)
    assert linked.origin is not None and linked.origin.case_id == case.id
    assert linked.status is Status.TRIAGED and linked.received_at == at(3, 6, 9)
    # The warning letter that was due on Tue Mar 10 is never issued.
    assert tick(scheduler, every(at(3, 6, 10), at(3, 31), 6 * HOUR)) == []
    assert [u[0] for u in urgings(v_app, case)] == [PROMPT.value]


# -- (e) killed and concurrent scheduler processes ------------------------------------------


def scheduler_process(database_url: str, city: str, now: datetime,
                      data_dir: Path) -> subprocess.Popen[str]:
    env = {**product_env(database_url), "ZONGZHI_DATA_DIR": str(data_dir)}
    return subprocess.Popen(
        [sys.executable, "-m", "zongzhi.cli", "scheduler", "--city", city,
         "--at", now.isoformat(), "--once"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(process: subprocess.Popen[str]) -> list[str]:
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "Traceback" not in err, err
    return out.splitlines()


def kill(process: subprocess.Popen[str]) -> bool:
    """SIGKILL the process if it still runs; whether it did."""
    running = process.poll() is None
    if running:
        os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    return running


@pytest.mark.slow
def test_killed_and_concurrent_scheduler_processes_issue_exactly_the_policys_steps(
        tenants: Tenants, database_url: str, city_tree: dict[str, list[str]], city: str,
        tmp_path: Path) -> None:
    rng = random.Random(20260501)
    centers = city_tree["village"] + city_tree["township"] + city_tree["county"]
    plans = [(Severity.YELLOW, HandlingClass.COMPLEX), (Severity.ORANGE, HandlingClass.SIMPLE),
             (Severity.BLUE, HandlingClass.COMPLEX), (Severity.YELLOW, HandlingClass.DIFFICULT)]
    cases = []
    for i in range(36):
        severity, handling = plans[i % len(plans)]
        app = tenants.center(centers[i % len(centers)])
        case = open_case(app, at(3, 2, 8) + i * 75 * MINUTE, severity, handling,
                         phone=f"1380000{i:04d}")
        if i % 8 == 7:  # a few are accepted at once: the handling deadline rules them
            case = app.accept_case(case.id, UNIT.ref, "officer", case.last_at + MINUTE)
        cases.append(case)
    calendar = tenants.calendar()
    expected = {c.id: tenants.center(c.tenant).get_case(c.id) for c in cases}
    times = [at(3, 4, 9), at(3, 5, 9), at(3, 6), at(3, 6, 9), at(3, 9, 9), at(3, 10, 9),
             at(3, 11), at(3, 11, 9), at(3, 12, 9), at(3, 13, 9), at(3, 16, 9), at(3, 18, 9),
             at(3, 23, 9), at(4, 3, 9)]
    count = SQL("SELECT count(*) AS n FROM {0}.events").format(Identifier(f"lg_{city}"))
    printed: list[str] = []
    partial = at_random = concurrent = 0
    started = time.monotonic()
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:

        def saved() -> int:
            row = conn.execute(count).fetchone()
            assert row is not None
            return int(row["n"])

        for now in times:
            due = sum(issue(copy, now, calendar) is not None for copy in expected.values())
            base = saved()
            if due >= 2 and rng.random() < 0.7:
                # Killed inside the work: once the k-th step of this tick is saved.
                process = scheduler_process(database_url, city, now, tmp_path)
                stop_at = base + rng.randint(1, due - 1)
                while process.poll() is None and saved() < stop_at:
                    time.sleep(0.002)
                kill(process)
                partial += base < saved() < base + due
            elif rng.random() < 0.5:  # killed at a random moment (start-up, catch-up, work)
                process = scheduler_process(database_url, city, now, tmp_path)
                time.sleep(rng.uniform(0.1, 1.5))
                at_random += kill(process)
            if rng.random() < 0.4:  # two at once, then the same time once more
                pair = [scheduler_process(database_url, city, now, tmp_path) for _ in range(2)]
                for process in pair:
                    printed += finished(process)
                concurrent += 1
                again = finished(scheduler_process(database_url, city, now, tmp_path))
                assert again == [], f"a completed tick at {now} issued more when run again"
            else:
                printed += finished(scheduler_process(database_url, city, now, tmp_path))
            assert saved() - base == due, f"at {now} the policy has {due} steps due"
    elapsed = time.monotonic() - started
    assert partial >= 3 and at_random >= 1 and concurrent >= 3, (partial, at_random, concurrent)

    final = times[-1]
    assert max(Counter(printed).values()) == 1, "a step was reported twice"
    steps = 0
    for case in cases:
        app = tenants.center(case.tenant)
        stored = app.get_case(case.id)
        names = Counter(events(app, case))
        kinds = [u[0] for u in urgings(app, case)]
        assert len(kinds) == len(set(kinds)) == len(stored.urgings) == names["Urged"]
        assert names["Escalated"] <= 1
        assert next_step(stored, final, calendar) is None, case.case_number
        assert ladder_of(stored) == ladder_of(expected[case.id]), case.case_number
        steps += names["Urged"] + names["Escalated"]
    # A run prints its steps once it has issued them all: a killed run prints none.
    assert len(printed) < steps
    assert steps >= 3 * len(cases), "the ladder barely moved: the test proves little"
    assert elapsed < 60, f"the fault run took {elapsed:.0f} s"
