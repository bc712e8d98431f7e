"""Spreadsheet downloads of the inspection and KPI reports.

    GET /audit/reports/inspection.xlsx?scope=330782&from=2026-03-01T00:00+08:00&to=...
    GET /audit/reports/kpis.xlsx?scope=330782&from=...&to=...

The same bearer token and the same authorization as the GraphQL fields
``inspectionReport`` and ``kpiReport`` (``api.audit_schema``), and the same
objects rendered by ``audit.reports``. Errors are JSON ``{"code", "message"}``
with the GraphQL codes: 401 ``UNAUTHENTICATED``/``TOKEN_EXPIRED`` ..., 403
``FORBIDDEN``, 400 ``VALIDATION``, 404 ``NOT_FOUND``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from api.audit_schema import inspection_report, kpi_report
from api.auth import AuthError
from api.context import Context, Services
from api.errors import ApiError
from audit.chain import AuditError
from audit.reports import inspection_workbook, kpi_workbook
from domain import DomainError
from tenants.registry import UnknownTenant

__all__ = ["PREFIX", "XLSX", "reports_router"]

PREFIX = "/audit/reports"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_STATUS = {"FORBIDDEN": 403, "VALIDATION": 400, "NOT_FOUND": 404}


def _error(code: str, message: str, status: int | None = None) -> Response:
    return Response(json.dumps({"code": code, "message": message}, ensure_ascii=False),
                    status_code=status or _STATUS.get(code, 401),
                    media_type="application/json")


def _instant(request: Request, name: str) -> datetime:
    raw = request.query_params.get(name)
    if not raw:
        raise ApiError("VALIDATION", f"the query parameter {name!r} is required")
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError("VALIDATION", f"{name} is an ISO 8601 time; {raw!r} is not") from None


def reports_router(services: Services) -> APIRouter:
    router = APIRouter()

    async def download(request: Request, build: Callable[[Context, str, datetime, datetime],
                                                         Any],
                       render: Callable[[Any], bytes], name: str) -> Response:
        try:
            principal = await run_in_threadpool(
                services.tokens.verify, request.headers.get("authorization"))
            scope = request.query_params.get("scope") or principal.tenant
            start, end = _instant(request, "from"), _instant(request, "to")
            ctx = Context(services, principal, None)
            body = await run_in_threadpool(lambda: render(build(ctx, scope, start, end)))
        except AuthError as e:
            return _error(e.code, str(e))
        except ApiError as e:
            return _error(e.code, str(e))
        except UnknownTenant as e:
            return _error("NOT_FOUND", str(e))
        except (AuditError, DomainError) as e:
            return _error("VALIDATION", str(e))
        filename = f"{name}-{scope}-{start:%Y%m%d}-{end:%Y%m%d}.xlsx"
        return Response(body, media_type=XLSX,
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    @router.get("/inspection.xlsx")
    async def inspection(request: Request) -> Response:
        return await download(request, inspection_report, inspection_workbook, "inspection")

    @router.get("/kpis.xlsx")
    async def kpis(request: Request) -> Response:
        return await download(request, kpi_report, kpi_workbook, "kpis")

    return router
