"""The shared pool honours the whole database URL an operator gives, its sessions
run in UTC whatever the server's own time zone, and its size is the operator's."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import pytest
from psycopg.conninfo import make_conninfo

from tenants.persistence import POOL_SIZE, SharedDatastore
from tenants.service import Tenants


def test_the_urls_own_parameters_reach_every_pooled_connection(database_url: str) -> None:
    # given a URL naming an application, and options of its own, as an operator might
    url = make_conninfo(database_url, application_name="zongzhi-ops-check",
                        options="-c statement_timeout=12345")
    datastore = SharedDatastore.for_url(url, pool_size=2)
    try:
        with datastore.get_connection() as conn:
            row = conn.execute(
                "SELECT current_setting('application_name') AS app, "
                "current_setting('statement_timeout') AS timeout, "
                "current_setting('TimeZone') AS zone, %s::timestamptz AS at",
                (datetime(2026, 12, 7, 16, 0, tzinfo=UTC),)).fetchone()
    finally:
        datastore.close()
    # then the connections carry them, and our UTC session zone beside them
    assert row is not None
    assert row["app"] == "zongzhi-ops-check" and row["timeout"] == "12345ms"
    assert row["zone"] == "UTC"
    assert row["at"].tzinfo is UTC and row["at"] == datetime(2026, 12, 7, 16, 0,
                                                                      tzinfo=UTC)


def test_a_process_sizes_its_pools_from_the_environment(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # given an operator who sizes each API process's pool to the database's cores
    monkeypatch.setenv(POOL_SIZE, "3")
    url = make_conninfo(database_url, application_name="zongzhi-pool-size-check")
    tenants = Tenants.from_env(url, secrets.token_bytes(32))
    try:
        # then the process's pool holds at most that many connections
        assert tenants.datastore.pool.max_size == 3
    finally:
        tenants.close()


@pytest.mark.parametrize("value", ["0", "ten", "-4", "1001", "2.5"])
def test_a_pool_size_that_is_no_size_is_refused_by_name(
        database_url: str, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(POOL_SIZE, value)
    with pytest.raises(OSError, match=f"ZONGZHI_POOL_SIZE must be a whole number .*{value}"):
        Tenants.from_env(database_url, secrets.token_bytes(32))
