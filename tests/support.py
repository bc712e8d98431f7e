"""Helpers the suites import (``tests/`` is on pytest's pythonpath)."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MASTER_KEY = secrets.token_bytes(32)  # the test session's master key
#: The session's other servers (``ZONGZHI_NATS_URL``), set once they are started, so a
#: subprocess never starts (or leaks) an embedded one on the default port.
SESSION_SERVERS: dict[str, str] = {}


def product_env(database_url: str) -> dict[str, str]:
    """The environment under which a ``zongzhi`` subprocess (router, scheduler)
    works on the session's store (and NATS) with the session's master key."""
    return {**os.environ, **SESSION_SERVERS, "ZONGZHI_DATABASE_URL": database_url,
            "ZONGZHI_MASTER_KEY": base64.urlsafe_b64encode(MASTER_KEY).decode()}


def write_divisions(directory: Path, city: str, *, counties: int = 1, townships: int = 2,
                    villages: int = 2) -> dict[str, list[str]]:
    """Division files in the shipped format for a small synthetic city."""
    directory.mkdir(parents=True, exist_ok=True)
    tree: dict[str, list[str]] = {"city": [city], "county": [], "township": [], "village": []}
    rows: dict[str, list[str]] = {
        "cities.csv": ["code,name,provinceCode", f'{city},"测试市{city}",{city[:2]}'],
        "counties.csv": ["code,name,cityCode,provinceCode"],
        "townships.csv": ["code,name,areaCode,provinceCode,cityCode"],
        "villages.csv": ["code,name,streetCode,provinceCode,cityCode,areaCode"],
    }
    for c in range(1, counties + 1):
        county = f"{city}{c:02d}"
        tree["county"].append(county)
        rows["counties.csv"].append(f'{county},"测试县{c}",{city},{city[:2]}')
        for t in range(1, townships + 1):
            township = f"{county}{t:03d}"
            tree["township"].append(township)
            rows["townships.csv"].append(
                f'{township},"测试镇{c}-{t}",{county},{city[:2]},{city}')
            for v in range(1, villages + 1):
                village = f"{township}{v:03d}"
                tree["village"].append(village)
                rows["villages.csv"].append(
                    f'{village},"测试村{c}-{t}-{v}",{township},{city[:2]},{city},{county}')
    for name, lines in rows.items():
        (directory / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tree
