"""The closed loop across tiers in the browser, live: a village grid worker
reports, the village escalates, the township dispatches back down, the village
sees the order live and resolves it, the party's confirmation closes it, and
the county's dashboard figures change; a township's escalation appears live in
the county's inbox."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect
from web_support import PHONE, SCREENSHOTS, Issue, choose, eventually, field, graphql, open_page

from api.auth import Role

pytestmark = [pytest.mark.slow, pytest.mark.browser]

FIGURES = """query($c: String!) { center(code: $c) { figures { received closed open } } }"""


def kpi(page: Page, key: str) -> int:
    """A KPI card of the dashboard's period analysis (computed per request, last 30 days)."""
    page.locator("#tab-analysis").click()
    card = page.get_by_test_id(f"kpi-{key}").locator(".v")
    expect(card).to_be_visible()
    return int(card.inner_text())


def act(page: Page, action: str, **fields: str) -> None:
    """Take a case action on the detail page, filling its dialog's text fields."""
    page.get_by_test_id(f"action-{action}").click()
    for name, value in fields.items():
        field(page, f"field-{name}").fill(value)
    if fields or page.get_by_test_id("dialog-ok").is_visible():
        page.get_by_test_id("dialog-ok").click()


def status(page: Page, value: str) -> None:
    try:
        expect(page.get_by_test_id("case-status")).to_have_attribute("data-status", value)
    except AssertionError:
        shown = page.locator(".api-error, [data-test=dialog-error]").all_inner_texts()
        raise AssertionError(f"the case did not reach {value}; the page says {shown}") from None


def test_a_grid_workers_report_goes_up_comes_back_down_live_and_closes_with_the_party(
        browser: Browser, web_server: str, web_city: dict[str, list[str]], issue: Issue,
        unique: str) -> None:
    county, township, village = (web_city["county"][0], web_city["township"][0],
                                 web_city["village"][0])
    director_c = issue(county, Role.DIRECTOR, name="县主任")
    # given the county director's dashboard before anything happens
    dash = open_page(browser, web_server, director_c, "/dashboard")
    received_before, closed_before = kpi(dash, "received"), kpi(dash, "closed")

    # when a village grid worker reports a matter found on patrol
    worker = open_page(browser, web_server, issue(village, Role.GRID_WORKER, grid="grid-001-1",
                                                  name="网格员"), "/intake",
                       viewport=PHONE)
    choose(worker, "intake-category", "邻里纠纷")
    summary = f"两户因排水沟堵塞发生争执 {unique}"
    field(worker, "intake-summary").fill(summary)
    field(worker, "party-name").fill("李四")
    field(worker, "party-phone").fill("13800001111")
    field(worker, "intake-place").fill("村东头")
    worker.get_by_test_id("intake-submit").click()
    reported = worker.get_by_test_id("received-number")
    expect(reported).to_be_visible()
    village_case = (reported.get_attribute("href") or "").rsplit("/", 1)[-1]
    worker.screenshot(path=str(SCREENSHOTS / "village-intake-phone.png"))

    # and the township's inbox is open while the village director escalates it
    township_staff = issue(township, Role.CLERK, Role.DISPATCHER, name="镇受理员")
    inbox_t = open_page(browser, web_server, township_staff, "/inbox")
    expect(inbox_t.get_by_test_id("live")).to_be_visible()
    director_v = issue(village, Role.DIRECTOR, name="村主任")
    case_v = open_page(browser, web_server, director_v, f"/cases/{village_case}")
    status(case_v, "RECEIVED")
    act(case_v, "triage")
    status(case_v, "TRIAGED")
    act(case_v, "escalate", reason="双方情绪激烈, 村级无法调处")
    status(case_v, "ESCALATED")

    # then the escalation appears in the township's inbox without a reload
    escalated = inbox_t.locator("tr.case-row", has_text=summary)
    expect(escalated).to_be_visible(timeout=20_000)
    inbox_t.screenshot(path=str(SCREENSHOTS / "township-inbox-live.png"))

    # when the township dispatches it back down to the village, with the village's inbox open
    inbox_v = open_page(browser, web_server, director_v, "/inbox")
    expect(inbox_v.get_by_test_id("live")).to_be_visible()
    escalated.locator(".case-link").click()
    status(inbox_t, "TRIAGED")
    inbox_t.get_by_test_id("action-dispatch").click()
    choose(inbox_t, "kind-0", "下级中心")
    choose(inbox_t, "ref-0", village)
    inbox_t.get_by_test_id("dispatch-ok").click()
    status(inbox_t, "DISPATCHED")

    # then the order appears in the village's inbox live; the village accepts and resolves it
    order = inbox_v.locator("tr.case-row", has_text=summary)
    expect(order).to_be_visible(timeout=20_000)
    inbox_v.screenshot(path=str(SCREENSHOTS / "village-inbox.png"))
    order.locator(".case-link").click()
    expect(inbox_v).to_have_url(re.compile(r"/cases/"))
    inbox_v.get_by_test_id("action-accept").click()
    status(inbox_v, "ACCEPTED")
    act(inbox_v, "resolve", summary="组织双方疏通水沟, 达成一致")
    status(inbox_v, "RESOLVED")

    # and the outcome travels up and back to the village's own case, whose timeline shows it
    case_v.reload()
    status(case_v, "RESOLVED")
    expect(case_v.locator(".event[data-kind='LinkedOutcomeNoted']")).to_be_visible()

    # when the party is told and confirms, and the case is rated and closed
    act(case_v, "feedback", message="已电话告知当事人处理结果")
    status(case_v, "FEEDBACK_GIVEN")
    act(case_v, "confirm")
    status(case_v, "CONFIRMED")
    act(case_v, "close")
    status(case_v, "CLOSED")
    kinds = case_v.locator(".event").evaluate_all("els => els.map(e => e.dataset.kind)")
    assert kinds == ["Received", "Triaged", "Escalated", "LinkedOutcomeNoted",
                     "FeedbackGiven", "Confirmed", "Closed"], kinds
    case_v.screenshot(path=str(SCREENSHOTS / "village-case-detail.png"), full_page=True)

    # then the county's dashboard shows the new matters received and closed, as the API counts
    def caught_up() -> bool:
        figures = graphql(web_server, director_c, FIGURES, c=county)["center"]["figures"]
        return figures["received"] > received_before and figures["closed"] > closed_before
    eventually(caught_up, timeout=20)
    dash.reload()
    figures = graphql(web_server, director_c, FIGURES, c=county)["center"]["figures"]
    assert kpi(dash, "received") == figures["received"] > received_before
    assert kpi(dash, "closed") == figures["closed"] > closed_before
    dash.screenshot(path=str(SCREENSHOTS / "county-dashboard.png"), full_page=True)
    for page in (dash, worker, inbox_t, case_v, inbox_v):
        page.context.close()


def test_a_township_escalation_appears_live_in_the_county_inbox(
        browser: Browser, web_server: str, web_city: dict[str, list[str]], issue: Issue,
        unique: str) -> None:
    county, township = web_city["county"][0], web_city["township"][0]
    clerk_t = issue(township, Role.CLERK, Role.DISPATCHER, name="镇受理员")
    summary = f"多个村共用水渠纠纷 {unique}"
    case = graphql(web_server, clerk_t, """mutation($c: String!, $s: String!) { receiveCase(
        center: $c, channel: WINDOW, category: "neighbour-dispute", summary: $s,
        parties: [{name: "赵六", phone: "13733334444"}], place: {address: "镇东水渠"}) { id } }""",
                   c=township, s=summary)["receiveCase"]
    # given the county's inbox open in a dispatcher's browser
    inbox_c = open_page(browser, web_server, issue(county, Role.DISPATCHER, name="县调度员"),
                        "/inbox")
    expect(inbox_c.get_by_test_id("live")).to_be_visible()
    expect(inbox_c.locator("tr.case-row", has_text=summary)).to_have_count(0)
    # when the township's director triages and escalates the case in the browser
    case_t = open_page(browser, web_server, issue(township, Role.DIRECTOR, name="镇主任"),
                       f"/cases/{case['id']}")
    status(case_t, "RECEIVED")
    act(case_t, "triage")
    status(case_t, "TRIAGED")
    act(case_t, "escalate", reason="涉及多个乡镇, 镇级无法协调")
    status(case_t, "ESCALATED")
    # then it appears in the county's inbox without a reload
    expect(inbox_c.locator("tr.case-row", has_text=summary)).to_be_visible(timeout=20_000)
    for page in (inbox_c, case_t):
        page.context.close()
