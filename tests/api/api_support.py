"""Helpers shared by the API tests: principals and the documented tables."""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

from fastapi import FastAPI
from fastapi.testclient import TestClient
from support import write_divisions

from api.auth import Principal, Role, TokenService, TokenSettings
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
)
from tenants.service import Tenants

ROOT = Path(__file__).resolve().parents[2]
AUTHORIZATION_DOC = ROOT / "docs" / "authorization.md"

#: Relations of a center to the principal's center (a county), as in the doc.
RELATIONS = ("self", "child", "grandchild", "parent", "sibling", "cousin")


def relatives(county: str) -> dict[str, str]:
    """Codes standing in each relation to ``county`` (6 digits): pure codes, no registry."""
    city = county[:4]
    sibling = f"{city}{(int(county[4:]) % 99) + 1:02d}"
    return {
        "self": county,
        "child": f"{county}001",
        "grandchild": f"{county}001001",
        "parent": city,
        "sibling": sibling,
        "cousin": f"{sibling}001",
    }


def principal(role: Role | str, tenant: str, *, subject: str = "staff-1",
              unit: str | None = None, grid: str | None = None,
              extra: tuple[Role, ...] = ()) -> Principal:
    roles = tuple(dict.fromkeys((Role(role), *extra)))
    if Role.UNIT_OFFICER in roles and unit is None:
        unit = "justice-office"
    return Principal(subject, tenant, roles, None, unit, grid)


def _table_after(text: str, heading: str) -> list[list[str]]:
    """The rows (cells stripped of backticks) of the first table under ``heading``."""
    start = text.index(f"\n{heading}\n")
    rows: list[list[str]] = []
    for line in text[start + 1:].splitlines()[1:]:
        if line.startswith("#"):
            break
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if not all(re.fullmatch(r"-+", c) for c in cells):
            rows.append(cells)
    return rows


def documented_grants() -> dict[tuple[str, str], str]:
    """docs/authorization.md "Role × action": (role, action) → subtree/own/assigned/—."""
    header, *rows = _table_after(AUTHORIZATION_DOC.read_text(encoding="utf-8"),
                                 "## Role × action")
    assert header[0] == "action"
    roles = header[1:]
    return {(role, row[0]): cell for row in rows for role, cell in zip(roles, row[1:],
                                                                      strict=True)}


def documented_reach() -> dict[tuple[str, str], bool]:
    """docs/authorization.md "The tenant rule": (scope, relation) → allowed."""
    header, *rows = _table_after(AUTHORIZATION_DOC.read_text(encoding="utf-8"),
                                 "## The tenant rule")
    assert header[0] == "scope"
    relations = header[1:]
    assert tuple(relations) == RELATIONS
    return {(row[0], rel): {"yes": True, "no": False}[cell]
            for row in rows for rel, cell in zip(relations, row[1:], strict=True)}



# -- GraphQL over HTTP (tests/api/test_graphql_*.py) ------------------------------------

#: The dev-token secret of the GraphQL suites (never a deployment's).
SECRET = b"graphql-tests-secret-of-32-bytes-or-more!"
_api_cities = iter(range(6501, 6600))  # this suite's city codes (tests/conftest.py: 61xx)


def new_city() -> str:
    """A city code of the GraphQL suites' own range, fresh for the session."""
    return str(next(_api_cities))


def token_service(tenants: Tenants) -> TokenService:
    """Dev tokens over the registry of ``tenants`` with the suites' secret."""
    return TokenService(TokenSettings(secret=SECRET), tenants.registry)


def bearer(tokens: TokenService, who: Principal) -> str:
    """An ``Authorization`` header value for the principal."""
    return "Bearer " + tokens.issue(who.tenant, list(who.roles), subject=who.subject,
                                    name=who.name, unit=who.unit, grid=who.grid)


def error_codes(body: dict[str, Any]) -> dict[tuple[Any, ...], str]:
    """The response's errors as path → extensions.code (path () when it has none)."""
    return {tuple(e.get("path") or ()): (e.get("extensions") or {}).get("code")
            for e in body.get("errors") or []}


CST = timezone(timedelta(hours=8))
_phones = itertools.count(13800000000)
TIERS = ("city", "county", "township", "village")
GRID_REF, UNIT_REF = "gw-1", "justice-office"


def dispatched_case(tenants: Tenants, code: str, at: datetime,
                    summary: str = "楼上漏水，协商未果",
                    assignees: list[Assignee] | None = None) -> Case:
    """A case of center ``code``: received, triaged yellow/simple and dispatched
    (by default to grid worker gw-1, the lead, and the justice office), from
    ``at`` on."""
    app = tenants.center(code)
    party = Party(Personal("王小明"), Personal(str(next(_phones))),
                  Personal("330782199001011234"), Personal("稠城街道某小区3幢"))
    case = app.receive_case(channel=Channel.GRID_PATROL, category="neighbour-dispute",
                            summary=summary, parties=[party], place=Place(code, "某路1号"),
                            by="clerk-1", at=at)
    app.triage_case(case.id, Severity.YELLOW, HandlingClass.SIMPLE, "dispatcher-1",
                    at + timedelta(minutes=1))
    chosen = assignees or [Assignee(AssigneeKind.GRID_WORKER, GRID_REF, lead=True),
                           Assignee(AssigneeKind.UNIT, UNIT_REF)]
    return app.dispatch_case(case.id, chosen, "dispatcher-1", at + timedelta(minutes=2))


@dataclass
class World:
    """Two registered synthetic cities with one dispatched case in every center,
    their case views caught up, and the API over them."""

    tenants: Tenants
    tokens: TokenService
    a: dict[str, list[str]]  # city A: 2 counties x 2 townships x 2 villages
    b: dict[str, list[str]]  # city B: 1 x 1 x 1
    cases: dict[str, UUID]  # center code -> its case
    app: FastAPI
    client: TestClient

    def post(self, query: str, variables: dict[str, Any] | None = None,
             who: Principal | None = None, headers: dict[str, str] | None = None
             ) -> dict[str, Any]:
        sent = dict(headers or {})
        if who is not None:
            sent["Authorization"] = bearer(self.tokens, who)
        response = self.client.post("/graphql", json={"query": query,
                                                      "variables": variables or {}},
                                    headers=sent)
        assert response.status_code < 500, response.text
        body: dict[str, Any] = response.json()
        return body

    def relatives(self, tier: str) -> dict[str, str]:
        """Centers in each relation to the first center of ``tier`` in city A
        (no parent for a city, no child for a village)."""
        a, b = self.a, self.b
        return {
            "city": {"self": a["city"][0], "child": a["county"][0], "sibling": b["city"][0],
                     "cousin": b["county"][0]},
            "county": {"self": a["county"][0], "child": a["township"][0],
                       "parent": a["city"][0], "sibling": a["county"][1],
                       "cousin": a["township"][2]},
            "township": {"self": a["township"][0], "child": a["village"][0],
                         "parent": a["county"][0], "sibling": a["township"][1],
                         "cousin": a["village"][2]},
            "village": {"self": a["village"][0], "parent": a["township"][0],
                        "sibling": a["village"][1], "cousin": a["village"][2]},
        }[tier]


def build_world(tenants: Tenants, directory: Path, **options: Any) -> World:
    from api.app import create_app
    from projections.views import CaseView

    trees = []
    for shape in ({"counties": 2, "townships": 2, "villages": 2},
                  {"counties": 1, "townships": 1, "villages": 1}):
        code = new_city()
        tree = write_divisions(directory / code, code, **shape)
        tenants.import_divisions(directory / code, code, "test", datetime.now(CST))
        trees.append(tree)
    start = datetime.now(CST) - timedelta(hours=2)
    cases = {code: dispatched_case(tenants, code, start).id
             for tree in trees for tier in TIERS for code in tree[tier]}
    for tree in trees:
        CaseView(tenants, tree["city"][0]).catch_up()
    tokens = token_service(tenants)
    app = create_app(tenants, tokens=tokens, **options)
    return World(tenants, tokens, trees[0], trees[1], cases, app, TestClient(app))


def staff(role: Role | str, tenant: str) -> Principal:
    """A principal of the GraphQL suites: unit officers of the justice office,
    grid workers with ref gw-1 (the refs every world case is dispatched to)."""
    role = Role(role)
    return Principal(f"{role.value}@{tenant}", tenant, (role,), None,
                     UNIT_REF if role is Role.UNIT_OFFICER else None,
                     GRID_REF if role is Role.GRID_WORKER else None)


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """The app in a real uvicorn server on a free port; yields its base URL."""
    import uvicorn

    from zongzhi.servers import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert thread.is_alive(), "uvicorn stopped"
        time.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
