"""Checks every GraphQL schema module applies before it reads: whether the caller
reaches a center (and its subtree), and a page size in bounds."""

from __future__ import annotations

from api.auth import Principal
from api.authz import Action, Scope
from api.context import Context
from api.errors import bad_request, forbidden
from api.limits import MAX_FIRST
from domain import Tier, tier_of

__all__ = ["check_first", "require_reach"]


def require_reach(ctx: Context, action: Action, code: str, subtree: bool) -> Principal:
    """The principal, if it may perform ``action`` at ``code`` (and, with
    ``subtree``, at every center below it)."""
    principal = ctx.principal
    auth = ctx.services.authorizer
    auth.require(principal, action, code)
    if subtree and tier_of(code) is not Tier.VILLAGE \
            and auth.scope(principal, action) is not Scope.SUBTREE:
        raise forbidden(f"{', '.join(principal.roles)} at center {principal.tenant} may "
                        f"{action} on center {code} alone, not on its subtree: ask with "
                        "subtree: false")
    return principal


def check_first(first: int) -> int:
    """A page size from 1 to ``MAX_FIRST`` (``BAD_REQUEST`` otherwise)."""
    if isinstance(first, bool) or not 1 <= first <= MAX_FIRST:
        raise bad_request(f"first must be 1 to {MAX_FIRST}; got {first}")
    return first
