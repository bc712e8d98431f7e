"""The isolation matrix over HTTP: every role at every tier × every query and
mutation × a center that is self, child, parent, sibling or cousin.

Expectations come from docs/authorization.md, parsed by the same helpers as
tests/api/test_authz.py (``api_support.documented_grants`` and
``documented_reach``): a probe is allowed exactly when the role's scope for the
probe's action reaches the relation. Every center of two registered cities
holds one real case, dispatched to grid worker gw-1 (lead) and the justice
office (the refs of the world's unit officers and grid workers), so
``assigned`` grants apply to the case of the principal's own center.

Mutations are sent with input the domain refuses *after* authorization (an
empty reason, a state the command is not legal in, an unknown category), so an
allowed command answers VALIDATION, ILLEGAL_TRANSITION or NOT_FOUND, a refused
one FORBIDDEN, and nothing is ever written: the test checks that too.
"""

from __future__ import annotations

import itertools
from uuid import UUID

import pytest
from api_support import (
    TIERS,
    World,
    build_world,
    documented_grants,
    documented_reach,
    error_codes,
    staff,
)

from api.auth import Role
from domain.access import AccessRecord
from tenants.service import Tenants

GRANTS = documented_grants()
REACH = documented_reach()
DOMAIN_REFUSALS = {"VALIDATION", "ILLEGAL_TRANSITION", "NOT_FOUND"}


def allowed(role: Role, action: str, relation: str | None) -> bool:
    """The document's answer; ``None`` relation: nothing to reach (always refused)."""
    return relation is not None and REACH[(GRANTS[(role.value, action)], relation)]


def wide(role: Role, action: str) -> bool:
    """Whether the role's grant of ``action`` reaches below its center."""
    return GRANTS[(role.value, action)] == "subtree"


#: (alias, action) of each query probe; all share the variables $t (a center)
#: and $c (that center's case).
QUERIES = """
query Probe($t: String!, $c: ID!) {
  me { subject }
  center: center(code: $t) { code tier }
  inbox: center(code: $t) { inbox { edges { node { id } } } }
  board: center(code: $t) { dispatchBoard { edges { node { id } } } }
  overdue: center(code: $t) { overdue { edges { node { id } } } }
  dueSoon: center(code: $t) { dueSoon { edges { node { id } } } }
  figures: center(code: $t) { figures(subtree: false) { received } }
  children: center(code: $t) { ... on ParentCenter { children { edges { node { code } } } } }
  rollup: center(code: $t) { ... on ParentCenter { rollup { total { received } } } }
  dashboard: center(code: $t) { ... on ParentCenter { dashboard { asOf kpis { matters } } } }
  case(id: $c) { id number parties { name phone } timeline { kind summary } }
  casesOwn: cases(scope: $t) { edges { node { id } } }
  casesTree: cases(scope: $t, subtree: true) { edges { node { id } } }
  kpisOwn: kpis(scope: $t, subtree: false) { matters }
  kpisTree: kpis(scope: $t) { matters }
  hotSpots(scope: $t, subtree: false) { matters }
  accessLog(caseId: $c) { serial }
}
"""

MUTATIONS = """
mutation Probe($t: String!, $c: ID!, $nil: ID!) {
  receiveCase(center: $t, channel: WINDOW, category: "no-such-category", summary: "x",
              parties: [{name: "王五"}], place: {address: "某路"}) { id }
  triageCase(caseId: $c, severity: BLUE, handling: SIMPLE) { id }
  dispatchCase(caseId: $c, assignees: []) { id }
  acceptCase(caseId: $c, ref: "nobody") { id }
  refuseCase(caseId: $c, ref: "nobody", reason: "x") { id }
  reportProgress(caseId: $c, note: "") { id }
  urgeCase(caseId: $c, instrument: WORK_PROMPT_LETTER, reason: "") { id }
  escalateCase(caseId: $c, reason: "") { id }
  resolveCase(caseId: $c, outcome: HANDLED, summary: "") { id }
  giveFeedback(caseId: $c, message: "") { id }
  confirmCase(caseId: $c) { id }
  rejectResult(caseId: $c, reason: "") { id }
  evaluateCase(caseId: $c, stars: 0) { id }
  closeCase(caseId: $c) { id }
  reopenCase(caseId: $c, reason: "") { id }
  repeatComplaint(caseId: $c, summary: "") { id }
  mergeCase(caseId: $c, into: $nil) { id }
  withdrawCase(caseId: $c, reason: "") { id }
  raiseSeverity(caseId: $c, severity: RED, reason: "") { id }
  markGroupMatter(caseId: $c, reason: "") { id }
  keepSeparate(caseId: $c, other: $nil, reason: "") { id }
  unmaskParties(caseId: $c, fields: [NAME], reason: "") { name }
}
"""

MUTATION_ACTIONS = {
    "receiveCase": "case:receive", "triageCase": "case:triage",
    "dispatchCase": "case:dispatch", "acceptCase": "case:answer",
    "refuseCase": "case:answer", "reportProgress": "case:progress", "urgeCase": "case:urge",
    "escalateCase": "case:escalate", "resolveCase": "case:resolve",
    "giveFeedback": "case:feedback", "confirmCase": "case:feedback",
    "rejectResult": "case:feedback", "evaluateCase": "case:feedback",
    "closeCase": "case:feedback", "reopenCase": "case:reopen",
    "repeatComplaint": "case:reopen", "mergeCase": "case:merge",
    "withdrawCase": "case:withdraw", "raiseSeverity": "case:triage",
    "markGroupMatter": "case:triage", "keepSeparate": "case:keep-separate",
    "unmaskParties": "personal:view",
}
#: A nil UUID names no center: merge and keep-separate refuse it after authorizing.
NIL = str(UUID(int=0))
BELOW = {"self": "child", "child": "grandchild"}  # a center's children, seen from self


def query_expectations(role: Role, relation: str, target_tier: str) -> dict[str, bool]:
    center = allowed(role, "center:read", relation)
    read = allowed(role, "case:read", relation)
    kpi = allowed(role, "kpi:read", relation)
    village = target_tier == "village"
    expected = {
        "me": True,
        "center": center,
        "inbox": center and read,
        "board": center and read,
        "overdue": center and read,
        "dueSoon": center and read,
        "figures": center and kpi,
        "case": read,
        "casesOwn": read,
        "casesTree": read and (village or wide(role, "case:read")),
        "kpisOwn": kpi,
        "kpisTree": kpi and (village or wide(role, "kpi:read")),
        "hotSpots": kpi,
        "accessLog": allowed(role, "audit:read", relation),
    }
    if not village:  # villages have no children and no rollup
        expected["children"] = center and allowed(role, "center:read", BELOW.get(relation))
        expected["rollup"] = center and kpi and wide(role, "kpi:read")
        expected["dashboard"] = expected["rollup"]
    return expected


@pytest.fixture(scope="module")
def world(tenants: Tenants, tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tenants, tmp_path_factory.mktemp("isolation"))


def _tier_of(world: World, code: str) -> str:
    return next(t for t in TIERS for tree in (world.a, world.b) if code in tree[t])


@pytest.mark.parametrize(("tier", "role"), list(itertools.product(TIERS, Role)))
def test_every_query_and_mutation_is_allowed_exactly_as_documented(
        world: World, tier: str, role: Role) -> None:
    relatives = world.relatives(tier)
    who = staff(role, relatives["self"])
    versions = {}
    for relation, target in relatives.items():
        case_id = world.cases[target]
        versions[case_id] = world.tenants.center(target).get_case(case_id).version
        variables = {"t": target, "c": str(case_id)}

        # queries: each probe's data is there exactly when allowed, else FORBIDDEN
        body = world.post(QUERIES, variables, who)
        codes = error_codes(body)
        data = body["data"] or {}
        for probe, expected in query_expectations(role, relation, _tier_of(world, target)
                                                  ).items():
            refused = {path: code for path, code in codes.items() if path[:1] == (probe,)}
            where = f"{role} at {tier} {relation} {target}: {probe}"
            if expected:
                assert not refused, f"{where} refused: {refused}"
                assert data.get(probe) is not None, where
            else:
                assert set(refused.values()) == {"FORBIDDEN"}, f"{where} allowed: {refused}"
        assert set(codes.values()) <= {"FORBIDDEN"}, codes

        # mutations: FORBIDDEN exactly when not allowed; else the domain's refusal
        body = world.post(MUTATIONS, {**variables, "nil": NIL}, who)
        codes = error_codes(body)
        for field, action in MUTATION_ACTIONS.items():
            code = codes.get((field,))
            where = f"{role} at {tier} {relation} {target}: {field} ({action})"
            if allowed(role, action, relation):
                assert code in DOMAIN_REFUSALS, f"{where}: {code}"
            else:
                assert code == "FORBIDDEN", f"{where}: {code}"
    for case_id, version in versions.items():  # nothing was written
        tenant = next(code for code, c in world.cases.items() if c == case_id)
        assert world.tenants.center(tenant).get_case(case_id).version == version
        app = world.tenants.center(tenant)
        assert not app.recorder.select_events(AccessRecord.create_id(case_id, 1), limit=1)


def test_a_provincial_auditor_reads_and_audits_both_cities_but_sees_no_one_in_clear(
        world: World) -> None:
    auditor = staff(Role.AUDITOR, world.a["city"][0][:2])
    for tree in (world.a, world.b):
        village = tree["village"][-1]
        body = world.post(QUERIES, {"t": village, "c": str(world.cases[village])}, auditor)
        assert not body.get("errors"), body["errors"]
        body = world.post(MUTATIONS, {"t": village, "c": str(world.cases[village]),
                                      "nil": NIL}, auditor)
        assert set(error_codes(body).values()) == {"FORBIDDEN"}
