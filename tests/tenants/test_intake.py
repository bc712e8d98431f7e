"""Intake on real PostgreSQL: one matter, one case (DOMAIN.md rules 1 and 9).

Cases reach intake through the case index, so each test catches the index up
before the next complaint, as the running projector would."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from uuid import UUID

import psycopg
import pytest
from support import MASTER_KEY

from domain import (
    Assignee,
    AssigneeKind,
    Case,
    Channel,
    HandlingClass,
    IllegalTransition,
    Outcome,
    Party,
    Personal,
    Place,
    Severity,
    Status,
    ValidationError,
)
from projections.cases import CaseIndex
from tenants.center import CenterApp
from tenants.keys import Keyring, TenantKeyShredded
from tenants.persistence import log_group_schema
from tenants.service import Tenants

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=CST)  # a Monday
PHONE, OTHER_PHONE, ID_NUMBER = "13912345678", "13800001111", "33078219900101123X"
LAT, LON = 29.3069, 120.0753
M_PER_DEG = 111_195.0  # metres per degree of latitude
CATEGORY = "neighbour-dispute"
LEAD = "justice-office"
COURT_REFERENCE = "(2026)浙0782民初456号"


def party(phone: str | None = PHONE, id_number: str | None = None) -> Party:
    return Party(name=Personal("王小明"), phone=None if phone is None else Personal(phone),
                 id_number=None if id_number is None else Personal(id_number))


def place(app: CenterApp, metres_north: float = 0.0) -> Place:
    return Place(app.tenant, "稠城街道某小区3幢", LAT + metres_north / M_PER_DEG, LON)


def complain(app: CenterApp, at: datetime, *, parties: list[Party] | None = None,
             category: str = CATEGORY, where: Place | None = None,
             summary: str = "楼上漏水, 协商未果") -> Case:
    return app.receive_case(channel=Channel.HOTLINE_12345, category=category, summary=summary,
                            parties=parties or [party()], place=where or place(app),
                            by="clerk-1", at=at)


def index(tenants: Tenants, code: str) -> None:
    """Catch the case index of the center's log group up (as the projector would)."""
    CaseIndex(tenants, code[:4]).catch_up()


def close_loop(app: CenterApp, case_id: UUID, start: datetime,
               outcome: Outcome = Outcome.MEDIATED, court_reference: str | None = None,
               summary: str = "调解成功, 签订协议") -> Case:
    """Triage, dispatch to the justice office, resolve, feed back, confirm, close."""
    t = start
    def at() -> datetime:
        nonlocal t
        t += timedelta(hours=1)
        return t
    app.triage_case(case_id, Severity.YELLOW, HandlingClass.SIMPLE, "dispatcher-1", at())
    app.dispatch_case(case_id, [Assignee(AssigneeKind.UNIT, LEAD, lead=True)],
                      "dispatcher-1", at())
    app.accept_case(case_id, LEAD, "officer-1", at())
    app.resolve_case(case_id, outcome, summary, "officer-1", at(), court_reference)
    app.give_feedback(case_id, "已告知当事人处理结果", "clerk-1", at())
    app.confirm_case(case_id, "party", at())
    return app.close_case(case_id, "clerk-1", at())


def event_names(app: CenterApp, case_id: UUID) -> list[str]:
    return [type(e).__name__ for e in app.case_events(case_id)]


# -- (a) suspected duplicates -----------------------------------------------------

def test_the_same_party_and_matter_nearby_within_days_is_flagged_on_the_new_case(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    app = tenants.center(city_tree["village"][0])
    first = complain(app, T0)
    index(tenants, app.tenant)

    second = complain(app, T0 + timedelta(days=3), where=place(app, 120))

    assert second.id != first.id
    assert second.status is Status.RECEIVED
    assert second.suspected_duplicates == [first.id]
    assert app.get_case(second.id).suspected_duplicates == [first.id]  # recorded, not computed
    assert app.get_case(first.id).suspected_duplicates == []
    assert app.get_case(first.id).status is Status.RECEIVED  # the earlier case is untouched


def test_every_open_duplicate_is_flagged_oldest_first(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    app = tenants.center(city_tree["village"][0])
    first = complain(app, T0)
    app.triage_case(first.id, Severity.BLUE, HandlingClass.SIMPLE, "d", T0 + timedelta(hours=1))
    second = complain(app, T0 + timedelta(days=1))  # index not caught up: sees nothing yet
    assert second.suspected_duplicates == []
    index(tenants, app.tenant)

    third = complain(app, T0 + timedelta(days=2))

    assert third.suspected_duplicates == [first.id, second.id]


def test_the_same_number_typed_with_spaces_or_a_lowercase_x_still_matches(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    app = tenants.center(city_tree["village"][0])
    by_phone = complain(app, T0)
    by_id = complain(app, T0, parties=[party(phone=None, id_number=ID_NUMBER)],
                     category="property-management")
    index(tenants, app.tenant)

    spaced = complain(app, T0 + timedelta(days=1), parties=[party(phone="139 1234 5678")])
    lower_x = complain(app, T0 + timedelta(days=1), category="property-management",
                       parties=[party(phone=None, id_number=ID_NUMBER.lower())])

    assert spaced.suspected_duplicates == [by_phone.id]
    assert lower_x.suspected_duplicates == [by_id.id]


@pytest.mark.parametrize("differs", ["category", "far-place", "other-village", "phone",
                                     "older-than-30-days"])
def test_a_different_matter_party_place_or_an_old_case_is_not_flagged(
        tenants: Tenants, city_tree: dict[str, list[str]], differs: str) -> None:
    app = tenants.center(city_tree["township"][0])
    first = complain(app, T0)
    index(tenants, app.tenant)
    later = T0 + timedelta(days=2)
    villages = [v for v in city_tree["village"] if v.startswith(app.tenant)]

    second = {
        "category": lambda: complain(app, later, category="property-management"),
        "far-place": lambda: complain(app, later, where=place(app, 2_000)),
        "other-village": lambda: complain(app, later, where=Place(villages[0], "某路")),
        "phone": lambda: complain(app, later, parties=[party(OTHER_PHONE)]),
        "older-than-30-days": lambda: complain(app, T0 + timedelta(days=30, minutes=1)),
    }[differs]()

    assert second.id != first.id
    assert second.suspected_duplicates == []


def test_a_place_without_coordinates_is_nearby_anything_in_the_same_division(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    # Without coordinates on either side, the same division is "nearby".
    app = tenants.center(city_tree["village"][0])
    first = complain(app, T0, where=Place(app.tenant, "村委会旁"))
    index(tenants, app.tenant)
    second = complain(app, T0 + timedelta(days=1), where=place(app, 5_000))
    assert second.suspected_duplicates == [first.id]


def test_a_case_in_another_center_is_never_flagged(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    here, there = (tenants.center(code) for code in city_tree["village"][:2])
    theirs = complain(there, T0)  # same phone, category, coordinates, same log group
    index(tenants, here.tenant)

    ours = complain(here, T0 + timedelta(days=1))

    assert ours.suspected_duplicates == []
    assert set(ours.match_keys).isdisjoint(theirs.match_keys)  # keys are per tenant
    again = complain(there, T0 + timedelta(days=1))
    assert again.suspected_duplicates == [theirs.id]  # but within that center they match


# -- (b) staff decide: keep separate or merge --------------------------------------

def flagged_pair(tenants: Tenants, app: CenterApp) -> tuple[Case, Case]:
    first = complain(app, T0)
    index(tenants, app.tenant)
    second = complain(app, T0 + timedelta(days=1))
    assert second.suspected_duplicates == [first.id]
    return first, second


def test_keeping_a_suspected_duplicate_separate_is_recorded_once(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    app = tenants.center(city_tree["village"][0])
    first, second = flagged_pair(tenants, app)
    at = T0 + timedelta(days=1, hours=1)

    kept = app.keep_separate(second.id, first.id, "不同楼层的漏水", "clerk-2", at)

    assert kept.kept_separate_from == [first.id]
    assert kept.status is Status.RECEIVED  # the case goes on as a matter of its own
    decision = app.case_events(second.id)[-1]
    assert type(decision).__name__ == "KeptSeparate"
    assert (decision.other_case_id, decision.reason, decision.by) == (
        first.id, "不同楼层的漏水", "clerk-2")
    before = app.store.max_tenant_position()
    with pytest.raises(IllegalTransition, match="already taken"):
        app.keep_separate(second.id, first.id, "再说一次", "clerk-2", at + timedelta(hours=1))
    assert app.store.max_tenant_position() == before
    assert event_names(app, second.id).count("KeptSeparate") == 1
    assert app.get_case(first.id).status is Status.RECEIVED


def test_only_a_suspected_duplicate_can_be_kept_separate(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    app = tenants.center(city_tree["village"][0])
    first, second = flagged_pair(tenants, app)
    unrelated = complain(app, T0 + timedelta(days=1), parties=[party(OTHER_PHONE)])
    before = app.store.max_tenant_position()

    with pytest.raises(ValidationError, match="is not a suspected duplicate of this case"):
        app.keep_separate(second.id, unrelated.id, "不相干", "clerk-2", T0 + timedelta(days=2))
    with pytest.raises(ValidationError, match="is not a suspected duplicate of this case"):
        app.keep_separate(first.id, second.id, "反过来", "clerk-2", T0 + timedelta(days=2))

    assert app.store.max_tenant_position() == before
    assert app.get_case(second.id).kept_separate_from == []


def test_a_duplicate_is_merged_into_the_original(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    app = tenants.center(city_tree["village"][0])
    first, second = flagged_pair(tenants, app)

    merged = app.merge_case(second.id, first.id, "clerk-2", T0 + timedelta(days=1, hours=1))

    assert merged.status is Status.MERGED and merged.merged_into == first.id
    assert app.get_case(second.id).status is Status.MERGED  # persisted
    assert event_names(app, second.id)[-1] == "Merged"
    original = app.get_case(first.id)
    assert original.is_open and original.status is Status.RECEIVED
    index(tenants, app.tenant)  # a merged case is no longer a candidate
    third = complain(app, T0 + timedelta(days=2))
    assert third.suspected_duplicates == [first.id]


def test_a_merge_into_itself_or_another_centers_case_is_refused_and_writes_nothing(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    app, neighbour = (tenants.center(code) for code in city_tree["village"][:2])
    _first, second = flagged_pair(tenants, app)
    foreign = complain(neighbour, T0)
    at = T0 + timedelta(days=1, hours=1)
    ours, theirs = app.store.max_tenant_position(), neighbour.store.max_tenant_position()

    with pytest.raises(ValidationError, match="cannot be merged into itself"):
        app.merge_case(second.id, second.id, "clerk-2", at)
    with pytest.raises(ValidationError, match=f"its own center {app.tenant}"):
        app.merge_case(second.id, foreign.id, "clerk-2", at)

    assert app.store.max_tenant_position() == ours
    assert neighbour.store.max_tenant_position() == theirs
    assert app.get_case(second.id).status is Status.RECEIVED
    assert neighbour.get_case(foreign.id).status is Status.RECEIVED



def test_a_duplicate_is_not_merged_into_a_case_that_is_no_longer_open(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    app = tenants.center(city_tree["village"][0])
    first, second = flagged_pair(tenants, app)
    app.withdraw_case(first.id, "当事人撤回", "clerk-2", T0 + timedelta(days=1, hours=1))
    before = app.store.max_tenant_position()

    with pytest.raises((ValidationError, IllegalTransition)):
        app.merge_case(second.id, first.id, "clerk-2", T0 + timedelta(days=1, hours=2))

    assert app.store.max_tenant_position() == before
    assert app.get_case(second.id).is_open

# -- (c) repeat complaints ------------------------------------------------------------

def test_the_same_complaint_after_closure_reopens_the_closed_case(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    app = tenants.center(city_tree["village"][0])
    case = complain(app, T0)
    closed = close_loop(app, case.id, T0)
    assert closed.closed_at is not None
    index(tenants, app.tenant)
    before = app.store.max_tenant_position()

    again = complain(app, closed.closed_at + timedelta(days=40), where=place(app, 60),
                     summary="又漏水了")

    assert again.id == case.id  # no second case for the same matter
    assert again.case_number == case.case_number
    assert again.status is Status.TRIAGED
    assert again.repeat_count == 1 and again.repeat_against == LEAD
    assert again.outcome is None and again.closed_at is None  # a new round
    reloaded = app.get_case(case.id)
    assert (reloaded.status, reloaded.repeat_count, reloaded.repeat_against) == (
        Status.TRIAGED, 1, LEAD)
    assert app.store.max_tenant_position() == before + 1  # one event: the re-opening
    reopened = app.case_events(case.id)[-1]
    assert type(reopened).__name__ == "Reopened" and "又漏水了" in reopened.reason
    assert event_names(app, case.id).count("Received") == 1


def test_a_second_repeat_counts_again_against_whoever_resolved_it_last(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    app = tenants.center(city_tree["village"][0])
    case = complain(app, T0)
    closed = close_loop(app, case.id, T0)
    index(tenants, app.tenant)
    assert closed.closed_at is not None
    back = closed.closed_at + timedelta(days=5)
    complain(app, back)
    t = back + timedelta(hours=1)
    app.dispatch_case(case.id, [Assignee(AssigneeKind.UNIT, "housing", lead=True)], "d", t)
    app.accept_case(case.id, "housing", "h", t + timedelta(hours=1))
    app.resolve_case(case.id, Outcome.HANDLED, "已修缮", "h", t + timedelta(hours=2))
    app.give_feedback(case.id, "已修缮", "c", t + timedelta(hours=3))
    app.confirm_case(case.id, "party", t + timedelta(hours=4))
    app.close_case(case.id, "c", t + timedelta(hours=5))
    index(tenants, app.tenant)

    again = complain(app, t + timedelta(days=3))

    assert again.id == case.id
    assert again.repeat_count == 2 and again.repeat_against == "housing"


def test_after_90_days_the_same_complaint_is_a_new_case(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    app = tenants.center(city_tree["village"][0])
    case = complain(app, T0)
    closed = close_loop(app, case.id, T0)
    assert closed.closed_at is not None
    index(tenants, app.tenant)

    late = closed.closed_at + timedelta(days=90, minutes=1)
    new = complain(app, late)

    assert new.id != case.id and new.case_number != case.case_number
    assert new.status is Status.RECEIVED and new.repeat_count == 0
    assert new.suspected_duplicates == []  # a closed case is not a duplicate either
    old = app.get_case(case.id)
    assert old.status is Status.CLOSED and old.repeat_count == 0


def test_staff_can_record_a_repeat_within_90_days_but_not_after(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    app = tenants.center(city_tree["village"][0])
    other = tenants.center(city_tree["village"][1])
    early, late = complain(app, T0), complain(other, T0)
    closed_early = close_loop(app, early.id, T0)
    closed_late = close_loop(other, late.id, T0)
    assert closed_early.closed_at is not None and closed_late.closed_at is not None

    # The party calls from a new number: staff recognise the matter themselves.
    reopened = app.repeat_complaint(early.id, "换号码再次投诉", "clerk-1",
                                    closed_early.closed_at + timedelta(days=90))
    assert reopened.status is Status.TRIAGED and reopened.repeat_count == 1
    assert reopened.repeat_against == LEAD

    before = other.store.max_tenant_position()
    with pytest.raises(ValidationError, match="closed within 90 days") as refused:
        other.repeat_complaint(late.id, "很久以后再次投诉", "clerk-1",
                               closed_late.closed_at + timedelta(days=91))
    assert late.case_number in str(refused.value) and "register a new case" in str(refused.value)
    assert other.store.max_tenant_position() == before
    assert other.get_case(late.id).status is Status.CLOSED



def test_a_complaint_about_a_reopened_matter_is_flagged_as_its_duplicate(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    app = tenants.center(city_tree["village"][0])
    case = complain(app, T0)
    closed = close_loop(app, case.id, T0)
    assert closed.closed_at is not None
    index(tenants, app.tenant)
    back = closed.closed_at + timedelta(days=40)
    assert complain(app, back).id == case.id  # re-opened: open again since `back`
    index(tenants, app.tenant)

    again = complain(app, back + timedelta(days=1))

    assert again.id == case.id or again.suspected_duplicates == [case.id]

# -- (d) personal numbers stay secret; a shredded center takes no intake -----------

def test_match_keys_never_hold_a_phone_or_id_number_in_clear(
        tenants: Tenants, city_tree: dict[str, list[str]], database_url: str) -> None:
    app = tenants.center(city_tree["village"][0])
    case = complain(app, T0, parties=[party(PHONE, ID_NUMBER)])
    index(tenants, app.tenant)
    assert len(case.match_keys) == 2

    schema = log_group_schema(app.tenant[:4])
    with psycopg.connect(database_url) as conn:
        events = b"".join(bytes(r[0]) for r in conn.execute(
            f"SELECT state FROM {schema}.events WHERE tenant = %s", (app.tenant,)))
        indexed = conn.execute(f"SELECT match_keys FROM {schema}.case_index WHERE case_id = %s",
                               (case.id,)).fetchone()
    assert indexed is not None and sorted(indexed[0]) == sorted(case.match_keys)
    assert all(k.encode() in events for k in case.match_keys)  # the keys are stored...
    for secret in (PHONE, ID_NUMBER, PHONE[-8:], ID_NUMBER[6:14]):  # ...the numbers are not
        assert secret.encode() not in events
        assert not any(secret in k for k in indexed[0])


def test_after_shredding_a_centers_key_intake_refuses_instead_of_matching_nothing(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    code, neighbour_code = city_tree["village"][:2]
    app, neighbour = tenants.center(code), tenants.center(neighbour_code)
    complain(app, T0)
    theirs = complain(neighbour, T0)
    index(tenants, code)
    tenants.shred_key(code, "center dissolved", "admin", T0 + timedelta(days=1))
    before = app.store.max_tenant_position()

    with pytest.raises(TenantKeyShredded, match=f"tenant {code}'s data key was shredded"):
        complain(app, T0 + timedelta(days=2))
    with pytest.raises(TenantKeyShredded):  # even a party without phone or id number
        complain(app, T0 + timedelta(days=2), parties=[party(phone=None)])

    assert app.store.max_tenant_position() == before
    again = complain(neighbour, T0 + timedelta(days=2))  # the other center is untouched
    assert again.suspected_duplicates == [theirs.id]



def test_a_shred_stops_intake_in_a_process_that_already_held_the_key(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    code = city_tree["village"][0]
    app = tenants.center(code)
    elsewhere = CenterApp(code, dict(app.env), Keyring(tenants.datastore, MASTER_KEY),
                          tenants.calendar)
    complain(elsewhere, T0)  # that process has used the key
    index(tenants, code)
    tenants.shred_key(code, "center dissolved", "admin", T0 + timedelta(days=1))
    before = app.store.max_tenant_position()

    with pytest.raises(TenantKeyShredded):
        complain(elsewhere, T0 + timedelta(days=2))

    assert app.store.max_tenant_position() == before

# -- (e) a mediation that fails goes to court: a recorded outcome ---------------------

def test_a_failed_mediation_referred_to_court_closes_the_loop_with_that_outcome(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    app = tenants.center(city_tree["village"][0])
    case = complain(app, T0)

    closed = close_loop(app, case.id, T0, Outcome.REFERRED_TO_COURT, COURT_REFERENCE,
                        "调解不成, 引导当事人诉讼")

    reloaded = app.get_case(case.id)
    assert reloaded.status is Status.CLOSED and reloaded.confirmed
    assert reloaded.outcome is Outcome.REFERRED_TO_COURT
    assert reloaded.court_reference == COURT_REFERENCE
    assert reloaded.resolved_by_unit == LEAD
    assert reloaded.__dict__ == closed.__dict__
    resolved = [e for e in app.case_events(case.id) if type(e).__name__ == "Resolved"]
    assert len(resolved) == 1
    assert resolved[0].outcome == Outcome.REFERRED_TO_COURT
    assert resolved[0].court_reference == COURT_REFERENCE
    assert event_names(app, case.id)[-3:] == ["FeedbackGiven", "Confirmed", "Closed"]


def test_a_referral_to_court_without_a_court_reference_is_refused(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    app = tenants.center(city_tree["village"][0])
    case = complain(app, T0)
    app.triage_case(case.id, Severity.YELLOW, HandlingClass.SIMPLE, "d", T0 + timedelta(hours=1))
    app.dispatch_case(case.id, [Assignee(AssigneeKind.UNIT, LEAD, lead=True)], "d",
                      T0 + timedelta(hours=2))
    app.accept_case(case.id, LEAD, "o", T0 + timedelta(hours=3))
    before = app.store.max_tenant_position()

    with pytest.raises(ValidationError, match="court reference"):
        app.resolve_case(case.id, Outcome.REFERRED_TO_COURT, "调解不成", "o",
                         T0 + timedelta(hours=4))

    assert app.store.max_tenant_position() == before
    assert app.get_case(case.id).status is Status.ACCEPTED
