"""The dispatch board: a triaged case dispatched jointly, a lower center as lead
and a unit as co-assignee, from the board's dialog."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect
from web_support import Issue, choose, eventually, graphql, open_page

from api.auth import Role

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_a_joint_dispatch_names_one_lead_and_its_co_assignees(
        browser: Browser, web_server: str, web_city: dict[str, list[str]], issue: Issue,
        unique: str) -> None:
    township, village = web_city["township"][3], web_city["village"][6]
    staff = issue(township, Role.CLERK, Role.DISPATCHER)
    case = graphql(web_server, staff, """mutation($c: String!, $s: String!) { receiveCase(
        center: $c, channel: GRID_PATROL, category: "fire-lane-blocked", summary: $s,
        parties: [{name: "周八", phone: "13722223333"}], place: {address: "菜场后门"}) { id } }""",
                   c=township, s=f"商铺占用消防通道 {unique}")["receiveCase"]
    graphql(web_server, staff, """mutation($id: ID!) { triageCase(caseId: $id, severity: YELLOW,
            handling: SIMPLE) { id } }""", id=case["id"])
    # given the triaged case waiting on the township's dispatch board
    page = open_page(browser, web_server, staff, "/board")
    row = page.get_by_test_id("pending").locator("tr.case-row", has_text=unique)
    expect(row).to_be_visible(timeout=20_000)
    # when the dispatcher names the village as lead and adds the fire brigade as co-assignee
    row.get_by_test_id("board-dispatch").click()
    choose(page, "kind-0", "下级中心")
    choose(page, "ref-0", village)
    page.get_by_test_id("add-assignee").click()
    choose(page, "ref-1", "消防")
    page.get_by_test_id("dispatch-ok").click()
    # then the case is dispatched to both, the village leading, and leaves the pending list
    expect(row).to_have_count(0, timeout=20_000)
    assignments = eventually(lambda: graphql(
        web_server, staff, "query($id: ID!) { case(id: $id) { status assignments "
        "{ kind ref lead } } }", id=case["id"])["case"])
    assert assignments["status"] == "DISPATCHED"
    assert sorted((a["kind"], a["ref"], a["lead"]) for a in assignments["assignments"]) == [
        ("CENTER", village, True), ("UNIT", "fire", False)]
    page.context.close()
