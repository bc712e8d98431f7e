"""zongzhi's persistence module for the ``eventsourcing`` library.

Select it with ``PERSISTENCE_MODULE=tenants.persistence``. It differs from the
library's ``eventsourcing.postgres`` in three ways, all through the library's
own extension points (``InfrastructureFactory`` and recorder subclasses):

* **Log groups.** Each city is one log group: a schema ``lg_<city>`` holding
  one ``events`` table (one notification sequence, one insert lock) shared by
  every tenant of that city. Provisioning a tenant creates no table.
* **Tenant column and position.** Every stored event carries its tenant code
  and a gap-free per-tenant position, assigned under the log group's insert
  lock in the same statement that inserts the event. A recorder bound to a
  tenant reads and writes only that tenant's rows.
* **One bounded pool.** Every application of the process shares one psycopg
  pool per database URL, so connections do not grow with tenants. Inserts use
  plain arrays, never composite types, so one pool can serve many schemas.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple, cast
from uuid import UUID

import psycopg
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    IntegrityError,
    InterfaceError,
    Notification,
    OperationalError,
    ProcessRecorder,
    ProgrammingError,
    StoredEvent,
    Tracking,
    TrackingRecorder,
)
from eventsourcing.postgres import (
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresProcessRecorder,
    PostgresTrackingRecorder,
)
from eventsourcing.utils import resolve_topic, retry, strtobool
from psycopg import Cursor
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier, Literal

from domain.codes import tenant_of
from tenants.telemetry import traceparent, tracer

log = logging.getLogger(__name__)

DATABASE_URL = "ZONGZHI_DATABASE_URL"
#: JSON object naming the server of some cities' log groups, e.g.
#: ``{"3305": "postgresql://...", "3306": "postgresql://..."}``; every other log
#: group, the registry and the keys live on ``ZONGZHI_DATABASE_URL``.
PLACEMENT = "ZONGZHI_PLACEMENT"
POOL_SIZE = "ZONGZHI_POOL_SIZE"
TENANT = "ZONGZHI_TENANT"
LOG_GROUP = "ZONGZHI_LOG_GROUP"
DEFAULT_POOL_SIZE = 10
ANY_TENANT = "*"  # a recorder that writes for whichever tenant each stream id names
READER_ROLE = "zongzhi_reader"
SCOPE_SETTING = "zongzhi.scope"


def parse_placement(text: str | None) -> dict[str, str]:
    """The placement a ``ZONGZHI_PLACEMENT`` value names: city code -> database URL."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as e:
        raise OSError(f"{PLACEMENT} is not JSON: {e}") from e
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and len(k) == 4 and k.isdigit() and isinstance(v, str) and v
            for k, v in value.items()):
        raise OSError(f"{PLACEMENT} must map 4-digit city codes to database URLs, "
                      f"e.g. {{\"3305\": \"postgresql://...\"}}")
    return value


def parse_pool_size(text: str | None) -> int:
    """The pool size a ``ZONGZHI_POOL_SIZE`` value names (connections per process to
    each database server), else the default."""
    if not text:
        return DEFAULT_POOL_SIZE
    try:
        size = int(text)
    except ValueError:
        size = 0
    if not 1 <= size <= 1000:
        raise OSError(f"{POOL_SIZE} must be a whole number of connections from 1 to 1000; "
                      f"got {text!r}")
    return size


def placed_url(url: str, placement: dict[str, str], log_group: str) -> str:
    """The database holding ``log_group``: its city's placed server, else ``url``."""
    return placement.get(log_group, url)


def log_group_schema(log_group: str) -> str:
    """The schema of a log group: ``lg_3307`` for city 3307."""
    if not log_group.replace("_", "").isalnum():
        raise ProgrammingError(f"invalid log group name: {log_group!r}")
    return f"lg_{log_group}"


DDL_LOCK = 0x7A7A_4444  # advisory lock key serialising our DDL across processes


class SerializedDDL:
    """Runs a recorder's table creation under a transaction-scoped advisory
    lock: two processes opening a new log group at once would otherwise
    deadlock (index creation, then ALTER TABLE, in two transactions)."""

    def _create_table(self, curs: Cursor[DictRow]) -> None:
        curs.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK,))
        super()._create_table(curs)  # type: ignore[misc]

    def _insert_tracking(self, curs: Cursor[DictRow], tracking: Tracking) -> None:
        # The library decides whether to write its migration marker by a look
        # taken before our lock; a worker that lost the race must not fail on it.
        if tracking.application_name == "__migration__":
            curs.execute(SQL("INSERT INTO {0}.{1} VALUES (%s, %s) ON CONFLICT DO NOTHING").format(
                Identifier(self.datastore.schema),  # type: ignore[attr-defined]
                Identifier(self.tracking_table_name)),  # type: ignore[attr-defined]
                (tracking.application_name, tracking.notification_id))
            return
        super()._insert_tracking(curs, tracking)  # type: ignore[misc]


class SharedDatastore(PostgresDatastore):
    """The one pool of a process for one database URL."""

    _lock = threading.RLock()  # close() may run from __del__ inside for_url
    _by_url: ClassVar[dict[str, SharedDatastore]] = {}

    @classmethod
    def for_url(cls, url: str, pool_size: int = DEFAULT_POOL_SIZE) -> SharedDatastore:
        with cls._lock:
            datastore = cls._by_url.get(url)
            if datastore is None or datastore.closed:
                params = conninfo_to_dict(url)
                datastore = cls(
                    dbname=str(params.get("dbname", "postgres")),
                    host=str(params.get("host", "127.0.0.1")),
                    port=str(params.get("port", "5432")),
                    user=str(params.get("user", "postgres")),
                    password=str(params.get("password", "")),
                    pool_size=pool_size,
                    max_overflow=0,
                    connect_timeout=30,
                    idle_in_transaction_session_timeout=5,
                )
                # the library passes the five above; the URL's other parameters (sslmode,
                # sslrootcert, application_name, options, ...) are the operator's too
                extra = {k: v for k, v in params.items()
                         if k not in ("dbname", "host", "port", "user", "password")}
                # Sessions in UTC: the product's SQL names its zones where it needs one,
                # and psycopg loads timestamptz fastest into datetime.timezone.utc (a
                # server's "Etc/UTC" or local zone goes through zoneinfo: a fifth of a
                # list page's loading, measured)
                extra["options"] = f"{extra.get('options', '')} -c TimeZone=UTC".strip()
                datastore.pool.kwargs.update(extra)  # type: ignore[union-attr]
                datastore.url = url
                datastore.ensured = set()
                datastore.closed = False
                cls._by_url[url] = datastore
            return datastore

    url: str
    ensured: set[tuple[str, str]]
    closed: bool

    def close(self) -> None:
        self.closed = True
        with SharedDatastore._lock:
            if SharedDatastore._by_url.get(getattr(self, "url", "")) is self:
                del SharedDatastore._by_url[self.url]
        super().close()

    def register_type_adapters(self) -> None:
        """No composite types are used, so there is nothing to register."""


class SchemaView(PostgresDatastore):
    """A log group's view of the shared datastore: same pool, own schema.

    The library's recorders take the schema from their datastore; a view lets
    one pool serve every log group. Closing a view leaves the pool open.
    """

    def __init__(self, shared: SharedDatastore, schema: str) -> None:
        self.__dict__.update(shared.__dict__)
        self.shared = shared
        self.schema = schema
        self.db_type_names = set()
        self.psycopg_type_adapters = {}
        self.psycopg_python_types = {}

    def register_type_adapters(self) -> None:
        """No composite types are used, so there is nothing to register."""

    def close(self) -> None:
        """The shared pool belongs to its owner, not to a view."""


class _Statements(NamedTuple):
    """The statements of a :class:`TenantRecorder`, composed for one log group."""

    create: tuple[Composed, ...]
    insert: Composed
    insert_function: Composed  # creates the log group's insert function
    insert_function_signature: str  # for to_regprocedure
    call_insert: Composed
    select_events: Composed
    max_notification_id: Composed
    select_notifications: Composed
    max_tenant_position: Composed


class TenantRecorder(SerializedDDL, PostgresApplicationRecorder):
    """Stores events in a log group's table with their tenant and position.

    Bound to a tenant (``tenant`` set), it inserts rows for that tenant only
    and reads only that tenant's rows. Unbound (``tenant=None``) it is the
    log group's follower: it reads every tenant's notifications and refuses
    to write. With ``tenant=ANY_TENANT`` (the router's process recorder) it
    reads everything and writes each event for the tenant its stream id
    carries, which must belong to the log group's city.
    """

    def __init__(
        self,
        datastore: PostgresDatastore,
        *,
        tenant: str | None,
        events_table_name: str = "events",
        **kwargs: Any,
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name, **kwargs)
        self.tenant = tenant
        self.channel_name = f"{self.datastore.schema}_{events_table_name}"
        bound = tenant is not None and tenant != ANY_TENANT
        key = (type(self), self.datastore.schema, events_table_name, bound,
               getattr(self, "tracking_table_name", None), self.datastore.lock_timeout)
        composed = TenantRecorder._composed.get(key)
        if composed is None:
            composed = TenantRecorder._composed[key] = self._compose(
                self.datastore.schema, events_table_name, bound, self.sql_create_statements,
                self.datastore.lock_timeout)
        self.sql_create_statements = list(composed.create)
        self.insert_events_statement = composed.insert
        self.insert_function_statement = composed.insert_function
        self.insert_function_signature = composed.insert_function_signature
        self.call_insert_statement = composed.call_insert
        self.select_events_statement = composed.select_events
        self.max_notification_id_statement = composed.max_notification_id
        self._select_notifications = composed.select_notifications
        self.max_tenant_position_statement = composed.max_tenant_position

    #: A recorder's statements depend only on its class (a process recorder's include
    #: its tracking table), its log group, its tables and whether it is bound to one
    #: tenant: composed once a process (composing them was a sixth of reopening a
    #: tenant's application, measured).
    _composed: ClassVar[dict[tuple[type, str, str, bool, str | None, int], _Statements]] = {}

    @staticmethod
    def _compose(schema_name: str, events_table_name: str, bound: bool,
                 library_statements: Sequence[Composed], lock_timeout: int) -> _Statements:
        schema, table = Identifier(schema_name), Identifier(events_table_name)
        statements = [
            s for s in library_statements
            if "CREATE TYPE" not in s.as_string() and "FUNCTION" not in s.as_string()
        ]
        events_table = SQL(
            "CREATE TABLE IF NOT EXISTS {schema}.{table} ("
            "originator_id uuid NOT NULL, "
            "originator_version bigint NOT NULL, "
            "topic text NOT NULL, "
            "state bytea NOT NULL, "
            "notification_id bigserial NOT NULL, "
            "tenant text NOT NULL, "
            "tenant_position bigint NOT NULL, "
            "PRIMARY KEY (originator_id, originator_version))"
        ).format(schema=schema, table=table)
        # The library's statements minus composite types and DB functions; its
        # first one (the events table) is replaced by ours, with the schema first.
        statements = [SQL("CREATE SCHEMA IF NOT EXISTS {0}").format(schema), events_table,
                      *statements[1:],
                      SQL("CREATE SEQUENCE IF NOT EXISTS {0}.case_number_seq").format(schema)]
        policy = Literal(f"{events_table_name}_tenant_scope")
        statements += [
            SQL(
                "CREATE UNIQUE INDEX IF NOT EXISTS {index} "
                "ON {schema}.{table} (tenant, tenant_position)"
            ).format(index=Identifier(f"{events_table_name}_tenant_position_idx"),
                     schema=schema, table=table),
            SQL("ALTER TABLE {schema}.{table} ENABLE ROW LEVEL SECURITY").format(
                schema=schema, table=table),
            SQL(
                "DO $$ BEGIN "
                "IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = {s} "
                "AND tablename = {t} AND policyname = {p}) THEN "
                "CREATE POLICY {pi} ON {schema}.{table} USING ("
                "coalesce(current_setting({scope}, true), '') <> '' AND "
                "starts_with(tenant, current_setting({scope}, true))); "
                "END IF; END $$"
            ).format(
                s=Literal(schema_name), t=Literal(events_table_name), p=policy,
                pi=Identifier(f"{events_table_name}_tenant_scope"), schema=schema,
                table=table, scope=Literal(SCOPE_SETTING),
            ),
            SQL(
                "DO $$ BEGIN "
                "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {r}) THEN "
                "CREATE ROLE {ri} NOLOGIN; END IF; END $$"
            ).format(r=Literal(READER_ROLE), ri=Identifier(READER_ROLE)),
            SQL("GRANT USAGE ON SCHEMA {0} TO {1}").format(schema, Identifier(READER_ROLE)),
            SQL("GRANT SELECT ON {0}.{1} TO {2}").format(schema, table,
                                                        Identifier(READER_ROLE)),
        ]

        def insert_from(arrays: str) -> Composed:
            """The insert of the rows ``arrays`` hold (ids, versions, topics, states,
            tenants), each tenant's next positions assigned in the statement (under
            the log group's lock)."""
            return SQL(
                "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, "
                "state, tenant, tenant_position) "
                "SELECT e.originator_id, e.originator_version, e.topic, e.state, e.tenant, "
                "coalesce((SELECT max(t.tenant_position) FROM {schema}.{table} t "
                "WHERE t.tenant = e.tenant), 0) "
                "+ row_number() OVER (PARTITION BY e.tenant ORDER BY e.ord) "
                "FROM unnest({arrays}) WITH ORDINALITY "
                "AS e(originator_id, originator_version, topic, state, tenant, ord) "
                "ORDER BY e.ord RETURNING notification_id"
            ).format(schema=schema, table=table, arrays=SQL(arrays))

        insert = insert_from("%(ids)s::uuid[], %(versions)s::bigint[], %(topics)s::text[], "
                             "%(states)s::bytea[], %(tenants)s::text[]")
        # The same insert as one server-side call: the lock and the insert run in the
        # statement's own transaction, which commits as soon as it ends, so the log
        # group's lock is never held across a round trip to the client (insert_events).
        function = Identifier(f"insert_{events_table_name}")
        insert_function = SQL(
            "CREATE OR REPLACE FUNCTION {schema}.{function}(p_ids uuid[], p_versions bigint[], "
            "p_topics text[], p_states bytea[], p_tenants text[]) "
            "RETURNS SETOF bigint LANGUAGE plpgsql AS $body$ BEGIN "
            "SET LOCAL lock_timeout = {timeout}; "
            "LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE; "
            "RETURN QUERY {insert}; "
            "END $body$"
        ).format(schema=schema, table=table, function=function,
                 timeout=Literal(f"{lock_timeout}s"),
                 insert=insert_from("p_ids, p_versions, p_topics, p_states, p_tenants"))
        call_insert = SQL(
            "SELECT n FROM {schema}.{function}(%(ids)s::uuid[], %(versions)s::bigint[], "
            "%(topics)s::text[], %(states)s::bytea[], %(tenants)s::text[]) AS n"
        ).format(schema=schema, function=function)
        statements.append(insert_function)
        tenant_filter = SQL(" AND tenant = %(tenant)s") if bound else SQL("")
        return _Statements(
            create=tuple(statements),
            insert=insert,
            insert_function=insert_function,
            insert_function_signature=f'"{schema_name}"."insert_{events_table_name}"'
                                      "(uuid[], bigint[], text[], bytea[], text[])",
            call_insert=call_insert,
            select_events=SQL(
                "SELECT originator_id, originator_version, topic, state "
                "FROM {schema}.{table} WHERE originator_id = %(id)s").format(
                schema=schema, table=table) + tenant_filter,
            max_notification_id=SQL(
                "SELECT max(notification_id) FROM {schema}.{table} WHERE true").format(
                schema=schema, table=table) + tenant_filter,
            select_notifications=SQL(
                "SELECT notification_id, originator_id, originator_version, topic, state "
                "FROM {schema}.{table} WHERE true").format(schema=schema, table=table
            ) + tenant_filter,
            max_tenant_position=SQL(
                "SELECT max(tenant_position) FROM {schema}.{table} WHERE tenant = %s"
            ).format(schema=schema, table=table),
        )

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Insert, commit, then wake the log group's followers.

        Events without a tracking record are inserted by one call of the log
        group's insert function, in autocommit: the server takes the lock,
        inserts the rows and commits in one go. The library's way (pipelined
        lock and insert, then a sync and a COMMIT from the client) holds the
        city's lock across a round trip and whatever delays the writing thread
        (the GIL of a busy process), and every other writer of the city waits
        that long. The ``NOTIFY`` is then sent in a transaction of its own that
        does not wait for its WAL flush: PostgreSQL serialises every committing
        transaction that notifies, on one lock for the whole server held through
        the commit's WAL flush, so a notify inside the insert would put every
        city's writers back in one queue. A follower that misses a wake-up (the
        writer died in between) catches up on its next poll.

        With a tracking record (a process application: the router) or anything
        else a subclass writes in the same transaction (``_insert_events``: the
        registry), the library's transaction is kept, with its ``NOTIFY``
        inside: such writes are few, and a separate notify would cost them a
        connection and a round trip more."""
        if not stored_events:  # a tracking record alone
            return cast("Sequence[int] | None", super().insert_events(stored_events, **kwargs))
        with tracer.start_as_current_span(
                "store.insert", attributes={"zongzhi.log_group": self.datastore.schema,
                                            "zongzhi.tenant": self.tenant or "",
                                            "zongzhi.events": len(stored_events)}):
            if any(kwargs.values()) or type(self)._insert_events not in _PLAIN_INSERT_HOOKS:
                return cast("Sequence[int] | None",
                            super().insert_events(stored_events, **kwargs))
            return cast("list[int]", self._call_insert(stored_events))

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _call_insert(self, stored_events: Sequence[StoredEvent]) -> list[int]:
        tenants = self._tenants_of(stored_events)
        with self.datastore.get_connection() as conn:
            with conn.cursor() as curs:
                curs.execute(self.call_insert_statement, {
                    "ids": [e.originator_id for e in stored_events],
                    "versions": [e.originator_version for e in stored_events],
                    "topics": [e.topic for e in stored_events],
                    "states": [e.state for e in stored_events],
                    "tenants": tenants,
                }, prepare=True)
                ids = [int(row["n"]) for row in curs.fetchall()]
            self._notify_followers(conn)
            return ids

    def _notify_followers(self, conn: psycopg.Connection[DictRow]) -> None:
        """Wake the log group's followers, passing the writer's trace context. The
        events are committed already: a failure here is logged, never raised.

        A notifying transaction gets a transaction id, so its commit writes WAL and
        would wait for the flush, holding the server-wide notify lock meanwhile: a
        second fsync per command, in one queue for every city. A wake-up needs no
        durability (a follower that misses one polls), so it commits without
        waiting (``synchronous_commit`` off for this transaction alone)."""
        try:
            conn.execute("SELECT set_config('synchronous_commit', 'off', true), "
                         "pg_notify(%s, %s)", (self.channel_name, traceparent()),
                         prepare=True)
        except psycopg.Error as e:
            log.warning("log group %s: followers not woken (%s); they catch up on their "
                        "next poll", self.datastore.schema, e)

    def _notify_channel(self, curs: Cursor[DictRow]) -> None:
        """Wake the followers from inside the library's transaction (tracked writes)."""
        curs.execute("SELECT pg_notify(%s, %s)", (self.channel_name, traceparent()))

    def _insert_stored_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **_: Any,
    ) -> None:
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(
            self.insert_events_statement,
            {
                "tenant": self.tenant,
                "ids": [e.originator_id for e in stored_events],
                "versions": [e.originator_version for e in stored_events],
                "topics": [e.topic for e in stored_events],
                "states": [e.state for e in stored_events],
                "tenants": self._tenants_of(stored_events),
            },
            prepare=True,
        )

    def _tenants_of(self, stored_events: Sequence[StoredEvent]) -> list[str]:
        """The tenant of each event, refusing any this recorder may not write."""
        if self.tenant is None:
            raise ProgrammingError("a log group follower cannot write events")
        owners = [tenant_of(e.originator_id) if isinstance(e.originator_id, UUID) else None
                  for e in stored_events]
        if self.tenant == ANY_TENANT:
            city = self.datastore.schema.removeprefix("lg_")
            for e, owner in zip(stored_events, owners, strict=True):
                if owner is None or not owner.startswith(city):
                    raise ProgrammingError(
                        f"stream {e.originator_id} names no tenant of log group {city}")
            return [owner for owner in owners if owner is not None]
        if self.tenant.isdigit():
            for e, owner in zip(stored_events, owners, strict=True):
                if owner is not None and owner != self.tenant:
                    raise ProgrammingError(
                        f"stream {e.originator_id} belongs to tenant {owner}, "
                        f"not to {self.tenant}"
                    )
        return [self.tenant] * len(stored_events)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        statement: Composed = self.select_events_statement
        params: dict[str, Any] = {"id": originator_id, "tenant": self.tenant}
        if gt is not None:
            statement += SQL(" AND originator_version > %(gt)s")
            params["gt"] = gt
        if lte is not None:
            statement += SQL(" AND originator_version <= %(lte)s")
            params["lte"] = lte
        statement += SQL(" ORDER BY originator_version DESC" if desc
                         else " ORDER BY originator_version ASC")
        if limit is not None:
            statement += SQL(" LIMIT %(limit)s")
            params["limit"] = limit
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params, prepare=True)
            return [
                StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        statement: Composed = self._select_notifications
        params: dict[str, Any] = {"tenant": self.tenant, "limit": limit}
        if start is not None:
            statement += SQL(" AND notification_id >= %(start)s" if inclusive_of_start
                             else " AND notification_id > %(start)s")
            params["start"] = start
        if stop is not None:
            statement += SQL(" AND notification_id <= %(stop)s")
            params["stop"] = stop
        if topics:
            statement += SQL(" AND topic = ANY(%(topics)s)")
            params["topics"] = list(topics)
        statement += SQL(" ORDER BY notification_id LIMIT %(limit)s")
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params, prepare=True)
            return [
                Notification(
                    id=row["notification_id"],
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]

    def max_notification_id(self) -> int | None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.max_notification_id_statement, {"tenant": self.tenant})
            row = curs.fetchone()
            return None if row is None else row["max"]

    def max_tenant_position(self) -> int:
        """The tenant's last position (0 before its first event)."""
        if self.tenant is None or self.tenant == ANY_TENANT:
            raise ProgrammingError("a log group follower has no tenant position")
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.max_tenant_position_statement, (self.tenant,))
            row = curs.fetchone()
            return int(row["max"] or 0) if row else 0


class TenantProcessRecorder(TenantRecorder, PostgresProcessRecorder):
    """A tenant recorder that also records, in the same transaction, the
    position of the upstream notification that caused the new events."""


#: ``_insert_events`` hooks that write nothing when no tracking record is given: a
#: recorder with one of these may insert through its log group's function.
_PLAIN_INSERT_HOOKS = (PostgresApplicationRecorder._insert_events,
                       PostgresProcessRecorder._insert_events)


class TenantTrackingRecorder(SerializedDDL, PostgresTrackingRecorder):
    """The library's tracking recorder, with our serialised table creation."""


class Factory(InfrastructureFactory[PostgresTrackingRecorder]):
    """Builds recorders for one tenant (``ZONGZHI_TENANT``) or one log group
    follower (``ZONGZHI_LOG_GROUP`` only), all on the shared pool."""

    aggregate_recorder_class = TenantRecorder
    application_recorder_class = TenantRecorder
    tracking_recorder_class = TenantTrackingRecorder
    process_recorder_class = TenantProcessRecorder

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        url = self.env.get(DATABASE_URL)
        if not url:
            raise OSError(f"{DATABASE_URL} is not set: the store needs a PostgreSQL server")
        self.tenant: str | None = self.env.get(TENANT) or None
        log_group = self.env.get(LOG_GROUP) or (self.tenant[:4] if self.tenant else "")
        if not log_group:
            raise OSError(f"neither {TENANT} nor {LOG_GROUP} is set")
        pool_size = int(self.env.get(POOL_SIZE) or DEFAULT_POOL_SIZE)
        url = placed_url(url, parse_placement(self.env.get(PLACEMENT)), log_group)
        self.shared = SharedDatastore.for_url(url, pool_size)
        self.datastore = SchemaView(self.shared, log_group_schema(log_group))

    def _create(self, recorder: Any, key: str, tables: list[str]) -> None:
        """Create the recorder's tables once per process, and only if missing:
        DDL on an existing table would lock out the log group's writers."""
        if not strtobool(self.env.get("CREATE_TABLE") or "yes"):
            return
        ensured = (self.datastore.schema, key)
        if ensured in self.shared.ensured:
            return
        for attempt in range(3):
            try:
                self._create_missing(recorder, tables)
                break
            except IntegrityError:
                # Another worker created the same objects a moment ago; PostgreSQL's
                # IF NOT EXISTS checks a catalog cache that an advisory lock does not
                # refresh, so the loser sees a unique violation. Look again.
                if attempt == 2:
                    raise
        self.shared.ensured.add(ensured)

    def _create_missing(self, recorder: Any, tables: list[str]) -> None:
        schema = self.datastore.schema
        with self.datastore.transaction(commit=True) as curs:
            missing = [t for t in tables if curs.execute(
                "SELECT to_regclass(%s) IS NULL AS missing",
                (f'"{schema}"."{t}"',)).fetchone()["missing"]]  # type: ignore[index]
            if missing:
                curs.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK,))
                curs.execute(SQL("CREATE SCHEMA IF NOT EXISTS {0}").format(Identifier(schema)))
            elif isinstance(recorder, TenantRecorder) and curs.execute(
                    "SELECT to_regprocedure(%s) IS NULL AS missing",
                    (recorder.insert_function_signature,)).fetchone()["missing"]:  # type: ignore[index]
                # a log group created before the insert function existed: add it alone
                # (the rest of create_table would lock the table the city writes to)
                curs.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK,))
                curs.execute(recorder.insert_function_statement)
        if missing:
            recorder.create_table()

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        recorder = TenantRecorder(self.datastore, tenant=self.tenant,
                                  events_table_name=purpose)
        self._create(recorder, purpose, [purpose])
        return recorder

    def application_recorder(self) -> ApplicationRecorder:
        topic = self.env.get(self.APPLICATION_RECORDER_TOPIC)
        cls: type[TenantRecorder] = resolve_topic(topic) if topic else TenantRecorder
        assert issubclass(cls, TenantRecorder), cls
        recorder = cls(self.datastore, tenant=self.tenant)
        self._create(recorder, cls.__qualname__, ["events"])
        return recorder

    def tracking_recorder(
        self, tracking_recorder_class: type[PostgresTrackingRecorder] | None = None
    ) -> PostgresTrackingRecorder:
        if tracking_recorder_class is None:
            topic = self.env.get(self.TRACKING_RECORDER_TOPIC)
            tracking_recorder_class = (
                resolve_topic(topic) if topic else self.tracking_recorder_class
            )
        assert tracking_recorder_class is not None
        recorder = tracking_recorder_class(self.datastore, tracking_table_name="tracking")
        self._create(recorder, "tracking:" + tracking_recorder_class.__qualname__, ["tracking"])
        return recorder

    def process_recorder(self) -> ProcessRecorder:
        recorder = TenantProcessRecorder(self.datastore, tenant=self.tenant,
                                         tracking_table_name="tracking")
        self._create(recorder, "events+tracking", ["events", "tracking"])
        return recorder

    def close(self) -> None:
        """Applications come and go; the shared pool stays until shutdown."""


__all__ = [
    "ANY_TENANT",
    "PLACEMENT",
    "Factory",
    "SchemaView",
    "SharedDatastore",
    "TenantProcessRecorder",
    "TenantRecorder",
    "TrackingRecorder",
    "log_group_schema",
    "parse_placement",
    "placed_url",
]
