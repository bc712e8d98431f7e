"""Fuzzing the GraphQL endpoint with operations generated from its own schema
(``hypothesis-graphql``): valid ones and ones with a schema violation, sent by
principals of every tier, with and without a (good) token.

Whatever arrives, the API answers below 500, every error carries one of the
documented codes, nothing unexpected happens (no INTERNAL), and no response
shows a traceback or an exception's text.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import graphql
import pytest
from api_support import World, bearer, build_world, staff
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema

from api.auth import Role
from api.errors import CODES
from api.schema import schema
from tenants.service import Tenants

SDL = schema.as_str()
EXCEPTION_TEXT = re.compile(
    r"Traceback|File \"|line \d+, in|\b[A-Z][A-Za-z]*(Error|Exception)\b|psycopg|"
    r"site-packages|/work/|\.py\b")
#: Documented codes; a valid operation never gets INTERNAL.
EXPECTED = CODES - {"INTERNAL"}


def _string(value: str) -> graphql.StringValueNode:
    return graphql.StringValueNode(value=value)


DATETIMES = st.one_of(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1),
                 timezones=st.just(UTC)).map(lambda d: _string(d.isoformat())),
    st.datetimes().map(lambda d: _string(d.isoformat())),  # naive: VALIDATION
    st.text(max_size=20).map(_string),  # not a time: BAD_REQUEST
)


@pytest.fixture(scope="module")
def world(tenants: Tenants, tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tenants, tmp_path_factory.mktemp("fuzz"))


@pytest.fixture(scope="module")
def senders(world: World) -> list[dict[str, str]]:
    """Authorization headers: staff of every tier, a provincial auditor, an expired
    token, a malformed one, and none."""
    headers = [{"Authorization": bearer(world.tokens, staff(role, code))}
               for role, code in ((Role.DIRECTOR, world.a["county"][0]),
                                  (Role.CLERK, world.a["village"][0]),
                                  (Role.DISPATCHER, world.a["township"][0]),
                                  (Role.GRID_WORKER, world.a["village"][1]),
                                  (Role.UNIT_OFFICER, world.a["city"][0]),
                                  (Role.INSPECTOR, world.a["city"][0]),
                                  (Role.AUDITOR, world.a["city"][0][:2]))]
    expired = world.tokens.issue(world.a["county"][0], ["director"], ttl=timedelta(minutes=1),
                                 now=datetime.now(UTC) - timedelta(hours=1))
    return [*headers, {"Authorization": f"Bearer {expired}"},
            {"Authorization": "Bearer abc.def.ghi"}, {}]


#: Arguments that name a case or a center: random text rarely does, so most
#: generated values are swapped for real ones (chosen by a stable hash of the
#: generated text, so that hypothesis can shrink and replay).
CASE_ARGUMENTS = frozenset({"id", "caseId", "into", "other"})
CENTER_ARGUMENTS = frozenset({"code", "center", "scope", "toCenter"})


def realistic(world: World) -> Callable[[graphql.DocumentNode], str]:
    """A ``print_ast`` for hypothesis-graphql that points most generated case
    and center arguments at the world's real cases and centers."""
    cases = sorted(str(i) for i in world.cases.values())
    centers = sorted(world.cases)

    class Swap(graphql.Visitor):
        def enter_argument(self, node: graphql.ArgumentNode, *_: Any) -> Any:
            if not isinstance(node.value, graphql.StringValueNode | graphql.IntValueNode):
                return None
            name = node.name.value
            pool = cases if name in CASE_ARGUMENTS else centers if name in CENTER_ARGUMENTS \
                else None
            digest = zlib.crc32(f"{name}:{node.value.value}".encode())
            if pool is None or digest % 5 == 0:  # keep one in five as generated
                return None
            return graphql.ArgumentNode(name=node.name, value=graphql.StringValueNode(
                value=pool[digest % len(pool)]))

    def render(document: graphql.DocumentNode) -> str:
        return graphql.print_ast(graphql.visit(document, Swap()))

    return render


def check(world: World, query: str, headers: dict[str, str], valid: bool) -> None:
    response = world.client.post("/graphql", json={"query": query}, headers=headers)
    assert response.status_code < 500, (query, response.text)
    text = response.text
    assert not EXCEPTION_TEXT.search(text), (query, text)
    body: dict[str, Any] = response.json()
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        assert code in (EXPECTED if valid else CODES), (query, error)
        assert code != "INTERNAL", (query, error)


FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.data())
def test_valid_operations_get_an_answer_or_a_coded_error(world: World,
                                                         senders: list[dict[str, str]],
                                                         data: st.DataObject) -> None:
    query = data.draw(from_schema(SDL, custom_scalars={"DateTime": DATETIMES},
                                  print_ast=realistic(world)))
    assert isinstance(query, str)
    check(world, query, data.draw(st.sampled_from(senders)), valid=True)


@settings(FUZZ, max_examples=100)
@given(data=st.data())
def test_invalid_operations_are_bad_requests(world: World, senders: list[dict[str, str]],
                                             data: st.DataObject) -> None:
    query = data.draw(from_schema(SDL, custom_scalars={"DateTime": DATETIMES},
                                  mode=Mode.NEGATIVE))
    assert isinstance(query, str)
    check(world, query, data.draw(st.sampled_from(senders)), valid=False)


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200), data=st.data())
def test_arbitrary_text_is_never_a_server_error(world: World, senders: list[dict[str, str]],
                                                text: str, data: st.DataObject) -> None:
    check(world, text, data.draw(st.sampled_from(senders)), valid=False)
