"""The web client: initial JavaScript shipped and time to an interactive inbox.

    python bench/web.py                  # 10,000 cases in the township's subtree, 5 loads
    python bench/web.py --cases 2000     # a smaller run

1. Initial JavaScript: the scripts ``web/dist/index.html`` loads before anything
   else (its entry module and the modules it preloads), gzipped at level 9 as a
   server would send them. Target: under 400 KB. The views loaded on demand
   (dashboard with ECharts, case page, intake ...) are listed too.
2. Time to an interactive inbox: a synthetic city (1 county, 1 township, 10
   villages) with ``--cases`` cases in the township's subtree, generated and
   bulk-loaded as ``bench/dashboard.py`` does (the domain's commands, COPY, then the
   case view built); a real ``zongzhi serve`` process serves the built client and
   the API; the distribution's headless Chromium opens ``/inbox`` signed in as the
   township's dispatcher; the time (``performance.now()``, from the navigation's
   start, polled each frame) is taken when the inbox's rows are on screen
   (interactive: the target, under 1.5 s) and when its live connection is up (the
   websocket that carries ``caseChanged``). Cold: a new browser context each load
   (nothing cached); warm: the same context again.

Figures are printed; nothing is asserted on time.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse  # noqa: E402
import base64  # noqa: E402
import gzip  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import secrets  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402

from api.auth import JWT_SECRET, Role, TokenService  # noqa: E402
from projections.views import CaseView  # noqa: E402
from tenants.service import Tenants  # noqa: E402
from zongzhi.servers import answers, free_port  # noqa: E402

sys.path.append(str(_HERE))
sys.path.append(str(_HERE.parent / "tests"))
from _common import ROOT, fresh_database, met, print_header, table  # noqa: E402
from dashboard import CHUNK, CITY, Generator, Loader  # noqa: E402
from support import write_divisions  # noqa: E402

DIST = ROOT / "web" / "dist"
TARGET_KB = 400.0
TARGET_S = 1.5
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def gz_kb(path: Path) -> float:
    return len(gzip.compress(path.read_bytes(), 9)) / 1024


def initial_js() -> tuple[float, list[list[str]]]:
    html = (DIST / "index.html").read_text(encoding="utf-8")
    initial = re.findall(r'<script[^>]+src="/([^"]+\.js)"', html) + \
        re.findall(r'<link[^>]+rel="modulepreload"[^>]+href="/([^"]+\.js)"', html)
    rows = [[name, f"{(DIST / name).stat().st_size / 1024:.0f}", f"{gz_kb(DIST / name):.1f}",
             "initial"] for name in initial]
    total = sum(gz_kb(DIST / name) for name in initial)
    lazy = sorted((p for p in (DIST / "assets").glob("*.js")
                   if f"assets/{p.name}" not in initial), key=gz_kb, reverse=True)
    rows += [[f"assets/{p.name}", f"{p.stat().st_size / 1024:.0f}", f"{gz_kb(p):.1f}",
              "on demand"] for p in lazy[:6]]
    return total, rows


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=10_000)
    p.add_argument("--loads", type=int, default=5)
    p.add_argument("--seed", type=int, default=20261123)
    p.add_argument("--data-dir", type=Path, default=None,
                   help="the embedded servers' folder (default .zongzhi/bench)")
    args = p.parse_args(argv[1:])
    subprocess.run([str(ROOT / "web" / "build.sh")], check=True,
                   env={**os.environ, "BUILD_WEB_REQUIRED": "1"})

    total, rows = initial_js()
    print("bench/web.py: the web client\n")
    print(table(rows, ["script", "KB", "KB gzip", "loaded"]))
    print(f"initial JavaScript: {total:.1f} KB gzipped (target < {TARGET_KB:.0f} KB: "
          f"{met(total < TARGET_KB)})\n", flush=True)

    with fresh_database(args.data_dir) as db, tempfile.TemporaryDirectory() as tmp:
        print_header("time to an interactive inbox", db, argv)
        key = secrets.token_bytes(32)
        tenants = Tenants(db.url, key)
        tree = write_divisions(Path(tmp), CITY, counties=1, townships=1, villages=10)
        tenants.import_divisions(Path(tmp), scope=CITY, by="bench", at=datetime.now(UTC))
        township = tree["township"][0]
        codes = [township, *tree["village"]]
        for code in codes:
            tenants.center(code)
        generator, loader = Generator(random.Random(args.seed), tenants.calendar(), codes), \
            Loader(tenants)
        t0 = time.perf_counter()
        for first in range(0, args.cases, CHUNK):
            loader.load(generator.cases(first, min(CHUNK, args.cases - first), args.cases))
        view = CaseView(tenants, CITY)
        view.batch = view.rebuild_batch
        view.catch_up()
        with tenants.datastore.get_connection() as conn:
            conn.autocommit = True
            conn.execute(f"VACUUM ANALYZE lg_{CITY}.case_view")
            waiting = conn.execute(
                f"SELECT count(*) AS n FROM lg_{CITY}.case_view WHERE tenant = %s "
                "AND status IN ('received', 'triaged')", (township,)).fetchone()
            conn.autocommit = False
        print(f"{args.cases} cases in the subtree of township {township} ({loader.events} "
              f"events) loaded and projected in {time.perf_counter() - t0:.1f} s; "
              f"the township's inbox holds {waiting['n'] if waiting else '?'}", flush=True)

        secret = secrets.token_urlsafe(48)
        os.environ[JWT_SECRET] = secret
        token = TokenService.from_env(tenants.registry).issue(
            township, [Role.DISPATCHER], ttl=timedelta(hours=1))
        port = free_port()
        env = {**os.environ, "ZONGZHI_DATABASE_URL": db.url, JWT_SECRET: secret,
               "ZONGZHI_MASTER_KEY": base64.urlsafe_b64encode(key).decode()}
        server = subprocess.Popen(
            [sys.executable, "-m", "zongzhi.cli", "serve", "--city", CITY, "--port", str(port)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            if not answers(f"{base}/healthz", 60, alive=lambda: server.poll() is None):
                raise SystemExit("zongzhi serve did not come up")
            times = load_times(base, token, args.loads)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
            tenants.close()
    print(table([[kind, f"{statistics.median(v):.3f}", f"{min(v):.3f}", f"{max(v):.3f}",
                  met(statistics.median(v) < TARGET_S) if kind.startswith("rows") else ""]
                 for kind, v in times.items()],
                ["inbox", "median s", "min s", "max s", f"target < {TARGET_S} s"]))


def load_times(base: str, token: str, loads: int) -> dict[str, list[float]]:
    """Seconds from the navigation's start until the inbox's rows are on screen
    (interactive) and until its live connection is up, cold and warm."""
    from playwright.sync_api import sync_playwright

    times: dict[str, list[float]] = {k: [] for k in (
        "rows, cold (new context)", "rows, warm (cached assets)",
        "live, cold (new context)", "live, warm (cached assets)")}
    rows = "() => document.querySelector('tr.case-row') && performance.now()"
    live = "() => document.querySelector('[data-test=live]') && performance.now()"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for i in range(loads + 1):  # the first load warms the server, and is left out
            context = browser.new_context(viewport={"width": 1366, "height": 768},
                                          base_url=base)
            context.add_init_script(f"sessionStorage.setItem('zongzhi.token', {token!r})")
            page = context.new_page()
            for kind in ("cold (new context)", "warm (cached assets)"):
                page.goto("/inbox")
                at_rows = page.wait_for_function(rows, timeout=30_000).json_value() / 1000
                at_live = page.wait_for_function(live, timeout=30_000).json_value() / 1000
                if i:
                    times[f"rows, {kind}"].append(at_rows)
                    times[f"live, {kind}"].append(at_live)
            context.close()
        browser.close()
    return times


if __name__ == "__main__":
    main(sys.argv)
