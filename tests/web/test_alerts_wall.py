"""The alerts wall: a camera's alert arrives live over the subscription, and is
dismissed as false from the wall."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

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
from web_support import SCREENSHOTS, WEB_CITY, Issue, eventually, field, graphql, open_page

from api.auth import Role
from tenants.service import Tenants

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_an_alert_arrives_on_the_walls_live_and_only_its_center_dismisses_it(
        browser: Browser, web_server: str, nats_url: str, tenants: Tenants,
        web_city: dict[str, list[str]], issue: Issue) -> None:
    township, village = web_city["township"][1], web_city["village"][2]
    camera = register(tenants, village, cam("wall"), [crowd_zone(seconds=3, people=3)])
    director_v = issue(village, Role.DIRECTOR, name="村主任")
    # given the village's and the township's alerts walls, open before anything is raised
    walls = [open_page(browser, web_server, director_v, "/alerts"),
             open_page(browser, web_server, issue(township, Role.DIRECTOR, name="镇主任"),
                       "/alerts")]
    for wall in walls:
        expect(wall.get_by_test_id("no-alerts")).to_be_visible()
    walls[0].wait_for_timeout(1000)  # the subscriptions start after the first list
    # when the village's camera sees a crowd for longer than its rule allows
    with service_running(tenants, nats_url, WEB_CITY):
        start = datetime.now(CST) - timedelta(seconds=30)
        batch = frames(camera.ref, village, crowd(8), start)
        # (the sync Playwright API holds this thread's event loop: publish from another)
        sender = threading.Thread(target=publish, args=(nats_url, batch))
        sender.start()
        sender.join(30)
        # then the alert appears on both walls without a reload
        for wall in walls:
            card = wall.locator("[data-test=alert]")
            expect(card).to_have_count(1, timeout=30_000)
            expect(card).to_contain_text(camera.ref)
        walls[1].screenshot(path=str(SCREENSHOTS / "township-alerts-wall.png"))
        # and only the village, whose camera it is, is offered its disposition
        expect(walls[1].get_by_test_id("dismiss")).to_have_count(0)
        page = walls[0]
        card = page.locator("[data-test=alert]")
        alert_id = card.get_attribute("data-alert")
        # when the village director dismisses it as a false alarm, giving the reason
        card.get_by_test_id("dismiss").click()
        field(page, "field-reason").fill("广场演出散场, 非聚集事件")
        page.get_by_test_id("dialog-ok").click()
        # then it leaves the wall and is recorded as dismissed with the reason
        expect(page.locator("[data-test=alert]")).to_have_count(0)
        assert page.locator(".api-error").count() == 0, page.locator(".api-error").all_inner_texts()

    def dismissed() -> dict[str, str] | None:
        nodes = graphql(web_server, director_v, """query($c: String!) { alerts(scope: $c,
            statuses: [DISMISSED]) { nodes { id reason } } }""", c=village)["alerts"]["nodes"]
        return next((n for n in nodes if n["id"] == alert_id), None)
    assert eventually(dismissed)["reason"] == "广场演出散场, 非聚集事件"
    for wall in walls:
        wall.context.close()
