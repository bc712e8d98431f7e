"""Makes ``view_support`` importable (no packages under tests/), and tells the
story of ``view_support`` once per session for the query and KPI suites, which
only read it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = str(Path(__file__).parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from view_support import Story, another_city, tell  # noqa: E402

from projections.views import CaseView  # noqa: E402
from tenants.service import Tenants  # noqa: E402


@pytest.fixture(scope="session")
def story(tenants: Tenants, tmp_path_factory: pytest.TempPathFactory) -> Story:
    """The story, told and projected (read-only for the tests that use it)."""
    tree = another_city(tenants, tmp_path_factory.mktemp("story"))
    told = tell(tenants, tree)
    CaseView(tenants, told.city).catch_up()
    return told
