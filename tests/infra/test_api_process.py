"""The api Deployment's command (`zongzhi serve --no-workers`), on real servers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from typing import Any

from support import ROOT, product_env

from domain import Channel, Party, Personal, Place
from tenants.service import Tenants
from zongzhi.processes import by_name
from zongzhi.servers import free_port

CST = timezone(timedelta(hours=8))


def _readyz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            return r.status, json.loads(r.read())
    except OSError:
        return 0, {}


def _case_view_lag(port: int, city: str, deadline: float) -> int:
    while time.monotonic() < deadline:
        status, body = _readyz(port)
        if status == 200 and city in body.get("projections", {}).get("case_view", {}):
            return int(body["projections"]["case_view"][city]["lag"])
        time.sleep(0.3)
    raise AssertionError(f"/readyz did not report city {city} in time")


def _receive(tenants: Tenants, village: str) -> None:
    tenants.center(village).receive_case(
        channel=Channel.GRID_PATROL, category="neighbour-dispute", summary="两户因宅基地边界争执",
        parties=[Party(name=Personal("王小明"), phone=Personal("13912345678"))],
        place=Place(village, "某路1号"), by="clerk-1", at=datetime(2026, 3, 2, 9, 0, tzinfo=CST))


def _catch_up(city: str, database_url: str) -> None:
    """The projector Deployment's work, once: ``zongzhi projections catch-up``."""
    subprocess.run([sys.executable, "-m", "zongzhi.cli", "projections", "catch-up",
                    "--city", city], cwd=ROOT, env=product_env(database_url), check=True,
                   capture_output=True, timeout=120)


def test_the_api_process_serves_without_following_the_log_groups(
        tenants: Tenants, city_tree: dict[str, list[str]], database_url: str) -> None:
    # given a city whose case view is up to date
    city, village = city_tree["city"][0], city_tree["village"][0]
    _receive(tenants, village)
    _catch_up(city, database_url)
    # when the api process runs with the deployment's own arguments (on a free port)
    args = list(by_name("api").command)
    args[args.index("--port") + 1] = str(port := free_port())
    args[args.index("--host") + 1] = "127.0.0.1"
    assert "--no-workers" in args
    api = subprocess.Popen([sys.executable, "-m", "zongzhi.cli", *args, "--city", city],
                           cwd=ROOT, env=product_env(database_url), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        assert _case_view_lag(port, city, time.monotonic() + 90) == 0
        # and a new case arrives
        _receive(tenants, village)
        # then the api serves but projects nothing: the city's view stays behind, since the
        # projector Deployment, not the api, follows the log group
        lag = _case_view_lag(port, city, time.monotonic() + 10)
        assert lag > 0
        time.sleep(3)
        assert _case_view_lag(port, city, time.monotonic() + 10) == lag
        # and once the projector's command runs, the api reports the view current again
        _catch_up(city, database_url)
        assert _case_view_lag(port, city, time.monotonic() + 10) == 0
    finally:
        api.terminate()
        try:
            api.wait(timeout=20)
        except subprocess.TimeoutExpired:
            api.kill()
            api.wait()
