"""A center's application on real PostgreSQL: the whole loop, isolation between
tenants, encryption at rest, crypto-shredding, and concurrent writers."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID

import psycopg
import pytest

from domain import (
    Assignee,
    AssigneeKind,
    CalendarBasis,
    Case,
    Channel,
    Direction,
    HandlingClass,
    IllegalTransition,
    Instrument,
    Link,
    Outcome,
    Party,
    Personal,
    Place,
    Severity,
    Status,
    parent_of,
)
from domain.case import CallbackResult
from projections.cases import CaseIndex
from tenants.attachments import attach_photo
from tenants.calendar import read_schedule
from tenants.center import CaseNotFound, CenterApp, ConcurrentUpdate
from tenants.keys import TenantKeyShredded
from tenants.persistence import READER_ROLE, SCOPE_SETTING, log_group_schema
from tenants.service import Tenants

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=CST)  # a Monday
NAME, PHONE, ID_NUMBER = "王小明", "13912345678", "330782199001011234"
OTHER_PHONE = "13800001111"


def party(phone: str = PHONE) -> Party:
    return Party(name=Personal(NAME), phone=Personal(phone), id_number=Personal(ID_NUMBER),
                 address=Personal("稠城街道某小区3幢"))


def receive(app: CenterApp, channel: Channel = Channel.WINDOW, at: datetime = T0,
            phone: str = PHONE) -> Case:
    return app.receive_case(channel=channel, category="neighbour-dispute",
                            summary="楼上漏水, 协商未果", parties=[party(phone)],
                            place=Place(app.tenant, "某路1号"), by="clerk-1", at=at)


def drive_full_loop(app: CenterApp, case_id: UUID) -> Case:
    t = T0
    def at() -> datetime:
        nonlocal t
        t += timedelta(hours=1)
        return t
    app.triage_case(case_id, Severity.YELLOW, HandlingClass.COMPLEX, "dispatcher-1", at())
    app.dispatch_case(case_id, [Assignee(AssigneeKind.UNIT, "justice-office", lead=True),
                                Assignee(AssigneeKind.UNIT, "housing")], "dispatcher-1", at())
    app.accept_case(case_id, "justice-office", "officer-1", at())
    app.accept_case(case_id, "housing", "officer-2", at())
    app.report_progress(case_id, "约双方面谈", "officer-1", at())
    app.urge_case(case_id, Instrument.WORK_PROMPT_LETTER, "justice-office", "逾期未反馈",
                  "director-1", at())
    app.resolve_case(case_id, Outcome.MEDIATED, "调解成功, 签订协议", "officer-1", at())
    app.give_feedback(case_id, "已调解, 请确认", "clerk-1", at())
    app.confirm_case(case_id, "party", at())
    app.evaluate_case(case_id, 5, "满意", "party", at())
    return app.close_case(case_id, "clerk-1", at())


@pytest.mark.parametrize("channel", list(Channel))
def test_every_channel_runs_the_whole_loop_and_survives_a_reload(
        tenants: Tenants, city_tree: dict[str, list[str]], channel: Channel) -> None:
    app = tenants.center(city_tree["village"][0])
    case = receive(app, channel)

    closed = drive_full_loop(app, case.id)

    reloaded = app.get_case(case.id)
    assert reloaded.status is Status.CLOSED and reloaded.confirmed and reloaded.stars == 5
    assert reloaded.channel is channel
    assert reloaded.parties[0].name.text == NAME
    assert reloaded.__dict__ == closed.__dict__
    assert case.case_number.startswith(f"{app.tenant}-20260302-")


def take_over(source: Case, link: Link, origin: Direction, target: CenterApp,
              at: datetime) -> Case:
    """The router's part: open the case ``link`` names in its center."""
    case = Case.take_over(
        case_id=link.case_id, case_number=target.next_case_number(at),
        origin=Link(source.id, source.tenant, origin, lead=link.lead),
        origin_case_number=source.case_number, reason=f"handed over by {source.tenant}",
        source=source, calendar=target.calendar(), by="router", at=at)
    target.save(case)
    return case


def relay(app: CenterApp, case_id: UUID, command: Callable[[Case], None]) -> Case:
    """The router's part: enter what a linked case reported, or what its origin sent on."""
    case = app.get_case(case_id)
    command(case)
    app.save(case)
    return case


def test_every_case_event_type_round_trips_through_postgresql(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    township = city_tree["township"][0]
    app = tenants.center(township)
    county = tenants.center(str(parent_of(township)))
    village = tenants.center(next(v for v in city_tree["village"] if v.startswith(township)))
    t = T0 + timedelta(days=3)
    def at() -> datetime:
        nonlocal t
        t += timedelta(hours=1)
        return t

    # A case closed, re-opened and escalated to the county, which resolves it twice
    # (the party rejects the first result) and closes with it.
    first = receive(app)
    drive_full_loop(app, first.id)
    relay(app, first.id, lambda c: c.record_callback(
        CallbackResult.REACHED, False, "又吵了", "inspector-1", at()))
    app.reopen_case(first.id, "同一问题再次投诉", "clerk-1", at())
    first = app.escalate_case(first.id, county.tenant, "涉及多部门", "clerk-1", at())
    above = take_over(first, first.links[-1], Direction.DOWN, county, at())
    county.dispatch_case(above.id, [Assignee(AssigneeKind.UNIT, "justice-bureau", lead=True)],
                         "d", at())
    county.accept_case(above.id, "justice-bureau", "o", at())
    relay(app, first.id, lambda c: c.note_linked_progress(above.id, "县调委已受理", "router",
                                                          at()))
    for outcome, summary in ((Outcome.MEDIATED, "县级调解成功"), (Outcome.HANDLED, "已处理")):
        county.resolve_case(above.id, outcome, summary, "o", at())
        relay(app, first.id, lambda c, o=outcome, s=summary: c.note_linked_outcome(
            above.id, o, s, "router", at()))
        app.give_feedback(first.id, summary, "clerk-1", at())
        if outcome is Outcome.MEDIATED:
            app.reject_result(first.id, "仍未解决", "party", at())
            relay(county, above.id, lambda c: c.rework("当事人不满意", "router", at()))
    app.confirm_case(first.id, "party", at())
    app.close_case(first.id, "clerk-1", at())
    relay(county, above.id, lambda c: c.close_with_origin("router", at()))

    # A case refused by a grid worker, then dispatched down to a village, which
    # accepts and refers it to court.
    second = receive(app)
    app.triage_case(second.id, Severity.YELLOW, HandlingClass.SIMPLE, "d", at())
    app.raise_severity(second.id, Severity.ORANGE, "牵涉多户", "d", at())
    attach_photo(app, second.id, b"\xff\xd8\xff\xe0" + bytes(64), "g", at())  # evidence
    app.dispatch_case(second.id, [Assignee(AssigneeKind.GRID_WORKER, "grid-7", lead=True)],
                      "d", at())
    app.refuse_case(second.id, "grid-7", "不属本网格", "g", at())
    second = app.dispatch_case(
        second.id, [Assignee(AssigneeKind.CENTER, village.tenant, lead=True)], "d", at())
    below = take_over(second, second.links[0], Direction.UP, village, at())
    village.accept_case(below.id, village.tenant, "v", at())
    relay(app, second.id, lambda c: c.note_linked_acceptance(below.id, "router", at()))
    court = "(2026)浙0782民初123号"
    village.resolve_case(below.id, Outcome.REFERRED_TO_COURT, "调解不成", "v", at(),
                         court_reference=court)
    relay(app, second.id, lambda c: c.note_linked_outcome(
        below.id, Outcome.REFERRED_TO_COURT, "调解不成", "router", at(), court_reference=court))

    # Two registrations of one matter: kept apart first, then merged; one marked a
    # group matter as it came in; the other withdrawn.
    third = receive(app, phone=OTHER_PHONE)
    CaseIndex(tenants, township[:4]).catch_up()
    fourth = receive(app, phone=OTHER_PHONE)
    assert third.id in fourth.suspected_duplicates
    app.keep_separate(fourth.id, third.id, "以为是另一户", "clerk-1", at())
    app.mark_group_matter(third.id, "三十余户联名", "director-1", at())
    app.merge_case(third.id, fourth.id, "c", at())
    app.withdraw_case(fourth.id, "当事人撤回", "c", at())

    cases = [(app, first), (app, second), (app, third), (app, fourth), (county, above),
             (village, below)]
    recorded = {type(e).__name__ for center, c in cases for e in center.case_events(c.id)}
    declared = {name for name, value in vars(Case).items()
                if isinstance(value, type) and issubclass(value, Case.Event)
                and name not in {"Event", "Created"}}
    assert declared <= recorded, declared - recorded
    assert app.get_case(first.id).status is Status.CLOSED
    assert county.get_case(above.id).status is Status.CLOSED
    assert app.get_case(second.id).court_reference == court
    for center, case in cases:  # a fresh app decodes from the rows alone
        fresh = CenterApp(center.tenant, dict(center.env), tenants.keyring, tenants.calendar)
        assert fresh.get_case(case.id).__dict__ == center.get_case(case.id).__dict__


def test_a_case_in_one_tenant_is_invisible_through_another(
        tenants: Tenants, city_tree: dict[str, list[str]], database_url: str) -> None:
    a, b = (tenants.center(code) for code in city_tree["village"][:2])
    case = receive(a)
    receive(b)

    with pytest.raises(CaseNotFound):
        b.get_case(case.id)
    assert all(n.originator_id != case.id
               for n in b.recorder.select_notifications(start=None, limit=1000))

    schema = log_group_schema(a.tenant[:4])
    with psycopg.connect(database_url) as conn, conn.transaction():
        conn.execute(f"SET LOCAL ROLE {READER_ROLE}")
        conn.execute("SELECT set_config(%s, %s, true)", (SCOPE_SETTING, b.tenant))
        tenants_seen = {r[0] for r in conn.execute(f"SELECT tenant FROM {schema}.events")}
        a_rows = conn.execute(f"SELECT count(*) FROM {schema}.events WHERE tenant = %s",
                              (a.tenant,)).fetchone()
    assert tenants_seen == {b.tenant}
    assert a_rows == (0,)


def test_an_upper_tier_sees_its_subtree_under_row_level_security(
        tenants: Tenants, city_tree: dict[str, list[str]], database_url: str) -> None:
    township = city_tree["township"][0]
    inside = [v for v in city_tree["village"] if v.startswith(township)]
    outside = [v for v in city_tree["village"] if not v.startswith(township)]
    for code in inside + outside:
        receive(tenants.center(code))
    with psycopg.connect(database_url) as conn, conn.transaction():
        conn.execute(f"SET LOCAL ROLE {READER_ROLE}")
        conn.execute("SELECT set_config(%s, %s, true)", (SCOPE_SETTING, township))
        seen = {r[0] for r in conn.execute(
            f"SELECT tenant FROM {log_group_schema(township[:4])}.events")}
    assert seen == set(inside)


def test_no_personal_field_is_stored_in_plaintext(
        tenants: Tenants, city_tree: dict[str, list[str]], database_url: str) -> None:
    app = tenants.center(city_tree["village"][0])
    drive_full_loop(app, receive(app).id)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            f"SELECT state FROM {log_group_schema(app.tenant[:4])}.events WHERE tenant = %s",
            (app.tenant,)).fetchall()
    blob = b"".join(bytes(r[0]) for r in rows)
    assert b"summary" in blob  # the rows are readable JSON: the check can see text
    for secret in (NAME, PHONE, ID_NUMBER, "稠城街道某小区"):
        assert secret.encode() not in blob
        assert json.dumps(secret).encode() not in blob  # nor as an escaped JSON string


def test_positions_are_gap_free_per_tenant_in_a_shared_log_group(
        tenants: Tenants, city_tree: dict[str, list[str]], database_url: str) -> None:
    apps = [tenants.center(code) for code in city_tree["village"][:3]]
    for i in range(4):
        for app in apps:
            app.triage_case(receive(app).id, Severity.BLUE, HandlingClass.SIMPLE, "d",
                            T0 + timedelta(minutes=i + 1))
    with psycopg.connect(database_url) as conn:
        for app in apps:
            positions = [r[0] for r in conn.execute(
                f"SELECT tenant_position FROM {log_group_schema(app.tenant[:4])}.events "
                "WHERE tenant = %s ORDER BY notification_id", (app.tenant,))]
            assert positions == list(range(1, len(positions) + 1))
            assert app.store.max_tenant_position() == len(positions) == 8


def test_two_writers_to_one_case_one_wins_and_the_other_can_retry(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    code = city_tree["village"][0]
    first = tenants.center(code)
    second = CenterApp(code, dict(first.env), tenants.keyring, tenants.calendar)
    case = receive(first)
    first.triage_case(case.id, Severity.YELLOW, HandlingClass.SIMPLE, "d", T0 + timedelta(1))
    first.dispatch_case(case.id, [Assignee(AssigneeKind.UNIT, "police", lead=True),
                                  Assignee(AssigneeKind.UNIT, "housing")], "d",
                        T0 + timedelta(days=1, hours=1))

    def accept_while_the_first_writer_commits(stale: Case) -> None:
        # The second writer has loaded the case; the first commits in between.
        first.accept_case(case.id, "police", "p", T0 + timedelta(days=1, hours=2))
        stale.accept("housing", "h", T0 + timedelta(days=1, hours=3))

    with pytest.raises(ConcurrentUpdate, match="reload and retry"):
        second._update(case.id, accept_while_the_first_writer_commits)
    retried = second.accept_case(case.id, "housing", "h", T0 + timedelta(days=1, hours=3))

    assert {a.assignee.ref for a in retried.assignments if a.accepted_at} == {"police", "housing"}
    names = [type(e).__name__ for e in first.case_events(case.id)]
    assert names.count("Accepted") == 2


def test_shredding_a_tenants_key_leaves_events_readable_but_personal_data_gone(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    code = city_tree["village"][-1]
    app = tenants.center(code)
    case = receive(app)
    app.triage_case(case.id, Severity.BLUE, HandlingClass.SIMPLE, "d", T0 + timedelta(hours=1))

    tenants.shred_key(code, "center dissolved", "admin", T0 + timedelta(days=1))
    tenants.shred_key(code, "center dissolved", "admin", T0 + timedelta(days=1))  # repeatable

    reopened = CenterApp(code, dict(app.env), tenants.keyring, tenants.calendar)
    shredded = reopened.get_case(case.id)
    assert shredded.summary == "楼上漏水, 协商未果" and shredded.severity is Severity.BLUE
    assert shredded.parties[0].name.shredded
    assert shredded.parties[0].name.masked() == "[shredded]"
    assert tenants.registry.get(code).key_shredded
    with pytest.raises(TenantKeyShredded, match="shredded: personal data can no longer"):
        receive(reopened)


def test_an_illegal_command_names_its_rule_and_writes_nothing(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    app = tenants.center(city_tree["village"][0])
    case = receive(app)
    before = app.store.max_tenant_position()
    with pytest.raises(IllegalTransition, match="confirm"):
        app.close_case(case.id, "clerk-1", T0 + timedelta(hours=1))
    assert app.store.max_tenant_position() == before


def test_a_loaded_calendar_year_replaces_the_weekday_fallback(
        tenants: Tenants, city_tree: dict[str, list[str]], tmp_path: Path) -> None:
    app = tenants.center(city_tree["village"][0])
    late = datetime(2026, 12, 30, 9, 0, tzinfo=CST)
    before = app.triage_case(receive(app, at=late).id, Severity.BLUE, HandlingClass.SIMPLE,
                             "d", late + timedelta(minutes=5))
    assert before.respond_by is not None
    assert before.respond_by.basis is CalendarBasis.WEEKDAYS_FALLBACK
    assert "2027" in before.respond_by.note

    schedule = tmp_path / "2027.json"
    schedule.write_text(json.dumps({
        "year": 2027, "source": "test schedule (not the official 2027 notice)",
        "holidays": ["2027-01-01", "2027-01-04", "2027-01-05"],
        "makeup_workdays": ["2027-01-09"]}), encoding="utf-8")
    tenants.registry.load_calendar_year(read_schedule(schedule), "operator", late)

    after = app.triage_case(receive(app, at=late).id, Severity.BLUE, HandlingClass.SIMPLE,
                            "d", late + timedelta(minutes=5))
    assert after.respond_by is not None and after.respond_by.basis is CalendarBasis.OFFICIAL
    assert after.respond_by.by > before.respond_by.by  # two extra days off in January
