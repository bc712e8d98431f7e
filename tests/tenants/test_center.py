"""A center's application on real PostgreSQL: the whole loop, isolation between
tenants, encryption at rest, crypto-shredding, and concurrent writers."""

from __future__ import annotations

import json
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
    HandlingClass,
    IllegalTransition,
    Instrument,
    Outcome,
    Party,
    Personal,
    Place,
    Severity,
    Status,
)
from tenants.calendar import read_schedule
from tenants.center import CaseNotFound, CenterApp, ConcurrentUpdate
from tenants.keys import TenantKeyShredded
from tenants.persistence import READER_ROLE, SCOPE_SETTING, log_group_schema
from tenants.service import Tenants

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=CST)  # a Monday
NAME, PHONE, ID_NUMBER = "王小明", "13912345678", "330782199001011234"


def party() -> Party:
    return Party(name=Personal(NAME), phone=Personal(PHONE), id_number=Personal(ID_NUMBER),
                 address=Personal("稠城街道某小区3幢"))


def receive(app: CenterApp, channel: Channel = Channel.WINDOW, at: datetime = T0) -> Case:
    return app.receive_case(channel=channel, category="neighbour-dispute",
                            summary="楼上漏水, 协商未果", parties=[party()],
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


def test_every_case_event_type_round_trips_through_postgresql(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    app = tenants.center(city_tree["township"][0])
    first = receive(app)
    drive_full_loop(app, first.id)
    app.reopen_case(first.id, "同一问题再次投诉", "clerk-1", T0 + timedelta(days=3))
    app.escalate_case(first.id, app.tenant[:6], "涉及多部门", "clerk-1", T0 + timedelta(days=4))
    second = receive(app)
    app.triage_case(second.id, Severity.RED, HandlingClass.SIMPLE, "d", T0 + timedelta(hours=1))
    app.dispatch_case(second.id, [Assignee(AssigneeKind.GRID_WORKER, "grid-7", lead=True)],
                      "d", T0 + timedelta(hours=2))
    app.refuse_case(second.id, "grid-7", "不属本网格", "g", T0 + timedelta(hours=3))
    app.dispatch_case(second.id, [Assignee(AssigneeKind.UNIT, "police", lead=True)], "d",
                      T0 + timedelta(hours=4))
    app.accept_case(second.id, "police", "p", T0 + timedelta(hours=5))
    app.resolve_case(second.id, Outcome.HANDLED, "已处理", "p", T0 + timedelta(hours=6))
    app.give_feedback(second.id, "已处理", "c", T0 + timedelta(hours=7))
    app.reject_result(second.id, "不满意", "party", T0 + timedelta(hours=8))
    app.resolve_case(second.id, Outcome.REFERRED_TO_COURT, "调解不成", "p",
                     T0 + timedelta(hours=9), court_reference="(2026)浙0782民初123号")
    third, fourth = receive(app), receive(app)
    app.merge_case(third.id, fourth.id, "c", T0 + timedelta(hours=1))
    app.withdraw_case(fourth.id, "当事人撤回", "c", T0 + timedelta(hours=2))

    recorded = {type(e).__name__ for c in (first, second, third, fourth)
                for e in app.case_events(c.id)}
    declared = {name for name, value in vars(Case).items()
                if isinstance(value, type) and issubclass(value, Case.Event)
                and name not in {"Event", "Created"}}
    assert declared <= recorded, declared - recorded
    for case in (first, second, third, fourth):  # a fresh app decodes from the rows alone
        fresh = CenterApp(app.tenant, dict(app.env), tenants.keyring, tenants.calendar)
        assert fresh.get_case(case.id).__dict__ == app.get_case(case.id).__dict__


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
