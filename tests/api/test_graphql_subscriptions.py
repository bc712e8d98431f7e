"""caseChanged over a real websocket (graphql-transport-ws, uvicorn on a free
port, the ``websockets`` client): a subscriber never receives an event from
outside its reach, whatever is written beside, above or below it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from api_support import CST, World, bearer, build_world, dispatched_case, serving, staff
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from api.auth import Principal, Role
from domain import Channel, Party, Personal, Place
from tenants.persistence import LOG_GROUP, Factory, TenantRecorder
from tenants.service import Tenants

PROTOCOL = "graphql-transport-ws"
SUBSCRIBE = """
subscription Changes($scope: String, $subtree: Boolean!, $after: String) {
  caseChanged(scope: $scope, subtree: $subtree, afterPosition: $after) {
    position caseId center kind version case { number status }
  }
}
"""


@pytest.fixture(scope="module")
def world(tenants: Tenants, tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tenants, tmp_path_factory.mktemp("subscriptions"))


@pytest.fixture(scope="module")
def host(world: World) -> Iterator[str]:
    with serving(world.app) as host:
        yield host


def position(tenants: Tenants, city: str) -> int:
    """The city's last notification id."""
    reader = TenantRecorder(Factory({**tenants.env, LOG_GROUP: city}).datastore, tenant=None)
    return reader.max_notification_id() or 0


def receive(tenants: Tenants, code: str, summary: str) -> UUID:
    at = datetime.now(CST) - timedelta(minutes=5)
    case = tenants.center(code).receive_case(
        channel=Channel.WINDOW, category="neighbour-dispute", summary=summary,
        parties=[Party(Personal("赵六"))], place=Place(code, "某路"), by="clerk-1", at=at)
    return case.id


@contextmanager
def open_socket(host: str, payload: dict[str, Any]) -> Iterator[ClientConnection]:
    """A graphql-transport-ws connection, initialised with ``payload``."""
    with connect(f"ws://{host}/graphql", subprotocols=[Subprotocol(PROTOCOL)],
                 open_timeout=10) as ws:
        ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        yield ws


def subscribe(ws: ClientConnection, variables: dict[str, Any]) -> None:
    ws.send(json.dumps({"id": "1", "type": "subscribe",
                        "payload": {"query": SUBSCRIBE, "variables": variables}}))


def messages_until(ws: ClientConnection, last_case: UUID) -> list[dict[str, Any]]:
    """The changes delivered until one of ``last_case`` arrives."""
    changes: list[dict[str, Any]] = []
    while True:
        message = json.loads(ws.recv(timeout=15))
        assert message["type"] == "next", message
        assert not message["payload"].get("errors"), message
        change = message["payload"]["data"]["caseChanged"]
        changes.append(change)
        if change["caseId"] == str(last_case):
            return changes


def test_a_township_subscriber_receives_its_own_and_its_villages_events_only(
        world: World, host: str) -> None:
    township, village = world.a["township"][0], world.a["village"][0]
    sibling, county = world.a["township"][1], world.a["county"][0]
    who = staff(Role.DIRECTOR, township)
    with open_socket(host, {"Authorization": bearer(world.tokens, who)}) as ws:
        subscribe(ws, {"scope": township, "subtree": True,
                       "after": str(position(world.tenants, world.a["city"][0]))})
        written = {code: receive(world.tenants, code, f"订阅测试 {code}")
                   for code in (township, village, sibling, county)}
        sentinel = receive(world.tenants, township, "最后一件")
        changes = messages_until(ws, sentinel)
    assert {c["center"] for c in changes} == {township, village}
    assert {c["caseId"] for c in changes} == {str(written[township]), str(written[village]),
                                              str(sentinel)}
    assert all(c["kind"] == "Received" and c["case"]["status"] == "RECEIVED" for c in changes)
    positions = [int(c["position"]) for c in changes]
    assert positions == sorted(positions)


def test_without_subtree_a_subscriber_sees_its_own_center_alone(
        world: World, host: str) -> None:
    township, village = world.a["township"][1], world.a["village"][2]
    with open_socket(host, {"Authorization": bearer(world.tokens,
                                                    staff(Role.CLERK, township))}) as ws:
        subscribe(ws, {"scope": township, "subtree": False,
                       "after": str(position(world.tenants, world.a["city"][0]))})
        receive(world.tenants, village, "村里的事")
        sentinel = receive(world.tenants, township, "镇里的事")
        changes = messages_until(ws, sentinel)
    assert [c["center"] for c in changes] == [township]


def test_a_grid_worker_receives_only_the_cases_assigned_to_it(
        world: World, host: str) -> None:
    village = world.a["village"][3]
    worker = staff(Role.GRID_WORKER, village)
    with open_socket(host, {"Authorization": bearer(world.tokens, worker)}) as ws:
        subscribe(ws, {"scope": None, "subtree": False,
                       "after": str(position(world.tenants, world.a["city"][0]))})
        receive(world.tenants, village, "没派给网格员的事")
        assigned = dispatched_case(world.tenants, village, datetime.now(CST)
                                   - timedelta(minutes=5))
        changes = messages_until(ws, assigned.id)
    assert {c["caseId"] for c in changes} == {str(assigned.id)}


def test_a_subscription_beyond_the_subscribers_reach_is_refused(
        world: World, host: str) -> None:
    township = world.a["township"][0]
    with open_socket(host, {"Authorization": bearer(world.tokens,
                                                    staff(Role.DIRECTOR, township))}) as ws:
        for scope, subtree in ((world.a["county"][0], False), (world.a["township"][1], False),
                               (world.b["city"][0], True)):
            subscribe(ws, {"scope": scope, "subtree": subtree})
            message = json.loads(ws.recv(timeout=10))
            assert message["type"] == "next", message
            assert [e["extensions"]["code"] for e in message["payload"]["errors"]] == \
                ["FORBIDDEN"]
            assert json.loads(ws.recv(timeout=10))["type"] == "complete"


@pytest.mark.parametrize(("payload", "code"), [
    ({}, "UNAUTHENTICATED"),
    ({"Authorization": "Bearer not-a-token"}, "TOKEN_INVALID"),
])
def test_a_subscription_without_a_valid_token_is_refused_with_its_code(
        world: World, host: str, payload: dict[str, Any], code: str) -> None:
    with open_socket(host, payload) as ws:
        subscribe(ws, {"scope": world.a["township"][0], "subtree": False})
        message = json.loads(ws.recv(timeout=10))
        assert [e["extensions"]["code"] for e in message["payload"]["errors"]] == [code]


def test_an_expired_token_in_connection_init_is_refused_as_expired(
        world: World, host: str) -> None:
    who: Principal = staff(Role.DIRECTOR, world.a["township"][0])
    token = world.tokens.issue(who.tenant, list(who.roles), subject=who.subject,
                               ttl=timedelta(minutes=1),
                               now=datetime.now(CST) - timedelta(hours=1))
    with open_socket(host, {"Authorization": f"Bearer {token}"}) as ws:
        subscribe(ws, {"subtree": False})
        message = json.loads(ws.recv(timeout=10))
        assert [e["extensions"]["code"] for e in message["payload"]["errors"]] == \
            ["TOKEN_EXPIRED"]
