"""Photos and frames in the browser: the intake form uploads a photo with the
matter, and the alerts wall draws the frame that fired an alert with its boxes
and zone (a real ``zongzhi serve``, NATS and the alert service)."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta

import cv2
import numpy as np
import pytest
from camera_alerts_support import (
    CST,
    cam,
    crowd,
    crowd_zone,
    frames,
    publish,
    register,
    service_running,
)
from playwright.sync_api import Browser, expect
from web_support import SCREENSHOTS, WEB_CITY, Issue, choose, field, graphql, open_page

from api.auth import Role
from tenants.service import Tenants
from vision.messages import FrameDetections
from vision.worker import CameraStats, VisionWorker

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", pixels)
    assert ok
    return bytes(encoded.tobytes())


def in_thread(target: object, *args: object) -> None:
    """Run blocking NATS work beside the sync Playwright API (it holds this thread's loop)."""
    worker = threading.Thread(target=target, args=args)  # type: ignore[arg-type]
    worker.start()
    worker.join(60)


def keep_frames(nats_url: str, batch: list[FrameDetections], image: np.ndarray) -> None:
    async def run() -> None:
        worker = VisionWorker([], nats_url=nats_url, triton_url="127.0.0.1:1")
        await worker.start()
        try:
            stats = CameraStats(batch[0].camera)
            for message in batch:
                await worker.keep_frame(message, image, stats)
        finally:
            await worker.stop()
    asyncio.run(run())


def test_the_intake_form_uploads_a_photo_with_the_matter(
        browser: Browser, web_server: str, web_city: dict[str, list[str]], issue: Issue,
        unique: str) -> None:
    village = web_city["village"][7]
    clerk = issue(village, Role.CLERK, name="村受理员")
    page = open_page(browser, web_server, clerk, "/intake")
    # given a filled intake form with a photo picked (named .png, but a JPEG inside)
    choose(page, "intake-category", "邻里纠纷")
    field(page, "intake-summary").fill(f"楼道堆放杂物堵塞通道 {unique}")
    field(page, "party-name").fill("赵六")
    field(page, "party-phone").fill("13800002222")
    field(page, "intake-place").fill("3号楼楼道")
    photo = jpeg(11)
    page.get_by_test_id("intake-photos").set_input_files(
        files=[{"name": "scene.png", "mimeType": "image/png", "buffer": photo}])
    expect(page.get_by_test_id("picked-photo")).to_have_count(1)
    # when the clerk registers the matter
    page.get_by_test_id("intake-submit").click()
    expect(page.get_by_test_id("received-number")).to_be_visible()
    # then the new case shows the photo, served back by the API
    thumb = page.get_by_test_id("intake-result").get_by_test_id("photo-thumb")
    expect(thumb).to_have_count(1, timeout=15_000)
    image = thumb.locator("img")
    page.wait_for_function("img => img.complete && img.naturalWidth === 160",
                           arg=image.element_handle())
    expect(page.get_by_test_id("picked-photo")).to_have_count(0)
    assert page.locator(".api-error").count() == 0, page.locator(".api-error").all_inner_texts()
    case_id = (page.get_by_test_id("received-number").get_attribute("href") or "").rsplit(
        "/", 1)[-1]
    shown = graphql(web_server, clerk, "query($id: ID!) { case(id: $id) { photos { size "
                    "contentType } } }", id=case_id)["case"]["photos"]
    assert shown == [{"size": len(photo), "contentType": "image/jpeg"}]
    page.screenshot(path=str(SCREENSHOTS / "village-intake-photo.png"))
    # and the case page shows it and takes another; a PDF is refused with the rule
    page.get_by_test_id("received-number").click()
    photos = page.get_by_test_id("case-photos")
    expect(photos.get_by_test_id("photo-thumb")).to_have_count(1, timeout=15_000)
    photos.get_by_test_id("photo-upload").set_input_files(
        files=[{"name": "more.jpg", "mimeType": "image/jpeg", "buffer": jpeg(12)}])
    expect(photos.get_by_test_id("photo-thumb")).to_have_count(2, timeout=15_000)
    photos.get_by_test_id("photo-upload").set_input_files(
        files=[{"name": "fake.jpg", "mimeType": "image/jpeg", "buffer": b"%PDF-1.7 no"}])
    expect(page.locator(".api-error")).to_contain_text("JPEG or PNG")
    expect(photos.get_by_test_id("photo-thumb")).to_have_count(2)
    page.context.close()


def test_the_alerts_wall_draws_the_frame_with_its_boxes_and_zone(
        browser: Browser, web_server: str, nats_url: str, tenants: Tenants,
        web_city: dict[str, list[str]], issue: Issue) -> None:
    village = web_city["village"][7]
    camera = register(tenants, village, cam("wall-frame"), [crowd_zone(seconds=3, people=3)])
    # given a village camera whose crowd's frames the worker kept, raising an alert
    start = datetime.now(CST) - timedelta(seconds=30)
    batch = frames(camera.ref, village, crowd(6, size=4), start)
    picture = np.random.default_rng(5).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    in_thread(keep_frames, nats_url, batch, picture)
    with service_running(tenants, nats_url, WEB_CITY) as service:
        in_thread(publish, nats_url, batch)
        deadline = datetime.now() + timedelta(seconds=30)
        while service.stats["frames"] < len(batch) and datetime.now() < deadline:
            threading.Event().wait(0.2)
    # when the village director opens the alerts wall
    page = open_page(browser, web_server, issue(village, Role.DIRECTOR, name="村主任"),
                     "/alerts")
    card = page.locator(f"[data-test=alert]:has-text('{camera.ref}')")
    expect(card).to_have_count(1, timeout=30_000)
    # then the card shows the frame, one box per person detected, and the zone
    frame = card.get_by_test_id("alert-frame")
    expect(frame.get_by_test_id("detection-box")).to_have_count(4, timeout=15_000)
    expect(frame.get_by_test_id("zone-outline")).to_have_count(1)
    image = frame.get_by_test_id("alert-frame-image")
    expect(image).to_be_visible(timeout=15_000)
    page.wait_for_function("img => img.complete && img.naturalWidth === 640",
                           arg=image.element_handle())
    # the boxes sit where the model put them (normalised box x1 of the first person)
    first = frame.get_by_test_id("detection-box").first.locator("rect")
    assert abs(float(first.get_attribute("x") or "nan") - batch[-1].detections[0].box[0]) < 1e-6
    page.screenshot(path=str(SCREENSHOTS / "village-alert-frame.png"))
    page.context.close()
