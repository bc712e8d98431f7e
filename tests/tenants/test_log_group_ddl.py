"""Opening a new city's log group from many workers at once must not deadlock."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

import psycopg

from tenants import persistence
from tenants.persistence import Factory, SharedDatastore, log_group_schema


def test_workers_opening_a_new_log_group_at_once_all_succeed(database_url: str) -> None:
    group = "ddl" + secrets.token_hex(3)
    SharedDatastore.for_url(database_url, pool_size=10)

    def open_recorders(i: int) -> str:
        factory = Factory({"PERSISTENCE_MODULE": persistence.__name__,
                           persistence.DATABASE_URL: database_url,
                           persistence.LOG_GROUP: group, persistence.TENANT: f"61{i:02d}"})
        factory.application_recorder()
        factory.process_recorder()
        return factory.datastore.schema

    with ThreadPoolExecutor(max_workers=6) as pool:
        schemas = list(pool.map(open_recorders, range(6)))  # raises if any deadlocked

    assert set(schemas) == {log_group_schema(group)}
    with psycopg.connect(database_url) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (log_group_schema(group),))}
    assert tables == {"events", "tracking"}
