"""Cameras and camera alerts through GraphQL on real PostgreSQL and NATS: the
alertRaised subscription over graphql-transport-ws reaches the camera's subtree
only; disposition (confirm into a new or an existing case, dismiss as false)
feeds the precision KPI; bad input and foreign centers are refused with codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from api_support import CST, World, bearer, build_world, error_codes, serving, staff
from camera_alerts_support import cam, crowd, frames, publish, service_running
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from api.auth import Principal, Role
from domain import Camera, RuleKind
from projections.alerts import AlertViews
from tenants.cameras import Cameras
from tenants.service import Tenants

PROTOCOL = "graphql-transport-ws"
START = datetime(2026, 5, 1, 9, 0, tzinfo=CST)
PLAZA = [{"name": "plaza", "polygon": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]],
          "rules": [{"kind": "CROWD", "seconds": 3, "people": 3}]}]
REGISTER = """
mutation Register($center: String!, $ref: String!, $zones: [ZoneInput!]!) {
  registerCamera(center: $center, ref: $ref, name: "东门广场",
                 place: {address: "东门广场"}, zones: $zones) {
    id ref centerCode zones { name polygon rules { kind seconds people } } openAlerts
  }
}
"""
SUBSCRIBE = """
subscription Alerts($scope: String, $since: DateTime) {
  alertRaised(scope: $scope, subtree: true, since: $since) {
    alertId centerCode cameraRef zone kind model repeats status
  }
}
"""


@pytest.fixture(scope="module")
def world(tenants: Tenants, nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tenants, tmp_path_factory.mktemp("alerts"), nats_url=nats_url)


@pytest.fixture(scope="module")
def host(world: World) -> Iterator[str]:
    with serving(world.app) as host:
        yield host


def register(world: World, center: str, ref: str, zones: list[dict[str, Any]] = PLAZA,
             who: Principal | None = None) -> dict[str, Any]:
    return world.post(REGISTER, {"center": center, "ref": ref, "zones": zones},
                      who or staff(Role.DIRECTOR, center))


@contextmanager
def subscribed(host: str, world: World, who: Principal, scope: str,
               since: datetime) -> Iterator[ClientConnection]:
    with connect(f"ws://{host}/graphql", subprotocols=[Subprotocol(PROTOCOL)],
                 open_timeout=10) as ws:
        ws.send(json.dumps({"type": "connection_init",
                            "payload": {"Authorization": bearer(world.tokens, who)}}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
            "query": SUBSCRIBE, "variables": {"scope": scope, "since": since.isoformat()}}}))
        yield ws


def alerts_until(ws: ClientConnection, camera_ref: str) -> list[dict[str, Any]]:
    """The alerts delivered until one of ``camera_ref`` arrives."""
    got: list[dict[str, Any]] = []
    while True:
        message = json.loads(ws.recv(timeout=30))
        assert message["type"] == "next", message
        assert not message["payload"].get("errors"), message
        alert = message["payload"]["data"]["alertRaised"]
        got.append(alert)
        if alert["cameraRef"] == camera_ref:
            return got


def test_a_crowd_alert_reaches_the_subscribed_county_and_not_its_sibling(
        world: World, host: str, nats_url: str) -> None:
    # given cameras in a village of each county, and a second one in the first county
    county, sibling = world.a["county"]
    village, other_village = world.a["village"][0], world.a["village"][1]
    sibling_village = world.a["village"][4]
    assert sibling_village.startswith(sibling) and not village.startswith(sibling)
    for center, ref in ((village, cam("cam-a")), (sibling_village, cam("cam-b")),
                        (other_village, cam("cam-c"))):
        assert not register(world, center, ref).get("errors")
    since = datetime.now(CST) - timedelta(seconds=1)
    with subscribed(host, world, staff(Role.DIRECTOR, county), county, since) as mine, \
            subscribed(host, world, staff(Role.DIRECTOR, sibling), sibling, since) as theirs, \
            service_running(world.tenants, nats_url, world.a["city"][0]):
        # when a crowd forms before each camera, one after the other
        for center, ref in ((village, cam("cam-a")), (sibling_village, cam("cam-b")),
                            (other_village, cam("cam-c"))):
            publish(nats_url, frames(ref, center, crowd(8), START))
        got_mine = alerts_until(mine, cam("cam-c"))
        got_theirs = alerts_until(theirs, cam("cam-b"))
    # then the county gets its two villages' alerts, once each, and never the sibling's
    assert [(a["cameraRef"], a["centerCode"], a["repeats"]) for a in got_mine] == [
        (cam("cam-a"), village, 0), (cam("cam-c"), other_village, 0)]
    assert all(a["kind"] == "CROWD" and a["status"] == "RAISED" for a in got_mine)
    assert [a["cameraRef"] for a in got_theirs] == [cam("cam-b")]


def test_the_subscription_refuses_a_scope_outside_the_askers_reach(
        world: World, host: str) -> None:
    county, sibling = world.a["county"]
    with subscribed(host, world, staff(Role.DIRECTOR, county), sibling,
                    datetime.now(CST)) as ws:
        message = json.loads(ws.recv(timeout=10))
    assert message["type"] in ("next", "error")
    errors = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
    assert errors[0]["extensions"]["code"] == "FORBIDDEN"


def fire(tenants: Tenants, camera: Camera, minutes: int) -> str:
    """An alert of the camera's plaza, recorded as the alert service records it."""
    at = START + timedelta(minutes=minutes)
    recorded = Cameras(tenants).center(camera.tenant).record_firing(
        camera.id, "plaza", RuleKind.CROWD, "ssdlite-person", 0.8, 1, at, 7, at, at,
        "alert-service")
    assert recorded is not None
    return str(recorded.alert.id)


DISPOSE = """
mutation Dispose($id: ID!, $case: ID) {
  ack: acknowledgeAlert(alertId: $id, note: "在看") { status acknowledgedBy }
  confirm: confirmAlert(alertId: $id, reason: "现场核实", caseId: $case) {
    status caseId caseCreated disposedBy reason
  }
}
"""
PRECISION = """
query Precision($scope: String) {
  alertPrecision(scope: $scope) {
    overall { confirmed dismissed precision }
    cameras { label confirmed dismissed precision }
    models { key precision }
  }
}
"""


def test_confirm_creates_or_links_a_case_dismiss_counts_false_and_precision_follows(
        world: World) -> None:
    township = world.a["township"][2]
    cams = Cameras(world.tenants).center(township)
    for ref in (cam("cam-p"), cam("cam-q")):
        assert not register(world, township, ref).get("errors")
    p, q = cams.camera_by_ref(cam("cam-p")), cams.camera_by_ref(cam("cam-q"))
    dispatcher = staff(Role.DISPATCHER, township)
    # when one alert is confirmed into a new case, one into the township's existing case
    new_case = fire(world.tenants, p, 0)
    body = world.post(DISPOSE, {"id": new_case}, dispatcher)
    assert not body.get("errors"), body
    created = body["data"]["confirm"]
    assert (created["status"], created["caseCreated"], created["disposedBy"]) == (
        "CONFIRMED", True, dispatcher.subject)
    case = world.tenants.center(township).get_case(UUID(created["caseId"]))
    assert (case.channel.value, case.category) == ("camera", "crowd-gathering")
    one = 'query($id: ID!) { alert(id: $id) { status caseId acknowledgedBy reason } }'
    assert world.post(one, {"id": new_case}, staff(Role.CLERK, township))["data"]["alert"] == {
        "status": "CONFIRMED", "caseId": created["caseId"],
        "acknowledgedBy": dispatcher.subject, "reason": "现场核实"}
    other_county = world.a["county"][0]
    assert not township.startswith(other_county)
    beside = world.post(one, {"id": new_case}, staff(Role.DIRECTOR, other_county))
    assert list(error_codes(beside).values()) == ["FORBIDDEN"]
    linked = fire(world.tenants, q, 0)
    body = world.post(DISPOSE, {"id": linked, "case": str(world.cases[township])}, dispatcher)
    assert body["data"]["confirm"]["caseId"] == str(world.cases[township])
    assert body["data"]["confirm"]["caseCreated"] is False
    # and three of q's later alerts are dismissed as false
    for minutes in (10, 20, 30):
        alert = fire(world.tenants, q, minutes)
        answer = world.post('mutation($id: ID!) { dismissAlert(alertId: $id, reason: "影子") '
                            "{ status reason } }", {"id": alert}, dispatcher)
        assert answer["data"]["dismissAlert"] == {"status": "DISMISSED", "reason": "影子"}
    AlertViews(world.tenants, township[:4]).catch_up()
    # then precision is confirmed / (confirmed + dismissed), per camera and per model
    body = world.post(PRECISION, {"scope": township}, staff(Role.DIRECTOR, township))
    figures = body["data"]["alertPrecision"]
    assert figures["overall"] == {"confirmed": 2, "dismissed": 3, "precision": 0.4}
    assert figures["cameras"] == [
        {"label": f"{township}/{cam('cam-p')}", "confirmed": 1, "dismissed": 0,
         "precision": 1.0},
        {"label": f"{township}/{cam('cam-q')}", "confirmed": 1, "dismissed": 3,
         "precision": 0.25}]
    assert figures["models"] == [{"key": "ssdlite-person", "precision": 0.4}]
    # and the center's KPIs carry the same figure
    kpis = world.post("query($s: String) { kpis(scope: $s) { alertPrecision { numerator "
                      "denominator value } } }", {"s": township},
                      staff(Role.DIRECTOR, township))["data"]["kpis"]
    assert kpis["alertPrecision"] == {"numerator": 2, "denominator": 5, "value": 0.4}
    # and the alerts list shows them, newest first, filtered by status
    listed = world.post("""query($scope: String) { alerts(scope: $scope, statuses: [DISMISSED],
        first: 2) { nodes { cameraRef status raisedAt } pageInfo { hasNextPage endCursor } } }""",
                        {"scope": township}, dispatcher)["data"]["alerts"]
    assert [n["status"] for n in listed["nodes"]] == ["DISMISSED", "DISMISSED"]
    assert listed["nodes"][0]["raisedAt"] > listed["nodes"][1]["raisedAt"]
    assert listed["pageInfo"]["hasNextPage"] is True


def test_bad_input_and_foreign_centers_are_refused_with_codes_and_nothing_changes(
        world: World) -> None:
    village, sibling_county = world.a["village"][2], world.a["county"][1]
    assert not register(world, village, cam("cam-x")).get("errors")
    camera = Cameras(world.tenants).center(village).camera_by_ref(cam("cam-x"))
    alert = fire(world.tenants, camera, 0)
    dispatcher = staff(Role.DISPATCHER, village)
    bow_tie = [{**PLAZA[0], "polygon": [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]}]
    outside = [{**PLAZA[0], "polygon": [[0.1, 0.1], [1.5, 0.1], [0.9, 0.9]]}]
    cases = [
        (register(world, village, cam("cam-y"), bow_tie), "VALIDATION", "intersect itself"),
        (register(world, village, cam("cam-z"), outside), "VALIDATION", "inside the frame"),
        (register(world, village, cam("cam-x")), "VALIDATION", "unique"),
        (register(world, village, cam("cam-w"), who=staff(Role.DIRECTOR, sibling_county)),
         "FORBIDDEN", "camera:manage"),
        (world.post('mutation { dismissAlert(alertId: "nope", reason: "x") { status } }',
                    who=dispatcher), "VALIDATION", "UUID"),
        (world.post('mutation($id: ID!) { dismissAlert(alertId: $id, reason: " ") '
                    "{ status } }", {"id": alert}, dispatcher), "VALIDATION", "reason"),
        (world.post('mutation($id: ID!) { dismissAlert(alertId: $id, reason: "x") '
                    "{ status } }", {"id": alert}, staff(Role.DISPATCHER, sibling_county)),
         "FORBIDDEN", "alert:dispose"),
        (world.post("query($s: String) { cameras(scope: $s) { nodes { ref } } }",
                    {"s": village}, staff(Role.DIRECTOR, sibling_county)),
         "FORBIDDEN", "alert:read"),
    ]
    for body, code, words in cases:
        assert list(error_codes(body).values()) == [code], body
        assert words in body["errors"][0]["message"], body
    # a dispositioned alert cannot be dispositioned again
    world.post('mutation($id: ID!) { dismissAlert(alertId: $id, reason: "误报") { status } }',
               {"id": alert}, dispatcher)
    again = world.post('mutation($id: ID!) { confirmAlert(alertId: $id, reason: "其实是真的") '
                       "{ status } }", {"id": alert}, dispatcher)
    assert list(error_codes(again).values()) == ["ILLEGAL_TRANSITION"]
    # nothing was registered by the refused commands
    AlertViews(world.tenants, village[:4]).catch_up()
    listed = world.post("query($s: String) { cameras(scope: $s) { nodes { ref } } }",
                        {"s": village}, staff(Role.DIRECTOR, village))
    assert [n["ref"] for n in listed["data"]["cameras"]["nodes"]] == [cam("cam-x")]


def test_cameras_page_through_a_subtree_with_cursors(world: World) -> None:
    township = world.a["township"][3]
    villages = [v for v in world.a["village"] if v.startswith(township)]
    for i, center in enumerate([township, *villages]):
        assert not register(world, center, cam(f"cam-page-{i}")).get("errors")
    AlertViews(world.tenants, township[:4]).catch_up()
    query = """query($s: String, $after: String) { cameras(scope: $s, subtree: true, first: 2,
      after: $after) { nodes { ref centerCode zones { name } }
      pageInfo { hasNextPage endCursor } } }"""
    who = staff(Role.DIRECTOR, township)
    first = world.post(query, {"s": township}, who)["data"]["cameras"]
    second = world.post(query, {"s": township, "after": first["pageInfo"]["endCursor"]},
                        who)["data"]["cameras"]
    refs = [n["ref"] for n in first["nodes"] + second["nodes"]]
    assert sorted(refs) == [cam(f"cam-page-{i}") for i in range(3)]
    assert len(set(refs)) == 3
    assert first["pageInfo"]["hasNextPage"] and not second["pageInfo"]["hasNextPage"]
    bad = world.post(query, {"s": township, "after": "garbage"}, who)
    assert list(error_codes(bad).values()) == ["VALIDATION"]
