"""History (who, when, why; never personal data in clear) and replay as of an
instant: a case queried at the instants of its life equals what it was then."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from audit_support import UNIT, party

from audit.history import case_as_of, history, tenant_as_of
from domain import Case, Channel, HandlingClass, Instrument, Outcome, Place, Severity, Status
from tenants.center import CaseNotFound
from tenants.service import Tenants

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def state(case: Case) -> dict[str, Any]:
    """What the test remembers of a case at an instant."""
    return {
        "version": case.version, "status": case.status, "severity": case.severity,
        "handling": case.handling, "assignments": [(a.assignee.ref, a.accepted_at)
                                                   for a in case.assignments],
        "progress_reports": case.progress_reports, "urgings": len(case.urgings),
        "outcome": case.outcome, "resolution": case.resolution, "feedback": case.feedback,
        "rejections": case.rejections, "confirmed": case.confirmed, "stars": case.stars,
        "closed_at": case.closed_at, "last_at": case.last_at,
        "phone": case.parties[0].phone.text if case.parties[0].phone else None,
    }


@pytest.fixture
def lived(tenants: Tenants, city_tree: dict[str, list[str]]
          ) -> tuple[Tenants, Case, datetime, list[tuple[datetime, dict[str, Any]]]]:
    """One case through 15 commands; its state recorded at an instant after each."""
    app = tenants.center(city_tree["county"][0])
    clock = iter(T0 + timedelta(hours=h) for h in range(100))
    before = datetime.now(UTC)
    time.sleep(0.005)
    case = app.receive_case(channel=Channel.GRID_PATROL, category="neighbour-dispute",
                            summary="两户因宅基地边界争执", parties=[party()],
                            place=Place(app.tenant, "某路1号"), by="clerk-1", at=next(clock))
    cid = case.id
    steps: list[Callable[[], Case]] = [
        lambda: app.triage_case(cid, Severity.YELLOW, HandlingClass.COMPLEX, "disp-1",
                                next(clock)),
        lambda: app.dispatch_case(cid, [UNIT], "disp-1", next(clock)),
        lambda: app.accept_case(cid, UNIT.ref, "officer-1", next(clock)),
        lambda: app.report_progress(cid, "已约谈双方", "officer-1", next(clock)),
        lambda: app.urge_case(cid, Instrument.WORK_PROMPT_LETTER, UNIT.ref, "进展缓慢",
                              "director-1", next(clock)),
        lambda: app.report_progress(cid, "已现场勘界", "officer-1", next(clock)),
        lambda: app.resolve_case(cid, Outcome.MEDIATED, "签订调解协议", "officer-1",
                                 next(clock)),
        lambda: app.give_feedback(cid, "已告知当事人", "clerk-1", next(clock)),
        lambda: app.reject_result(cid, "对界址不认可", "party", next(clock)),
        lambda: app.resolve_case(cid, Outcome.MEDIATED, "重新勘界后达成协议", "officer-2",
                                 next(clock)),
        lambda: app.give_feedback(cid, "再次告知当事人", "clerk-1", next(clock)),
        lambda: app.confirm_case(cid, "party", next(clock)),
        lambda: app.evaluate_case(cid, 4, "满意", "party", next(clock)),
        lambda: app.close_case(cid, "clerk-1", next(clock)),
    ]
    recorded: list[tuple[datetime, dict[str, Any]]] = []
    for step in [lambda: case, *steps]:
        now_case = step()
        time.sleep(0.004)
        recorded.append((datetime.now(UTC), state(now_case)))
        time.sleep(0.004)
    return tenants, case, before, recorded


def test_a_case_as_of_each_instant_of_its_life_is_what_it_was_then(
        lived: tuple[Tenants, Case, datetime, list[tuple[datetime, dict[str, Any]]]]) -> None:
    tenants, case, before, recorded = lived
    assert len(recorded) == 15
    assert [r["version"] for _, r in recorded] == list(range(1, 16))
    assert case_as_of(tenants, case.id, before) is None  # not received yet
    for instant, expected in recorded:
        then = case_as_of(tenants, case.id, instant)
        assert then is not None and state(then) == expected, instant
    final = recorded[-1][1]
    assert final["status"] is Status.CLOSED and final["rejections"] == 1
    # the as-of replay agrees with the library's own replay to that version
    app = tenants.center(case.tenant)
    for instant, expected in recorded[::4]:
        then = case_as_of(tenants, case.id, instant)
        assert then is not None
        assert state(app.repository.get(case.id, version=expected["version"])) == state(then)


def test_as_of_rejects_naive_instants_and_unknown_cases(
        lived: tuple[Tenants, Case, datetime, list[tuple[datetime, dict[str, Any]]]]) -> None:
    from audit.chain import AuditError
    from domain import stream_id

    tenants, case, _, _ = lived
    with pytest.raises(AuditError, match="timezone-aware"):
        case_as_of(tenants, case.id, datetime(2026, 1, 1))
    with pytest.raises(CaseNotFound):
        case_as_of(tenants, stream_id(case.tenant, "case:none"), datetime.now(UTC))


def test_a_tenant_as_of_an_instant_holds_every_case_as_it_was(
        lived: tuple[Tenants, Case, datetime, list[tuple[datetime, dict[str, Any]]]]) -> None:
    tenants, case, before, recorded = lived
    assert tenant_as_of(tenants, case.tenant, before) == {}
    instant, expected = recorded[6]
    cases = tenant_as_of(tenants, case.tenant, instant)
    assert list(cases) == [case.id] and state(cases[case.id]) == expected


def test_a_case_history_says_who_when_and_why_without_personal_data(
        lived: tuple[Tenants, Case, datetime, list[tuple[datetime, dict[str, Any]]]]) -> None:
    tenants, case, _, recorded = lived
    entries = history(tenants, case_id=case.id)
    assert [e.version for e in entries] == list(range(1, 16))
    assert [e.type for e in entries[:4]] == ["Received", "Triaged", "Dispatched", "Accepted"]
    assert entries[0].by == "clerk-1" and entries[0].at == T0
    assert entries[0].why == "两户因宅基地边界争执"
    assert entries[9].type == "ResultRejected" and entries[9].by == "party"
    assert entries[9].why == "对界址不认可"
    assert entries[5].why == "进展缓慢" and entries[5].details["instrument"] == \
        "work-prompt-letter"
    for e, (instant, _) in zip(entries, recorded, strict=True):
        assert e.recorded is not None and e.recorded <= instant
        assert e.at is not None and e.at.tzinfo is not None
    text = "\n".join(e.line() for e in entries) + repr(entries)
    for personal in ("王小明", "13912345678", "330782199001011234", "personal"):
        assert personal not in text


def test_a_tenant_history_filters_by_type_actor_and_time(
        lived: tuple[Tenants, Case, datetime, list[tuple[datetime, dict[str, Any]]]]) -> None:
    tenants, case, _, recorded = lived
    everything = history(tenants, tenant=case.tenant)
    assert [e.position for e in everything] == sorted(e.position for e in everything)
    resolved = history(tenants, tenant=case.tenant, types=["Resolved"])
    assert [e.by for e in resolved] == ["officer-1", "officer-2"]
    assert [e.type for e in history(tenants, tenant=case.tenant, actor="party")] == [
        "ResultRejected", "Confirmed", "Evaluated"]
    window = history(tenants, tenant=case.tenant, since=recorded[2][0], until=recorded[5][0])
    assert [e.version for e in window] == [4, 5, 6]
    assert len(history(tenants, tenant=case.tenant, limit=2)) == 2
