"""Fixtures shared by every suite: real servers, fresh tenants, no mocks.

The servers come from ``zongzhi.servers`` exactly as the product gets them:
``ZONGZHI_DATABASE_URL`` / ``ZONGZHI_NATS_URL`` when set, otherwise embedded
ones started in ``.zongzhi/test`` (stopped again at the end of the session).
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from support import MASTER_KEY, ROOT, SESSION_SERVERS, write_divisions

from zongzhi.servers import Servers, free_port

_servers: Servers | None = None
_triton: object | None = None  # zongzhi.servers.EmbeddedTriton, started on first use
_database: tuple[str, str] | None = None  # (server URL, fresh database's URL)
_codes = itertools.count(6101)


def test_servers() -> Servers:
    """The session's servers, started on first use."""
    global _servers
    if _servers is None:
        data_dir = Path(os.environ.get("ZONGZHI_TEST_DATA_DIR") or ROOT / ".zongzhi" / "test")
        _servers = Servers(data_dir=data_dir, nats_port=free_port()).start()
        SESSION_SERVERS["ZONGZHI_NATS_URL"] = _servers.nats_url
    return _servers


def test_database_url() -> str:
    """A database created for this test session on the session's server, so
    every run starts from an empty store (dropped again at the end)."""
    global _database
    if _database is None:
        server_url = test_servers().database_url
        name = f"zz_test_{os.getpid()}_{secrets.token_hex(3)}"
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        _database = (server_url, make_conninfo(server_url, dbname=name))
    return _database[1]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from tenants.persistence import SharedDatastore

    if _database is not None:
        for datastore in list(SharedDatastore._by_url.values()):
            datastore.close()
        server_url, url = _database
        name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    if _servers is not None:
        _servers.stop()
    if _triton is not None:
        _triton.stop()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def database_url() -> str:
    return test_database_url()


@pytest.fixture(scope="session")
def nats_url() -> str:
    return test_servers().nats_url


@pytest.fixture(scope="session")
def triton_url() -> str:
    """gRPC address of a Triton serving the product's models: ``ZONGZHI_TRITON_URL``,
    or the nvidia-pytriton wheel's server started on CPU (stopped at session end)."""
    global _triton
    from vision.inference import local_model_repository
    from zongzhi.servers import TRITON_URL, EmbeddedTriton

    if os.environ.get(TRITON_URL):
        return os.environ[TRITON_URL]
    if _triton is None:
        data_dir = Path(os.environ.get("ZONGZHI_TEST_DATA_DIR") or ROOT / ".zongzhi" / "test")
        _triton = EmbeddedTriton(data_dir, (local_model_repository(),))
    return _triton.start()  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
def city() -> str:
    """A fresh city code (log group) for one test: 61xx-69xx are not
    Zhejiang's, and each test of the session gets its own."""
    return str(next(_codes))


@pytest.fixture
def unique() -> Iterator[str]:
    yield secrets.token_hex(4)


@pytest.fixture(scope="session")
def tenants(database_url: str) -> Iterator[object]:
    """The product's entry to every tenant, over the session's database."""
    from tenants.service import Tenants

    service = Tenants(database_url, MASTER_KEY)
    yield service
    service.close()


@pytest.fixture
def city_tree(tenants: object, city: str, tmp_path: Path) -> dict[str, list[str]]:
    """A registered synthetic city: 1 county, 2 townships, 4 villages."""
    from datetime import UTC, datetime

    from tenants.service import Tenants

    assert isinstance(tenants, Tenants)
    tree = write_divisions(tmp_path / "divisions", city)
    tenants.import_divisions(tmp_path / "divisions", city, "test", datetime.now(UTC))
    return tree
