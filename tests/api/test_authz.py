"""The casbin policy against docs/authorization.md: every role × action × relation,
and the assignment rule for unit officers and grid workers. No server needed."""

from __future__ import annotations

import itertools

import pytest
from api_support import (
    RELATIONS,
    documented_grants,
    documented_reach,
    principal,
    relatives,
)

from api.auth import AuthError, Role
from api.authz import Action, Authorizer, Scope, can_see_case, tenant_reach
from domain.values import Assignee, AssigneeKind

COUNTY = "330782"
REL = relatives(COUNTY)
GRANTS = documented_grants()
REACH = documented_reach()


@pytest.fixture(scope="module")
def authorizer() -> Authorizer:
    return Authorizer()


def test_the_document_names_every_role_and_action_exactly_once() -> None:
    assert {role for role, _ in GRANTS} == {r.value for r in Role}
    assert {action for _, action in GRANTS} == {a.value for a in Action}
    assert len(GRANTS) == len(Role) * len(Action)
    assert set(GRANTS.values()) <= {"subtree", "own", "assigned", "—"}
    assert {scope for scope, _ in REACH} == {"subtree", "own", "assigned", "—"}


def test_the_policy_file_grants_exactly_what_the_document_says(authorizer: Authorizer) -> None:
    in_code = {(r.value, a.value): s.value for (r, a), s in authorizer.grants().items()}
    in_doc = {key: cell for key, cell in GRANTS.items() if cell != "—"}
    assert in_code == in_doc


@pytest.mark.parametrize(("role", "action", "relation"),
                         list(itertools.product(Role, Action, RELATIONS)))
def test_each_role_reaches_each_center_as_documented(
        authorizer: Authorizer, role: Role, action: Action, relation: str) -> None:
    # given a role held at a county, when it asks about a center in that relation,
    # then the answer is the document's scope applied to the relation
    expected = REACH[(GRANTS[(role.value, action.value)], relation)]
    asker = principal(role, COUNTY)
    assert authorizer.can(asker, action, REL[relation]) is expected
    if not expected:
        with pytest.raises(AuthError) as refused:
            authorizer.require(asker, action, REL[relation])
        assert refused.value.code == "FORBIDDEN"


def test_a_role_never_reaches_beside_a_center_whose_code_it_prefixes_by_accident(
        authorizer: Authorizer) -> None:
    # 3307821 is not a code; a 9-digit township 330782001 is inside 330782, but the
    # county 330783 is not inside 33078 (no such center) nor inside 330782.
    director = principal(Role.DIRECTOR, COUNTY)
    assert not authorizer.can(director, Action.CASE_READ, "3307821")
    assert not authorizer.can(director, Action.CASE_READ, "330783")
    assert tenant_reach("330782", "330782001", "subtree", "any")
    assert not tenant_reach("330782", "not-a-code", "subtree", "any")


def test_a_provincial_auditor_reaches_every_center_of_its_province_only(
        authorizer: Authorizer) -> None:
    auditor = principal(Role.AUDITOR, "33")
    for code in ("3307", "330782", "330782001001"):
        assert authorizer.can(auditor, Action.AUDIT_READ, code)
    assert not authorizer.can(auditor, Action.AUDIT_READ, "3401")
    assert not authorizer.can(auditor, Action.PERSONAL_VIEW, "330782")


def row(tenant: str, *assignees: object) -> dict[str, object]:
    return {"tenant": tenant, "assignees": list(assignees)}


def test_a_unit_officer_sees_only_cases_assigned_to_its_unit_at_its_center(
        authorizer: Authorizer) -> None:
    officer = principal(Role.UNIT_OFFICER, COUNTY, unit="justice-office")
    assert can_see_case(officer, row(COUNTY, "unit:justice-office", "unit:housing"))
    assert not can_see_case(officer, row(COUNTY, "unit:housing"))
    assert not can_see_case(officer, row(COUNTY))
    # the same unit name at a township below is another office
    assert not can_see_case(officer, row(REL["child"], "unit:justice-office"))
    # a grid worker with the unit's name is not the unit
    assert not can_see_case(officer, row(COUNTY, "grid-worker:justice-office"))
    assert authorizer.can_on_case(officer, Action.CASE_PROGRESS,
                                  row(COUNTY, {"kind": "unit", "ref": "justice-office"}))
    assert not authorizer.can_on_case(officer, Action.CASE_TRIAGE,
                                      row(COUNTY, "unit:justice-office"))


def test_a_grid_worker_sees_only_cases_assigned_to_its_grid_ref(
        authorizer: Authorizer) -> None:
    village = REL["grandchild"]
    worker = principal(Role.GRID_WORKER, village, subject="gw-7")
    named = principal(Role.GRID_WORKER, village, subject="gw-8", grid="grid-03")
    case = row(village, Assignee(AssigneeKind.GRID_WORKER, "gw-7"))
    assert can_see_case(worker, case)  # ref defaults to the subject
    assert not can_see_case(named, case)
    assert can_see_case(named, row(village, "grid-worker:grid-03"))
    with pytest.raises(AuthError) as refused:
        authorizer.require_on_case(named, Action.CASE_READ, case)
    assert refused.value.code == "FORBIDDEN"


def test_upper_tier_staff_see_cases_below_without_assignment(authorizer: Authorizer) -> None:
    for role in (Role.CLERK, Role.DISPATCHER, Role.DIRECTOR, Role.INSPECTOR, Role.AUDITOR):
        asker = principal(role, COUNTY)
        assert can_see_case(asker, row(REL["grandchild"]))
        assert not can_see_case(asker, row(REL["cousin"]))
        assert not can_see_case(asker, row(REL["parent"]))


def test_several_roles_combine_and_the_widest_scope_is_reported(
        authorizer: Authorizer) -> None:
    both = principal(Role.GRID_WORKER, COUNTY, extra=(Role.CLERK,))
    assert authorizer.scope(both, Action.CASE_READ) is Scope.SUBTREE
    assert authorizer.scope(both, Action.CASE_RESOLVE) is Scope.ASSIGNED
    assert authorizer.scope(both, Action.AUDIT_READ) is None
    assert can_see_case(both, row(REL["child"]))  # as a clerk
    assert not authorizer.can_on_case(both, Action.CASE_RESOLVE, row(COUNTY))


def test_an_unknown_action_is_a_programming_error(authorizer: Authorizer) -> None:
    with pytest.raises(ValueError, match="unknown action"):
        authorizer.can(principal(Role.DIRECTOR, COUNTY), "case:delete", COUNTY)
