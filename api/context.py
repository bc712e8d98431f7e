"""What every resolver gets: the process's services and the request's principal.

:class:`Services` is built once by ``create_app``; :class:`Context` once per
HTTP request or websocket connection. The principal comes from the bearer
token of the ``Authorization`` header, or, for a websocket, from the
``graphql-transport-ws`` ``connection_init`` payload
(``{"Authorization": "Bearer ..."}``). A missing or refused token does not fail
the request by itself: the first resolver that needs the principal raises the
token's ``AuthError`` (``UNAUTHENTICATED``, ``TOKEN_EXPIRED`` ...), so the
client sees the code in ``errors[].extensions.code``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from strawberry.fastapi import BaseContext

from api.auth import AuthError, Principal, TokenService
from api.authz import Authorizer
from api.loaders import Loaders
from tenants.service import Tenants

if TYPE_CHECKING:
    from api.alerts_schema import AlertFeed
    from api.subscriptions import CaseFeed

__all__ = ["Context", "Services"]


@dataclass
class Services:
    tenants: Tenants
    tokens: TokenService
    authorizer: Authorizer
    clock: Callable[[], datetime]
    feed: CaseFeed
    alerts: AlertFeed | None = None  # camera alerts from NATS (None: no NATS configured)


class Context(BaseContext):
    """One request's (or websocket connection's) view of the API."""

    def __init__(self, services: Services, principal: Principal | None,
                 auth_error: AuthError | None) -> None:
        super().__init__()
        self.services = services
        self._principal = principal
        self.auth_error = auth_error
        self._loaders: Loaders | None = None

    def authenticate(self, principal: Principal | None, auth_error: AuthError | None) -> None:
        self._principal, self.auth_error = principal, auth_error

    @property
    def principal(self) -> Principal:
        """The authenticated principal, or the token's refusal."""
        if self._principal is not None:
            return self._principal
        raise self.auth_error or AuthError("UNAUTHENTICATED", "a bearer token is required")

    @property
    def loaders(self) -> Loaders:
        """This operation's loaders, made when first asked for (a request that
        reads no case or figure makes none)."""
        if self._loaders is None:
            self._loaders = Loaders(self.services.tenants, self.services.clock())
        return self._loaders

    def fresh_loaders(self) -> Loaders:
        """New loaders (each operation, and each event of a subscription, must
        not answer from what an earlier one read)."""
        self.forget_loaders()
        return self.loaders

    def forget_loaders(self) -> None:
        """Drop the loaders: the next use makes new ones (see :meth:`fresh_loaders`)."""
        self._loaders = None
