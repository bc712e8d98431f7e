"""Narrowing the view with the tree selector, switching to English, the error
messages, and the inspector's and auditor's pages, in the browser."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect
from web_support import PHONE, SCREENSHOTS, Issue, eventually, field, graphql, open_page

from api.auth import Role

pytestmark = [pytest.mark.slow, pytest.mark.browser]

RECEIVE = """mutation($c: String!, $s: String!) { receiveCase(center: $c, channel: HOTLINE_12345,
  category: "consumer", summary: $s, parties: [{name: "赵六", phone: "13500001111"}],
  place: {address: "商业街8号"}) { id number } }"""


def test_the_tree_selector_narrows_every_view_to_a_descendant_center(
        browser: Browser, web_server: str, web_city: dict[str, list[str]], issue: Issue,
        unique: str) -> None:
    county = web_city["county"][0]
    one, two = web_city["township"][0], web_city["township"][1]
    a = graphql(web_server, issue(one, Role.CLERK), RECEIVE, c=one, s=f"消费纠纷甲 {unique}")
    b = graphql(web_server, issue(two, Role.CLERK), RECEIVE, c=two, s=f"消费纠纷乙 {unique}")
    # given the county director on all the county's cases: both townships' cases are listed
    page = open_page(browser, web_server, issue(county, Role.DIRECTOR), "/cases")
    expect(page.get_by_test_id("center-name")).to_have_text("测试县1")
    for case in (a, b):
        expect(page.locator(".case-link", has_text=case["receiveCase"]["number"])).to_be_visible()
    # when the director narrows the view to the first township in the tree
    page.get_by_test_id("center-picker").first.click()
    popper = page.locator(".el-popper.center-picker-popper")
    popper.locator(".el-tree-node__expand-icon").first.click()
    popper.get_by_text("测试镇1-1").click()
    # then the header and the list show that township's subtree only
    expect(page.get_by_test_id("center-name")).to_have_text("测试镇1-1")
    expect(page.get_by_test_id("center-tier")).to_have_text("乡镇(街道)")
    expect(page.locator(".case-link", has_text=a["receiveCase"]["number"])).to_be_visible()
    expect(page.locator(".case-link", has_text=b["receiveCase"]["number"])).to_have_count(0)
    page.context.close()


def test_english_is_one_click_away_and_errors_are_translated_in_it(
        browser: Browser, web_server: str, web_city: dict[str, list[str]], issue: Issue) -> None:
    # given a village grid worker on a phone (no kpi:read: the dashboard is refused)
    village = web_city["village"][0]
    page = open_page(browser, web_server, issue(village, Role.GRID_WORKER, grid="grid-001-1"),
                     "/dashboard", viewport=PHONE)
    expect(page.get_by_test_id("error")).to_contain_text("无权进行此操作")
    # when the worker switches to English
    page.get_by_test_id("locale").click()
    # then the navigation and the refusal read in English, and stay so after a reload
    expect(page.get_by_test_id("nav-inbox")).to_have_text("Inbox")
    page.reload()
    expect(page.get_by_test_id("error")).to_contain_text("Not allowed")
    expect(page.get_by_test_id("center-tier")).to_have_text("Village")
    page.context.close()


def test_the_city_dashboard_ranks_its_counties_and_draws_the_subtree(
        browser: Browser, web_server: str, web_city: dict[str, list[str]], issue: Issue,
        unique: str) -> None:
    city, township = web_city["city"][0], web_city["township"][0]
    graphql(web_server, issue(township, Role.CLERK), """mutation($c: String!, $s: String!) {
        receiveCase(center: $c, channel: WINDOW, category: "neighbour-dispute", summary: $s,
        parties: [{name: "周八", phone: "13700003333"}], place: {address: "人民路5号"}) { id } }""",
            c=township, s=f"楼道堆物纠纷 {unique}")
    director = issue(city, Role.DIRECTOR)
    eventually(lambda: graphql(web_server, director, "query($c: String!) { center(code: $c) { "
                               "figures { received } } }", c=city)["center"]["figures"][
                                   "received"] >= 1, timeout=20)
    page = open_page(browser, web_server, director, "/dashboard")
    api = graphql(web_server, director, "query($c: String!) { center(code: $c) { "
                  "... on ParentCenter { dashboard { rollup { total { received } } } } "
                  "figures { received } "
                  "overdue(subtree: true, first: 20) { nodes { number } } } }",
                  c=city)["center"]
    # then the overview shows the kept figures with their instant, the cases overdue
    # longest in the subtree, and the counties ranked and drawn
    expect(page.get_by_test_id("as-of")).to_contain_text("截至")
    expect(page.get_by_test_id("now-received").locator(".v")).to_have_text(
        str(api["dashboard"]["rollup"]["total"]["received"]))
    longest = page.get_by_test_id("longest-overdue").locator(".case-link")
    expect(longest).to_have_count(len(api["overdue"]["nodes"]))
    assert longest.evaluate_all("els => els.map(e => e.dataset.number)") == [
        n["number"] for n in api["overdue"]["nodes"]]
    for chart in ("ranking", "map"):
        expect(page.get_by_test_id(chart).locator("canvas")).to_have_count(1)
    page.screenshot(path=str(SCREENSHOTS / "city-dashboard.png"), full_page=True)
    # when the director opens the period analysis
    page.locator("#tab-analysis").click()
    # then its KPI cards show the city's figures (the case just received among them), and
    # its charts are drawn
    expect(page.get_by_test_id("kpi-received").locator(".v")).to_have_text(
        str(api["figures"]["received"]))
    for chart in ("trend", "hotspots"):
        expect(page.get_by_test_id(chart).locator("canvas")).to_have_count(1)
    page.screenshot(path=str(SCREENSHOTS / "city-dashboard-analysis.png"), full_page=True)
    page.context.close()


def test_the_auditor_reads_who_saw_a_partys_data_and_the_inspector_the_violations(
        browser: Browser, web_server: str, web_city: dict[str, list[str]], issue: Issue,
        unique: str) -> None:
    township = web_city["township"][1]
    clerk = issue(township, Role.CLERK)
    case = graphql(web_server, clerk, RECEIVE, c=township, s=f"消费纠纷丙 {unique}")["receiveCase"]
    graphql(web_server, clerk, """mutation($c: ID!) { unmaskParties(caseId: $c,
            fields: [PHONE], reason: "核实联系方式") { phone } }""", c=case["id"])
    # given a provincial auditor on the audit page, when the case's access log is asked for
    auditor = open_page(browser, web_server, issue(township[:2], Role.AUDITOR), "/")
    expect(auditor).to_have_url(f"{web_server}/audit")
    field(auditor, "access-case").fill(case["id"])
    auditor.get_by_test_id("access-load").click()
    # then the recorded view is listed with its reason
    log = auditor.get_by_test_id("access-log")
    expect(log).to_contain_text("核实联系方式")
    expect(log).to_contain_text(case["number"])
    auditor.context.close()
    # and the city inspector runs the closed-loop inspection of the subtree
    inspector = open_page(browser, web_server, issue(web_city["city"][0], Role.INSPECTOR),
                          "/audit")
    inspector.get_by_test_id("inspect").click()
    expect(inspector.get_by_test_id("inspection-summary")).to_be_visible()
    expect(inspector.get_by_test_id("error")).to_have_count(0)
    inspector.context.close()
