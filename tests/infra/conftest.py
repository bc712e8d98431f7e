"""Fixtures of the infrastructure checks: checkov runs once per session."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from infra_support import CHECKOV, INFRA, TERRAFORM


@pytest.fixture(scope="session")
def checkov_report() -> dict[str, dict[str, Any]]:
    """checkov's JSON report over infra/ (Terraform with the provincial sizes, and the
    Dockerfiles), by framework. checkov lives in its own venv (scripts/bootstrap)."""
    assert CHECKOV.exists(), "checkov is missing: run scripts/bootstrap (it makes .venv-checkov)"
    done = subprocess.run(
        [str(CHECKOV), "--directory", str(INFRA), "--framework", "terraform,dockerfile",
         "--output", "json", "--compact", "--skip-download",
         "--var-file", str(TERRAFORM / "sizes" / "provincial.tfvars")],
        capture_output=True, text=True, timeout=300, check=False)
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov printed no JSON (status {done.returncode}): {done.stderr[-2000:]}")
    reports = report if isinstance(report, list) else [report]
    return {r["check_type"]: r for r in reports}
