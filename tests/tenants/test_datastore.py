"""The shared pool honours the whole database URL an operator gives, and its
sessions run in UTC whatever the server's own time zone."""

from __future__ import annotations

from datetime import UTC, datetime

from psycopg.conninfo import make_conninfo

from tenants.persistence import SharedDatastore


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
