"""The supervision ladder (督办): when the clock urges a case, and with what.

DOMAIN.md rule 5: an overdue order is urged with "two letters and one sheet" —
a work prompt letter at the first breach, a risk warning letter at the second,
a task assignment sheet naming the responsible unit at the third — and rule 6:
a case still overdue after that escalates automatically. A pure policy: the
scheduler asks :func:`next_step` and issues what it returns, so running it
twice (or two of them) issues nothing new — the case's own urgings say which
rung it is on.

A *breach* is a deadline passing without the act it asks for: the response
deadline without the lead's acceptance (dispatched), the handling deadline
without a result (accepted); a complex matter's progress duty restarts five
working days after each progress report. After an instrument, the unit gets a
grace period before the next rung: red 2 hours, orange 24 hours, yellow and
blue one working day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.calendar import WorkingCalendar
from domain.case import Case
from domain.codes import parent_of
from domain.deadlines import PROGRESS_WORKING_DAYS, HandlingClass, Severity
from domain.values import Instrument, Status

__all__ = ["LADDER", "Step", "due_at", "next_step", "next_step_at"]

LADDER = (
    Instrument.WORK_PROMPT_LETTER,
    Instrument.RISK_WARNING_LETTER,
    Instrument.TASK_ASSIGNMENT_SHEET,
)
GRACE_CLOCK = {Severity.RED: timedelta(hours=2), Severity.ORANGE: timedelta(hours=24)}
GRACE_WORKING_DAYS = 1
SCHEDULER = "scheduler"


@dataclass(frozen=True)
class Step:
    """What the clock issues next: an instrument, or (``instrument`` None) escalation."""

    instrument: Instrument | None
    responsible_unit: str
    reason: str
    to_tenant: str | None = None


def due_at(case: Case, calendar: WorkingCalendar) -> tuple[datetime, str] | None:
    """The deadline the case's assignee must meet now, and what it asks for."""
    if case.status is Status.DISPATCHED and case.respond_by is not None:
        return case.respond_by.by, "the response deadline"
    if case.status is not Status.ACCEPTED or case.handle_by is None:
        return None
    progress = case.last_progress_at
    if (
        case.handling is HandlingClass.COMPLEX
        and progress is not None
        and progress >= case.round_started_at
    ):
        return calendar.add_working_days(progress, PROGRESS_WORKING_DAYS).by, "the progress duty"
    return case.handle_by.by, "the handling deadline"


def _grace_after(case: Case, at: datetime, calendar: WorkingCalendar) -> datetime:
    if case.severity in GRACE_CLOCK:
        return at + GRACE_CLOCK[case.severity]
    return calendar.add_working_days(at, GRACE_WORKING_DAYS).by


def _rung(case: Case, calendar: WorkingCalendar) -> tuple[datetime, Step] | None:
    due = due_at(case, calendar)
    if due is None:
        return None
    deadline, what = due
    rung = len(case.urgings)
    when = deadline
    if rung:
        when = max(deadline, _grace_after(case, case.urgings[-1].at, calendar))
    lead = case.lead
    unit = lead.assignee.ref if lead else case.tenant
    if rung < len(LADDER):
        reason = f"{what} passed ({deadline.isoformat()}); breach {rung + 1}"
        return when, Step(LADDER[rung], unit, reason)
    if rung == len(LADDER) and case.escalation_blocker() is None:
        reason = f"still overdue after the {LADDER[-1].value} ({what}, {deadline.isoformat()})"
        return when, Step(None, unit, reason, parent_of(case.tenant))
    return None


def next_step_at(case: Case, calendar: WorkingCalendar) -> datetime | None:
    """When the clock will next act on the case, if ever (for the projection)."""
    rung = _rung(case, calendar)
    return rung[0] if rung else None


def next_step(case: Case, now: datetime, calendar: WorkingCalendar) -> Step | None:
    """What the clock issues at ``now``: nothing unless the next rung is due."""
    rung = _rung(case, calendar)
    if rung is None or now < rung[0]:
        return None
    return rung[1]
