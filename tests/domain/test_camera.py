"""Cameras as data: registered with a center, a place and checked zones; zones
changed; retired; and the open-alert bookkeeping the alert service relies on."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from domain import (
    Camera,
    IllegalTransition,
    Place,
    RuleKind,
    ValidationError,
    Zone,
    ZoneRule,
    new_stream_id,
    tenant_of,
)

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 5, 1, 9, 0, tzinfo=CST)
COUNTY = "330782"
SQUARE = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]


def crowd_zone(name: str = "plaza", polygon: list[list[float]] | None = None) -> Zone:
    return Zone(name, polygon or SQUARE, [ZoneRule(RuleKind.CROWD, 10, people=5)])


def register(zones: list[Zone] | None = None, tenant: str = COUNTY,
             place: Place | None = None, ref: str = "cam-1") -> Camera:
    return Camera.register(tenant, ref, "东门广场", place or Place(tenant, "东门广场"),
                           zones if zones is not None else [crowd_zone()], "director-1", T0)


def test_a_camera_belongs_to_its_center_and_keeps_its_zones() -> None:
    # given zones with each kind of rule
    zones = [
        crowd_zone(),
        Zone("fire-lane", [[0, 0.5], [0.3, 0.5], [0.3, 1], [0, 1]],
             [ZoneRule("fire-lane", 30)]),
        Zone("pavement", [[0.5, 0.5], [1, 0.5], [1, 1]],
             [ZoneRule(RuleKind.STREET_VENDING, 120),
              ZoneRule(RuleKind.LOITERING, 300, after="22:00", until="06:00")]),
    ]
    # when the camera is registered
    camera = register(zones)
    # then its id names its center, and the zones are kept as given (floats)
    assert tenant_of(camera.id) == COUNTY
    assert camera.id == Camera.create_id(COUNTY, "cam-1")
    assert [z.name for z in camera.zones] == ["plaza", "fire-lane", "pavement"]
    assert camera.zones[1].polygon[2] == [0.3, 1.0]
    assert camera.zones[1].rules[0].kind is RuleKind.FIRE_LANE
    assert isinstance(camera.collect_events()[0], Camera.Registered)


@pytest.mark.parametrize(("polygon", "rule"), [
    ([[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]], "intersect itself"),  # a bow tie
    ([[0.1, 0.1], [1.2, 0.1], [0.9, 0.9]], "inside the frame"),
    ([[-0.1, 0.1], [0.5, 0.1], [0.5, 0.5]], "inside the frame"),
    ([[0.1, 0.1], [0.5, 0.5]], "3 to 64 points"),
    ([[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]], "enclose an area"),
    ([[0.1, 0.1], [0.5, "x"], [0.9, 0.9]], "a point is"),
])
def test_a_zone_polygon_must_be_simple_and_stay_inside_the_frame(
        polygon: list[list[float]], rule: str) -> None:
    # given a zone whose polygon breaks a rule, when registered, then refused naming it
    with pytest.raises(ValidationError, match=rule):
        register([crowd_zone(polygon=polygon)])


@pytest.mark.parametrize(("zones", "rule"), [
    ([], "at least one zone"),
    ([crowd_zone(), crowd_zone()], "unique"),
    ([Zone("z", SQUARE, [])], "at least one rule"),
    ([Zone("z", SQUARE, [ZoneRule(RuleKind.CROWD, 0, people=3)])], "more than 0"),
    ([Zone("z", SQUARE, [ZoneRule(RuleKind.CROWD, 10, people=0)])], "at least 1 person"),
    ([Zone("z", SQUARE, [ZoneRule(RuleKind.FIRE_LANE, 10, people=2)])], "only a crowd"),
    ([Zone("z", SQUARE, [ZoneRule(RuleKind.LOITERING, 10, after="25:00", until="06:00")])],
     "HH:MM"),
    ([Zone("z", SQUARE, [ZoneRule(RuleKind.CROWD, 5, people=2),
                         ZoneRule(RuleKind.CROWD, 9, people=4)])], "once per zone"),
])
def test_zones_and_rules_are_checked_before_anything_is_recorded(
        zones: list[Zone], rule: str) -> None:
    with pytest.raises(ValidationError, match=rule):
        register(zones)


def test_an_unknown_rule_kind_is_refused_naming_the_kinds() -> None:
    with pytest.raises(ValidationError, match="crowd, fire-lane, street-vending, loitering"):
        ZoneRule("fight", 10)


def test_a_camera_is_placed_inside_its_center_with_a_subject_safe_ref() -> None:
    with pytest.raises(ValidationError, match="inside its center"):
        register(place=Place("330783", "隔壁县"))
    with pytest.raises(ValidationError, match="ref"):
        register(ref="cam 1.>")
    with pytest.raises(ValidationError, match="division code"):
        register(tenant="99")


def test_zones_change_by_event_and_a_retired_camera_changes_no_more() -> None:
    camera = register()
    camera.change_zones([crowd_zone("gate")], "director-1", T0 + timedelta(hours=1))
    assert [z.name for z in camera.zones] == ["gate"]
    with pytest.raises(ValidationError, match="intersect"):
        camera.change_zones([crowd_zone(polygon=[[0, 0], [1, 1], [1, 0], [0, 1]])],
                            "director-1", T0)
    assert [z.name for z in camera.zones] == ["gate"]  # nothing lost by the refusal
    camera.retire("拆除", "director-1", T0 + timedelta(days=1))
    assert camera.retired
    with pytest.raises(IllegalTransition, match="retired camera"):
        camera.change_zones([crowd_zone()], "director-1", T0 + timedelta(days=2))
    with pytest.raises(IllegalTransition, match="retired camera"):
        camera.retire("again", "director-1", T0 + timedelta(days=2))
    with pytest.raises(IllegalTransition, match="retired camera cannot raise alerts"):
        camera.note_alert("gate", "crowd", new_stream_id(COUNTY), T0, opened=True)
    kinds = [type(e).__name__ for e in camera.collect_events()]
    assert kinds == ["Registered", "ZonesChanged", "Retired"]


def test_one_alert_is_open_per_zone_and_rule_and_episodes_are_recorded_once() -> None:
    camera = register()
    alert, other = new_stream_id(COUNTY), new_stream_id(COUNTY)
    camera.note_alert("plaza", "crowd", alert, T0, opened=True)
    # a second alert for the same zone and rule is refused while one is open
    with pytest.raises(IllegalTransition, match="one alert is open"):
        camera.note_alert("plaza", "crowd", other, T0 + timedelta(minutes=1), opened=True)
    # the same episode is not recorded twice, nor an earlier one
    with pytest.raises(IllegalTransition, match="recorded once"):
        camera.note_alert("plaza", "crowd", alert, T0, opened=False)
    camera.note_alert("plaza", "crowd", alert, T0 + timedelta(minutes=1), opened=False)
    assert camera.episode_recorded("plaza", "crowd", T0 + timedelta(seconds=30))
    # once closed, a new episode opens a new alert
    camera.note_alert_closed(alert)
    camera.note_alert("plaza", "crowd", other, T0 + timedelta(minutes=2), opened=True)
    assert camera.open_alerts == {"plaza/crowd": other}
    with pytest.raises(ValidationError, match="no fire-lane rule"):
        camera.note_alert("plaza", "fire-lane", other, T0 + timedelta(minutes=3), opened=True)
