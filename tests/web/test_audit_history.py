"""The auditor's history and "as of" in the browser: a case's events with who and
when, and the case exactly as it stood at a past instant the auditor picks."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser, expect
from web_support import SCREENSHOTS, Issue, choose, field, graphql, open_page

from api.auth import Role

pytestmark = [pytest.mark.slow, pytest.mark.browser]

RECEIVE = """mutation($c: String!, $s: String!) { receiveCase(center: $c, channel: WINDOW,
  category: "neighbour-dispute", summary: $s, parties: [{name: "钱七", phone: "13600002222"}],
  place: {address: "和平路3号"}) { id number status } }"""
TRIAGE = """mutation($id: ID!) { triageCase(caseId: $id, severity: YELLOW, handling: SIMPLE)
  { status } }"""
CENTER_AS_OF = """query($code: String!, $at: DateTime!) { centerAsOf(code: $code, at: $at)
  { cases open } }"""


def test_the_auditor_sees_a_cases_history_and_its_state_as_of_a_past_instant(
        browser: Browser, web_server: str, web_city: dict[str, list[str]], issue: Issue,
        unique: str) -> None:
    township = web_city["township"][2]
    staff = issue(township, Role.DISPATCHER, Role.CLERK)
    # given a case received, then (a little later) triaged
    case = graphql(web_server, staff, RECEIVE, c=township,
                   s=f"宅基地边界纠纷 {unique}")["receiveCase"]
    time.sleep(1.2)
    received_then = datetime.now(UTC)
    time.sleep(1.2)
    assert graphql(web_server, staff, TRIAGE, id=case["id"])["triageCase"]["status"] == \
        "TRIAGED"
    # when a provincial auditor opens the case's history on the audit page
    page = open_page(browser, web_server, issue(township[:2], Role.AUDITOR), "/audit")
    page.get_by_role("tab", name="历史与时点状态").click()
    field(page, "history-case").fill(case["id"])
    page.get_by_test_id("history-load").click()
    # then both events are listed in order, translated, with who did them
    table = page.get_by_test_id("history-table")
    expect(table.locator(".event")).to_have_text(["受理", "研判"])
    expect(table).not_to_contain_text("13600002222")
    # when the auditor picks an instant between the two events (in the browser's zone)
    offset = page.evaluate("new Date().getTimezoneOffset()")
    local = (received_then - timedelta(minutes=offset)).strftime("%Y-%m-%d %H:%M:%S")
    picker = field(page, "as-of-at")
    picker.fill(local)
    picker.press("Enter")
    page.get_by_test_id("as-of-load").click()
    # then the case is shown as it stood then: received, not yet triaged
    state = page.get_by_test_id("as-of-case")
    expect(state).to_contain_text(case["number"])
    expect(page.get_by_test_id("as-of-status")).to_have_text("已受理")
    expect(state).not_to_contain_text("13600002222")  # parties only masked
    expect(state).to_contain_text("136****2222")
    # and "state then" on the triage's row shows it triaged
    table.get_by_test_id("history-state-then").nth(1).click()
    expect(page.get_by_test_id("as-of-status")).to_have_text("已研判")
    page.screenshot(path=str(SCREENSHOTS / "auditor-history-as-of.png"), full_page=True)
    page.context.close()


def test_the_inspector_sees_the_centers_figures_as_of_a_past_instant(
        browser: Browser, web_server: str, web_city: dict[str, list[str]], issue: Issue,
        unique: str) -> None:
    township = web_city["township"][3]
    staff = issue(township, Role.DISPATCHER, Role.CLERK)
    graphql(web_server, staff, RECEIVE, c=township, s=f"噪声扰民 {unique}")
    time.sleep(1.2)
    instant = datetime.now(UTC).replace(microsecond=0)  # the picker's precision
    time.sleep(1.2)
    graphql(web_server, staff, RECEIVE, c=township, s=f"占道经营 {unique}")
    inspector = issue(township, Role.INSPECTOR)
    then = graphql(web_server, inspector, CENTER_AS_OF, code=township,
                   at=instant.isoformat())["centerAsOf"]
    now = graphql(web_server, inspector, CENTER_AS_OF, code=township,
                  at=datetime.now(UTC).isoformat())["centerAsOf"]
    assert now["cases"] == then["cases"] + 1  # the second case came after the instant
    # given the township's inspector on the history tab, for the center in view
    page = open_page(browser, web_server, inspector, "/audit")
    page.get_by_role("tab", name="历史与时点状态").click()
    choose(page, "history-mode", "本中心")
    # when the inspector picks the instant between the two receipts
    offset = page.evaluate("new Date().getTimezoneOffset()")
    picker = field(page, "as-of-at")
    picker.fill((instant - timedelta(minutes=offset)).strftime("%Y-%m-%d %H:%M:%S"))
    picker.press("Enter")
    page.get_by_test_id("as-of-load").click()
    # then the center's figures are those of that instant, not of now
    expect(page.get_by_test_id("as-of-cases")).to_have_text(str(then["cases"]))
    expect(page.get_by_test_id("as-of-open")).to_have_text(str(then["open"]))
    page.context.close()
