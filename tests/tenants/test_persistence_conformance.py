"""Our recorders and factory pass the eventsourcing library's own suites,
run against real PostgreSQL (DESIGN.md: "Any recorder or factory of ours must
pass the library's own conformance suites")."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from eventsourcing.persistence import ApplicationRecorder, ProcessRecorder, TrackingRecorder
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.tests.persistence import (
    ApplicationRecorderTestCase,
    InfrastructureFactoryTestCase,
    ProcessRecorderTestCase,
    TrackingRecorderTestCase,
)
from eventsourcing.utils import Environment
from psycopg.sql import SQL, Identifier

from tenants import persistence
from tenants.persistence import (
    Factory,
    SchemaView,
    SharedDatastore,
    TenantProcessRecorder,
    TenantRecorder,
    TenantTrackingRecorder,
    log_group_schema,
)


@pytest.fixture(autouse=True)
def _fresh_log_group(request: pytest.FixtureRequest, database_url: str) -> Any:
    """Each library test gets an empty log group of its own, dropped afterwards."""
    if request.cls is None:
        yield
        return
    shared = SharedDatastore.for_url(database_url)
    group = "conf" + secrets.token_hex(3)
    request.cls.database_url = database_url
    request.cls.view = SchemaView(shared, log_group_schema(group))
    request.cls.group = group
    yield
    with shared.transaction(commit=True) as curs:
        curs.execute(SQL("DROP SCHEMA IF EXISTS {0} CASCADE").format(
            Identifier(log_group_schema(group))))
    shared.ensured = {e for e in shared.ensured if e[0] != log_group_schema(group)}


def _create(recorder: Any) -> Any:
    with recorder.datastore.transaction(commit=True) as curs:
        curs.execute(SQL("CREATE SCHEMA IF NOT EXISTS {0}").format(
            Identifier(recorder.datastore.schema)))
    recorder.create_table()
    return recorder


class TestTenantRecorder(ApplicationRecorderTestCase[TenantRecorder]):
    view: SchemaView

    def create_recorder(self) -> TenantRecorder:
        return _create(TenantRecorder(self.view, tenant="3399"))

    def test_concurrent_throughput(self) -> None:  # the library's own, smaller here
        super().test_concurrent_throughput()


class TestTrackingRecorder(TrackingRecorderTestCase):
    view: SchemaView

    def create_recorder(self) -> TrackingRecorder:
        return _create(PostgresTrackingRecorder(self.view, tracking_table_name="tracking"))


class TestTenantProcessRecorder(ProcessRecorderTestCase):
    view: SchemaView

    def create_recorder(self) -> ProcessRecorder:
        return _create(TenantProcessRecorder(self.view, tenant="3399",
                                             tracking_table_name="tracking"))


class _TrackingSubclass(PostgresTrackingRecorder):
    pass


class TestFactory(InfrastructureFactoryTestCase[Factory]):
    database_url: str
    group: str

    def setUp(self) -> None:
        self.env = Environment("TestCase", {
            "PERSISTENCE_MODULE": persistence.__name__,
            persistence.DATABASE_URL: self.database_url,
            persistence.TENANT: "3399",
            persistence.LOG_GROUP: self.group,
        })
        super().setUp()

    def expected_factory_class(self) -> type[Factory]:
        return Factory

    def expected_aggregate_recorder_class(self) -> type[TenantRecorder]:
        return TenantRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return TenantRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return TenantTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return _TrackingSubclass

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return TenantProcessRecorder
