"""The API process serves the built client at / without shadowing any API
route, and lists demo users only when it runs as the demo."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import ROOT

from api.app import create_app
from tenants.service import Tenants


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<div id=app>client</div>", encoding="utf-8")
    (tmp_path / "assets" / "index-abc.js").write_text("console.log(1)", encoding="utf-8")
    return tmp_path


def test_the_client_answers_its_own_routes_and_files_but_never_an_api_path(
        tenants: Tenants, dist: Path) -> None:
    # given the API with a built client
    client = TestClient(create_app(tenants, web=dist))
    # when a deep link of the client is opened, then index.html answers it
    page = client.get("/cases/0b6f3a5e-1111-4f00-9000-000000000001")
    assert page.status_code == 200 and "client" in page.text
    assert page.headers["cache-control"] == "no-cache"
    # and a built asset is served as a file, cached for good (its name has its hash)
    asset = client.get("/assets/index-abc.js")
    assert asset.text == "console.log(1)" and "immutable" in asset.headers["cache-control"]
    # but a missing asset stays missing, and nothing outside dist is reachable
    assert client.get("/assets/gone.js").status_code == 404
    assert client.get("/../pyproject.toml").status_code == 404
    # and the API's own paths keep answering as the API
    assert client.get("/healthz").json() == {"status": "ok"}
    graphql = client.post("/graphql", json={"query": "{ me { subject } }"}).json()
    assert graphql["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    for path in ("/graphql/nothing", "/open311/v2/nothing", "/demo/users", "/readyz/x"):
        answer = client.get(path)
        assert answer.status_code == 404 and "client" not in answer.text, path
    # and a write to an unknown path is not answered with the client either
    assert "client" not in client.post("/cases/x").text


def test_without_a_build_the_api_serves_no_client(tenants: Tenants, tmp_path: Path) -> None:
    client = TestClient(create_app(tenants, web=tmp_path / "missing"))
    assert client.get("/").status_code == 404
    assert client.get("/healthz").status_code == 200


def test_demo_users_are_listed_only_by_the_demo(tenants: Tenants, dist: Path) -> None:
    # given the demo's users and the API started with and without them
    users = [("city director 3307 金华市", "token-a"), ("village grid worker", "token-b")]
    demo = TestClient(create_app(tenants, web=dist, demo_users=users))
    product = TestClient(create_app(tenants, web=dist))
    # then only the demo lists them, in order, for the sign-in picker
    assert demo.get("/demo/users").json() == [{"label": label, "token": token}
                                              for label, token in users]
    assert product.get("/demo/users").status_code == 404


@pytest.mark.slow
def test_the_component_tests_of_the_client_pass() -> None:
    # Vitest: the intake form's validation, the timeline, every error code translated
    web = ROOT / "web"
    subprocess.run([str(web / "build.sh")], check=True,
                   env={**os.environ, "BUILD_WEB_REQUIRED": "1"})
    run = subprocess.run(["npm", "test", "--silent"], cwd=web, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert " failed" not in run.stdout
