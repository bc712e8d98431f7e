"""Authorization: casbin, with the tenant (a division code) as the domain.

A principal holds its roles at one center (its token's ``tenant``). The policy
(``rbac_policy.csv``, mirrored by docs/authorization.md) grants each role a set
of actions, each with a scope:

- ``subtree``: the center the role is held at and every center below it;
- ``own``: that center only;
- ``assigned``: that center only, and only cases assigned to the principal
  (its unit for a unit officer, its grid ref for a grid worker).

The subtree rule is the casbin function ``tenant_reach`` registered here: a
code lies below another when it starts with it, so a role never reaches
beside (a sibling, a cousin) or above (a parent) the center it is held at.

``can``/``require`` answer for a center; ``can_on_case``/``require_on_case``
(and ``can_see_case``) answer for one case, where assignment matters. For an
``assigned`` grant, ``can`` without a case says only that *some* cases of the
center may be acted on: a list must still be filtered with ``can_see_case``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeAlias

import casbin

from api.auth import AuthError, Principal, Role
from domain.case import Case
from domain.codes import is_within
from domain.errors import ValidationError
from domain.values import Assignee, AssigneeKind, Assignment

__all__ = [
    "MODEL",
    "POLICY",
    "Action",
    "Authorizer",
    "CaseRef",
    "Scope",
    "answerable_refs",
    "assignees_of",
    "can_see_case",
    "default_authorizer",
    "is_assigned",
    "tenant_reach",
]

MODEL = Path(__file__).with_name("rbac_model.conf")
POLICY = Path(__file__).with_name("rbac_policy.csv")


class Action(StrEnum):
    """What a principal may do; the strings are the policy's and the API's."""

    CENTER_READ = "center:read"
    CASE_READ = "case:read"
    CASE_RECEIVE = "case:receive"
    CASE_TRIAGE = "case:triage"
    CASE_DISPATCH = "case:dispatch"
    CASE_ANSWER = "case:answer"  # accept or refuse a dispatch as (or for) the assignee
    CASE_PROGRESS = "case:progress"
    CASE_URGE = "case:urge"
    CASE_ESCALATE = "case:escalate"
    CASE_RESOLVE = "case:resolve"
    CASE_FEEDBACK = "case:feedback"  # feedback, confirm, reject result, evaluate, close
    CASE_REOPEN = "case:reopen"
    CASE_MERGE = "case:merge"
    CASE_WITHDRAW = "case:withdraw"
    CASE_KEEP_SEPARATE = "case:keep-separate"
    PERSONAL_VIEW = "personal:view"  # see personal fields unmasked (recorded, with a reason)
    KPI_READ = "kpi:read"
    AUDIT_READ = "audit:read"  # event history, as-of replay, integrity proofs, access records
    INSPECTION_RUN = "inspection:run"
    CAMERA_MANAGE = "camera:manage"  # register cameras, change their zones, retire them
    ALERT_READ = "alert:read"  # cameras, camera alerts and their live feed
    ALERT_DISPOSE = "alert:dispose"  # acknowledge, confirm into a case, dismiss as false


class Scope(StrEnum):
    """How far a grant reaches from the center the role is held at."""

    SUBTREE = "subtree"
    OWN = "own"
    ASSIGNED = "assigned"


_WIDTH = {Scope.ASSIGNED: 0, Scope.OWN: 1, Scope.SUBTREE: 2}

#: A case: the ``Case`` aggregate, or a read-model row (a mapping) with ``tenant``
#: and ``assignees``: the current dispatch's assignees, each an ``Assignee``, an
#: ``Assignment``, a mapping with ``kind`` and ``ref``, or a ``"kind:ref"`` string.
CaseRef: TypeAlias = Case | Mapping[str, Any]


def tenant_reach(held: str, target: str, scope: str, assigned: str) -> bool:
    """The subtree rule, registered as a casbin matcher function.

    ``held``: the center the role is held at; ``target``: the center acted on;
    ``assigned``: "yes"/"no" for one case, "any" when no single case is asked.
    Malformed codes reach nothing.
    """
    try:
        below = is_within(target, held)
    except ValidationError:
        return False
    if scope == Scope.SUBTREE:
        return below
    if scope == Scope.OWN:
        return target == held
    if scope == Scope.ASSIGNED:
        return target == held and assigned != "no"
    return False


def assignees_of(case: CaseRef) -> tuple[str, list[tuple[AssigneeKind, str]]]:
    """A case's tenant and its current assignees as (kind, ref) pairs."""
    if isinstance(case, Case):
        return case.tenant, [(a.assignee.kind, a.assignee.ref) for a in case.assignments]
    tenant = case.get("tenant")
    if not isinstance(tenant, str):
        raise ValueError("a case row names its tenant")
    pairs: list[tuple[AssigneeKind, str]] = []
    for item in case.get("assignees") or []:
        if isinstance(item, Assignment):
            item = item.assignee
        if isinstance(item, Assignee):
            pairs.append((item.kind, item.ref))
        elif isinstance(item, Mapping):
            pairs.append((AssigneeKind(item["kind"]), str(item["ref"])))
        elif isinstance(item, str) and ":" in item:
            kind, ref = item.split(":", 1)
            pairs.append((AssigneeKind(kind), ref))
        else:
            raise ValueError(f"cannot read an assignee from {item!r}")
    return tenant, pairs


def _assigned_as(principal: Principal, role: Role, tenant: str,
                 assignees: Iterable[tuple[AssigneeKind, str]]) -> bool:
    """Whether the case (of ``tenant``) is assigned to the principal in ``role``."""
    if tenant != principal.tenant:
        return False  # units and grid workers belong to the center they serve
    if role is Role.UNIT_OFFICER and principal.unit:
        wanted = (AssigneeKind.UNIT, principal.unit)
    elif role is Role.GRID_WORKER:
        wanted = (AssigneeKind.GRID_WORKER, principal.grid_ref)
    else:
        return False
    return wanted in set(assignees)


def is_assigned(principal: Principal, case: CaseRef) -> bool:
    """Whether the case is currently assigned to the principal's unit or grid ref."""
    tenant, assignees = assignees_of(case)
    return any(_assigned_as(principal, r, tenant, assignees) for r in principal.roles)


class Authorizer:
    """The casbin enforcer over the shipped model and policy (decisions cached)."""

    def __init__(self, model: Path = MODEL, policy: Path = POLICY) -> None:
        self.enforcer = casbin.Enforcer(str(model), str(policy))
        self.enforcer.add_function("tenant_reach", tenant_reach)
        self._decide = lru_cache(maxsize=65536)(self._enforce)
        self._grants: dict[tuple[Role, Action], Scope] = {}
        for role, action, scope in self.enforcer.get_policy():
            self._grants[(Role(role), Action(action))] = Scope(scope)

    def _enforce(self, role: str, held: str, target: str, action: str, assigned: str) -> bool:
        return bool(self.enforcer.enforce(role, held, target, action, assigned))

    @staticmethod
    def _action(action: str) -> Action:
        try:
            return Action(action)
        except ValueError:
            raise ValueError(f"unknown action {action!r}") from None

    def grant(self, role: Role, action: str) -> Scope | None:
        """The scope in which ``role`` is granted ``action``; None if it is not."""
        return self._grants.get((role, self._action(action)))

    def grants(self) -> dict[tuple[Role, Action], Scope]:
        """The policy as (role, action) → scope; absent pairs are not granted."""
        return dict(self._grants)

    def scope(self, principal: Principal, action: str) -> Scope | None:
        """The widest scope in which any of the principal's roles grants ``action``
        (for building a list's filter: subtree, own center, or assigned cases)."""
        act = self._action(action)
        scopes = [s for r in principal.roles if (s := self._grants.get((r, act))) is not None]
        return max(scopes, key=_WIDTH.__getitem__) if scopes else None

    def can(self, principal: Principal, action: str, tenant: str) -> bool:
        """May the principal perform ``action`` at center ``tenant``?"""
        act = self._action(action)
        return any(self._decide(r.value, principal.tenant, tenant, act.value, "any")
                   for r in principal.roles)

    def can_on_case(self, principal: Principal, action: str, case: CaseRef) -> bool:
        """May the principal perform ``action`` on this case (assignment included)?"""
        act = self._action(action)
        tenant, assignees = assignees_of(case)
        return any(
            self._decide(r.value, principal.tenant, tenant, act.value,
                         "yes" if _assigned_as(principal, r, tenant, assignees) else "no")
            for r in principal.roles)

    def require(self, principal: Principal, action: str, tenant: str) -> None:
        if not self.can(principal, action, tenant):
            raise _forbidden(principal, action, f"center {tenant}")

    def require_on_case(self, principal: Principal, action: str, case: CaseRef) -> None:
        if not self.can_on_case(principal, action, case):
            tenant, _ = assignees_of(case)
            raise _forbidden(principal, action, f"this case of center {tenant}")

    def can_see_case(self, principal: Principal, case: CaseRef) -> bool:
        return self.can_on_case(principal, Action.CASE_READ, case)


def _forbidden(principal: Principal, action: str, what: str) -> AuthError:
    roles = ", ".join(principal.roles)
    return AuthError("FORBIDDEN",
                     f"{roles} at center {principal.tenant} may not {action} on {what}")


@lru_cache(maxsize=1)
def default_authorizer() -> Authorizer:
    """The process's authorizer over the shipped policy."""
    return Authorizer()


def can_see_case(principal: Principal, case: CaseRef,
                 authorizer: Authorizer | None = None) -> bool:
    """Whether the principal may read this case: inside its reach and, for unit
    officers and grid workers, assigned to its unit or grid ref."""
    return (authorizer or default_authorizer()).can_see_case(principal, case)


def answerable_refs(principal: Principal, case: Case,
                    authorizer: Authorizer | None = None) -> list[str]:
    """The refs of the case's current dispatch, not answered yet, that the
    principal may accept or refuse for: its own unit or grid ref (``assigned``
    grants); any of them on a case of its own center (``own`` grants: the center
    records answers for units without accounts, and answers an order from above
    as the center itself). A lower center's answer is never among them: it is
    entered from that center's linked case."""
    auth = authorizer or default_authorizer()
    refs: list[str] = []
    for a in case.assignments:
        kind, ref = a.assignee.kind, a.assignee.ref
        if a.accepted_at is not None or (kind is AssigneeKind.CENTER and ref != case.tenant):
            continue
        for role in principal.roles:
            scope = auth.grant(role, Action.CASE_ANSWER)
            if scope is None or not tenant_reach(principal.tenant, case.tenant, scope, "any"):
                continue
            if scope is not Scope.ASSIGNED or _assigned_as(
                    principal, role, case.tenant, [(kind, ref)]):
                refs.append(ref)
                break
    return refs
