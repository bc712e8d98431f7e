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


def test_recorders_of_one_log_group_share_statements_only_with_their_own_kind(
        database_url: str) -> None:
    # statements are composed once per kind of recorder; a bound one keeps its fence
    group = "ddl" + secrets.token_hex(3)
    SharedDatastore.for_url(database_url, pool_size=10)

    def factory(tenant: str | None) -> Factory:
        env = {"PERSISTENCE_MODULE": persistence.__name__,
               persistence.DATABASE_URL: database_url, persistence.LOG_GROUP: group}
        if tenant is not None:
            env[persistence.TENANT] = tenant
        return Factory(env)

    first, second = (factory(t).application_recorder() for t in ("6101", "6102"))
    assert isinstance(first, persistence.TenantRecorder)
    assert isinstance(second, persistence.TenantRecorder)
    assert first.select_events_statement is second.select_events_statement  # composed once
    assert first.sql_create_statements is not second.sql_create_statements  # own lists
    fenced = first.select_events_statement.as_string()
    follower = factory(None).application_recorder()
    assert isinstance(follower, persistence.TenantRecorder)
    assert "tenant = %(tenant)s" in fenced
    assert "tenant = %(tenant)s" not in follower.select_events_statement.as_string()
    process = factory("6103").process_recorder()
    assert any("tracking" in s.as_string() for s in process.sql_create_statements)
    assert not any("tracking" in s.as_string() for s in first.sql_create_statements)
