"""Photos of a case on real PostgreSQL: uploaded over HTTP, stored encrypted
with the center's data key beside the events, recorded on the case, served only
to those who may read the case, and unreadable once the center's key is shredded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import cv2
import numpy as np
import pytest
from api_support import bearer, dispatched_case, staff, token_service
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import Role, TokenService
from domain import Assignee, AssigneeKind, Case
from domain.case import MAX_PHOTO_BYTES, MAX_PHOTOS
from tenants.attachments import stored_photos
from tenants.service import Tenants

CST = timezone(timedelta(hours=8))


def image(kind: str = ".jpg", seed: int = 1) -> bytes:
    """A real, small photo (random pixels, so each seed differs)."""
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(kind, pixels)
    assert ok
    return bytes(encoded.tobytes())


class Api:
    def __init__(self, tenants: Tenants) -> None:
        self.tenants = tenants
        self.tokens: TokenService = token_service(tenants)
        self.client = TestClient(create_app(tenants, tokens=self.tokens, web=None,
                                            open311=False))

    def upload(self, case_id: UUID, body: bytes, role: Role, tenant: str) -> Any:
        return self.client.post(f"/api/cases/{case_id}/photos", content=body, headers={
            "Authorization": bearer(self.tokens, staff(role, tenant)),
            "Content-Type": "application/octet-stream"})

    def download(self, url: str, role: Role, tenant: str) -> Any:
        return self.client.get(url, headers={
            "Authorization": bearer(self.tokens, staff(role, tenant))})

    def photos(self, case_id: UUID, role: Role, tenant: str) -> dict[str, Any]:
        response = self.client.post("/graphql", json={
            "query": "query($id: ID!) { case(id: $id) { photos { id contentType size sha256 "
                     "at by url } timeline { kind } } }", "variables": {"id": str(case_id)}},
            headers={"Authorization": bearer(self.tokens, staff(role, tenant))})
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def api(tenants: Tenants) -> Iterator[Api]:
    yield Api(tenants)


@pytest.fixture
def village(city_tree: dict[str, list[str]]) -> str:
    return city_tree["village"][0]


@pytest.fixture
def case(tenants: Tenants, village: str) -> Case:
    return dispatched_case(tenants, village, datetime.now(CST) - timedelta(hours=1))


def stored(tenants: Tenants, case: Case) -> list[bytes]:
    return stored_photos(tenants.center(case.tenant), case.id)


def test_an_uploaded_photo_is_recorded_on_the_case_and_served_back_unchanged(
        api: Api, tenants: Tenants, case: Case, village: str) -> None:
    # given a village clerk's case and a JPEG
    photo = image(".jpg")
    # when the clerk uploads it
    response = api.upload(case.id, photo, Role.CLERK, village)
    # then it is recorded on the case, listed by GraphQL and served back byte for byte
    assert response.status_code == 201, response.text
    shown = response.json()
    assert shown["contentType"] == "image/jpeg" and shown["size"] == len(photo)
    body = api.photos(case.id, Role.DIRECTOR, village)
    assert body["data"]["case"]["photos"] == [
        {k: shown[k] for k in ("id", "contentType", "size", "sha256", "at", "by", "url")}]
    assert body["data"]["case"]["timeline"][-1]["kind"] == "PhotoAttached"
    served = api.download(shown["url"], Role.DISPATCHER, village)
    assert served.status_code == 200
    assert served.content == photo and served.headers["content-type"] == "image/jpeg"
    reloaded = tenants.center(village).get_case(case.id)
    assert [str(p.attachment_id) for p in reloaded.photos] == [shown["id"]]


def test_a_stored_photo_is_ciphertext_without_the_images_bytes(
        api: Api, tenants: Tenants, case: Case, village: str) -> None:
    # given two photos uploaded, a JPEG and a PNG
    jpeg, png = image(".jpg", 2), image(".png", 3)
    for body in (jpeg, png):
        assert api.upload(case.id, body, Role.CLERK, village).status_code == 201
    # when the database's rows are read directly
    rows = stored(tenants, case)
    # then none holds an image's magic bytes or any run of the image itself
    assert len(rows) == 2
    for row, original in zip(rows, (jpeg, png), strict=True):
        assert b"\xff\xd8\xff" not in row and b"PNG\r\n" not in row
        assert original[100:164] not in row


@pytest.mark.parametrize(("body", "status", "rule"), [
    (b"GIF89a" + bytes(200), 400, "JPEG or PNG"),
    (b"%PDF-1.7 not a photo at all", 400, "JPEG or PNG"),
    (b"", 400, "must not be empty"),
    (b"\xff\xd8\xff" + bytes(MAX_PHOTO_BYTES), 413, "at most 5 MB"),
])
def test_a_photo_that_is_not_a_jpeg_or_png_within_the_cap_is_refused_and_nothing_stored(
        api: Api, tenants: Tenants, case: Case, village: str, body: bytes, status: int,
        rule: str) -> None:
    # when a clerk uploads something else (whatever the name or declared type)
    response = api.upload(case.id, body, Role.CLERK, village)
    # then it is refused naming the rule, and neither a row nor an event is written
    assert response.status_code == status
    assert response.json()["code"] == "VALIDATION" and rule in response.json()["message"]
    assert stored(tenants, case) == []
    assert tenants.center(village).get_case(case.id).version == case.version


def test_a_case_holds_at_most_its_cap_of_photos(
        api: Api, tenants: Tenants, case: Case, village: str) -> None:
    # given a case holding as many photos as allowed
    for seed in range(MAX_PHOTOS):
        assert api.upload(case.id, image(".png", seed), Role.CLERK, village).status_code == 201
    # when one more is uploaded
    response = api.upload(case.id, image(".jpg", 99), Role.CLERK, village)
    # then it is refused and the stored photos stay those recorded
    assert response.status_code == 400
    assert f"at most {MAX_PHOTOS} photos" in response.json()["message"]
    assert len(stored(tenants, case)) == MAX_PHOTOS
    assert len(tenants.center(village).get_case(case.id).photos) == MAX_PHOTOS


def test_another_centers_staff_may_neither_upload_nor_download(
        api: Api, tenants: Tenants, case: Case, village: str,
        city_tree: dict[str, list[str]]) -> None:
    # given a photo on a village's case
    url = api.upload(case.id, image(), Role.CLERK, village).json()["url"]
    sibling = city_tree["village"][1]
    # when a sibling village's clerk tries either way
    upload = api.upload(case.id, image(seed=5), Role.CLERK, sibling)
    download = api.download(url, Role.CLERK, sibling)
    # then both are FORBIDDEN, and nothing more is stored
    assert (upload.status_code, upload.json()["code"]) == (403, "FORBIDDEN")
    assert (download.status_code, download.json()["code"]) == (403, "FORBIDDEN")
    assert "may not" in download.json()["message"]
    assert len(stored(tenants, case)) == 1
    # and an inspector of the city above (case:read on the subtree) sees it
    assert api.download(url, Role.INSPECTOR, city_tree["city"][0]).status_code == 200


def test_a_grid_worker_uploads_only_to_a_case_assigned_to_it(
        api: Api, tenants: Tenants, village: str) -> None:
    # given a case dispatched to grid worker gw-1 and one dispatched only to a unit
    at = datetime.now(CST) - timedelta(hours=1)
    mine = dispatched_case(tenants, village, at)
    other = dispatched_case(tenants, village, at, summary="另一件事",
                            assignees=[Assignee(AssigneeKind.UNIT, "police", lead=True)])
    # when the grid worker uploads to each
    assert api.upload(mine.id, image(), Role.GRID_WORKER, village).status_code == 201
    refused = api.upload(other.id, image(), Role.GRID_WORKER, village)
    # then only the assigned case takes it
    assert refused.status_code == 403 and refused.json()["code"] == "FORBIDDEN"
    assert stored(tenants, other) == []


def test_a_shredded_centers_photos_can_no_longer_be_read_or_added(
        api: Api, tenants: Tenants, case: Case, village: str) -> None:
    # given a photo on a village's case
    url = api.upload(case.id, image(), Role.CLERK, village).json()["url"]
    assert api.download(url, Role.CLERK, village).status_code == 200
    # when the village's data key is shredded
    tenants.shred_key(village, "test: crypto-shredding", "admin", datetime.now(CST))
    # then the photo is unreadable, said so, and no new photo can be added
    gone = api.download(url, Role.CLERK, village)
    assert gone.status_code == 409 and "shredded" in gone.json()["message"]
    refused = api.upload(case.id, image(seed=7), Role.CLERK, village)
    assert refused.status_code == 409 and "shredded" in refused.json()["message"]
    assert len(stored(tenants, case)) == 1


def test_a_missing_token_a_bad_id_and_an_unknown_photo_are_told_apart(
        api: Api, case: Case, village: str) -> None:
    no_token = api.client.post(f"/api/cases/{case.id}/photos", content=image())
    assert (no_token.status_code, no_token.json()["code"]) == (401, "UNAUTHENTICATED")
    bad = api.upload("not-a-uuid", image(), Role.CLERK, village)  # type: ignore[arg-type]
    assert (bad.status_code, bad.json()["code"]) == (400, "VALIDATION")
    unknown = api.download(f"/api/cases/{case.id}/photos/{UUID(int=1)}", Role.CLERK, village)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND")


def test_the_case_lists_follow_a_photo_attached(
        api: Api, tenants: Tenants, case: Case, village: str) -> None:
    from projections.views import CaseView

    # given a photo attached to a case
    assert api.upload(case.id, image(seed=8), Role.CLERK, village).status_code == 201
    # when the case view catches up with the log
    CaseView(tenants, village[:4]).catch_up()
    # then the center's list shows the case at its new version
    response = api.client.post("/graphql", json={
        "query": "query($c: String!) { cases(scope: $c) { nodes { id version } } }",
        "variables": {"c": village}},
        headers={"Authorization": bearer(api.tokens, staff(Role.CLERK, village))}).json()
    nodes = {n["id"]: n["version"] for n in response["data"]["cases"]["nodes"]}
    assert nodes[str(case.id)] == case.version + 1
