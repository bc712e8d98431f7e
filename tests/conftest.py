"""Fixtures shared by every suite: real servers, fresh tenants, no mocks.

The servers come from ``zongzhi.servers`` exactly as the product gets them:
``ZONGZHI_DATABASE_URL`` / ``ZONGZHI_NATS_URL`` when set, otherwise embedded
ones started in ``.zongzhi/test`` (stopped again at the end of the session).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from zongzhi.servers import Servers, free_port

ROOT = Path(__file__).resolve().parents[1]
_servers: Servers | None = None


def test_servers() -> Servers:
    """The session's servers, started on first use."""
    global _servers
    if _servers is None:
        data_dir = Path(os.environ.get("ZONGZHI_TEST_DATA_DIR") or ROOT / ".zongzhi" / "test")
        _servers = Servers(data_dir=data_dir, nats_port=free_port()).start()
    return _servers


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _servers is not None:
        _servers.stop()


@pytest.fixture(scope="session")
def database_url() -> str:
    return test_servers().database_url


@pytest.fixture(scope="session")
def nats_url() -> str:
    return test_servers().nats_url


@pytest.fixture
def city() -> str:
    """A fresh, unused city code (log group) for one test: 99xx is not a real
    Zhejiang prefix, and the random digits keep tests apart."""
    return "9" + str(secrets.randbelow(900) + 100)


@pytest.fixture
def unique() -> Iterator[str]:
    yield secrets.token_hex(4)
