"""Case changes as they are recorded, for GraphQL subscriptions.

A :class:`CaseFeed` follows a city's log group for as long as anyone
subscribes to it: one PostgreSQL ``LISTEN`` connection per city (channel
``lg_<city>_events``, notified by every insert), whatever the number of
subscribers. On each wake-up (and every ``poll`` seconds, in case a
notification was missed) it reads the case events recorded after the last one
it saw, in log order, with a tenant-less ``TenantRecorder`` on the log group,
and hands them to every subscriber of that city.

A subscriber sees only what the city recorded after it joined, or, given a
position (``after``), everything after that position first: a client that
reconnects resumes where it stopped, without a gap or a repeat. A subscriber
that falls behind is not dropped: it reads what it missed from the store.

What a subscriber may see is decided by the GraphQL resolver
(``api.schema``): the scope it asked for, and per event the subscriber's
``case:read`` on the event's center (and, for unit officers and grid workers,
the case's assignment). The feed itself filters nothing but the city.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from uuid import UUID

import psycopg
from eventsourcing.persistence import Notification
from psycopg.sql import SQL, Identifier
from starlette.concurrency import run_in_threadpool

from domain import tenant_of
from projections.follower import CASE_TOPICS
from tenants.persistence import LOG_GROUP, Factory, TenantRecorder
from tenants.service import Tenants

__all__ = ["CaseFeed", "Change"]

log = logging.getLogger(__name__)

BATCH = 500
MAX_PENDING = 10_000  # changes held for one subscriber before it reads from the store


@dataclass(frozen=True)
class Change:
    """One case event: where it lies in the city's log, and what it is."""

    position: int  # the log group's notification id
    case_id: UUID
    tenant: str
    kind: str  # the event's class name: Received, Triaged, Dispatched ...
    version: int  # the case's version after it


def _change(n: Notification) -> Change | None:
    case_id = n.originator_id if isinstance(n.originator_id, UUID) else UUID(str(n.originator_id))
    tenant = tenant_of(case_id)
    if tenant is None:
        return None
    return Change(n.id, case_id, tenant, n.topic.rsplit(".", 1)[-1], n.originator_version)


@dataclass(eq=False)
class _Subscriber:
    pending: deque[Change] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    behind: bool = False  # missed changes: read them from the store

    def offer(self, changes: Sequence[Change]) -> None:
        if self.behind or len(self.pending) + len(changes) > MAX_PENDING:
            self.behind = True
            self.pending.clear()
        else:
            self.pending.extend(changes)
        self.wake.set()


@dataclass(eq=False)
class _City:
    city: str
    recorder: TenantRecorder
    position: int
    subscribers: set[_Subscriber] = field(default_factory=set)
    task: asyncio.Task[None] | None = None


class CaseFeed:
    """The case events of the cities someone subscribes to (one LISTEN each)."""

    def __init__(self, tenants: Tenants, *, poll: float = 1.0) -> None:
        self.tenants = tenants
        self.poll = poll
        self._cities: dict[str, _City] = {}
        self._lock = asyncio.Lock()

    # -- reading the store ------------------------------------------------

    def _recorder(self, city: str) -> TenantRecorder:
        self.tenants.center(city)  # ensures the log group's tables exist
        factory = Factory({**self.tenants.env, LOG_GROUP: city})
        return TenantRecorder(factory.datastore, tenant=None)

    @staticmethod
    def _read(recorder: TenantRecorder, after: int, stop: int | None = None) -> list[Change]:
        notifications = recorder.select_notifications(
            after, BATCH, stop, topics=CASE_TOPICS, inclusive_of_start=False)
        return [c for n in notifications if (c := _change(n)) is not None]

    async def _read_range(self, recorder: TenantRecorder, after: int,
                          stop: int | None) -> AsyncIterator[Change]:
        while True:
            changes = await run_in_threadpool(self._read, recorder, after, stop)
            for change in changes:
                yield change
            if len(changes) < BATCH:
                return
            after = changes[-1].position

    # -- following --------------------------------------------------------

    async def _join(self, city: str, subscriber: _Subscriber) -> _City:
        async with self._lock:
            followed = self._cities.get(city)
            if followed is None:
                recorder = await run_in_threadpool(self._recorder, city)
                last = await run_in_threadpool(recorder.max_notification_id)
                followed = _City(city, recorder, last or 0)
                self._cities[city] = followed
            followed.subscribers.add(subscriber)
            if followed.task is None or followed.task.done():
                followed.task = asyncio.create_task(self._listen(followed),
                                                    name=f"case-feed-{city}")
            return followed

    async def _leave(self, followed: _City, subscriber: _Subscriber) -> None:
        async with self._lock:
            followed.subscribers.discard(subscriber)
            if not followed.subscribers:
                self._cities.pop(followed.city, None)
                if followed.task is not None:
                    followed.task.cancel()

    async def _listen(self, followed: _City) -> None:
        channel = followed.recorder.channel_name
        while followed.subscribers:
            try:
                async with await psycopg.AsyncConnection.connect(
                        self.tenants.datastore_for(followed.city).url, autocommit=True) as conn:
                    await conn.execute(SQL("LISTEN {0}").format(Identifier(channel)))
                    while followed.subscribers:
                        await self._drain(followed)
                        async for _ in conn.notifies(timeout=self.poll, stop_after=1):
                            pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("following %s failed; trying again", channel)
                await asyncio.sleep(self.poll)

    async def _drain(self, followed: _City) -> None:
        while True:
            changes = await run_in_threadpool(self._read, followed.recorder, followed.position)
            if changes:
                followed.position = changes[-1].position
                for subscriber in list(followed.subscribers):
                    subscriber.offer(changes)
            if len(changes) < BATCH:
                return

    async def follow(self, city: str, after: int | None = None) -> AsyncIterator[Change]:
        """The city's case changes after ``after`` (default: from now), forever."""
        subscriber = _Subscriber()
        followed = await self._join(city, subscriber)
        try:
            seen = followed.position if after is None else after
            if seen < followed.position:  # catch up to where the feed stood when we joined
                async for change in self._read_range(followed.recorder, seen,
                                                     followed.position):
                    yield change
                    seen = change.position
            while True:
                await subscriber.wake.wait()
                subscriber.wake.clear()
                if subscriber.behind:
                    subscriber.behind = False
                    async for change in self._read_range(followed.recorder, seen,
                                                         followed.position):
                        yield change
                        seen = change.position
                    continue
                while subscriber.pending:
                    change = subscriber.pending.popleft()
                    if change.position > seen:
                        yield change
                        seen = change.position
        finally:
            await self._leave(followed, subscriber)

    async def close(self) -> None:
        """Stop following every city (at shutdown)."""
        async with self._lock:
            tasks = [c.task for c in self._cities.values() if c.task is not None]
            self._cities.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
