"""Builders for the flow suites: cases on real PostgreSQL, the router to drain."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from domain import Case, Channel, HandlingClass, Party, Personal, Place, Severity
from flows.router import Router
from tenants.center import CenterApp
from tenants.service import Tenants

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=CST)  # a Monday


class Clock:
    """Business time that moves forward a fixed step per call."""

    def __init__(self, start: datetime = T0, step: timedelta = timedelta(minutes=10)) -> None:
        self.now, self.step = start, step

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


def party(phone: str = "13912345678") -> Party:
    return Party(name=Personal("王小明"), phone=Personal(phone),
                 id_number=Personal("330782199001011234"))


def intake(app: CenterApp, at: datetime, *, summary: str = "两户因宅基地边界争执",
           phone: str = "13912345678", category: str = "neighbour-dispute") -> Case:
    place = Place(app.tenant, "某路1号")
    return app.receive_case(channel=Channel.GRID_PATROL, category=category, summary=summary,
                            parties=[party(phone)], place=place, by="clerk-1", at=at)


def triaged(app: CenterApp, clock: Clock, severity: Severity = Severity.YELLOW,
            handling: HandlingClass = HandlingClass.COMPLEX, **kw: str) -> Case:
    case = intake(app, clock(), **kw)
    return app.triage_case(case.id, severity, handling, "dispatcher-1", clock())


def drain(router: Router) -> int:
    """Run the router until it finds nothing more to do (hand-overs chain)."""
    return router.catch_up()


def history(app: CenterApp, case: Case) -> list[str]:
    return [type(e).__name__ for e in app.case_events(case.id)]


def reload(tenants: Tenants, case: Case) -> Case:
    return tenants.center(case.tenant).get_case(case.id)
