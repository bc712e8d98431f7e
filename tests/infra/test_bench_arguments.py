"""The API benches refuse arguments that make no sense, by name, before they start a
server or touch a database."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support import ROOT


@pytest.mark.parametrize(("script", "args", "rule"), [
    ("graphql_http.py", [], "--reuse DATABASE is required"),
    ("graphql_http.py", ["--reuse", "x", "--clients", "0"], "--clients must be at least 1"),
    ("graphql_http.py", ["--reuse", "x", "--processes", "0"],
     "--processes must be at least 1"),
    ("graphql_http.py", ["--reuse", "x", "--pool", "0"], "--pool must be at least 1"),
    ("graphql_http.py", ["--reuse", "x", "--duration", "0.5"],
     "--duration must be at least 1 second"),
    ("graphql.py", ["--reuse", "x", "--requests", "0"], "--requests must be at least 1"),
    ("analysis.py", ["--reuse", "x", "--rounds", "0"], "--rounds must be at least 1"),
    ("analysis.py", ["--reuse", "x", "--counties", "-1"], "--counties at least 0"),
])
def test_an_api_bench_refuses_bad_arguments_naming_the_rule(script: str, args: list[str],
                                                           rule: str) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert rule in done.stderr, done.stderr
    assert "bench_" not in done.stdout  # no database was made or named
