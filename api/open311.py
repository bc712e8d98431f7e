"""Citizen intake over Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2).

Mounted at :data:`PREFIX` (``/open311/v2``). ``jurisdiction_id`` is a center's
division code; the services are the case categories; a posted request becomes a
case through :meth:`tenants.center.CenterApp.receive_case` with channel
``citizen-app``, so duplicate detection and repeat-complaint re-opening apply as
for every other channel. ``service_request_id`` is the case number.

Reads (services, definitions, request status) need no key, as the spec says, and
show no personal field and no free text: case numbers are sequential, so anyone
can ask about any case, and a dispute's description is nobody else's business.
Creating a request needs an ``api_key`` issued to that jurisdiction
(:class:`Open311Keys`, hashed in ``zz_keys.open311_keys``) and passes a per-key
token bucket (:class:`RateLimiter`, in-process).

Both formats are served, chosen by the extension (``.json`` or ``.xml``); errors
are a list of ``{code, description}`` (``<errors><error>…``) with the HTTP status
as the code: 400 bad input, 403 no valid key, 404 no such jurisdiction, service
or request, 429 too many requests (with ``Retry-After``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from uuid import UUID
from xml.etree import ElementTree

from eventsourcing.persistence import ProgrammingError
from fastapi import APIRouter, FastAPI, Request, Response
from psycopg.errors import UndefinedTable
from psycopg.sql import SQL
from starlette.concurrency import run_in_threadpool

from domain import (
    CATEGORIES,
    DEPARTMENTS,
    Case,
    Category,
    Channel,
    DomainError,
    Party,
    PartyRole,
    Personal,
    Place,
    Status,
    tenant_of,
    tier_of,
)
from tenants.center import CaseNotFound, CenterApp, ConcurrentUpdate
from tenants.keys import TenantKeyShredded
from tenants.registry import CenterInfo, UnknownTenant
from tenants.service import Tenants

__all__ = [
    "DEFAULT_RATE_PER_MINUTE",
    "PREFIX",
    "ApiKey",
    "Open311Keys",
    "RateLimiter",
    "open311_app",
    "open311_router",
]

log = logging.getLogger(__name__)

PREFIX = "/open311/v2"
CST = timezone(timedelta(hours=8))  # business time of the centers (case numbers' dates)
FORMATS = ("json", "xml")
DEFAULT_RATE_PER_MINUTE = 30.0
RATE_ENV = "ZONGZHI_OPEN311_RATE_PER_MINUTE"
BURST_ENV = "ZONGZHI_OPEN311_BURST"
KEY_PREFIX = "zz311_"
MAX_BODY = 64 * 1024
MAX_DESCRIPTION = 4000  # the spec's limit
MAX_TEXT = 200  # names, labels, addresses, urls (x10 for urls)
MAX_IDS = 100  # service_request_ids in one query
MAX_RESULTS = 1000  # rows of one GET requests search
SEARCH_RANGE = timedelta(days=90)  # the spec's default and largest date range
ANONYMOUS = "匿名"  # a party who gave no name
TERMINAL = frozenset({Status.CLOSED, Status.MERGED, Status.WITHDRAWN, Status.RETURNED})

STATUS_NOTES: dict[Status, str] = {
    Status.RECEIVED: "已受理，等待分流",
    Status.TRIAGED: "已分流，等待派单",
    Status.DISPATCHED: "已派单，等待承办单位签收",
    Status.ACCEPTED: "承办单位正在办理",
    Status.ESCALATED: "已上报上级综治中心办理",
    Status.RESOLVED: "已办结，等待向您反馈结果",
    Status.FEEDBACK_GIVEN: "已向您反馈办理结果，等待确认",
    Status.CONFIRMED: "办理结果已确认，等待结案",
    Status.CLOSED: "已结案",
    Status.MERGED: "已与同一事项合并办理",
    Status.WITHDRAWN: "已撤回",
    Status.RETURNED: "已退回交办的综治中心",
}
EMERGENCY_NOTICE = (
    "本渠道不受理紧急报警：遇到紧急情况请立即拨打110（火警119、急救120）。"
    "您的姓名和电话加密保存，仅用于办理本事项，不在任何查询结果中公开。"
)
SHORT_NOTICE = "本渠道不受理紧急报警，紧急情况请拨打110。"
ROLE_ATTRIBUTE = "reporter_role"
OCCURRED_ATTRIBUTE = "occurred_at"
ROLES = {PartyRole.APPLICANT.value: "当事人本人", PartyRole.OTHER.value: "知情人（非当事人）"}

#: The attributes of every service (its definition): a notice, then two optional questions.
ATTRIBUTES: list[dict[str, Any]] = [
    {"variable": False, "code": "notice", "datatype": "text", "required": False,
     "datatype_description": None, "order": 1, "description": EMERGENCY_NOTICE},
    {"variable": True, "code": ROLE_ATTRIBUTE, "datatype": "singlevaluelist",
     "required": False, "datatype_description": "默认：当事人本人", "order": 2,
     "description": "您与此事的关系",
     "values": [{"key": k, "name": v} for k, v in ROLES.items()]},
    {"variable": True, "code": OCCURRED_ATTRIBUTE, "datatype": "datetime", "required": False,
     "datatype_description": "ISO 8601，含时区，例如 2026-03-02T09:00:00+08:00",
     "order": 3, "description": "事情发生的时间"},
]
_VARIABLE = {a["code"] for a in ATTRIBUTES if a["variable"]}

#: XML: the element of each item of a list-valued element.
_XML_ITEM = {"services": "service", "service_requests": "request", "errors": "error",
             "attributes": "attribute", "values": "value"}
_CASE_NUMBER = re.compile(r"(\d{4}|\d{6}|\d{9}|\d{12})-\d{8}-\d{6,}")
_ATTRIBUTE_FIELD = re.compile(r"attribute\[([^\[\]]{1,64})\](\[\])?")
_CJK = re.compile(r"[\u3400-\u9fff]")
_PHONE_NOISE = re.compile(r"[\s\-().]")


# -- errors and replies -------------------------------------------------------


class Open311Error(Exception):
    """An error answered as Open311 ``errors`` with this HTTP status as the code."""

    def __init__(self, status: int, description: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.status, self.description, self.headers = status, description, headers or {}

    def reply(self) -> Reply:
        return Reply([{"code": self.status, "description": self.description}], "errors",
                     self.status, self.headers)


@dataclass
class Reply:
    """What an endpoint answers, before it is rendered as JSON or XML."""

    data: Any
    root: str  # the XML root element
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def _shown(value: str) -> str:
    """A piece of client input fit to quote in an error (short, printable)."""
    text = "".join(c for c in value[:40] if c.isprintable())
    return repr(text + ("…" if len(value) > 40 else ""))


def render(fmt: str, reply: Reply) -> Response:
    if fmt == "xml":
        root = ElementTree.Element(reply.root)
        _fill(root, reply.root, reply.data)
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                + ElementTree.tostring(root, encoding="unicode"))
        media = "text/xml; charset=utf-8"
    else:
        body = json.dumps(reply.data, ensure_ascii=False)
        media = "application/json; charset=utf-8"
    return Response(body.encode("utf-8"), reply.status, reply.headers, media)


def _fill(element: ElementTree.Element, tag: str, value: Any) -> None:
    if isinstance(value, list):
        item = _XML_ITEM.get(tag, "item")
        for v in value:
            _fill(ElementTree.SubElement(element, item), item, v)
    elif isinstance(value, dict):
        for k, v in value.items():
            _fill(ElementTree.SubElement(element, k), k, v)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = _xml_text(str(value))


def _xml_text(text: str) -> str:
    """Drop the characters XML 1.0 cannot carry (control characters)."""
    return "".join(c for c in text if c in "\t\n\r" or ord(c) >= 0x20)


# -- API keys -------------------------------------------------------------------


@dataclass(frozen=True)
class ApiKey:
    """An issued key as stored (never the key itself: its SHA-256)."""

    key_id: str  # the first 12 hex digits of the hash: safe to show and log
    tenant: str
    label: str
    created_at: datetime
    revoked_at: datetime | None


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class Open311Keys:
    """Per-tenant API keys for creating requests, in ``zz_keys.open311_keys``.

    Only the SHA-256 of a key is stored: :meth:`issue_key` returns the key once.
    """

    TABLE = "zz_keys.open311_keys"

    def __init__(self, tenants: Tenants) -> None:
        self.tenants = tenants
        self._datastore = tenants.datastore
        with self._datastore.transaction(commit=True) as curs:
            curs.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.TABLE,))
            curs.execute(SQL(
                "CREATE SCHEMA IF NOT EXISTS zz_keys; "
                f"CREATE TABLE IF NOT EXISTS {self.TABLE} ("
                "key_hash text PRIMARY KEY, tenant text NOT NULL, label text NOT NULL, "
                "created_at timestamptz NOT NULL DEFAULT now(), revoked_at timestamptz); "
                f"CREATE INDEX IF NOT EXISTS open311_keys_tenant ON {self.TABLE} (tenant)"
            ))

    def issue_key(self, tenant: str, label: str) -> str:
        """A new key for a registered, active center; shown once, stored hashed."""
        info = self.tenants.registry.get(tenant)  # raises UnknownTenant
        if info.retired:
            raise ValueError(f"center {tenant} is retired: it takes no new requests")
        label = label.strip() if isinstance(label, str) else ""
        if not label or len(label) > MAX_TEXT:
            raise ValueError(f"a key's label names its client app (1 to {MAX_TEXT} characters)")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(f"INSERT INTO {self.TABLE} (key_hash, tenant, label) "
                         "VALUES (%s, %s, %s)", (_hash(key), tenant, label))
        return key

    def revoke_key(self, key: str) -> ApiKey | None:
        """Revoke a key, given the key itself or its ``key_id`` (as :meth:`list_keys`
        shows it). Returns the revoked key, or None if none was live."""
        if key.startswith(KEY_PREFIX):
            where, arg = "key_hash = %s", _hash(key)
        elif re.fullmatch(r"[0-9a-f]{12,64}", key):
            where, arg = "starts_with(key_hash, %s)", key
        else:
            return None
        with self._datastore.transaction(commit=True) as curs:
            rows = curs.execute(
                f"SELECT key_hash FROM {self.TABLE} WHERE {where} AND revoked_at IS NULL",
                (arg,)).fetchall()
            if len(rows) != 1:
                return None
            row = curs.execute(
                f"UPDATE {self.TABLE} SET revoked_at = now() WHERE key_hash = %s "
                "RETURNING key_hash, tenant, label, created_at, revoked_at",
                (rows[0]["key_hash"],)).fetchone()
        return None if row is None else _api_key(row)

    def lookup(self, key: str) -> ApiKey | None:
        """The stored key (live or revoked), or None if it was never issued."""
        if not key.startswith(KEY_PREFIX) or len(key) > 100:
            return None
        with self._datastore.get_connection() as conn:
            row = conn.execute(
                "SELECT key_hash, tenant, label, created_at, revoked_at "
                f"FROM {self.TABLE} WHERE key_hash = %s", (_hash(key),)).fetchone()
        return None if row is None else _api_key(row)

    def list_keys(self, tenant: str) -> list[ApiKey]:
        with self._datastore.get_connection() as conn:
            rows = conn.execute(
                "SELECT key_hash, tenant, label, created_at, revoked_at "
                f"FROM {self.TABLE} WHERE tenant = %s ORDER BY created_at",
                (tenant,)).fetchall()
        return [_api_key(r) for r in rows]


def _api_key(row: Any) -> ApiKey:
    return ApiKey(row["key_hash"][:12], row["tenant"], row["label"], row["created_at"],
                  row["revoked_at"])


# -- rate limit -----------------------------------------------------------------


class RateLimiter:
    """A token bucket per key: ``burst`` requests at once, refilled at
    ``per_minute``. In-process: each server process keeps its own buckets."""

    def __init__(self, per_minute: float = DEFAULT_RATE_PER_MINUTE, burst: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not per_minute > 0:
            raise ValueError(f"the Open311 rate limit must be above 0 per minute: {per_minute}")
        self.per_minute = per_minute
        self.burst = float(burst if burst is not None else max(1, math.ceil(per_minute)))
        if self.burst < 1:
            raise ValueError(f"the Open311 burst must be at least 1: {burst}")
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 if a request may go now (and count it), else the seconds to wait."""
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self._rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self._rate

    @classmethod
    def from_env(cls, per_minute: float | None = None, burst: int | None = None) -> RateLimiter:
        """Arguments first, then ``ZONGZHI_OPEN311_RATE_PER_MINUTE`` / ``_BURST``."""
        try:
            if per_minute is None:
                per_minute = float(os.environ.get(RATE_ENV) or DEFAULT_RATE_PER_MINUTE)
            if burst is None and os.environ.get(BURST_ENV):
                burst = int(os.environ[BURST_ENV])
        except ValueError as e:
            raise ValueError(f"{RATE_ENV} / {BURST_ENV} must be numbers: {e}") from None
        return cls(per_minute, burst)


# -- the API --------------------------------------------------------------------


Params = dict[str, str]


class Open311:
    """The endpoints' logic, blocking (run in the thread pool by the routes)."""

    def __init__(self, tenants: Tenants, keys: Open311Keys, limiter: RateLimiter,
                 clock: Callable[[], datetime]) -> None:
        self.tenants, self.keys, self.limiter, self.clock = tenants, keys, limiter, clock

    # -- jurisdictions ------------------------------------------------------

    def jurisdiction(self, params: Params, *, taking_requests: bool = False) -> CenterInfo:
        code = params.get("jurisdiction_id", "").strip()
        if not code:
            raise Open311Error(400, "jurisdiction_id is required: this endpoint serves many "
                                    "centers; give the center's division code")
        try:
            tier_of(code)
        except DomainError:
            raise Open311Error(400, f"jurisdiction_id {_shown(code)} is not a division code "
                                    "(4, 6, 9 or 12 digits)") from None
        try:
            info = self.tenants.registry.get(code)
        except UnknownTenant:
            raise Open311Error(404, f"no center is served here under jurisdiction_id {code}"
                               ) from None
        if taking_requests and info.retired:
            raise Open311Error(404, f"center {code} is retired and takes no new requests")
        return info

    # -- services -----------------------------------------------------------

    def services(self, params: Params) -> Reply:
        self.jurisdiction(params)
        return Reply([_service(c) for c in CATEGORIES.values()], "services")

    def definition(self, params: Params, service_code: str) -> Reply:
        self.jurisdiction(params)
        if service_code not in CATEGORIES:
            raise Open311Error(404, f"service_code {_shown(service_code)} is not a service "
                                    "of this jurisdiction; see services.json")
        return Reply({"service_code": service_code, "attributes": ATTRIBUTES},
                     "service_definition")

    # -- creating requests --------------------------------------------------

    def authorize(self, params: Params, tenant: str) -> ApiKey:
        key = params.get("api_key", "")
        if not key:
            raise Open311Error(403, "api_key is required to create a service request; "
                                    "the center issues one per client app")
        found = self.keys.lookup(key)
        if found is None:
            raise Open311Error(403, "invalid api_key: no such key was issued")
        if found.revoked_at is not None:
            raise Open311Error(403, f"api_key {found.key_id} was revoked on "
                                    f"{found.revoked_at.astimezone(CST):%Y-%m-%d}")
        if found.tenant != tenant:
            raise Open311Error(403, f"api_key {found.key_id} is not valid for "
                                    f"jurisdiction_id {tenant}")
        wait = self.limiter.take(found.key_id)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise Open311Error(
                429, f"too many requests: api_key {found.key_id} may create "
                     f"{self.limiter.per_minute:g} requests a minute; retry after "
                     f"{seconds} s", {"Retry-After": str(seconds)})
        return found

    def create(self, params: Params) -> Reply:
        info = self.jurisdiction(params, taking_requests=True)
        key = self.authorize(params, info.code)
        service = CATEGORIES.get(params.get("service_code", ""))
        if service is None:
            given = params.get("service_code", "")
            raise Open311Error(400, f"service_code {_shown(given)} is not a service of this "
                                    "jurisdiction; see services.json" if given else
                                    "service_code is required")
        attributes = _attributes(params)
        place = _place(params, info.code)
        party = Party(name=Personal(_name(params)), phone=_phone(params),
                      role=attributes.get(ROLE_ATTRIBUTE, PartyRole.APPLICANT.value))
        summary = _summary(params, service, attributes)
        at = self.clock()
        case = self.receive(info.code, service, summary, party, place, key, at)
        if case.received_at != at:
            notice = (f"您反映的问题与已结案的事项 {case.case_number} 相同，已作为重复投诉"
                      "重新办理。")
        elif case.suspected_duplicates:
            notice = (f"已受理，受理编号 {case.case_number}。此事可能已有人反映，"
                      "工作人员核实后将合并办理。")
        else:
            notice = f"已受理，受理编号 {case.case_number}。"
        return Reply([{"service_request_id": case.case_number,
                       "service_notice": notice + SHORT_NOTICE,
                       "account_id": None}], "service_requests")

    def receive(self, tenant: str, service: Category, summary: str, party: Party,
                place: Place, key: ApiKey, at: datetime) -> Case:
        """The one intake; a repeat complaint comes back as the re-opened case."""
        app = self.tenants.center(tenant)
        for _ in range(2):
            try:
                return app.receive_case(
                    channel=Channel.CITIZEN_APP, category=service.code, summary=summary,
                    parties=[party], place=place, by=f"open311:{key.label}", at=at)
            except ConcurrentUpdate:  # two repeat complaints re-opening one case at once
                continue
            except TenantKeyShredded:
                raise Open311Error(403, f"center {tenant} can no longer record personal "
                                        "data; contact it directly") from None
            except DomainError as e:
                raise Open311Error(400, str(e)) from None
        raise Open311Error(503, "the matter's case is being updated; try again")

    # -- reading requests ---------------------------------------------------

    def request(self, params: Params, service_request_id: str) -> Reply:
        info = self.jurisdiction(params)
        case = self.find(info, service_request_id)
        if case is None:
            raise Open311Error(404, f"no service request {_shown(service_request_id)} in "
                                    f"jurisdiction {info.code}")
        return Reply([self.view(info, case)], "service_requests")

    def requests(self, params: Params) -> Reply:
        info = self.jurisdiction(params)
        ids = [i.strip() for i in params.get("service_request_id", "").split(",") if i.strip()]
        if ids:
            if len(ids) > MAX_IDS:
                raise Open311Error(400, f"at most {MAX_IDS} service_request_id at once")
            cases = [c for c in (self.find(info, i) for i in ids) if c is not None]
            return Reply([self.view(info, c) for c in cases], "service_requests")
        return Reply(self.search(info, params), "service_requests")

    def find(self, info: CenterInfo, number: str) -> Case | None:
        """The case of this number in this center (its own, or one handed to it)."""
        if not _CASE_NUMBER.fullmatch(number) or not number.startswith(info.code + "-"):
            return None
        app = self.tenants.center(info.code)
        case_id = Case.create_id(info.code, number)
        try:
            return app.get_case(case_id)
        except CaseNotFound:
            pass
        rows = _index_rows(app, "case_number = %s", [number], limit=1)
        if not rows:
            return None
        try:
            return app.get_case(rows[0]["case_id"])
        except CaseNotFound:
            return None

    def view(self, info: CenterInfo, case: Case) -> dict[str, Any]:
        """What anyone may see of a case: no party, description, address or position."""
        notes = STATUS_NOTES.get(case.status, "")
        notice = ""
        if case.status is Status.MERGED and case.merged_into is not None:
            survivor = self._case_number(case.merged_into)
            notes += f"，请以受理编号 {survivor} 查询" if survivor else ""
        elif case.repeat_count and case.is_open:
            notes = f"重复投诉，已重新办理（第{case.repeat_count}次）；{notes}"
        if case.is_open and case.suspected_duplicates:
            notice = "此事可能已有人反映，工作人员核实后将合并办理。"
        deadline = case.handle_by.by if case.handle_by is not None and case.is_open else None
        return _request_fields(
            case.case_number, case.status, case.category, info, case.received_at,
            case.last_at, notes, notice, deadline)

    def _case_number(self, case_id: UUID) -> str | None:
        tenant = tenant_of(case_id)
        try:
            return self.tenants.center(tenant).get_case(case_id).case_number if tenant else None
        except (CaseNotFound, UnknownTenant):
            return None

    def search(self, info: CenterInfo, params: Params) -> list[dict[str, Any]]:
        """Requests by date, status and service, from the case index (as far as its
        projector has got): newest first, at most :data:`MAX_RESULTS`."""
        start, end = _date(params, "start_date"), _date(params, "end_date")
        if end is None:
            end = start + SEARCH_RANGE if start is not None else self.clock()
        if start is None:
            start = end - SEARCH_RANGE
        if end < start or end - start > SEARCH_RANGE:
            raise Open311Error(400, "start_date to end_date must be a range of at most "
                                    f"{SEARCH_RANGE.days} days, in order")
        where = ["received_at >= %s", "received_at <= %s"]
        args: list[Any] = [start, end]
        codes = [c.strip() for c in params.get("service_code", "").split(",") if c.strip()]
        for code in codes:
            if code not in CATEGORIES:
                raise Open311Error(400, f"service_code {_shown(code)} is not a service of "
                                        "this jurisdiction")
        if codes:
            where.append("category = ANY(%s)")
            args.append(codes)
        wanted = {s.strip() for s in params.get("status", "").split(",") if s.strip()}
        if wanted - {"open", "closed"}:
            raise Open311Error(400, "status must be open, closed or both (comma delimited)")
        if len(wanted) == 1:
            terminal = [s.value for s in TERMINAL]
            where.append("status = ANY(%s)" if wanted == {"closed"} else "status <> ALL(%s)")
            args.append(terminal)
        rows = _index_rows(self.tenants.center(info.code), " AND ".join(where), args,
                           MAX_RESULTS)
        return [_request_fields(r["case_number"], Status(r["status"]), r["category"], info,
                                r["received_at"], r["last_at"],
                                STATUS_NOTES.get(Status(r["status"]), ""), "", None)
                for r in rows]


def _index_rows(app: CenterApp, where: str, args: list[Any], limit: int) -> list[Any]:
    statement = (
        "SELECT case_id, case_number, category, status, received_at, last_at "
        f'FROM "{app.store.datastore.schema}".case_index WHERE tenant = %s AND {where} '
        f"ORDER BY received_at DESC, case_number DESC LIMIT {int(limit)}"
    )
    try:
        with app.store.datastore.get_connection() as conn:
            return list(conn.execute(statement, [app.tenant, *args]).fetchall())
    except ProgrammingError as e:
        if isinstance(e.__cause__, UndefinedTable):
            return []  # no projector has run on this log group yet
        raise


def _request_fields(number: str, status: Status, code: str, info: CenterInfo,
                    requested: datetime, updated: datetime, notes: str, notice: str,
                    expected: datetime | None) -> dict[str, Any]:
    service = CATEGORIES.get(code)
    return {
        "service_request_id": number,
        "status": "closed" if status in TERMINAL else "open",
        "status_notes": notes,
        "service_name": service.zh if service else code,
        "service_code": code,
        "agency_responsible": f"{info.name}综治中心",
        "service_notice": notice,
        "requested_datetime": _w3(requested),
        "updated_datetime": _w3(updated),
        "expected_datetime": _w3(expected) if expected is not None else None,
    }


def _w3(at: datetime) -> str:
    return at.astimezone(CST).isoformat(timespec="seconds")


def _service(c: Category) -> dict[str, Any]:
    return {
        "service_code": c.code,
        "service_name": c.zh,
        "description": f"{c.zh}（{c.en}），首先转{DEPARTMENTS.get(c.department, c.department)}",
        "metadata": True,
        "type": "realtime",
        "keywords": f"{c.en}, {c.department}",
        "group": DEPARTMENTS.get(c.department, c.department),
    }


# -- reading a posted request ---------------------------------------------------


def _text(params: Params, name: str, limit: int = MAX_TEXT) -> str:
    value = params.get(name, "").strip()
    if len(value) > limit:
        raise Open311Error(400, f"{name} is longer than {limit} characters")
    return value


def _name(params: Params) -> str:
    first, last = _text(params, "first_name"), _text(params, "last_name")
    if not first and not last:
        return ANONYMOUS
    if _CJK.search(first + last):
        return last + first  # 王 + 小明
    return " ".join(p for p in (first, last) if p)


def _phone(params: Params) -> Personal | None:
    raw = _text(params, "phone", 40)
    if not raw:
        return None
    digits = _PHONE_NOISE.sub("", raw)
    for prefix in ("+86", "0086"):
        if digits.startswith(prefix):
            digits = digits[len(prefix):]
    if len(digits) == 13 and digits.startswith("861"):
        digits = digits[2:]
    if not re.fullmatch(r"\d{5,20}", digits):
        raise Open311Error(400, "phone must be a telephone number (digits, optionally +86)")
    return Personal(digits)


def _number(params: Params, name: str, low: float, high: float) -> float | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not low <= value <= high:
        raise Open311Error(400, f"{name} must be a WGS84 coordinate between {low:g} "
                                f"and {high:g}")
    return value


def _place(params: Params, tenant: str) -> Place:
    lat, lon = _number(params, "lat", -90, 90), _number(params, "long", -180, 180)
    address = _text(params, "address_string")
    if (lat is None) != (lon is None):
        raise Open311Error(400, "lat and long are given together")
    if lat is None and not address:
        if params.get("address_id", "").strip():
            raise Open311Error(400, "address_id is not supported here; give lat and long "
                                    "or address_string")
        raise Open311Error(400, "a location is required: lat and long, or address_string")
    return Place(tenant, address, lat, lon)


def _attributes(params: Params) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in params.items():
        match = _ATTRIBUTE_FIELD.fullmatch(name)
        if match is None:
            continue
        code = match.group(1)
        if code not in _VARIABLE:
            if any(a["code"] == code for a in ATTRIBUTES):
                continue  # an informational attribute: nothing to answer
            raise Open311Error(400, f"unknown attribute {_shown(code)}; see the service "
                                    "definition")
        found[code] = value.strip()
    role = found.get(ROLE_ATTRIBUTE)
    if role is not None and role not in ROLES:
        raise Open311Error(400, f"attribute {ROLE_ATTRIBUTE} must be one of "
                                f"{', '.join(ROLES)}")
    when = found.get(OCCURRED_ATTRIBUTE)
    if when:
        try:
            parsed = datetime.fromisoformat(when)
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise Open311Error(400, f"attribute {OCCURRED_ATTRIBUTE} must be an ISO 8601 "
                                    "time with a time zone")
        found[OCCURRED_ATTRIBUTE] = _w3(parsed)
    return {k: v for k, v in found.items() if v}


def _summary(params: Params, service: Category, attributes: dict[str, str]) -> str:
    description = params.get("description", "").strip()
    if len(description) > MAX_DESCRIPTION:
        raise Open311Error(400, f"description is longer than {MAX_DESCRIPTION} characters")
    lines = [description or f"{service.zh}（市民通过App反映，未附描述）"]
    if OCCURRED_ATTRIBUTE in attributes:
        lines.append(f"发生时间：{attributes[OCCURRED_ATTRIBUTE]}")
    media = _text(params, "media_url", MAX_TEXT * 10)
    if media:
        if urlsplit(media).scheme not in ("http", "https"):
            raise Open311Error(400, "media_url must be an http or https URL")
        lines.append(f"附件：{media}")
    return "\n".join(lines)


def _date(params: Params, name: str) -> datetime | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise Open311Error(400, f"{name} must be a w3 datetime with a time zone, "
                                "e.g. 2026-03-02T00:00:00+08:00")
    return value


# -- HTTP -----------------------------------------------------------------------


def _query(request: Request) -> Params:
    params: Params = {}
    for name in request.query_params:
        params[name] = ",".join(request.query_params.getlist(name))
    return params


async def _form(request: Request) -> Params:
    """The POST body's fields (application/x-www-form-urlencoded, as the spec says)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "multipart/form-data":
        raise Open311Error(400, "media uploads are not accepted; send the fields "
                                "form-urlencoded with a media_url")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise Open311Error(413, f"the request body is larger than {MAX_BODY // 1024} KiB")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                          strict_parsing=False, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise Open311Error(400, "the body must be UTF-8 form-urlencoded fields") from None
    fields: Params = {}
    for name, value in pairs:
        fields[name] = f"{fields[name]},{value}" if name in fields else value
    return fields


Work = Callable[[Params], Reply]


async def _respond(fmt: str, request: Request, work: Work, *, form: bool = False) -> Response:
    if fmt not in FORMATS:
        return render("json", Open311Error(404, f"format {_shown(fmt)} is not served: "
                                                "use .json or .xml").reply())
    try:
        params = _query(request)
        if form:
            params = {**params, **await _form(request)}
        reply = await run_in_threadpool(work, params)
    except Open311Error as e:
        reply = e.reply()
    except Exception:
        log.exception("open311 %s %s failed", request.method, request.url.path)
        reply = Open311Error(500, "internal error; try again later").reply()
    return render(fmt, reply)


def open311_router(tenants: Tenants, *, keys: Open311Keys | None = None,
                   rate_per_minute: float | None = None, burst: int | None = None,
                   clock: Callable[[], datetime] | None = None) -> APIRouter:
    """The GeoReport v2 endpoints, to be included with ``prefix=PREFIX``.

    ``rate_per_minute``/``burst`` set each key's token bucket (default
    ``ZONGZHI_OPEN311_RATE_PER_MINUTE`` or 30, burst as many); ``clock`` gives the
    business time of intake (default: now, in China Standard Time).
    """
    api = Open311(tenants, keys or Open311Keys(tenants),
                  RateLimiter.from_env(rate_per_minute, burst),
                  clock or (lambda: datetime.now(CST)))
    router = APIRouter(tags=["open311"])

    @router.get("/services.{fmt}")
    async def services(fmt: str, request: Request) -> Response:
        return await _respond(fmt, request, api.services)

    @router.get("/services/{service_code}.{fmt}")
    async def definition(service_code: str, fmt: str, request: Request) -> Response:
        return await _respond(fmt, request, lambda p: api.definition(p, service_code))

    @router.post("/requests.{fmt}")
    async def create(fmt: str, request: Request) -> Response:
        return await _respond(fmt, request, api.create, form=True)

    @router.get("/requests.{fmt}")
    async def requests(fmt: str, request: Request) -> Response:
        return await _respond(fmt, request, api.requests)

    @router.get("/requests/{service_request_id}.{fmt}")
    async def request_by_id(service_request_id: str, fmt: str, request: Request) -> Response:
        return await _respond(fmt, request, lambda p: api.request(p, service_request_id))

    return router


def open311_app(tenants: Tenants, **options: Any) -> FastAPI:
    """A FastAPI app serving only the Open311 router at :data:`PREFIX`."""
    app = FastAPI(title="zongzhi Open311 GeoReport v2", docs_url=None, redoc_url=None)
    app.include_router(open311_router(tenants, **options), prefix=PREFIX)
    return app
