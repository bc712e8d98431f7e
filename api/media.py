"""Photos of cases over HTTP (GraphQL lists them, these routes move the bytes).

    POST /api/cases/{case}/photos                 body: the image bytes (JPEG or PNG)
    GET  /api/cases/{case}/photos/{attachment}    the image
    GET  /api/alerts/{alert}/frame                the camera frame that fired the alert

Uploading needs ``case:receive`` or ``case:progress`` on the case (its center,
then the case) and ``case:read`` on it (unit officers and grid workers only on
cases assigned to them: nobody adds evidence to a case they cannot see);
downloading needs ``case:read`` on the case, as the GraphQL ``case`` field. The
body is the raw image (any ``Content-Type``: the type is read from the bytes),
read up to the size cap and no further. Errors are JSON ``{"code", "message"}``
with the GraphQL codes: 401 ``UNAUTHENTICATED``/``TOKEN_EXPIRED`` ..., 403
``FORBIDDEN``, 400 ``VALIDATION``, 413 ``VALIDATION`` (too large), 404
``NOT_FOUND``, 409 ``ILLEGAL_TRANSITION``/``CONFLICT``.

An alert's frame needs ``alert:read`` on the alert's center; it is streamed from
the NATS object store (``zz-frames``), which drops frames after an hour: then
404 ``NOT_FOUND`` says so (503 when the API has no NATS).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import strawberry
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from api.auth import AuthError, Principal
from api.authz import Action
from api.context import Services
from api.errors import ApiError
from domain import Case, DomainError, IllegalTransition, tenant_of
from domain.case import MAX_PHOTO_BYTES, Photo
from tenants.attachments import PhotoNotFound, PhotoUnreadable, attach_photo, read_photo
from tenants.cameras import AlertNotFound, Cameras
from tenants.center import CaseNotFound, ConcurrentUpdate
from tenants.keys import TenantKeyShredded
from tenants.registry import UnknownTenant
from tenants.service import Tenants
from vision.alerts import alert_frames
from vision.messages import FRAMES_BUCKET, FRAMES_TTL_S

__all__ = ["PREFIX", "PhotoType", "media_router", "photo_type_of", "photo_url"]

PREFIX = "/api"
_CAMERAS: weakref.WeakKeyDictionary[Tenants, Cameras] = weakref.WeakKeyDictionary()
T = TypeVar("T")


@strawberry.type(name="Photo")
class PhotoType:
    """A photo on a case: fetch ``url`` with the same bearer token."""

    id: strawberry.ID
    content_type: str
    size: int
    sha256: str
    at: datetime
    by: str
    url: str


def photo_url(case_id: UUID, attachment_id: UUID) -> str:
    return f"{PREFIX}/cases/{case_id}/photos/{attachment_id}"


def photo_type_of(case_id: UUID, photo: Photo) -> PhotoType:
    return PhotoType(id=strawberry.ID(str(photo.attachment_id)),
                     content_type=photo.content_type, size=photo.size, sha256=photo.sha256,
                     at=photo.at, by=photo.by, url=photo_url(case_id, photo.attachment_id))


_STATUS = {"UNAUTHENTICATED": 401, "TOKEN_EXPIRED": 401, "TOKEN_INVALID": 401,
           "TENANT_RETIRED": 401, "FORBIDDEN": 403, "VALIDATION": 400, "NOT_FOUND": 404,
           "ILLEGAL_TRANSITION": 409, "CONFLICT": 409}


def error(code: str, message: str, status: int | None = None) -> Response:
    return Response(json.dumps({"code": code, "message": message}, ensure_ascii=False),
                    status_code=status or _STATUS.get(code, 500),
                    media_type="application/json")


def _cameras(services: Services) -> Cameras:
    found = _CAMERAS.get(services.tenants)
    if found is None:
        found = _CAMERAS[services.tenants] = Cameras(services.tenants)
    return found


def _uuid(value: str, what: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise ApiError("VALIDATION", f"{what} is a UUID; {value!r} is not") from None


def _case_tenant(case_id: UUID) -> str:
    tenant = tenant_of(case_id)
    if tenant is None:
        raise ApiError("NOT_FOUND", f"no case {case_id}")
    return tenant


async def guarded(services: Services, request: Request,
                  work: Callable[[Principal], T]) -> T | Response:
    """Authenticate the bearer token, run ``work`` off the event loop, and
    answer every expected failure as a coded JSON error."""
    try:
        principal = await run_in_threadpool(services.tokens.verify,
                                            request.headers.get("authorization"))
        return await run_in_threadpool(work, principal)
    except AuthError as e:
        return error(e.code, str(e))
    except ApiError as e:
        return error(e.code, e.message)
    except (CaseNotFound, UnknownTenant, PhotoNotFound, AlertNotFound) as e:
        return error("NOT_FOUND", str(e))
    except ConcurrentUpdate as e:
        return error("CONFLICT", str(e))
    except (IllegalTransition, TenantKeyShredded, PhotoUnreadable) as e:
        return error("ILLEGAL_TRANSITION", str(e))
    except DomainError as e:
        return error("VALIDATION", str(e))


async def _body(request: Request) -> bytes | Response:
    """The request's body, read no further than one byte past the cap."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_PHOTO_BYTES:
            return error("VALIDATION", f"a photo is at most {MAX_PHOTO_BYTES // (1024 * 1024)}"
                         " MB", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def _require_any(services: Services, principal: Principal, actions: tuple[Action, ...],
                 case: Case | None, tenant: str) -> None:
    auth = services.authorizer
    allowed = any(auth.can(principal, a, tenant) if case is None
                  else auth.can_on_case(principal, a, case) for a in actions)
    if not allowed:
        names = " or ".join(actions)
        raise AuthError("FORBIDDEN", f"{', '.join(principal.roles)} at center "
                        f"{principal.tenant} may not {names} on "
                        + ("this case" if case is not None else "center") + f" {tenant}")


UPLOAD = (Action.CASE_RECEIVE, Action.CASE_PROGRESS)


def media_router(services: Services) -> APIRouter:
    router = APIRouter(prefix=PREFIX)

    @router.post("/cases/{case}/photos")
    async def upload(case: str, request: Request) -> Response:
        body = await _body(request)
        if isinstance(body, Response):
            return body

        def work(principal: Principal) -> dict[str, Any]:
            case_id = _uuid(case, "a case id")
            tenant = _case_tenant(case_id)
            _require_any(services, principal, UPLOAD, None, tenant)
            app = services.tenants.center(tenant)
            found = app.get_case(case_id)
            services.authorizer.require_on_case(principal, Action.CASE_READ, found)
            _require_any(services, principal, UPLOAD, found, tenant)
            updated, photo = attach_photo(app, case_id, body, principal.subject,
                                          services.clock())
            shown = photo_type_of(updated.id, photo)
            return {"id": shown.id, "contentType": shown.content_type, "size": shown.size,
                    "sha256": shown.sha256, "at": shown.at.isoformat(), "by": shown.by,
                    "url": shown.url, "caseVersion": updated.version}

        result = await guarded(services, request, work)
        if isinstance(result, Response):
            return result
        return Response(json.dumps(result, ensure_ascii=False), status_code=201,
                        media_type="application/json")

    @router.get("/cases/{case}/photos/{attachment}")
    async def download(case: str, attachment: str, request: Request) -> Response:
        def work(principal: Principal) -> tuple[Photo, bytes]:
            case_id = _uuid(case, "a case id")
            attachment_id = _uuid(attachment, "a photo id")
            tenant = _case_tenant(case_id)
            services.authorizer.require(principal, Action.CASE_READ, tenant)
            app = services.tenants.center(tenant)
            found = app.get_case(case_id)
            services.authorizer.require_on_case(principal, Action.CASE_READ, found)
            return read_photo(app, found, attachment_id)

        result = await guarded(services, request, work)
        if isinstance(result, Response):
            return result
        photo, content = result
        return Response(content, media_type=photo.content_type, headers={
            "Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff",
            "ETag": f'"{photo.sha256}"'})

    @router.get("/alerts/{alert}/frame")
    async def frame(alert: str, request: Request) -> Response:
        def work(principal: Principal) -> str:
            alert_id = _uuid(alert, "an alert id")
            tenant = tenant_of(alert_id)
            if tenant is None:
                raise ApiError("NOT_FOUND", f"no alert {alert_id}")
            services.authorizer.require(principal, Action.ALERT_READ, tenant)
            _cameras(services).center(tenant).get_alert(alert_id)
            kept = alert_frames(services.tenants).get(tenant, alert_id)
            if kept is None:
                raise ApiError("NOT_FOUND", f"no frame was kept for alert {alert_id}")
            return kept.frame_key

        key = await guarded(services, request, work)
        if isinstance(key, Response):
            return key
        if services.alerts is None:
            return error("NOT_FOUND", "camera frames are not available: this API process "
                         "has no NATS server configured", 503)
        content = await _frame_bytes(services.alerts.nats_url, key)
        if content is None:
            return error("NOT_FOUND", f"frame {key} is no longer kept: the frames bucket "
                         f"drops frames after {FRAMES_TTL_S / 3600:g} hour(s)")
        return Response(content, media_type="image/jpeg", headers={
            "Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"})

    return router


async def _frame_bytes(nats_url: str, key: str) -> bytes | None:
    """A frame from the frames bucket, or None when the bucket no longer holds it."""
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=1,
                            name="zongzhi-api-frames")
    try:
        try:
            store = await nc.jetstream().object_store(FRAMES_BUCKET)
            found = await store.get(key)
        except NotFoundError:
            return None
        return bytes(found.data) if found.data is not None else None
    finally:
        await nc.close()
