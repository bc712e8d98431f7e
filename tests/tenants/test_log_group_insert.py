"""How a log group's events are inserted: committed by the server in one call,
the followers woken after the commit, and older log groups upgraded in place."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent, Tracking

from domain.codes import new_stream_id
from tenants import persistence
from tenants.persistence import Factory, SharedDatastore, TenantRecorder, log_group_schema


def _factory(database_url: str, group: str, tenant: str) -> Factory:
    SharedDatastore.for_url(database_url, pool_size=4)
    return Factory({"PERSISTENCE_MODULE": persistence.__name__,
                    persistence.DATABASE_URL: database_url,
                    persistence.LOG_GROUP: group, persistence.TENANT: tenant})


def _events(tenant: str, n: int) -> list[StoredEvent]:
    return [StoredEvent(new_stream_id(tenant), 1, "domain.case:Case.Received",
                        b'{"n":%d}' % i) for i in range(n)]


@pytest.fixture
def group() -> str:
    return "ins" + secrets.token_hex(3)


@pytest.fixture
def listener(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


def _recorder(database_url: str, group: str, tenant: str) -> TenantRecorder:
    recorder = _factory(database_url, group, tenant).application_recorder()
    assert isinstance(recorder, TenantRecorder)
    return recorder


def test_followers_are_woken_after_the_events_are_committed(
        database_url: str, group: str, listener: psycopg.Connection[tuple[object, ...]]
) -> None:
    tenant = "610101"
    recorder = _recorder(database_url, group, tenant)
    listener.execute(f'LISTEN "{recorder.channel_name}"')

    ids = recorder.insert_events(_events(tenant, 3))

    assert ids is not None and len(ids) == 3 and list(ids) == sorted(ids)
    woken = next(listener.notifies(timeout=5, stop_after=1))
    assert woken.channel == recorder.channel_name
    # by the time a follower is woken, the rows are there for it to read
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            f"SELECT notification_id, tenant, tenant_position FROM "
            f"{log_group_schema(group)}.events ORDER BY notification_id").fetchall()
    assert rows == [(i, tenant, p) for i, p in zip(ids, (1, 2, 3), strict=True)]


def test_a_wake_up_that_fails_loses_no_event(
        database_url: str, group: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    # given a wake-up the server refuses (a payload over NOTIFY's 8,000 bytes)
    tenant = "610102"
    recorder = _recorder(database_url, group, tenant)
    monkeypatch.setattr(persistence, "traceparent", lambda: "x" * 9000)

    with caplog.at_level(logging.WARNING, logger=persistence.__name__):
        ids = recorder.insert_events(_events(tenant, 2))

    # then the events are stored all the same, and the operator is told
    assert ids is not None and len(ids) == 2
    assert recorder.max_tenant_position() == 2
    assert "followers not woken" in caplog.text


def test_a_rejected_insert_stores_nothing_and_wakes_nobody(
        database_url: str, group: str, listener: psycopg.Connection[tuple[object, ...]]
) -> None:
    tenant = "610103"
    recorder = _recorder(database_url, group, tenant)
    first = _events(tenant, 1)
    recorder.insert_events(first)
    listener.execute(f'LISTEN "{recorder.channel_name}"')

    with pytest.raises(persistence.IntegrityError):  # the same stream and version again
        recorder.insert_events([*_events(tenant, 1), first[0]])

    assert recorder.max_tenant_position() == 1
    assert list(listener.notifies(timeout=0.5)) == []


def test_a_process_recorder_keeps_tracking_and_events_in_one_transaction(
        database_url: str, group: str, listener: psycopg.Connection[tuple[object, ...]]
) -> None:
    tenant = "610104"
    recorder = _factory(database_url, group, tenant).process_recorder()
    assert isinstance(recorder, TenantRecorder)
    listener.execute(f'LISTEN "{recorder.channel_name}"')

    recorder.insert_events(_events(tenant, 1), tracking=Tracking("upstream", 7))
    with pytest.raises(persistence.IntegrityError):  # position 7 was processed already
        recorder.insert_events(_events(tenant, 1), tracking=Tracking("upstream", 7))

    assert recorder.max_tracking_id("upstream") == 7
    assert recorder.max_tenant_position() == 1  # the second event went with its tracking
    assert len(list(listener.notifies(timeout=1, stop_after=2))) == 1


def test_a_log_group_made_before_the_insert_function_is_given_it(
        database_url: str, group: str) -> None:
    # given a log group with events whose insert function is missing (an older release)
    tenant = "610105"
    recorder = _recorder(database_url, group, tenant)
    recorder.insert_events(_events(tenant, 2))
    schema = log_group_schema(group)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"DROP FUNCTION {schema}.insert_events")
    datastore = SharedDatastore.for_url(database_url)
    datastore.ensured.discard((schema, "TenantRecorder"))  # as a process started afresh

    # when a process opens it and writes
    again = _recorder(database_url, group, tenant)
    again.insert_events(_events(tenant, 1))

    # then the function is back and the log group kept its events
    with psycopg.connect(database_url) as conn:
        found = conn.execute("SELECT to_regprocedure(%s) IS NOT NULL",
                             (again.insert_function_signature,)).fetchone()
    assert found == (True,)
    assert again.max_tenant_position() == 3
