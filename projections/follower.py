"""Following a city's log group into read models, exactly once.

A :class:`Projector` reads the log group's notifications after its tracking
position and writes its rows and its new position in one transaction, so a
projector killed at any instant resumes where its last commit left it and
writes every row once. Two projectors of one name on one log group cannot
both commit the same position (the library's single-row tracking refuses a
position that does not move forward).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence

from eventsourcing.persistence import IntegrityError, Notification, Tracking
from eventsourcing.utils import get_topic
from opentelemetry.metrics import CallbackOptions, Observation
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier, Literal

from domain import Case
from tenants.listen import listening
from tenants.persistence import LOG_GROUP, Factory, TenantRecorder
from tenants.service import Tenants
from tenants.telemetry import links_to, meter, tracer

BATCH = 500
PROJECTION_IDLE_LIMIT_S = 60  # seconds a projection batch's transaction may idle

#: The topic of every event a Case can record.
CASE_TOPICS = sorted(
    get_topic(v) for v in vars(Case).values()
    if isinstance(v, type) and issubclass(v, Case.Event)
)


class Projector:
    """Base of the read-model writers of one log group."""

    name: str = ""
    topics: Sequence[str] = ()
    #: The read model's tables, and the shape's version: a projector whose
    #: version differs from the one recorded drops its tables and rebuilds.
    tables: Sequence[str] = ()
    version: int = 1

    def __init__(self, tenants: Tenants, city: str) -> None:
        self.tenants = tenants
        self.city = city
        tenants.center(city)  # ensures the log group's events table exists
        factory = Factory({**tenants.env, LOG_GROUP: city})
        self.view = factory.datastore
        self.schema = self.view.schema
        self.reader = TenantRecorder(self.view, tenant=None)
        self.tracking = factory.tracking_recorder()
        self.channel = self.reader.channel_name
        with self.view.transaction(commit=True) as curs:
            curs.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.schema,))
            self._migrate(curs)
            self.create_tables(curs)

    def _migrate(self, curs: Cursor[DictRow]) -> None:
        """Drop the tables (and the position) of an older shape: rebuilt from the log."""
        versions = SQL("{0}.projection_versions").format(Identifier(self.schema))
        curs.execute(SQL("CREATE TABLE IF NOT EXISTS {0} (name text PRIMARY KEY, "
                         "version int NOT NULL)").format(versions))
        row = curs.execute(SQL("SELECT version FROM {0} WHERE name = %s").format(versions),
                           (self.name,)).fetchone()
        if row is not None and row["version"] == self.version:
            return
        for table in self.tables:
            curs.execute(SQL("DROP TABLE IF EXISTS {0}.{1}").format(
                Identifier(self.schema), Identifier(table)))
        curs.execute(SQL("DELETE FROM {0}.tracking WHERE application_name = %s").format(
            Identifier(self.schema)), (self.name,))
        curs.execute(SQL("INSERT INTO {0} VALUES (%s, %s) ON CONFLICT (name) DO UPDATE "
                         "SET version = excluded.version").format(versions),
                     (self.name, self.version))

    # -- what a projector defines -------------------------------------------------

    def create_tables(self, curs: Cursor[DictRow]) -> None:
        raise NotImplementedError

    def project(self, curs: Cursor[DictRow], notifications: Sequence[Notification]) -> None:
        """Write the rows for ``notifications`` (in order) with ``curs``."""
        raise NotImplementedError

    def clear(self, curs: Cursor[DictRow]) -> None:
        """Delete every row this projector wrote (for a rebuild)."""
        raise NotImplementedError

    # -- following ---------------------------------------------------------------

    def position(self) -> int:
        return self.tracking.max_tracking_id(self.name) or 0

    def run_once(self, limit: int = BATCH) -> int:
        """Project the next batch; returns how many notifications it covered."""
        start = self.position()
        batch = self.reader.select_notifications(
            start, limit, topics=self.topics, inclusive_of_start=False)
        if not batch:
            return 0
        try:
            with self.view.transaction(commit=True) as curs:
                # The pool's 5 s idle-in-transaction limit guards against leaked
                # transactions; a batch folds its events in Python between its
                # statements, which on a loaded machine can take longer (a rebuild's
                # batches are large): this transaction may idle up to a minute.
                curs.execute(SQL("SET LOCAL idle_in_transaction_session_timeout = {0}").format(
                    Literal(f"{PROJECTION_IDLE_LIMIT_S}s")))
                self.project(curs, batch)
                last: int = batch[-1].id
                self.tracking._insert_tracking(curs, Tracking(self.name, last))
        except IntegrityError:
            return 0  # another projector of this name committed this batch first
        return len(batch)

    def catch_up(self) -> int:
        total = 0
        while read := self.run_once():
            total += read
        return total

    def rebuild(self) -> int:
        """Delete the rows and the position, then project the whole log again."""
        with self.view.transaction(commit=True) as curs:
            curs.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.schema,))
            self.clear(curs)
            curs.execute(SQL("DELETE FROM {0}.tracking WHERE application_name = %s").format(
                Identifier(self.schema)), (self.name,))
        return self.catch_up()

    def run(self, stop: Callable[[], bool], idle_wait: float = 1.0) -> None:
        """Project as events arrive (NOTIFY), catching up after every wake-up."""
        _following.add(self)
        with listening(self.tenants.datastore_for(self.city).url, self.channel) as wait:
            parents: list[str] = []  # trace contexts of the writes that woke us
            while not stop():
                if parents:
                    with tracer.start_as_current_span(
                            f"projection.{self.name}", links=links_to(parents),
                            attributes={"zongzhi.log_group": self.schema}):
                        read = self.run_once()
                else:
                    read = self.run_once()
                parents = [] if read else wait(idle_wait)

    def lag(self) -> int:
        """Notifications of the log group this projector has not covered yet."""
        last = self.reader.max_notification_id() or 0
        return max(0, last - self.position())


_following: weakref.WeakSet[Projector] = weakref.WeakSet()


def _observe_lag(_: CallbackOptions) -> Iterable[Observation]:
    for projector in list(_following):
        yield Observation(projector.lag(), {"zongzhi.log_group": projector.schema,
                                            "zongzhi.projector": projector.name})


meter.create_observable_gauge(
    "zongzhi.projection.lag", callbacks=[_observe_lag], unit="{notification}",
    description="notifications of a log group a running projector has not covered yet")


__all__ = ["CASE_TOPICS", "Projector"]
