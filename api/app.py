"""The API process: GraphQL, Open311 intake, health and readiness, telemetry.

``create_app(tenants)`` builds the FastAPI application:

- ``/graphql``: the schema of :mod:`api.schema` over HTTP (POST; GET for
  queries, and GraphiQL in a browser when tokens are development tokens) and
  over websockets (``graphql-transport-ws``; ``graphql-ws`` too). The bearer
  token comes from the ``Authorization`` header, or for a websocket from the
  ``connection_init`` payload ``{"Authorization": "Bearer ..."}``;
- the Open311 GeoReport v2 intake at :data:`api.open311.PREFIX`;
- ``/healthz``: the process is up; ``/readyz``: the database answers (else
  503), with each city's projection lag;
- the built web client (``web/dist``) at ``/``, answering only what no route
  matched, and ``/demo/users`` for its sign-in picker when run as the demo;
- FastAPI's own OpenTelemetry instrumentation: a server span per request or
  websocket (a child of the caller's ``traceparent``, named by method and route
  template) and each request's latency in the semantic conventions'
  ``http.server.request.duration`` histogram. FastAPI's spans around dependency
  resolution and the endpoint are left out (two more spans a request, and the
  store's own spans already show where a request's time went).

Run it with ``python -m api.app [--host H] [--port P]`` (servers as for every
other zongzhi process: embedded ones, or ``ZONGZHI_DATABASE_URL``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from cross_web import HTTPException
from fastapi import FastAPI, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse
from opentelemetry.sdk.metrics import MeterProvider
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection, Request
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.types import ExecutionResult

from api.alerts_schema import AlertFeed
from api.auth import AuthError, Principal, TokenService
from api.authz import Authorizer, default_authorizer
from api.context import Context, Services
from api.errors import CODES, coded, log_unexpected
from api.media import media_router
from api.open311 import PREFIX, open311_router
from api.reports import PREFIX as REPORTS_PREFIX
from api.reports import reports_router
from api.schema import schema
from api.subscriptions import CaseFeed
from domain import Tier
from domain.calendar import CHINA
from projections.queries import view_position
from tenants import telemetry
from tenants.service import Tenants
from zongzhi.servers import NATS_URL

__all__ = ["GRAPHQL_PATH", "create_app", "main"]

log = logging.getLogger(__name__)

GRAPHQL_PATH = "/graphql"
DEMO_USERS_PATH = "/demo/users"
#: The built web client (``npm run build`` in web/), served at ``/`` when present.
WEB_DIST = Path(__file__).resolve().parents[1] / "web" / "dist"
#: Paths the web client never answers for (their 404 stays an API 404).
API_PREFIXES = (GRAPHQL_PATH, PREFIX, "/healthz", "/readyz", "/demo", "/api",
                "/audit/reports", "/metrics")


# -- GraphQL over HTTP and websockets -----------------------------------------------------


def _bad_request(reason: str, status: int) -> Response:
    body = {"data": None, "errors": [{"message": reason,
                                      "extensions": {"code": "BAD_REQUEST"}}]}
    return Response(json.dumps(body), status_code=status, media_type="application/json")


class Router(GraphQLRouter[Context, None]):
    """Strawberry's router, with its plain-text refusals answered as GraphQL
    errors (``BAD_REQUEST``) and the websocket token taken from
    ``connection_init``."""

    services: Services

    async def run(self, request: Any, context: Any = None, root_value: Any = None) -> Any:
        try:
            return await super().run(request, context, root_value)
        except HTTPException as e:
            return _bad_request(e.reason, e.status_code)

    async def process_result(self, request: Any, result: ExecutionResult) -> Any:
        """Every error coded, whatever path it took (the schema's ``ErrorCodes``
        misses one: an exception raised outside the operation's extensions)."""
        if result.errors:
            log_unexpected([e for e in result.errors
                            if (e.extensions or {}).get("code") not in CODES])
            result.errors = [coded(e) for e in result.errors]
        return await super().process_result(request, result)

    async def on_ws_connect(self, context: Context) -> Any:
        params = context.connection_params if isinstance(context.connection_params, dict) \
            else {}
        header = next((v for k, v in params.items()
                       if isinstance(k, str) and k.lower() == "authorization"), None)
        if header is None:
            return None  # keep what the upgrade request's header said, if anything
        if not isinstance(header, str):
            raise ConnectionRejectionError({"code": "TOKEN_INVALID"})
        principal, error = await _authenticate(self.services.tokens, header)
        context.authenticate(principal, error)
        return None


async def _authenticate(tokens: TokenService, header: str | None
                        ) -> tuple[Principal | None, AuthError | None]:
    if not header:
        return None, AuthError("UNAUTHENTICATED", "a bearer token is required")
    known = tokens.verified(header)  # a token seen lately: no thread, no signature check
    if known is not None:
        return known, None
    try:
        return await run_in_threadpool(tokens.verify, header), None
    except AuthError as e:
        return None, e


# -- health ---------------------------------------------------------------------------


def _readiness(tenants: Tenants) -> tuple[int, dict[str, Any]]:
    try:
        for datastore in tenants.datastores():
            with psycopg.connect(datastore.url, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
    except psycopg.Error as e:
        log.warning("readiness: the database does not answer: %s", e)
        return 503, {"status": "unavailable", "database": "unreachable"}
    lag: dict[str, dict[str, int]] = {}
    for center in tenants.registry.all():
        if center.tier is Tier.CITY:
            covered, last = view_position(tenants, center.code)
            lag[center.code] = {"covered": covered, "last": last, "lag": last - covered}
    return 200, {"status": "ready", "database": "ok", "projections": {"case_view": lag}}


# -- the application ----------------------------------------------------------------------


def create_app(tenants: Tenants, *, tokens: TokenService | None = None,
               authorizer: Authorizer | None = None, open311: bool = True,
               clock: Callable[[], datetime] | None = None,
               graphiql: bool | None = None,
               demo_users: Sequence[tuple[str, str]] | None = None,
               web: Path | None = WEB_DIST, nats_url: str | None = None,
               meter_provider: MeterProvider | None = None) -> FastAPI:
    """The API over ``tenants``. ``tokens`` default to ``TokenService.from_env``
    (development tokens unless ``ZONGZHI_OIDC_ISSUER`` is set), ``authorizer`` to
    the shipped policy, ``clock`` (business time of commands and of what is
    overdue) to now in China time; GraphiQL is served in development only
    unless ``graphiql`` says otherwise. ``demo_users`` (label, token), given only
    by the demo, are listed at ``/demo/users`` for the web client's sign-in
    picker; ``web`` (the built client, ``web/dist``) is served at ``/`` when it
    exists, behind every other route. ``nats_url`` (default ``ZONGZHI_NATS_URL``)
    feeds the ``alertRaised`` subscription. Request latencies go to
    ``meter_provider`` (default: the process's, which ``telemetry.configure``
    sets up)."""
    telemetry.configure()
    tokens = tokens or TokenService.from_env(tenants.registry)
    feed = CaseFeed(tenants)
    alerts_url = nats_url or os.environ.get(NATS_URL)
    alerts = AlertFeed(alerts_url) if alerts_url else None
    services = Services(tenants=tenants, tokens=tokens,
                        authorizer=authorizer or default_authorizer(),
                        clock=clock or (lambda: datetime.now(CHINA)), feed=feed,
                        alerts=alerts)

    async def context(connection: HTTPConnection) -> Context:
        header = connection.headers.get("authorization")
        if isinstance(connection, WebSocket) and not header:
            return Context(services, None, None)  # the token comes with connection_init
        principal, error = await _authenticate(tokens, header)
        return Context(services, principal, error)

    show_ide = (not tokens.settings.production) if graphiql is None else graphiql
    router = Router(schema, context_getter=context,
                    graphql_ide="graphiql" if show_ide else None)
    router.services = services

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await feed.close()
        if alerts is not None:
            await alerts.close()

    app = FastAPI(title="zongzhi", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan,
                  telemetry={"operation_spans": False, "meter_provider": meter_provider})
    app.include_router(router, prefix=GRAPHQL_PATH)
    if open311:
        app.include_router(open311_router(tenants), prefix=PREFIX)
    app.include_router(reports_router(services), prefix=REPORTS_PREFIX)
    app.include_router(media_router(services))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> Response:
        status, body = await run_in_threadpool(_readiness, tenants)
        return Response(json.dumps(body), status_code=status, media_type="application/json")

    if demo_users is not None:
        users = [{"label": label, "token": token} for label, token in demo_users]

        @app.get(DEMO_USERS_PATH)
        async def demo_user_list() -> list[dict[str, str]]:
            return users

    if web is not None and (web / "index.html").is_file():
        serve_web(app, web)
    app.state.services = services
    return app


# -- the web client ---------------------------------------------------------------------


def serve_web(app: FastAPI, dist: Path) -> None:
    """Serve the built web client: a file of ``dist`` when one matches, else
    ``index.html`` (the client's own routes). It answers only what no route
    matched (a 404 handler), so it never shadows an API route, whenever that
    route was added; API prefixes keep their 404."""
    root = dist.resolve()

    @app.exception_handler(StarletteHTTPException)
    async def spa(request: Request, exc: StarletteHTTPException) -> Response:
        path = request.url.path
        if (exc.status_code != 404 or "endpoint" in request.scope
                or request.method not in ("GET", "HEAD")
                or any(path == p or path.startswith(p + "/") for p in API_PREFIXES)):
            return await http_exception_handler(request, exc)
        wanted = (root / path.lstrip("/")).resolve()
        if wanted.is_file() and wanted.is_relative_to(root):
            cache = "public, max-age=31536000, immutable" \
                if wanted.parent.name == "assets" else "no-cache"
            return FileResponse(wanted, headers={"Cache-Control": cache})
        if path.startswith("/assets/") or "." in path.rsplit("/", 1)[-1]:
            return await http_exception_handler(request, exc)  # a missing file stays missing
        return FileResponse(root / "index.html", headers={"Cache-Control": "no-cache"})


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    from tenants.keys import load_master_key
    from zongzhi.servers import Servers

    p = argparse.ArgumentParser(prog="python -m api.app", description="serve the zongzhi API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    servers = Servers().start(nats=False)
    tenants = Tenants.from_env(servers.database_url, load_master_key(servers.data_dir))
    try:
        uvicorn.run(create_app(tenants), host=args.host, port=args.port)
        return 0
    finally:
        tenants.close()
        servers.stop()


if __name__ == "__main__":
    raise SystemExit(main())
