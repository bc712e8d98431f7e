"""Personal fields on real PostgreSQL: masked by default, unmasked only when the
policy allows and a reason is given, and every unmasked view stored as an event
in the case's own center."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from api_support import principal

from api.auth import AuthError, Role
from api.authz import answerable_refs, can_see_case
from api.privacy import mask_party, needs_unmasked, record_view, reveal_party, unmask, views_of
from domain import (
    Assignee,
    AssigneeKind,
    Case,
    Channel,
    HandlingClass,
    Party,
    Personal,
    Place,
    Severity,
    ValidationError,
)
from domain.access import AccessRecord
from tenants.persistence import log_group_schema
from tenants.service import Tenants

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=CST)
NAME, PHONE, ID_NUMBER, ADDRESS = "王小明", "13912345678", "330782199001011234", "稠城街道某小区3幢"
MASKED = {"name": "王**", "phone": "139****5678", "id_number": "330***********1234",
          "address": "稠城街道*****", "role": "applicant"}


def dispatched_case(tenants: Tenants, village: str) -> Case:
    """A village's case dispatched to grid worker gw-1 (lead) and the justice office."""
    app = tenants.center(village)
    case = app.receive_case(
        channel=Channel.GRID_PATROL, category="neighbour-dispute", summary="楼上漏水, 协商未果",
        parties=[Party(Personal(NAME), Personal(PHONE), Personal(ID_NUMBER), Personal(ADDRESS)),
                 Party(Personal("李四"), role="respondent")],
        place=Place(village, "某路1号"), by="clerk-1", at=T0)
    app.triage_case(case.id, Severity.YELLOW, HandlingClass.SIMPLE, "dispatcher-1",
                    T0 + timedelta(minutes=5))
    return app.dispatch_case(case.id, [Assignee(AssigneeKind.GRID_WORKER, "gw-1", lead=True),
                                       Assignee(AssigneeKind.UNIT, "justice-office")],
                             "dispatcher-1", T0 + timedelta(minutes=10))


@pytest.fixture
def village(city_tree: dict[str, list[str]]) -> str:
    return city_tree["village"][0]


@pytest.fixture
def case(tenants: Tenants, village: str) -> Case:
    return dispatched_case(tenants, village)


AT = T0 + timedelta(hours=1)


def test_personal_fields_are_masked_by_default(case: Case) -> None:
    assert mask_party(case.parties[0]) == MASKED
    assert mask_party(case.parties[1]) == {"name": "李*", "phone": None, "id_number": None,
                                           "address": None, "role": "respondent"}
    shredded = Party(Personal(None), Personal(None))
    assert reveal_party(shredded, ["name", "phone"])["phone"] == "[shredded]"


def test_an_assigned_grid_worker_unmasks_with_a_reason_and_the_view_is_an_event(
        tenants: Tenants, case: Case, village: str, database_url: str) -> None:
    # given the grid worker the case is dispatched to
    worker = principal(Role.GRID_WORKER, village, subject="gw-1")
    assert needs_unmasked(worker, case)
    # when it asks for the applicant's phone, with a reason
    parties = unmask(tenants, worker, case, ["phone"], "约当事人上门查看", AT)
    # then the phone is in clear, everything else still masked
    assert parties[0] == {**MASKED, "phone": PHONE}
    assert parties[1]["name"] == "李*"
    # and the view is recorded in the case's own center
    (view,) = views_of(tenants, case.id)
    assert (view.viewer, view.viewer_tenant, view.roles, view.fields, view.reason, view.at) == (
        "gw-1", village, ["grid-worker"], ["phone"], "约当事人上门查看", AT)
    assert (view.tenant, view.case_id, view.case_number, view.serial) == (
        village, case.id, case.case_number, 1)
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            f"SELECT tenant, topic FROM {log_group_schema(village[:4])}.events "
            "WHERE originator_id = %s", (view.id,)).fetchone()
    assert row is not None
    assert row[0] == village
    assert row[1].endswith("AccessRecord.Viewed")


def test_a_grid_worker_cannot_unmask_or_see_a_case_not_assigned_to_it(
        tenants: Tenants, case: Case, village: str) -> None:
    other = principal(Role.GRID_WORKER, village, subject="gw-2")
    assert not can_see_case(other, case)
    assert not needs_unmasked(other, case)
    with pytest.raises(AuthError) as refused:
        unmask(tenants, other, case, ["phone", "id_number"], "想看看", AT)
    assert refused.value.code == "FORBIDDEN"
    assert views_of(tenants, case.id) == []


def test_unmasking_without_a_reason_or_with_unknown_fields_is_refused(
        tenants: Tenants, case: Case, village: str) -> None:
    clerk = principal(Role.CLERK, village)
    for reason in ("", "   "):
        with pytest.raises(ValidationError, match="reason"):
            record_view(tenants, clerk, case, ["phone"], reason, AT)
    for fields in ([], ["phone", "salary"], "phone"):
        with pytest.raises(ValidationError, match="personal fields"):
            record_view(tenants, clerk, case, fields, "回访", AT)
    assert views_of(tenants, case.id) == []


def test_who_may_see_personal_fields_in_clear(
        case: Case, village: str, city_tree: dict[str, list[str]]) -> None:
    township, county, city = village[:9], village[:6], village[:4]
    allowed = {
        "clerk of the village": principal(Role.CLERK, village),
        "director of the village": principal(Role.DIRECTOR, village),
        "the assigned unit": principal(Role.UNIT_OFFICER, village, unit="justice-office"),
        "the assigned grid worker": principal(Role.GRID_WORKER, village, subject="gw-1"),
        "an inspector of the county": principal(Role.INSPECTOR, county),
    }
    refused = {
        "another unit": principal(Role.UNIT_OFFICER, village, unit="housing"),
        "the township's director": principal(Role.DIRECTOR, township),
        "the township's clerk": principal(Role.CLERK, township),
        "an auditor of the city": principal(Role.AUDITOR, city),
        "a provincial auditor": principal(Role.AUDITOR, "61"),
        "a clerk of a sibling village": principal(Role.CLERK, city_tree["village"][1]),
        "an inspector of another county": principal(Role.INSPECTOR, f"{city}99"),
    }
    assert {who for who, p in allowed.items() if needs_unmasked(p, case)} == set(allowed)
    assert {who for who, p in refused.items() if needs_unmasked(p, case)} == set()


def test_an_inspector_above_unmasks_for_a_callback_recorded_in_the_village(
        tenants: Tenants, case: Case, village: str) -> None:
    inspector = principal(Role.INSPECTOR, village[:6], subject="insp-1")
    unmask(tenants, inspector, case, ["name", "phone"], "回访抽查", AT)
    unmask(tenants, principal(Role.CLERK, village, subject="clerk-1"), case, ["phone"],
           "反馈结果", AT + timedelta(minutes=1))
    views = views_of(tenants, case.id)
    assert [(v.serial, v.viewer, v.viewer_tenant, v.tenant) for v in views] == [
        (1, "insp-1", village[:6], village), (2, "clerk-1", village, village)]


def test_concurrent_views_each_get_their_own_record(
        tenants: Tenants, case: Case, village: str) -> None:
    errors: list[BaseException] = []

    def view(n: int) -> None:
        try:
            record_view(tenants, principal(Role.CLERK, village, subject=f"clerk-{n}"), case,
                        ["phone"], "并发回访", AT)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=view, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    views = views_of(tenants, case.id)
    assert [v.serial for v in views] == list(range(1, 9))
    assert sorted(v.viewer for v in views) == sorted(f"clerk-{n}" for n in range(8))


def test_a_unit_answers_only_for_itself_and_the_center_for_anyone_pending(
        tenants: Tenants, case: Case, village: str) -> None:
    officer = principal(Role.UNIT_OFFICER, village, unit="justice-office")
    worker = principal(Role.GRID_WORKER, village, subject="gw-1")
    assert answerable_refs(officer, case) == ["justice-office"]
    assert answerable_refs(worker, case) == ["gw-1"]
    assert answerable_refs(principal(Role.DISPATCHER, village), case) == [
        "gw-1", "justice-office"]
    assert answerable_refs(principal(Role.DISPATCHER, village[:9]), case) == []
    assert answerable_refs(principal(Role.CLERK, village), case) == []
    # once the grid worker accepted, only the unit's answer is pending
    accepted = tenants.center(village).accept_case(case.id, "gw-1", "gw-1", AT)
    assert answerable_refs(worker, accepted) == []
    assert answerable_refs(principal(Role.DIRECTOR, village), accepted) == ["justice-office"]


def test_an_access_record_refuses_a_case_id_without_a_tenant() -> None:
    from uuid import uuid4

    with pytest.raises(ValidationError, match="tenant"):
        AccessRecord.record(uuid4(), "n", 1, "v", "330782", ["clerk"], ["phone"], "r", AT)
