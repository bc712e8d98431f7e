"""The schema's executor answers plain leaf fields itself: the answers, errors
included, are the ones graphql-core's generic path gives."""

from __future__ import annotations

import asyncio
from enum import Enum
from typing import Any

import pytest
import strawberry
from api_support import World, bearer, build_world, staff
from graphql.execution.executor import Executor
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from api import schema as api_schema
from api.auth import Role
from api.execution import PlainLeaves, plain_leaves
from tenants.service import Tenants

ROW = ("id number centerCode summary category categoryName status severity channel "
       "receivedAt isOpen version handling stars due { at kind } place { address }")


@pytest.fixture(scope="module")
def world(tenants: Tenants, tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tenants, tmp_path_factory.mktemp("execution"))


def both(world: World, who: str, query: str, variables: dict[str, Any],
         monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The response with the product's executor, then with strawberry's own; the
    first must have sent fewer than half the fields down graphql-core's path."""
    generic_fields: list[int] = []
    counted = Executor.execute_field

    def counting(self: Executor[Any], *args: Any) -> Any:
        generic_fields[-1] += 1
        return counted(self, *args)

    monkeypatch.setattr(Executor, "execute_field", counting)
    bodies = []
    for executor in (PlainLeaves, StrawberryGraphQLCoreExecutionContext):
        monkeypatch.setattr(api_schema.schema, "execution_context_class", executor)
        generic_fields.append(0)
        r = world.client.post("/graphql", json={"query": query, "variables": variables},
                              headers={"Authorization": who})
        assert r.status_code == 200
        bodies.append(r.json())
    if not bodies[0].get("errors"):
        assert generic_fields[0] < generic_fields[1] / 2, generic_fields
    return bodies


@pytest.mark.parametrize(("query", "rows"), [
    (f"query($c: String!) {{ center(code: $c) {{ code name tier dispatchBoard(first: 20) {{"
     f" nodes {{ {ROW} }} pageInfo {{ hasNextPage endCursor }} }} }} }}",
     ("dispatchBoard", "nodes")),
    (f"query($c: String!) {{ center(code: $c) {{ code cases(subtree: true, first: 50) {{ edges"
     f" {{ cursor node {{ {ROW} }} }} }} }} }}", ("cases", "edges")),
    ("query($c: String!) { center(code: $c) { code ... on ParentCenter { rollup { total { "
     "received open closed overdue resolved } children { code figures { received open closed } "
     "} } children(first: 10) { nodes { code name tier retired } } } kpis { matters "
     "resolutionRate { value numerator denominator } satisfaction { value } "
     "responseTime { medianHours p90Hours } } } }", ("children", "nodes")),
])
def test_every_answer_is_the_generic_executors(world: World, query: str, rows: tuple[str, str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    county = world.a["county"][0]
    who = bearer(world.tokens, staff(Role.DIRECTOR, county))
    ours, generic = both(world, who, query, {"c": county}, monkeypatch)
    assert not ours.get("errors"), ours["errors"]
    assert ours == generic
    center = ours["data"]["center"]
    assert center["code"] == county and center[rows[0]][rows[1]], center


def test_a_refusal_is_the_same_refusal(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    village = world.a["village"][0]
    who = bearer(world.tokens, staff(Role.CLERK, village))
    query = f"query($c: String!) {{ center(code: $c) {{ code inbox {{ nodes {{ {ROW} }} }} }} }}"
    ours, generic = both(world, who, query, {"c": world.b["city"][0]}, monkeypatch)
    assert ours == generic and ours.get("errors"), ours


class Shade(Enum):
    RED = "red"


@strawberry.type
class Thing:
    name: str
    nickname: str | None
    count: int
    shade: Shade


@strawberry.type
class Query:
    @strawberry.field
    def things(self) -> list[Thing | None]:
        return [Thing(name="ok", nickname=None, count=1, shade=Shade.RED),
                Thing(name=None, nickname="n", count=2, shade=Shade.RED),  # type: ignore[arg-type]
                Thing(name="x", nickname=None, count="many", shade=Shade.RED),  # type: ignore[arg-type]
                Thing(name="y", nickname=None, count=3, shade="blue")]  # type: ignore[arg-type]


def test_null_and_uncoercible_values_fail_as_the_generic_path_says() -> None:
    results = []
    for executor in (PlainLeaves, StrawberryGraphQLCoreExecutionContext):
        toy = strawberry.Schema(query=Query, execution_context_class=executor)
        result = asyncio.run(toy.execute("{ things { name nickname count shade } }"))
        results.append((result.data, sorted((e.message, tuple(e.path or ()))
                                            for e in result.errors or [])))
    (data, errors), generic = results
    assert (data, errors) == generic
    paths = {path for _, path in errors}
    # a null non-null name, a count that is no Int, a shade not of the enum: each an error
    # at its own path, nulling its (nullable) list item as the spec says
    assert paths == {("things", 1, "name"), ("things", 2, "count"), ("things", 3, "shade")}
    assert data is not None and data["things"][0] == {
        "name": "ok", "nickname": None, "count": 1, "shade": "RED"}
    assert data["things"][1:] == [None, None, None]


def test_only_attribute_leaves_without_arguments_are_planned() -> None:
    plans = plain_leaves(api_schema.schema._schema)
    case = plans["Case"]
    assert {"number", "status", "severity", "receivedAt"} <= set(case)
    # a resolver (due, center), an object (place), an argument-taking field: generic path
    assert not {"due", "center", "place", "parties", "timeline"} & set(case)
    assert all(not name.startswith("__") for name in plans)
    assert "inbox" not in plans.get("VillageCenter", {})


def test_a_cases_view_fields_read_alone_equal_those_of_its_list_row(world: World) -> None:
    # a list's node has its view row at hand; case(id) loads it: the same answers
    county = world.a["county"][0]
    case_id = str(world.cases[county])
    who = staff(Role.DIRECTOR, county)
    fields = "id due { at kind } nextStepAt breaches { unit count }"
    alone = world.post(f"query($id: ID!) {{ case(id: $id) {{ {fields} }} }}", {"id": case_id},
                       who)
    listed = world.post(f"query($c: String!) {{ center(code: $c) {{ dispatchBoard(first: 50) "
                        f"{{ nodes {{ {fields} }} }} }} }}", {"c": county}, who)
    assert not alone.get("errors") and not listed.get("errors"), (alone, listed)
    row = next(n for n in listed["data"]["center"]["dispatchBoard"]["nodes"]
               if n["id"] == case_id)
    assert alone["data"]["case"] == row
    assert row["due"] is not None and row["due"]["kind"]  # dispatched: a deadline applies
