"""A week of one county's work, driven through the centers' commands and the
router, for the view, query and KPI suites; and helpers to read the view.

The story (times CST; 2026-03-02 is a Monday, March 2026 has no holiday):

township T1 (its own cases)
  A  neighbour-dispute, yellow/simple: justice-office accepts in 1 h, mediates
     in 3 h; 5 stars; closed.
  B  labour-pay, orange/complex: labour refuses; justice-office accepts 2 h after
     the 24 h response deadline (a breach), reports progress, refers to court
     in 77 h; 3 stars; closed.
  C  marriage-family, triaged only.           D  neighbour-dispute, received only.
  E  environment-noise, blue: dispatched to police, not answered (due 03-12).
  F  consumer, orange/simple: market-regulation (lead) and police; accepted in
     30 min, not resolved by the end of the day: urged Tue 09:00 (a breach).
  G  street-vending, withdrawn.
  H  neighbour-dispute: resolved by justice-office, closed, then a repeat
     complaint re-opens it (triaged again, Tue 09:00).
  I  land-boundary, yellow/complex: dispatched down to village V11 (I2 there,
     not answered; due 03-06 00:00).
  J2 the case V12's escalation opens at T1: housing accepts in 70 min, resolves.
village V12:  J  neighbour-dispute, escalated to T1, resolved by J2's outcome;
              4 stars; closed (J2 closes with it).
village V21:  K  public-safety-hazard, red: escalates at once to T2 (K2), which
              escalates at once to the county (K3); police resolve it there in
              1.5 h from receipt; 5 stars; closed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

from support import write_divisions

from domain import (
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
)
from flows.router import Router
from projections.views import CaseView
from tenants.center import CenterApp
from tenants.persistence import log_group_schema
from tenants.service import Tenants

CST = timezone(timedelta(hours=8))


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A time on March ``day``, 2026, China time."""
    return datetime(2026, 3, day, hour, minute, tzinfo=CST)


NOW = at(4, 12)  # Wednesday noon: when the story's figures are read
COURT_REFERENCE = "(2026)浙0782民初123号"
_phones = itertools.count(13900000000)


#: City codes of this suite's own (the shared ``city`` fixture counts up from 6101).
_codes = itertools.count(6999, -1)


def another_city(tenants: Tenants, directory: Path, **shape: int) -> dict[str, list[str]]:
    """A registered synthetic city of its own (for a session-scoped fixture, or a
    test that needs a second city)."""
    code = str(next(_codes))
    tree = write_divisions(directory / code, code, **shape)
    tenants.import_divisions(directory / code, code, "test", datetime.now(UTC))
    return tree


def unit(ref: str, lead: bool = False) -> Assignee:
    return Assignee(AssigneeKind.UNIT, ref, lead=lead)


def center(code: str, lead: bool = False) -> Assignee:
    return Assignee(AssigneeKind.CENTER, code, lead=lead)


def receive(app: CenterApp, when: datetime, category: str = "neighbour-dispute",
            summary: str = "两户因宅基地边界争执") -> Case:
    """A new matter, each with a party of its own (intake finds no duplicate)."""
    party = Party(name=Personal("王小明"), phone=Personal(str(next(_phones))))
    return app.receive_case(channel=Channel.GRID_PATROL, category=category, summary=summary,
                            parties=[party], place=Place(app.tenant, "某路1号"),
                            by="clerk", at=when)


def close_loop(app: CenterApp, case_id: UUID, stars: int | None, times: list[datetime]) -> None:
    """Feedback, confirmation, evaluation (unless None), closing, at ``times``."""
    app.give_feedback(case_id, "处理结果已告知", "clerk", times[0])
    app.confirm_case(case_id, "party", times[1])
    if stars is not None:
        app.evaluate_case(case_id, stars, "", "party", times[2])
    app.close_case(case_id, "clerk", times[3])


@dataclass
class Story:
    tenants: Tenants
    tree: dict[str, list[str]]
    ids: dict[str, UUID] = field(default_factory=dict)

    @property
    def city(self) -> str:
        return self.tree["city"][0]

    @property
    def county(self) -> str:
        return self.tree["county"][0]

    @property
    def t1(self) -> str:
        return self.tree["township"][0]

    @property
    def t2(self) -> str:
        return self.tree["township"][1]

    @property
    def v11(self) -> str:
        return self.tree["village"][0]

    @property
    def v12(self) -> str:
        return self.tree["village"][1]

    @property
    def v21(self) -> str:
        return self.tree["village"][2]

    def name_of(self, case_id: UUID) -> str:
        return next(k for k, v in self.ids.items() if v == case_id)

    def names(self, rows: Any) -> list[str]:
        return [self.name_of(r.case_id) for r in rows]


def tell(tenants: Tenants, tree: dict[str, list[str]]) -> Story:
    """Drive the story; the router runs as the centers go."""
    s = Story(tenants, tree)
    router = Router(tenants, s.city)
    t1 = tenants.center(s.t1)

    a = receive(t1, at(2, 9)).id
    t1.triage_case(a, Severity.YELLOW, HandlingClass.SIMPLE, "dispatcher", at(2, 9, 10))
    t1.dispatch_case(a, [unit("justice-office", lead=True)], "dispatcher", at(2, 9, 20))
    t1.accept_case(a, "justice-office", "officer", at(2, 10))
    t1.resolve_case(a, Outcome.MEDIATED, "签订调解协议", "officer", at(2, 12))
    close_loop(t1, a, 5, [at(2, 13), at(2, 14), at(2, 14, 10), at(2, 14, 20)])

    b = receive(t1, at(2, 10), "labour-pay", "拖欠工资").id
    t1.triage_case(b, Severity.ORANGE, HandlingClass.COMPLEX, "dispatcher", at(2, 10, 10))
    t1.dispatch_case(b, [unit("labour", lead=True)], "dispatcher", at(2, 10, 20))
    t1.refuse_case(b, "labour", "不属本单位职责", "officer", at(2, 10, 40))
    t1.dispatch_case(b, [unit("justice-office", lead=True)], "dispatcher", at(2, 11))
    t1.accept_case(b, "justice-office", "officer", at(3, 12))
    t1.report_progress(b, "已约谈双方", "officer", at(4, 9))
    t1.resolve_case(b, Outcome.REFERRED_TO_COURT, "调解不成, 引导起诉", "officer", at(5, 15),
                    court_reference=COURT_REFERENCE)
    close_loop(t1, b, 3, [at(5, 16), at(6, 9), at(6, 9, 10), at(6, 9, 20)])

    c = receive(t1, at(2, 11), "marriage-family", "夫妻财产争执").id
    t1.triage_case(c, Severity.BLUE, HandlingClass.SIMPLE, "dispatcher", at(2, 11, 10))
    d = receive(t1, at(2, 11, 30)).id

    e = receive(t1, at(2, 12), "environment-noise", "夜间施工噪声").id
    t1.triage_case(e, Severity.BLUE, HandlingClass.SIMPLE, "dispatcher", at(2, 12, 10))
    t1.dispatch_case(e, [unit("police", lead=True)], "dispatcher", at(2, 12, 20))

    f = receive(t1, at(2, 13), "consumer", "装修公司拖延施工").id
    t1.triage_case(f, Severity.ORANGE, HandlingClass.SIMPLE, "dispatcher", at(2, 13, 10))
    t1.dispatch_case(f, [unit("market-regulation", lead=True), unit("police")], "dispatcher",
                     at(2, 13, 20))
    t1.accept_case(f, "market-regulation", "officer", at(2, 13, 30))
    t1.urge_case(f, Instrument.WORK_PROMPT_LETTER, "market-regulation", "超期未办结",
                 "director", at(3, 9))

    g = receive(t1, at(2, 14), "street-vending", "早市占道").id
    t1.withdraw_case(g, "当事人撤回", "clerk", at(2, 14, 30))

    h = receive(t1, at(2, 15)).id
    t1.triage_case(h, Severity.YELLOW, HandlingClass.SIMPLE, "dispatcher", at(2, 15, 5))
    t1.dispatch_case(h, [unit("justice-office", lead=True)], "dispatcher", at(2, 15, 10))
    t1.accept_case(h, "justice-office", "officer", at(2, 15, 20))
    t1.resolve_case(h, Outcome.HANDLED, "已处理", "officer", at(2, 16))
    close_loop(t1, h, None, [at(2, 16, 10), at(2, 16, 20), at(2, 16, 25), at(2, 16, 30)])
    t1.repeat_complaint(h, "同一问题再次投诉", "clerk", at(3, 9))

    i = receive(t1, at(2, 16), "land-boundary", "宅基地界址不清").id
    t1.triage_case(i, Severity.YELLOW, HandlingClass.COMPLEX, "dispatcher", at(2, 16, 5))
    i_case = t1.dispatch_case(i, [center(s.v11, lead=True)], "dispatcher", at(2, 16, 10))
    router.catch_up()

    v12 = tenants.center(s.v12)
    j = receive(v12, at(2, 9, 30)).id
    v12.triage_case(j, Severity.YELLOW, HandlingClass.SIMPLE, "dispatcher", at(2, 9, 40))
    j_case = v12.escalate_case(j, s.t1, "村级无法调处", "director", at(2, 9, 50))
    router.catch_up()
    j2 = j_case.links[0].case_id
    t1.dispatch_case(j2, [unit("housing", lead=True)], "dispatcher", at(2, 10, 30))
    t1.accept_case(j2, "housing", "officer", at(2, 11))
    t1.resolve_case(j2, Outcome.HANDLED, "已修复", "officer", at(2, 13))
    router.catch_up()
    close_loop(v12, j, 4, [at(2, 14), at(2, 15), at(2, 15, 10), at(2, 15, 20)])
    router.catch_up()

    v21 = tenants.center(s.v21)
    k = receive(v21, at(2, 10), "public-safety-hazard", "楼道电动车充电").id
    k_case = v21.triage_case(k, Severity.RED, HandlingClass.SIMPLE, "dispatcher",
                             at(2, 10, 5))
    router.catch_up()
    k2 = k_case.links[0].case_id
    k3 = tenants.center(s.t2).get_case(k2).links[0].case_id
    county = tenants.center(s.county)
    county.dispatch_case(k3, [unit("police", lead=True)], "dispatcher", at(2, 10, 30))
    county.accept_case(k3, "police", "officer", at(2, 10, 45))
    county.resolve_case(k3, Outcome.HANDLED, "已清理", "officer", at(2, 11, 30))
    router.catch_up()
    close_loop(v21, k, 5, [at(2, 12), at(2, 12, 30), at(2, 12, 40), at(2, 12, 50)])
    router.catch_up()

    s.ids = {"A": a, "B": b, "C": c, "D": d, "E": e, "F": f, "G": g, "H": h, "I": i,
             "I2": i_case.links[0].case_id, "J": j, "J2": j2, "K": k, "K2": k2, "K3": k3}
    return s


def view_rows(tenants: Tenants, city: str, table: str = "case_view") -> list[dict[str, Any]]:
    """Every row of a view table, by case id (for whole-table comparisons)."""
    with tenants.datastore.get_connection() as conn:
        return [dict(r) for r in conn.execute(
            f'SELECT * FROM "{log_group_schema(city)}"."{table}" ORDER BY case_id').fetchall()]


class Shadow(CaseView):
    """A second case view in a table of its own, to compare with ``case_view``."""

    name = table = "case_view_shadow"


class ForgetfulShadow(CaseView):
    """A second copy that keeps no case between events: it re-reads each case's
    stored events before applying the next one."""

    name = table = "case_view_forgetful"
    cache_size = 0
