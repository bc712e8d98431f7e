"""Builders for the inspection and callback suites: cases driven through their
loop in a month, and violations planted the way bad data arrives.

A planted violation is an event the commands would refuse (e.g. a closure
without the party's confirmation): it is written by calling the aggregate's
private event methods and saving through the application, exactly as a buggy
client, an import of legacy records or a hand-edited migration would leave it.
Violations the commands allow (a late dispatch, a missing evaluation) are made
with the ordinary commands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from audit_support import party

from domain import (
    Assignee,
    AssigneeKind,
    Case,
    Channel,
    HandlingClass,
    Outcome,
    Place,
    Severity,
)
from domain.calendar import CHINA
from tenants.center import CenterApp

UNIT = "justice-office"
LEAD = Assignee(AssigneeKind.UNIT, UNIT, lead=True)
#: Working days of March 2026 (no holiday in it), 09:00 China time.
MARCH = [datetime(2026, 3, d, 9, 0, tzinfo=CHINA) for d in range(2, 32)
         if datetime(2026, 3, d).weekday() < 5]


@dataclass
class Clock:
    at: datetime

    def __call__(self, minutes: float = 10) -> datetime:
        self.at += timedelta(minutes=minutes)
        return self.at


def receive(app: CenterApp, at: datetime, summary: str = "邻里噪声纠纷") -> Case:
    return app.receive_case(channel=Channel.WINDOW, category="neighbour-dispute",
                            summary=summary, parties=[party()],
                            place=Place(app.tenant, "某路1号"), by="clerk-1", at=at)


def private(app: CenterApp, case_id: UUID, step: Callable[[Case], None]) -> None:
    """Write an event the commands would refuse (see the module's docstring)."""
    case = app.get_case(case_id)
    step(case)
    app.save_case(case)


def full_loop(app: CenterApp, start: datetime, *, severity: Severity = Severity.YELLOW,
              handling: HandlingClass = HandlingClass.DIFFICULT,
              dispatch_after: float = 20, accept_after: float = 10,
              resolve_after: float = 120, confirm_by: str = "party",
              evaluate: bool = True, confirm: bool = True) -> UUID:
    """One case from intake to closure, every step in time unless told otherwise
    (minutes after the previous step)."""
    clock = Clock(start)
    case = receive(app, clock(0))
    app.triage_case(case.id, severity, handling, "dispatcher-1", clock(5))
    app.dispatch_case(case.id, [LEAD], "dispatcher-1", clock(dispatch_after))
    app.accept_case(case.id, UNIT, "officer-1", clock(accept_after))
    app.resolve_case(case.id, Outcome.MEDIATED, "签订调解协议", "officer-1",
                     clock(resolve_after))
    app.give_feedback(case.id, "已告知当事人", "clerk-1", clock())
    if confirm:
        app.confirm_case(case.id, confirm_by, clock())
        app.close_case(case.id, "clerk-1", clock())
    else:
        at = clock()
        private(app, case.id, lambda c: c._closed(by="clerk-1", at=at))
    if evaluate:
        app.evaluate_case(case.id, 5, "满意", "party", clock())
    return case.id
