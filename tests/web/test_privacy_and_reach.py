"""What a user may see, in the browser: only their subtree (on screen and on
the wire), personal fields masked until a recorded view with a reason, and a
duplicate registration caught at intake."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Browser, Response, expect
from web_support import SCREENSHOTS, Issue, choose, field, graphql, open_page

from api.auth import Role

pytestmark = [pytest.mark.slow, pytest.mark.browser]

RECEIVE = """mutation($c: String!, $s: String!, $p: String!, $a: String!) { receiveCase(
  center: $c, channel: WINDOW, category: "neighbour-dispute", summary: $s,
  parties: [{name: "王小明", phone: $p, idNumber: "330782199001011234"}],
  place: {address: $a}) { id number } }"""


def receive(base: str, token: str, center: str, summary: str, phone: str = "13912345678",
            address: str = "人民路1号") -> dict[str, str]:
    case: dict[str, str] = graphql(base, token, RECEIVE, c=center, s=summary, p=phone,
                                   a=address)["receiveCase"]
    return case


def test_a_township_never_sees_a_sibling_townships_case_on_screen_or_on_the_wire(
        browser: Browser, web_server: str, web_city: dict[str, list[str]], issue: Issue,
        unique: str) -> None:
    own, sibling = web_city["township"][0], web_city["township"][1]
    # given a case in the township and one in its sibling
    mine = receive(web_server, issue(own, Role.CLERK), own, f"本镇事项 {unique}")
    theirs = receive(web_server, issue(sibling, Role.CLERK), sibling, f"邻镇事项 {unique}")
    # when the township's dispatcher browses every list, recording what the API sends
    page = open_page(browser, web_server, issue(own, Role.DISPATCHER), "/cases")
    bodies: list[str] = []

    def record(response: Response) -> None:
        if "/graphql" in response.url and response.request.method == "POST":
            bodies.append(response.text())
    page.on("response", record)
    page.reload()
    expect(page.locator(".case-link", has_text=mine["number"])).to_be_visible()
    for nav in ("inbox", "board", "deadlines", "cases"):
        page.get_by_test_id(f"nav-{nav}").click()
        page.wait_for_load_state("networkidle")
    # then the sibling's case is neither shown nor sent
    assert bodies, "no API traffic was recorded"
    assert not any(theirs["number"] in b or theirs["id"] in b for b in bodies)
    expect(page.get_by_text(theirs["number"])).to_have_count(0)
    # and the center picker offers the township and its villages, never the sibling
    page.get_by_test_id("center-picker").first.click()
    popper = page.locator(".el-popper.center-picker-popper")
    expect(popper).to_contain_text("测试镇1-1")
    popper.locator(".el-tree-node__expand-icon").first.click()
    expect(popper).to_contain_text("测试村1-1-2")
    expect(popper).not_to_contain_text("测试镇1-2")
    page.keyboard.press("Escape")
    # and opening the sibling's case by its address is refused with the translated reason
    bodies.clear()
    page.goto(f"/cases/{theirs['id']}")
    expect(page.get_by_test_id("error")).to_contain_text("无权进行此操作")
    assert all(json.loads(b).get("data", {}).get("case") is None for b in bodies
               if '"case"' in b)
    expect(page.get_by_text(f"邻镇事项 {unique}")).to_have_count(0)
    page.context.close()


def test_personal_fields_show_masked_and_in_clear_only_after_a_recorded_reason(
        browser: Browser, web_server: str, web_city: dict[str, list[str]], issue: Issue,
        unique: str) -> None:
    township, county = web_city["township"][0], web_city["county"][0]
    clerk = issue(township, Role.CLERK, name="镇受理员")
    case = receive(web_server, clerk, township, f"物业纠纷 {unique}", phone="13712345678")
    # given the township clerk on the case
    page = open_page(browser, web_server, clerk, f"/cases/{case['id']}")
    parties = page.get_by_test_id("parties")
    # then the party is shown masked, never in clear
    expect(parties).to_contain_text("137****5678")
    expect(parties).to_contain_text("王**")
    expect(parties).not_to_contain_text("13712345678")
    # when the clerk asks to reveal without a reason, then nothing is revealed
    page.get_by_test_id("reveal").click()
    page.get_by_test_id("reveal-ok").click()
    expect(page.get_by_test_id("reveal-error")).to_contain_text("必填")
    expect(parties).not_to_contain_text("13712345678")
    # when the clerk gives a reason, then the fields show in clear, marked as recorded
    field(page, "reveal-reason").fill("回访当事人核实诉求")
    page.get_by_test_id("reveal-ok").click()
    expect(page.get_by_test_id("revealed")).to_be_visible()
    expect(parties).to_contain_text("13712345678")
    expect(parties).to_contain_text("王小明")
    # and the view is recorded with the viewer and the reason (an auditor reads the log)
    auditor = issue(township[:2], Role.AUDITOR)
    log = graphql(web_server, auditor, "query($c: ID!) { accessLog(caseId: $c) "
                  "{ viewer reason fields } }", c=case["id"])["accessLog"]
    assert [(r["reason"], sorted(r["fields"])) for r in log] == [
        ("回访当事人核实诉求", ["name", "phone"])]
    page.context.close()
    # and the county director, above the case's center, is not offered the reveal at all
    upper = open_page(browser, web_server, issue(county, Role.DIRECTOR), f"/cases/{case['id']}")
    expect(upper.get_by_test_id("parties")).to_contain_text("137****5678")
    expect(upper.get_by_test_id("reveal")).to_have_count(0)
    expect(upper.get_by_test_id("actions").locator("button")).to_have_count(0)
    upper.context.close()


def test_a_duplicate_registration_is_flagged_with_its_candidate_and_merged(
        browser: Browser, web_server: str, web_city: dict[str, list[str]], issue: Issue,
        unique: str) -> None:
    village = web_city["village"][1]
    clerk = issue(village, Role.CLERK, name="村受理员")
    # given an open case of a party about a place
    first = receive(web_server, clerk, village, f"邻居漏水 {unique}", phone="13655556666",
                    address=f"幸福路{unique}号")
    # when the same party reports the same matter again at the window
    page = open_page(browser, web_server, clerk, "/intake")
    choose(page, "intake-category", "邻里纠纷")
    field(page, "intake-summary").fill(f"楼上又漏水了 {unique}")
    field(page, "party-name").fill("王小明")
    field(page, "party-phone").fill("13655556666")
    field(page, "intake-place").fill(f"幸福路{unique}号")
    page.get_by_test_id("intake-submit").click()
    # then the duplicate warning names the earlier case, and keeping it separate needs a reason
    expect(page.get_by_test_id("duplicate")).to_contain_text(first["number"])
    expect(page.get_by_test_id("keep")).to_be_disabled()
    page.screenshot(path=str(SCREENSHOTS / "village-duplicate-warning.png"))
    # when the clerk merges it, then the new case is recorded as merged into the earlier one
    new_id = (page.get_by_test_id("received-number").get_attribute("href") or "").split("/")[-1]
    page.get_by_test_id("merge").click()
    expect(page.get_by_test_id("decided")).to_contain_text(first["number"])
    merged = graphql(web_server, clerk, "query($c: ID!) { case(id: $c) { status mergedInto "
                     "{ caseId } } }", c=new_id)["case"]
    assert merged == {"status": "MERGED", "mergedInto": {"caseId": first["id"]}}
    page.context.close()
