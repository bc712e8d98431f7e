"""A camera alert from raising to its disposition: each transition with who,
when and why; illegal ones refused naming the rule."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import (
    AlertStatus,
    Camera,
    CameraAlert,
    DomainError,
    IllegalTransition,
    ValidationError,
    new_stream_id,
    stream_id,
    tenant_of,
)

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 5, 1, 9, 0, tzinfo=CST)
COUNTY = "330782"
CAMERA = Camera.create_id(COUNTY, "cam-1")


def raise_alert(episode_at: datetime = T0) -> CameraAlert:
    return CameraAlert.raise_alert(CAMERA, "cam-1", "plaza", "crowd", "ssdlite-person", 0.82,
                                   first_frame=10, first_at=episode_at, last_frame=30,
                                   last_at=episode_at + timedelta(seconds=10),
                                   episode_at=episode_at, by="alert-service")


# (status reached by, command, allowed) -- DOMAIN.md: every alert is dispositioned once
TRANSITIONS = [
    ("raised", "acknowledge", True),
    ("raised", "confirm", True),
    ("raised", "dismiss", True),
    ("raised", "repeat", True),
    ("acknowledged", "acknowledge", False),
    ("acknowledged", "confirm", True),
    ("acknowledged", "dismiss", True),
    ("acknowledged", "repeat", True),
    ("confirmed", "acknowledge", False),
    ("confirmed", "confirm", False),
    ("confirmed", "dismiss", False),
    ("confirmed", "repeat", False),
    ("dismissed", "acknowledge", False),
    ("dismissed", "confirm", False),
    ("dismissed", "dismiss", False),
    ("dismissed", "repeat", False),
]


def alert_in(status: str) -> CameraAlert:
    alert = raise_alert()
    at = T0 + timedelta(minutes=1)
    if status == "acknowledged":
        alert.acknowledge(None, "clerk-1", at)
    elif status == "confirmed":
        alert.confirm(new_stream_id(COUNTY), True, "现场确认聚集", "dispatcher-1", at)
    elif status == "dismissed":
        alert.dismiss("影子误检", "dispatcher-1", at)
    return alert


def run(alert: CameraAlert, command: str) -> None:
    at = T0 + timedelta(minutes=5)
    if command == "acknowledge":
        alert.acknowledge("在看", "clerk-2", at)
    elif command == "confirm":
        alert.confirm(new_stream_id(COUNTY), False, "并入已有案件", "dispatcher-2", at)
    elif command == "dismiss":
        alert.dismiss("误报", "dispatcher-2", at)
    else:
        alert.repeat(T0 + timedelta(minutes=4), 99, at, 0.9)


@pytest.mark.parametrize(("status", "command", "allowed"), TRANSITIONS)
def test_an_alert_is_dispositioned_once_and_counts_repeats_only_while_open(
        status: str, command: str, allowed: bool) -> None:
    alert = alert_in(status)
    before = alert.version
    if allowed:
        run(alert, command)
        assert alert.version == before + 1
    else:
        with pytest.raises(IllegalTransition, match="only"):
            run(alert, command)
        assert alert.version == before


def test_the_same_episode_always_has_the_same_alert_id_inside_the_cameras_center() -> None:
    a, b = raise_alert(), raise_alert()
    assert a.id == b.id == CameraAlert.create_id(CAMERA, "plaza", "crowd", T0)
    assert tenant_of(a.id) == COUNTY
    assert raise_alert(T0 + timedelta(seconds=1)).id != a.id


def test_a_confirmation_records_who_when_why_and_the_case() -> None:
    alert = raise_alert()
    case_id = new_stream_id(COUNTY)
    at = T0 + timedelta(minutes=3)
    alert.confirm(case_id, True, "现场确认聚集", "dispatcher-1", at)
    assert (alert.status, alert.case_id, alert.case_created) == (
        AlertStatus.CONFIRMED, case_id, True)
    assert (alert.disposed_by, alert.disposed_at, alert.reason) == (
        "dispatcher-1", at, "现场确认聚集")
    assert isinstance(alert.collect_events()[-1], CameraAlert.Confirmed)


def test_a_dismissal_needs_a_reason_and_a_confirmation_a_case_of_the_same_center() -> None:
    alert = raise_alert()
    with pytest.raises(ValidationError, match="reason"):
        alert.dismiss("  ", "dispatcher-1", T0)
    with pytest.raises(ValidationError, match="own center 330782"):
        alert.confirm(new_stream_id("330783"), False, "别的县的案件", "dispatcher-1", T0)
    with pytest.raises(ValidationError, match="timezone-aware"):
        alert.dismiss("误报", "dispatcher-1", T0.replace(tzinfo=None))
    assert alert.status is AlertStatus.RAISED and alert.version == 1


def test_repeats_bump_the_counter_and_keep_the_latest_frame() -> None:
    alert = raise_alert()
    alert.repeat(T0 + timedelta(minutes=2), 200, T0 + timedelta(minutes=2, seconds=10), 0.95)
    alert.repeat(T0 + timedelta(minutes=4), 400, T0 + timedelta(minutes=4, seconds=10), 0.5)
    assert alert.repeats == 2
    assert (alert.last_frame, alert.confidence) == (400, 0.95)
    with pytest.raises(ValidationError, match="later episode"):
        alert.repeat(T0, 1, T0, 0.5)


@pytest.mark.parametrize(("change", "rule"), [
    ({"kind": "fight"}, "kind"),
    ({"confidence": 1.5}, "0..1"),
    ({"first_frame": -1}, "frame number"),
    ({"last_at": T0 - timedelta(seconds=1)}, "after its first"),
    ({"camera_id": stream_id("330782", "x").hex}, "carries its center"),
])
def test_a_raise_with_bad_input_names_the_rule(change: dict[str, object], rule: str) -> None:
    args: dict[str, object] = {
        "camera_id": CAMERA, "camera_ref": "cam-1", "zone": "plaza", "kind": "crowd",
        "model": "m", "confidence": 0.5, "first_frame": 1, "first_at": T0, "last_frame": 2,
        "last_at": T0, "episode_at": T0, "by": "svc"}
    args.update(change)
    with pytest.raises(ValidationError, match=rule):
        CameraAlert.raise_alert(**args)  # type: ignore[arg-type]


COMMANDS = st.lists(st.sampled_from(["acknowledge", "confirm", "dismiss", "repeat"]),
                    max_size=8)


@settings(max_examples=100, deadline=None)
@given(COMMANDS)
def test_any_command_sequence_refuses_or_leaves_an_alert_equal_to_its_replay(
        commands: list[str]) -> None:
    alert = raise_alert()
    disposed = 0
    for i, command in enumerate(commands):
        at = T0 + timedelta(minutes=i + 1)
        try:
            if command == "acknowledge":
                alert.acknowledge(None, "clerk-1", at)
            elif command == "confirm":
                alert.confirm(new_stream_id(COUNTY), True, "确认", "dispatcher-1", at)
            elif command == "dismiss":
                alert.dismiss("误报", "dispatcher-1", at)
            else:
                alert.repeat(T0 + timedelta(minutes=i + 1), i, at, 0.5)
        except DomainError:
            continue
        disposed += command in ("confirm", "dismiss")
        # each accepted command leaves the alert equal to a replay of its events
        replayed = None
        for event in alert.pending_events:
            replayed = event.mutate(replayed)
        state = {k: v for k, v in vars(alert).items() if k != "_pending_events"}
        assert replayed is not None
        assert {k: v for k, v in vars(replayed).items() if k != "_pending_events"} == state
    # a disposition happens at most once, and only a disposed alert is closed
    assert disposed <= 1
    assert alert.is_open == (alert.status in (AlertStatus.RAISED, AlertStatus.ACKNOWLEDGED))
    assert (alert.disposed_at is None) == alert.is_open
