"""Signing in and the inbox, in headless Chromium against the served client."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser, expect
from web_support import SCREENSHOTS, Issue, field, graphql, open_page

from api.auth import Role, TokenService

pytestmark = [pytest.mark.slow, pytest.mark.browser]

RECEIVE = """mutation($c: String!, $s: String!) { receiveCase(center: $c, channel: WINDOW,
  category: "neighbour-dispute", summary: $s, parties: [{name: "王小明", phone: "13912345678"}],
  place: {address: "人民路1号"}) { id number } }"""


def test_a_pasted_token_signs_in_and_the_header_shows_center_tier_and_subtree(
        browser: Browser, web_server: str, web_city: dict[str, list[str]], issue: Issue,
        unique: str) -> None:
    # given a township clerk's token and a matter waiting in the township's inbox
    township = web_city["township"][0]
    token = issue(township, Role.CLERK)
    case = graphql(web_server, token, RECEIVE, c=township, s=f"楼道堆物纠纷 {unique}")
    # when the clerk pastes the token on the sign-in page
    page = open_page(browser, web_server, None, "/")
    expect(page).to_have_url(re.compile(r"/signin"))
    field(page, "token").fill(token)
    page.get_by_test_id("token-submit").click()
    # then the header names the township, its tier and the subtree in view
    expect(page.get_by_test_id("center-name")).to_have_text("测试镇1-1")
    expect(page.get_by_test_id("center-tier")).to_have_text("乡镇(街道)")
    expect(page.get_by_test_id("subtree")).to_contain_text(township)
    # and the inbox lists the waiting matter, linking to its detail
    row = page.locator(".case-link", has_text=case["receiveCase"]["number"])
    expect(row).to_be_visible()
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "township-inbox.png"))
    page.context.close()


def test_a_bad_token_is_refused_with_a_translated_message_and_nothing_shown(
        browser: Browser, web_server: str) -> None:
    # given the sign-in page
    page = open_page(browser, web_server, None, "/signin")
    # when a tampered token is pasted
    field(page, "token").fill("eyJhbGciOiJIUzI1NiJ9.e30.bad")
    page.get_by_test_id("token-submit").click()
    # then the TOKEN_INVALID message is shown in Chinese and the user stays signed out
    expect(page.get_by_test_id("signin-error")).to_contain_text("身份令牌无效")
    expect(page).to_have_url(re.compile(r"/signin"))
    expect(page.get_by_test_id("center-name")).to_have_count(0)
    page.context.close()


def test_an_expired_session_returns_to_sign_in_saying_why_and_back_to_the_page_after(
        browser: Browser, web_server: str, web_city: dict[str, list[str]], issue: Issue,
        web_tokens: TokenService) -> None:
    township = web_city["township"][0]
    expired = web_tokens.issue(township, [Role.CLERK], ttl=timedelta(minutes=5),
                               now=datetime.now(UTC) - timedelta(hours=1))
    # given a tab whose stored token has expired, opening a deep link
    page = open_page(browser, web_server, expired, "/deadlines")
    # then the sign-in page says the session expired, in Chinese
    expect(page).to_have_url(re.compile(r"/signin\?next=(%2F|/)deadlines"))
    expect(page.get_by_test_id("session-ended")).to_contain_text("登录已过期")
    # when a valid token is given, then the user lands on the page they asked for
    field(page, "token").fill(issue(township, Role.CLERK))
    page.get_by_test_id("token-submit").click()
    expect(page).to_have_url(re.compile(r"/deadlines$"))
    expect(page.get_by_test_id("session-ended")).to_have_count(0)
    page.context.close()
