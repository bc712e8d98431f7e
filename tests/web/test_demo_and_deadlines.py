"""The demo serves the built client with its users in the sign-in picker; the
due-soon list offers the urging instruments to an upper tier's director."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from support import ROOT, product_env, write_divisions
from web_support import Issue, choose, eventually, field, graphql, open_page

from api.auth import Role
from zongzhi.servers import answers, free_port

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_the_demo_serves_the_client_and_its_picker_signs_in_each_demo_user(
        browser: Browser, database_url: str, nats_url: str, web_dist: Path, city: str,
        tmp_path: Path) -> None:
    # given `zongzhi demo` on a small city, as a newcomer runs it
    write_divisions(tmp_path / "div", city, counties=1, townships=1, villages=1)
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "zongzhi.cli", "demo", "--city", city, "--cases", "5",
         "--divisions", str(tmp_path / "div"), "--port", str(port), "--no-cameras"],
        cwd=ROOT, env={**product_env(database_url), "ZONGZHI_NATS_URL": nats_url,
                       "ZONGZHI_DATA_DIR": str(tmp_path)}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        assert demo.stdout is not None
        printed = []
        for line in demo.stdout:
            printed.append(line)
            if line.startswith("API: http://"):
                break
        assert any(line.startswith("Web client: http://") for line in printed), printed
        base = f"http://127.0.0.1:{port}"
        assert answers(f"{base}/healthz", 30), "the demo's API did not come up"
        # when a newcomer opens it in the browser
        page = open_page(browser, base, None, "/")
        users = page.get_by_test_id("demo-user")
        # then the picker offers the six demo users
        expect(users).to_have_count(6)
        labels = users.all_inner_texts()
        for who in ("city director", "county dispatcher", "township clerk",
                    "village grid worker", "city inspector", "provincial auditor"):
            assert any(label.startswith(who) for label in labels), labels
        # and picking the village grid worker signs in at the village's inbox
        users.filter(has_text="village grid worker").click()
        expect(page.get_by_test_id("center-tier")).to_have_text("村(社区)")
        expect(page.get_by_test_id("nav-inbox")).to_be_visible()
        page.context.close()
    finally:
        os.kill(demo.pid, signal.SIGINT)
        try:
            demo.wait(timeout=20)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()


def test_an_upper_director_urges_a_case_due_soon_below_with_an_instrument(
        browser: Browser, web_server: str, web_city: dict[str, list[str]], issue: Issue,
        unique: str) -> None:
    county, township = web_city["county"][1], web_city["township"][2]
    staff = issue(township, Role.CLERK, Role.DISPATCHER)
    case = graphql(web_server, staff, """mutation($c: String!, $s: String!) { receiveCase(
        center: $c, channel: PETITION, category: "labour-pay", summary: $s,
        parties: [{name: "孙七", phone: "13611112222"}], place: {address: "工业园区"}) { id } }""",
                   c=township, s=f"工地拖欠工资 {unique}")["receiveCase"]
    graphql(web_server, staff, """mutation($id: ID!) { triageCase(caseId: $id, severity: ORANGE,
            handling: COMPLEX) { id } }""", id=case["id"])
    graphql(web_server, staff, """mutation($id: ID!) { dispatchCase(caseId: $id,
            assignees: [{kind: UNIT, ref: "labour", lead: true}]) { id } }""", id=case["id"])
    # given an orange case dispatched in a township, due within the day
    director = issue(county, Role.DIRECTOR)
    page = open_page(browser, web_server, director, "/deadlines")
    row = page.get_by_test_id("dueSoon").locator("tr.case-row", has_text=unique)
    expect(row).to_be_visible(timeout=20_000)
    # when the county director skips a step and urges with a risk warning letter first
    row.get_by_test_id("urge").click()
    choose(page, "field-instrument", "风险预警函")
    field(page, "field-reason").fill("涉及十余名工人, 请加快处置")
    page.get_by_test_id("dialog-ok").click()
    # then the rule is named in Chinese and nothing is recorded
    expect(page.locator(".api-error")).to_contain_text("当前状态不允许此操作")
    query = "query($id: ID!) { case(id: $id) { urgings { instrument reason } } }"
    assert graphql(web_server, director, query, id=case["id"])["case"]["urgings"] == []
    # when the director issues the work prompt letter, the first instrument, instead
    choose(page, "field-instrument", "工作提示函")
    page.get_by_test_id("dialog-ok").click()

    # then the case carries the urging, with that instrument and reason
    def urged() -> list[dict[str, str]]:
        found: list[dict[str, str]] = graphql(web_server, director, query,
                                              id=case["id"])["case"]["urgings"]
        return found
    assert eventually(urged) == [{"instrument": "WORK_PROMPT_LETTER",
                                  "reason": "涉及十余名工人, 请加快处置"}]
    page.context.close()
