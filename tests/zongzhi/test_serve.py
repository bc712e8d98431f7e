"""The demo command serves the API: a real process, real HTTP, the printed tokens."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support import ROOT, product_env, write_divisions

from zongzhi.servers import answers, free_port


@pytest.mark.slow
def test_the_demo_serves_graphql_with_the_tokens_it_prints_and_cameras_raise_alerts(
        database_url: str, nats_url: str, triton_url: str, city: str, tmp_path: Path) -> None:
    write_divisions(tmp_path / "div", city, counties=1, townships=2, villages=2)
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "zongzhi.cli", "demo", "--city", city, "--cases", "20",
         "--divisions", str(tmp_path / "div"), "--port", str(port)],
        cwd=ROOT, env={**product_env(database_url), "ZONGZHI_NATS_URL": nats_url,
                       "ZONGZHI_TRITON_URL": triton_url, "ZONGZHI_DATA_DIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        assert demo.stdout is not None
        lines: list[str] = []
        for line in demo.stdout:
            lines.append(line.rstrip())
            if line.startswith("API: http://"):
                break
        output = "\n".join(lines)
        assert "Drove 20 cases" in output, output
        tokens = {who.strip(): lines[i + 1].strip() for i, who in enumerate(lines)
                  if who.startswith("  ") and who.endswith(":") and i + 1 < len(lines)}
        director = next(t for who, t in tokens.items() if who.startswith("city director"))
        grid = next(t for who, t in tokens.items() if who.startswith("village grid worker"))
        base = f"http://127.0.0.1:{port}"
        assert answers(f"{base}/healthz", 30), "the API did not come up"
        query = "{ me { centerCode roles center { code name } } }"
        answer = httpx.post(f"{base}/graphql", json={"query": query},
                            headers={"Authorization": f"Bearer {director}"}, timeout=10).json()
        assert answer["data"]["me"]["centerCode"] == city, answer
        assert answer["data"]["me"]["roles"] == ["DIRECTOR"], answer  # strawberry enum name
        refused = httpx.post(f"{base}/graphql", json={"query": f'{{ center(code: "{city}") '
                                                          "{ code } }"},
                             headers={"Authorization": f"Bearer {grid}"}, timeout=10).json()
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN", refused
        anonymous = httpx.post(f"{base}/graphql", json={"query": query}, timeout=10).json()
        assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", anonymous

        # the demo's cameras replay real photos through Triton: alerts arrive by themselves
        alerts_query = ("{ alerts(subtree: true) { nodes { cameraRef kind model status } } }")
        deadline = time.monotonic() + 300  # Triton on 2 cores shared with the suite
        while True:
            found = httpx.post(f"{base}/graphql", json={"query": alerts_query},
                               headers={"Authorization": f"Bearer {director}"},
                               timeout=10).json()["data"]["alerts"]["nodes"]
            if {a["cameraRef"] for a in found} >= {"demo-square", "demo-lane"}:
                break
            assert time.monotonic() < deadline, f"no alert from both demo cameras: {found}"
            time.sleep(1)
        assert {(a["cameraRef"], a["kind"], a["model"]) for a in found} == {
            ("demo-square", "CROWD", "ssdlite-person"), ("demo-lane", "FIRE_LANE", "yolov3-tiny")}
    finally:
        os.kill(demo.pid, signal.SIGINT)
        try:
            demo.wait(timeout=20)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
