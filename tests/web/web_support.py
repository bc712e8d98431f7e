"""The web client's end-to-end harness: the built client served by a real
``zongzhi serve`` process (API, projectors, router, clock) over the session's
PostgreSQL, driven by the distribution's headless Chromium through Playwright.

One city for the session's browser tests (2 counties x 2 townships x 2 villages); each
test works on cases of its own, told apart by a unique summary.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, sync_playwright
from support import ROOT, product_env, write_divisions

from api.auth import JWT_SECRET, Role, TokenService
from tenants.service import Tenants
from zongzhi.servers import NATS_URL, answers, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
WEB = ROOT / "web"
#: Where the tests save their screenshots: an ignored folder, so a test run leaves the
#: tree clean; ``ZONGZHI_SCREENSHOTS=web/screenshots`` refreshes the committed ones.
SCREENSHOTS = Path(os.environ.get("ZONGZHI_SCREENSHOTS") or ROOT / ".zongzhi" / "screenshots")
SCREENSHOTS.mkdir(parents=True, exist_ok=True)
#: The browser tests' city: province 59 does not exist, so no real code and none of the
#: 61xx-69xx codes the ``city`` fixture hands out per test can collide with it.
WEB_CITY = "5990"
SECRET = secrets.token_urlsafe(48)
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}

Issue = Callable[..., str]


@pytest.fixture(scope="session")
def web_dist() -> Path:
    """The built client (web/build.sh rebuilds it when its sources changed)."""
    subprocess.run([str(WEB / "build.sh")], check=True, env={**os.environ,
                                                             "BUILD_WEB_REQUIRED": "1"})
    assert (WEB / "dist" / "index.html").is_file()
    return WEB / "dist"


@pytest.fixture(scope="session")
def web_city(tenants: Tenants, tmp_path_factory: pytest.TempPathFactory
             ) -> dict[str, list[str]]:
    directory = tmp_path_factory.mktemp("web-divisions")
    tree = write_divisions(directory, WEB_CITY, counties=2, townships=2, villages=2)
    tenants.import_divisions(directory, WEB_CITY, "test", datetime.now(UTC))
    return tree


@pytest.fixture(scope="session")
def web_tokens(tenants: Tenants) -> Iterator[TokenService]:
    previous = os.environ.get(JWT_SECRET)
    os.environ[JWT_SECRET] = SECRET
    yield TokenService.from_env(tenants.registry)
    if previous is None:
        os.environ.pop(JWT_SECRET, None)
    else:
        os.environ[JWT_SECRET] = previous


@pytest.fixture(scope="session")
def issue(web_tokens: TokenService) -> Issue:
    def make(center: str, *roles: Role, grid: str | None = None, name: str | None = None,
             unit: str | None = None) -> str:
        return web_tokens.issue(center, list(roles), name=name or "+".join(roles),
                                grid=grid, unit=unit, ttl=timedelta(hours=2))
    return make


@pytest.fixture(scope="session")
def web_server(database_url: str, nats_url: str, web_city: dict[str, list[str]],
               web_dist: Path, web_tokens: TokenService) -> Iterator[str]:
    """``zongzhi serve --city 5990``: a real process, as the product runs (NATS for
    the alerts' live feed)."""
    port = free_port()
    env = {**product_env(database_url), JWT_SECRET: SECRET, NATS_URL: nats_url}
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"zz-web-serve-{port}.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "zongzhi.cli", "serve", "--city", WEB_CITY, "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    up = answers(f"{base}/healthz", 60, alive=lambda: process.poll() is None)
    assert process.poll() is None, f"zongzhi serve exited; see {log.name}"
    assert up, "the API did not come up"
    try:
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # one per module, not per session: Playwright's sync API keeps an event loop running
    # in this thread, and later suites that call asyncio.run() must not find it there
    with sync_playwright() as p:
        p.selectors.set_test_id_attribute("data-test")
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                     headless=True)
        yield chromium
        chromium.close()


def open_page(browser: Browser, base: str, token: str | None, path: str = "/inbox", *,
              viewport: dict[str, int] | None = None, locale: str = "zh-CN") -> Page:
    """A new browser context signed in with ``token`` (as the sign-in page
    leaves it: the token in session storage), at ``path``."""
    context = browser.new_context(viewport=viewport or DESKTOP, locale=locale,  # type: ignore[arg-type]
                                  base_url=base)
    context.set_default_timeout(15_000)
    if token:
        context.add_init_script(f"sessionStorage.setItem('zongzhi.token', {token!r})")
    page = context.new_page()
    page.goto(path)
    return page


def field(page: Page, test_id: str) -> Locator:
    """The input or textarea of an Element Plus field marked ``data-test``
    (the attribute lands on the native element or on its wrapper)."""
    return page.locator(f"input[data-test='{test_id}'], textarea[data-test='{test_id}'], "
                        f"[data-test='{test_id}'] input, [data-test='{test_id}'] textarea").first


def choose(page: Page, test_id: str, option: str) -> None:
    """Pick ``option`` (its visible text) in the Element Plus select marked ``test_id``."""
    page.locator(f"[data-test='{test_id}']").first.click()
    page.locator(".el-select-dropdown__item:visible", has_text=option).first.click()


def graphql(base: str, token: str, query: str, **variables: Any) -> dict[str, Any]:
    """A request outside the browser (to set up or check what the UI did)."""
    answer = httpx.post(f"{base}/graphql", json={"query": query, "variables": variables},
                        headers={"Authorization": f"Bearer {token}"}, timeout=20).json()
    assert "errors" not in answer, answer
    data: dict[str, Any] = answer["data"]
    return data


def eventually(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.25)
