"""The hash chain of every tenant's log: each event linked to the one before it.

For each tenant, in tenant position order::

    hash_0 = sha256(b"zongzhi:" + tenant)
    hash_n = sha256(hash_{n-1} || leaf(tenant, n, originator_id, originator_version, topic)
                    || u64 len(state) || state)

where ``state`` is the stored bytes exactly as they are in ``events.state``
(personal fields are ciphertext there, so a crypto-shredded tenant still
verifies) and :func:`leaf` is the length-prefixed encoding below. The
:class:`Chainer` follows a log group like any projector and writes each
tenant's links into ``lg_<city>.audit_chain`` together with its tracking
position, in one transaction. A position missing when the chainer reaches
the next one is recorded in ``audit_violations`` (never skipped silently).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from typing import NamedTuple
from uuid import UUID

from eventsourcing.persistence import Notification
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from projections.follower import Projector

NAME = "audit_chain"
_HEAD = struct.Struct(">qq16sI")  # position, version, originator id, topic length
PVI = struct.Struct(">qq16s")
SIZE = struct.Struct(">Q")


class AuditError(Exception):
    """An audit operation cannot go on (the message says why and what to do)."""


def genesis(tenant: str) -> bytes:
    """The hash before a tenant's first event."""
    return hashlib.sha256(b"zongzhi:" + tenant.encode()).digest()


def leaf(tenant: str, position: int, originator_id: UUID, version: int, topic: str) -> bytes:
    """The canonical bytes naming an event (its state follows them in a link):
    ``u16 len(tenant) | tenant | i64 position | i64 version | 16-byte id |
    u32 len(topic) | topic`` (big-endian integers, UTF-8 text)."""
    t, tp = tenant.encode(), topic.encode()
    return (struct.pack(">H", len(t)) + t
            + _HEAD.pack(position, version, originator_id.bytes, len(tp)) + tp)


def link(prev: bytes, tenant: str, position: int, originator_id: UUID, version: int,
         topic: str, state: bytes) -> bytes:
    """``sha256(prev || leaf || u64 len(state) || state)``: the next hash of the chain
    (the reference definition; :class:`Linker` computes the same, faster)."""
    h = hashlib.sha256(prev)
    h.update(leaf(tenant, position, originator_id, version, topic))
    h.update(SIZE.pack(len(state)))
    h.update(state)
    return h.digest()


class Linker:
    """:func:`link` for one tenant, with its encodings computed once."""

    def __init__(self, tenant: str) -> None:
        t = tenant.encode()
        self.prefix = struct.pack(">H", len(t)) + t
        self.topics: dict[str, bytes] = {}

    def topic(self, topic: str) -> bytes:
        """``u32 len(topic) | topic``, remembered."""
        encoded = topic.encode()
        self.topics[topic] = struct.pack(">I", len(encoded)) + encoded
        return self.topics[topic]

    def __call__(self, prev: bytes, position: int, originator_id: bytes, version: int,
                 topic: str, state: bytes) -> bytes:
        """As :func:`link`, with the originator id as its 16 raw bytes."""
        tp = self.topics.get(topic) or self.topic(topic)
        return hashlib.sha256(b"".join((
            prev, self.prefix, PVI.pack(position, version, originator_id), tp,
            SIZE.pack(len(state)), state))).digest()


class ChainRow(NamedTuple):
    """One link as the chainer recorded it (the originator id as 16 raw bytes)."""

    position: int
    notification_id: int
    originator_id: bytes
    originator_version: int
    hash: bytes


def create_tables(curs: Cursor[DictRow], schema: str) -> None:
    s = Identifier(schema)
    curs.execute(SQL(
        "CREATE TABLE IF NOT EXISTS {0}.audit_chain ("
        "tenant text NOT NULL, position bigint NOT NULL, notification_id bigint NOT NULL, "
        "originator_id uuid NOT NULL, originator_version bigint NOT NULL, "
        "hash bytea NOT NULL, PRIMARY KEY (tenant, position))").format(s))
    curs.execute(SQL(
        "CREATE TABLE IF NOT EXISTS {0}.audit_heads ("
        "tenant text PRIMARY KEY, position bigint NOT NULL, hash bytea NOT NULL)").format(s))
    curs.execute(SQL(
        "CREATE TABLE IF NOT EXISTS {0}.audit_violations ("
        "id bigserial PRIMARY KEY, tenant text NOT NULL, position bigint NOT NULL, "
        "notification_id bigint NOT NULL, kind text NOT NULL, detail text NOT NULL, "
        "recorded_at timestamptz NOT NULL DEFAULT now())").format(s))
    curs.execute(SQL(
        "CREATE TABLE IF NOT EXISTS {0}.audit_checkpoints ("
        "tenant text NOT NULL, position bigint NOT NULL, hash bytea NOT NULL, "
        "at timestamptz NOT NULL, key_id text NOT NULL, signature bytea NOT NULL, "
        "PRIMARY KEY (tenant, position))").format(s))


class Chainer(Projector):
    """Appends each tenant's links in notification order, exactly once.

    Within a tenant, notification order is position order (positions are
    assigned under the log group's insert lock), so each event extends its
    tenant's head by one. The chain is evidence: it is never rebuilt from the
    log (that would launder whatever was changed), and a new shape of its
    tables is refused rather than dropped.
    """

    name = NAME
    topics: Sequence[str] = ()  # every event of the log group
    tables: Sequence[str] = ()  # never dropped (see _migrate)
    version = 1

    def _migrate(self, curs: Cursor[DictRow]) -> None:
        versions = SQL("{0}.projection_versions").format(Identifier(self.schema))
        curs.execute(SQL("CREATE TABLE IF NOT EXISTS {0} (name text PRIMARY KEY, "
                         "version int NOT NULL)").format(versions))
        row = curs.execute(SQL("SELECT version FROM {0} WHERE name = %s").format(versions),
                           (self.name,)).fetchone()
        if row is None:
            curs.execute(SQL("INSERT INTO {0} VALUES (%s, %s)").format(versions),
                         (self.name, self.version))
        elif row["version"] != self.version:
            raise AuditError(
                f"{self.schema}.audit_chain has shape {row['version']}, this code writes "
                f"{self.version}: migrate it deliberately; a chain is never rebuilt")

    def create_tables(self, curs: Cursor[DictRow]) -> None:
        create_tables(curs, self.schema)

    def clear(self, curs: Cursor[DictRow]) -> None:
        raise AuditError("the audit chain is evidence: it is never cleared")

    def rebuild(self) -> int:
        raise AuditError("the audit chain is evidence: it is never rebuilt from the log "
                         "(that would launder any change made to it)")

    def project(self, curs: Cursor[DictRow], notifications: Sequence[Notification]) -> None:
        s = Identifier(self.schema)
        ids = [n.id for n in notifications]
        where = {r["notification_id"]: (r["tenant"], r["tenant_position"]) for r in curs.execute(
            SQL("SELECT notification_id, tenant, tenant_position FROM {0}.events "
                "WHERE notification_id = ANY(%s)").format(s), (ids,)).fetchall()}
        names = sorted({t for t, _ in where.values()})
        heads: dict[str, tuple[int, bytes]] = {
            r["tenant"]: (r["position"], bytes(r["hash"])) for r in curs.execute(
                SQL("SELECT tenant, position, hash FROM {0}.audit_heads "
                    "WHERE tenant = ANY(%s)").format(s), (names,)).fetchall()}
        linkers: dict[str, Linker] = {}
        links: list[tuple[str, int, int, UUID, int, bytes]] = []
        violations: list[tuple[str, int, int, str, str]] = []
        for n in notifications:
            if n.id not in where:
                continue  # gone since it was read: its tenant's next event shows the gap
            tenant, position = where[n.id]
            last, prev = heads.get(tenant, (0, genesis(tenant)))
            assert isinstance(n.originator_id, UUID)
            if position <= last:
                violations.append((tenant, position, n.id, "out-of-order",
                                   f"position {position} arrived after position {last} "
                                   "was chained; not chained again"))
                continue
            if position != last + 1:
                missing = (f"position {last + 1}" if position == last + 2
                           else f"positions {last + 1}..{position - 1}")
                violations.append((tenant, last + 1, n.id, "gap",
                                   f"{missing} missing when the chainer reached position "
                                   f"{position}"))
            linker = linkers.get(tenant) or linkers.setdefault(tenant, Linker(tenant))
            h = linker(prev, position, n.originator_id.bytes, n.originator_version, n.topic,
                       n.state)
            links.append((tenant, position, n.id, n.originator_id, n.originator_version, h))
            heads[tenant] = (position, h)
        if links:
            curs.executemany(SQL("INSERT INTO {0}.audit_chain (tenant, position, "
                                 "notification_id, originator_id, originator_version, hash) "
                                 "VALUES (%s, %s, %s, %s, %s, %s)").format(s), links)
            touched = {t for t, *_ in links}
            curs.executemany(SQL(
                "INSERT INTO {0}.audit_heads (tenant, position, hash) VALUES (%s, %s, %s) "
                "ON CONFLICT (tenant) DO UPDATE SET position = excluded.position, "
                "hash = excluded.hash").format(s),
                [(t, *heads[t]) for t in sorted(touched)])
        if violations:
            curs.executemany(SQL("INSERT INTO {0}.audit_violations (tenant, position, "
                                 "notification_id, kind, detail) "
                                 "VALUES (%s, %s, %s, %s, %s)").format(s), violations)


__all__ = ["NAME", "AuditError", "ChainRow", "Chainer", "Linker", "create_tables", "genesis",
           "leaf", "link"]
