"""Makes ``audit_support`` importable (no packages under tests/), and gives the
suite a deployment signing key and a county with a few cases driven through
their loop."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = str(Path(__file__).parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from audit_support import Log, drive  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from tenants.service import Tenants  # noqa: E402


@pytest.fixture(scope="session")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def log(tenants: Tenants, city_tree: dict[str, list[str]], city: str) -> Log:
    """A county's log of 3 cases (about 20 events), chained; nothing signed yet."""
    return drive(tenants, city, city_tree["county"][0], cases=3)
