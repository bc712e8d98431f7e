"""Open311 GeoReport v2 intake, end to end.

The API runs in a real uvicorn server on a free port and is driven by Open311
clients from PyPI, not by our code: ``georeport`` (reads: services, definitions,
requests, JSON and XML) and ``civicbot`` (its ``Open311Client`` also creates
requests; georeport cannot). What they create is checked through the center's
own application, and every byte the server sends is recorded: no response may
carry a citizen's name, phone, e-mail or the place's address.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
import requests
import uvicorn
import xmltodict
from civicbot import Endpoint, HttpError, HttpTransport, Open311Client
from civicbot.http import RateLimiter as Politeness
from georeport import GeoReport

from api.open311 import CST, PREFIX, Open311Keys, open311_app
from domain import (
    CATEGORIES,
    DEPARTMENTS,
    Assignee,
    AssigneeKind,
    Case,
    Channel,
    HandlingClass,
    Outcome,
    PartyRole,
    Severity,
    Status,
)
from projections.cases import CaseIndex
from tenants.center import CenterApp
from tenants.persistence import log_group_schema
from tenants.service import Tenants
from zongzhi.servers import free_port

SERVICE = "neighbour-dispute"
FIRST, LAST, NAME = "小明", "王", "王小明"
PHONE = "13912345678"
PHONE_AS_TYPED = "+86 139-1234-5678"
EMAIL = "wang.xiaoming@example.cn"
ADDRESS = "稠城街道某小区3幢"
LAT, LON = 29.3069, 120.0753
M_PER_DEG = 111_195.0
#: What no response may contain (also as escaped JSON).
SECRETS = (NAME, FIRST, PHONE, PHONE[3:], EMAIL, ADDRESS)
REQUEST_FIELDS = {
    "service_request_id", "status", "status_notes", "service_name", "service_code",
    "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
    "expected_datetime",
}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGI = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                Awaitable[None]]


class Clock:
    """The business time the API stamps on intake; tests move it on."""

    def __init__(self) -> None:
        self.now = datetime.now(CST).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


def recording(app: ASGI, sink: list[bytes]) -> ASGI:
    """The app, keeping a copy of every response's headers and body."""
    async def asgi(scope: Scope, receive: Callable[[], Awaitable[Message]],
                   send: Callable[[Message], Awaitable[None]]) -> None:
        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                sink.append(b"\n".join(k + b": " + v for k, v in message.get("headers", [])))
            elif message["type"] == "http.response.body":
                sink.append(message.get("body", b""))
            await send(message)
        await app(scope, receive, capture)
    return asgi


@dataclass
class Server:
    base: str
    code: str  # the jurisdiction: a village center
    key: str
    keys: Open311Keys
    clock: Clock
    tenants: Tenants
    sent: list[bytes] = field(default_factory=list)

    @property
    def app(self) -> CenterApp:
        return self.tenants.center(self.code)

    def georeport(self, fmt: str = "json", jurisdiction: str | None = "") -> GeoReport:
        return GeoReport(self.base, jurisdiction=self.code if jurisdiction == "" else jurisdiction,
                         output_format=fmt)

    def civic(self, jurisdiction: str | None = "", *, key_required: bool = True
              ) -> Open311Client:
        endpoint = Endpoint(id="zongzhi-test", name="测试", base_url=self.base, write=True,
                            api_key_required_for_write=key_required)
        transport = HttpTransport(rate_limiter=Politeness(min_interval=0.0))
        return Open311Client(endpoint, transport,
                             jurisdiction_id=self.code if jurisdiction == "" else jurisdiction)

    def post(self, *, service_code: str = SERVICE, api_key: str | None = "",
             client: Open311Client | None = None, **fields: Any) -> dict[str, Any]:
        """Create a request the way a citizen app would; its first (only) answer."""
        fields = {"lat": LAT, "lng": LON, "description": "楼上漏水, 协商未果",
                  "first_name": FIRST, "last_name": LAST, "phone": PHONE_AS_TYPED,
                  "email": EMAIL, "device_id": "device-42", **fields}
        prepared = (client or self.civic()).create_request(
            service_code, dry_run=False, confirm="SEND",
            api_key=self.key if api_key == "" else api_key, **fields)
        answer = prepared.response
        assert isinstance(answer, list) and len(answer) == 1, answer
        return dict(answer[0])

    def case(self, number: str) -> Case:
        return self.app.get_case(Case.create_id(self.code, number))

    def index(self) -> None:
        """Catch the case index up, as the running projector would."""
        CaseIndex(self.tenants, self.code[:4]).catch_up()


ServeFactory = Callable[..., Server]


@pytest.fixture
def serve(tenants: Tenants, city_tree: dict[str, list[str]]) -> Iterator[ServeFactory]:
    """Start the Open311 app in uvicorn (options passed to ``open311_app``)."""
    started: list[tuple[uvicorn.Server, threading.Thread, Server]] = []

    def start(**options: Any) -> Server:
        clock = Clock()
        keys = Open311Keys(tenants)
        code = city_tree["village"][0]
        sent: list[bytes] = []
        app = open311_app(tenants, keys=keys, clock=clock, **options)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(
            recording(app, sent), host="127.0.0.1", port=port, log_level="warning",
            lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        handle = Server(f"http://127.0.0.1:{port}{PREFIX}", code,
                        keys.issue_key(code, "测试App"), keys, clock, tenants, sent)
        started.append((server, thread, handle))
        return handle

    yield start
    for server, thread, handle in started:
        server.should_exit = True
        thread.join(10)
        blob = b"\n".join(handle.sent)
        assert handle.sent, "no response was recorded"
        for secret in SECRETS:
            assert secret.encode() not in blob, f"a response carried {secret!r}"
            assert json.dumps(secret).strip('"').encode() not in blob


@pytest.fixture
def server(serve: ServeFactory) -> Server:
    return serve()


def open311_errors(response: requests.Response | httpx.Response) -> list[dict[str, Any]]:
    """The Open311 error list of a JSON or XML error response."""
    if response.headers["content-type"].startswith("text/xml"):
        errors = xmltodict.parse(response.content)["errors"]["error"]
        errors = errors if isinstance(errors, list) else [errors]
        return [{"code": int(e["code"]), "description": e["description"]} for e in errors]
    body = response.json()
    assert isinstance(body, list)
    return body


def refused(call: Callable[[], object]) -> tuple[int, list[dict[str, Any]]]:
    """The HTTP status and Open311 errors with which the server refused a client's call."""
    try:
        call()
    except requests.HTTPError as e:  # georeport
        assert e.response is not None
        return e.response.status_code, open311_errors(e.response)
    except HttpError as e:  # civicbot
        body = json.loads(e.body)
        assert isinstance(body, list)
        return e.status, body
    raise AssertionError("the server accepted the call")


def close_loop(app: CenterApp, case_id: Any, start: datetime) -> Case:
    t = start
    def at() -> datetime:
        nonlocal t
        t += timedelta(hours=1)
        return t
    app.triage_case(case_id, Severity.YELLOW, HandlingClass.SIMPLE, "dispatcher-1", at())
    app.dispatch_case(case_id, [Assignee(AssigneeKind.UNIT, "justice-office", lead=True)],
                      "dispatcher-1", at())
    app.accept_case(case_id, "justice-office", "officer-1", at())
    app.resolve_case(case_id, Outcome.MEDIATED, "调解成功", "officer-1", at())
    app.give_feedback(case_id, "已告知", "clerk-1", at())
    app.confirm_case(case_id, "party", at())
    return app.close_case(case_id, "clerk-1", at())


# -- services ---------------------------------------------------------------------

def test_the_services_are_the_case_categories_in_json_and_xml(server: Server) -> None:
    services = server.georeport().get_service_list()
    assert [s["service_code"] for s in services] == list(CATEGORIES)
    for s in services:
        c = CATEGORIES[s["service_code"]]
        assert s["service_name"] == c.zh
        assert s["group"] == DEPARTMENTS[c.department]
        assert s["type"] == "realtime" and s["metadata"] is True

    as_xml = server.georeport("xml").get_service_list()
    assert [s["service_code"] for s in as_xml] == list(CATEGORIES)
    assert as_xml[0]["service_name"] == services[0]["service_name"]
    assert as_xml[0]["metadata"] == "true" and as_xml[0]["type"] == "realtime"
    assert server.civic().list_services() == services  # the other client reads the same


def test_a_service_definition_in_json_and_xml(server: Server) -> None:
    definition = server.georeport().get_service_definition(SERVICE)
    assert definition["service_code"] == SERVICE
    attributes = {a["code"]: a for a in definition["attributes"]}
    assert list(attributes) == ["notice", "reporter_role", "occurred_at"]
    assert attributes["notice"]["variable"] is False and "110" in attributes["notice"][
        "description"]
    role = attributes["reporter_role"]
    assert role["datatype"] == "singlevaluelist" and role["required"] is False
    assert [v["key"] for v in role["values"]] == ["applicant", "other"]

    as_xml = server.georeport("xml").get_service_definition(SERVICE)
    assert as_xml["service_code"] == SERVICE
    xml_attributes = as_xml["attributes"]["attribute"]
    assert [a["code"] for a in xml_attributes] == list(attributes)
    assert [v["key"] for v in xml_attributes[1]["values"]["value"]] == ["applicant", "other"]
    assert xml_attributes[0]["variable"] == "false"

    status, errors = refused(lambda: server.georeport().get_service_definition("no-such"))
    assert status == 404 and errors[0]["code"] == 404
    assert "no-such" in errors[0]["description"]


# -- creating requests --------------------------------------------------------------

def test_a_posted_request_becomes_a_citizen_app_case_with_an_encrypted_party(
        server: Server, database_url: str) -> None:
    answer = server.post(attributes={"reporter_role": "applicant",
                                     "occurred_at": "2026-03-01T20:30:00+08:00"},
                         media_url="https://example.cn/photo.jpg")
    number = answer["service_request_id"]
    assert number.startswith(f"{server.code}-{server.clock.now:%Y%m%d}-")
    assert number in answer["service_notice"] and answer["account_id"] is None

    case = server.case(number)
    assert case.channel is Channel.CITIZEN_APP and case.category == SERVICE
    assert case.status is Status.RECEIVED and case.received_at == server.clock.now
    assert case.received_by == "open311:测试App"
    assert case.summary.splitlines() == [
        "楼上漏水, 协商未果", "发生时间：2026-03-01T20:30:00+08:00",
        "附件：https://example.cn/photo.jpg"]
    [party] = case.parties
    assert party.name.text == NAME and party.phone is not None
    assert party.phone.text == PHONE  # +86 and separators dropped: one form to match on
    assert party.role == PartyRole.APPLICANT.value
    assert (case.place.division, case.place.lat, case.place.lon) == (server.code, LAT, LON)
    assert case.match_keys  # the phone's keyed hash, for duplicate detection

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            f"SELECT state FROM {log_group_schema(server.code[:4])}.events WHERE tenant = %s",
            (server.code,)).fetchall()
    blob = b"".join(bytes(r[0]) for r in rows)
    assert b"citizen-app" in blob  # readable JSON: the check can see text
    for secret in (NAME, PHONE, PHONE_AS_TYPED):
        assert secret.encode() not in blob
        assert json.dumps(secret).encode() not in blob


def test_an_address_alone_is_a_place_and_a_witness_may_stay_anonymous(server: Server) -> None:
    number = server.post(lat=None, lng=None, address_string=ADDRESS, first_name=None,
                         last_name=None, phone=None, email=None,
                         attributes={"reporter_role": "other"})["service_request_id"]
    case = server.case(number)
    assert (case.place.division, case.place.address) == (server.code, ADDRESS)
    assert case.place.lat is None and case.place.lon is None
    [party] = case.parties
    assert party.name.text == "匿名" and party.phone is None
    assert party.role == PartyRole.OTHER.value
    assert case.match_keys == []  # nothing to match an anonymous report on


def test_the_same_phone_and_service_nearby_is_flagged_as_a_suspected_duplicate(
        server: Server) -> None:
    first = server.case(server.post(phone=PHONE)["service_request_id"])
    server.index()
    server.clock.now += timedelta(days=2)

    answer = server.post(lat=LAT + 150 / M_PER_DEG, description="楼上又漏水了")

    second = server.case(answer["service_request_id"])
    assert second.id != first.id
    assert second.suspected_duplicates == [first.id]
    assert "可能已有人反映" in answer["service_notice"]
    assert first.case_number not in answer["service_notice"]  # never another case's number
    status = server.georeport().get_service_request(second.case_number)
    assert status["status"] == "open" and "可能已有人反映" in status["service_notice"]

    elsewhere = server.post(service_code="consumer")  # another service: a matter of its own
    assert server.case(elsewhere["service_request_id"]).suspected_duplicates == []


def test_a_repeat_complaint_reopens_the_closed_case_and_answers_its_number(
        server: Server) -> None:
    number = server.post()["service_request_id"]
    case = server.case(number)
    close_loop(server.app, case.id, server.clock.now)
    server.index()
    assert server.georeport().get_service_request(number)["status"] == "closed"
    server.clock.now += timedelta(days=10)

    answer = server.post(description="调解后又漏水了")

    assert answer["service_request_id"] == number
    assert "重复投诉" in answer["service_notice"]
    reopened = server.case(number)
    assert reopened.status is Status.TRIAGED and reopened.repeat_count == 1
    status = server.georeport("xml").get_service_request(number)
    assert status["status"] == "open" and "重复投诉" in status["status_notes"]


def test_xml_is_answered_to_a_post_as_well(server: Server) -> None:
    response = httpx.post(f"{server.base}/requests.xml", data={
        "jurisdiction_id": server.code, "api_key": server.key, "service_code": SERVICE,
        "address_string": ADDRESS, "description": "路灯坏了", "phone": PHONE})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    assert response.text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    request = xmltodict.parse(response.content)["service_requests"]["request"]
    assert server.case(request["service_request_id"]).channel is Channel.CITIZEN_APP


# -- reading requests -----------------------------------------------------------------

def test_a_request_status_by_id_in_json_and_xml_shows_no_personal_field(
        server: Server, tenants: Tenants) -> None:
    number = server.post()["service_request_id"]
    other = server.post(service_code="consumer", lat=None, lng=None,
                        address_string=ADDRESS)["service_request_id"]
    center = tenants.registry.get(server.code).name + "综治中心"

    status = server.georeport().get_service_request(number)
    assert set(status) == REQUEST_FIELDS  # no description, address, lat/long or media
    assert status["service_request_id"] == number and status["status"] == "open"
    assert status["status_notes"] == "已受理，等待分流"
    assert (status["service_code"], status["service_name"]) == (SERVICE, "邻里纠纷")
    assert status["agency_responsible"] == center
    assert datetime.fromisoformat(status["requested_datetime"]) == server.clock.now
    assert status["expected_datetime"] is None  # not triaged yet: no deadline

    as_xml = server.georeport("xml").get_service_request(number)
    assert as_xml["service_request_id"] == number and as_xml["agency_responsible"] == center
    assert set(as_xml) == REQUEST_FIELDS

    both = server.georeport().get_service_requests(service_request_id=f"{number},{other}")
    assert [r["service_request_id"] for r in both] == [number, other]
    both_xml = server.georeport("xml").get_service_requests(
        service_request_id=f"{number},{other}")
    assert [r["service_request_id"] for r in both_xml] == [number, other]

    server.app.triage_case(server.case(number).id, Severity.BLUE, HandlingClass.SIMPLE,
                           "dispatcher-1", server.clock.now + timedelta(minutes=5))
    triaged = server.georeport().get_service_request(number)
    assert triaged["status_notes"] == "已分流，等待派单"
    assert triaged["expected_datetime"] is not None

    status_code, errors = refused(
        lambda: server.georeport().get_service_request(f"{server.code}-20200101-999999"))
    assert status_code == 404 and errors[0]["code"] == 404


def test_requests_are_searched_by_status_service_and_dates_on_the_case_index(
        server: Server) -> None:
    open_one = server.post()["service_request_id"]
    closed_one = server.post(service_code="consumer", phone="13800001111")["service_request_id"]
    close_loop(server.app, server.case(closed_one).id, server.clock.now)
    client = server.georeport()
    assert client.get_service_requests() == []  # the index has not caught up yet
    server.index()

    listed = {r["service_request_id"]: r["status"] for r in client.get_service_requests()}
    assert listed == {open_one: "open", closed_one: "closed"}
    assert [r["service_request_id"] for r in client.get_service_requests(status="open")] == [
        open_one]
    assert [r["service_request_id"] for r in client.get_service_requests(
        service_code="consumer")] == [closed_one]
    day = server.clock.now.date()
    assert client.get_service_requests(start_date=f"{day + timedelta(days=1)}T00:00:00+08:00",
                                       end_date=f"{day + timedelta(days=2)}T00:00:00+08:00"
                                       ) == []
    status, errors = refused(lambda: client.get_service_requests(
        start_date="2025-01-01T00:00:00Z", end_date="2025-12-31T00:00:00Z"))
    assert status == 400 and "90 days" in errors[0]["description"]


# -- refusals -------------------------------------------------------------------------

def test_creating_a_request_needs_a_live_key_of_that_jurisdiction(
        server: Server, city_tree: dict[str, list[str]]) -> None:
    keyless = server.civic(key_required=False)  # civicbot itself refuses to send without one
    neighbour = city_tree["village"][1]
    other_key = server.keys.issue_key(neighbour, "邻村App")
    revoked = server.keys.issue_key(server.code, "旧App")
    assert server.keys.revoke_key(revoked) is not None

    cases: list[tuple[str | None, str]] = [
        (None, "api_key is required"),
        ("zz311_not-a-key-at-all", "invalid api_key"),
        (other_key, f"not valid for jurisdiction_id {server.code}"),
        (revoked, "was revoked"),
    ]
    for key, says in cases:
        status, errors = refused(lambda key=key: server.post(api_key=key, client=keyless))
        assert status == 403, key
        assert errors[0]["code"] == 403 and says in errors[0]["description"], errors
    assert server.app.store.max_tenant_position() == 0  # nothing was recorded

    assert server.post(api_key=other_key, client=server.civic(neighbour))["service_request_id"]
    by_id = server.keys.issue_key(server.code, "按编号吊销")
    key_id = next(k.key_id for k in server.keys.list_keys(server.code) if k.label == "按编号吊销")
    assert server.keys.revoke_key(key_id) is not None  # as `zongzhi open311 revoke-key ID`
    assert refused(lambda: server.post(api_key=by_id))[0] == 403


def test_a_wrong_jurisdiction_is_refused_with_an_open311_error(server: Server) -> None:
    for jurisdiction, status, says in [
        ("659999", 404, "no center is served here under jurisdiction_id 659999"),
        ("bogus", 400, "not a division code"),
        (None, 400, "jurisdiction_id is required"),
    ]:
        for fmt in ("json", "xml"):
            got, errors = refused(
                lambda j=jurisdiction, f=fmt: server.georeport(f, j).get_service_list())
            assert got == status and errors[0]["code"] == status
            assert says in errors[0]["description"]
        got, errors = refused(lambda j=jurisdiction: server.post(client=server.civic(j)))
        assert (got, errors[0]["code"]) == (status, status)
    assert server.georeport(jurisdiction=server.code).get_service_list()


def test_an_unknown_service_or_a_missing_location_is_a_bad_request(server: Server) -> None:
    status, errors = refused(lambda: server.post(service_code="no-such-service"))
    assert status == 400 and "no-such-service" in errors[0]["description"]
    nowhere = httpx.post(f"{server.base}/requests.json", data={  # civicbot checks this itself
        "jurisdiction_id": server.code, "api_key": server.key, "service_code": SERVICE})
    assert nowhere.status_code == 400
    assert "location is required" in open311_errors(nowhere)[0]["description"]
    status, errors = refused(lambda: server.post(phone="call me maybe"))
    assert status == 400 and "phone" in errors[0]["description"]
    status, errors = refused(lambda: server.post(attributes={"reporter_role": "boss"}))
    assert status == 400 and "reporter_role" in errors[0]["description"]
    assert server.app.store.max_tenant_position() == 0


def test_each_key_is_rate_limited_with_retry_after(serve: ServeFactory) -> None:
    server = serve(rate_per_minute=1, burst=2)
    server.post()
    server.post(service_code="consumer")

    status, errors = refused(lambda: server.post(service_code="fight"))
    assert status == 429 and "1 requests a minute" in errors[0]["description"]
    raw = httpx.post(f"{server.base}/requests.json", data={
        "jurisdiction_id": server.code, "api_key": server.key, "service_code": SERVICE,
        "address_string": "某路1号"})
    assert raw.status_code == 429 and 1 <= int(raw.headers["retry-after"]) <= 60
    assert open311_errors(raw)[0]["code"] == 429

    other = server.keys.issue_key(server.code, "另一个App")  # the bucket is the key's
    assert server.post(api_key=other)["service_request_id"]
    assert server.georeport().get_service_list()  # reads need no key and are not limited


def test_an_unserved_format_is_an_open311_404(server: Server) -> None:
    response = httpx.get(f"{server.base}/services.csv", params={"jurisdiction_id": server.code})
    assert response.status_code == 404 and open311_errors(response)[0]["code"] == 404


# -- the command line -----------------------------------------------------------------

def test_the_cli_issues_lists_and_revokes_keys(
        tenants: Tenants, city_tree: dict[str, list[str]], database_url: str,
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from zongzhi.cli import main
    from zongzhi.servers import DATABASE_URL

    # The CLI closes its Tenants, and with it the pool of its database URL: give it
    # the same database under another URL so the session's pool stays open.
    monkeypatch.setenv(DATABASE_URL, f"{database_url} application_name=zongzhi-cli")
    monkeypatch.setenv("ZONGZHI_DATA_DIR", str(tmp_path / "data"))
    code = city_tree["township"][0]
    keys = Open311Keys(tenants)

    assert main(["open311", "issue-key", code, "--label", "市民通"]) == 0
    key = capsys.readouterr().out.strip()
    found = keys.lookup(key)
    assert found is not None and (found.tenant, found.label) == (code, "市民通")
    assert main(["open311", "list-keys", code]) == 0
    assert found.key_id in capsys.readouterr().out

    assert main(["open311", "revoke-key", key]) == 0
    assert f"revoked Open311 key {found.key_id}" in capsys.readouterr().out
    revoked = keys.lookup(key)
    assert revoked is not None and revoked.revoked_at is not None
    assert main(["open311", "revoke-key", key]) == 2
    assert "no live Open311 key" in capsys.readouterr().err
    assert main(["open311", "issue-key", "659999", "--label", "x"]) == 2
    assert "no center is registered" in capsys.readouterr().err
    assert main(["open311", "issue-key", code]) == 2
    assert "--label" in capsys.readouterr().err
