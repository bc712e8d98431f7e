"""Checking a tenant's log against its chain, its signed checkpoints and a witness.

:func:`verify_tenant` reads, in one snapshot, a live tenant's events (as
stored), its chain records, the chainer's recorded violations and its
checkpoints; :func:`export_tenant` writes the same as one self-contained
JSON-lines file and :func:`verify_file` checks such a file with no database.
Both recompute the chain from the events alone and report the **first**
broken link, naming the event:

``edited``               an event's stored bytes differ from what was chained
``deleted``              a chained event is gone from the log
``inserted``             an event the chainer never chained stands in the log
``reordered``            an event stands at another position than it was chained at
``truncated``            the log (or file) ends before what a checkpoint or the
                         file's own end record says it reached
``gap``                  the chainer found positions missing when it got there
``chain-altered``        a chain record is missing in the middle of the chain
``checkpoint-mismatch``  the chain, recomputed, misses a signed checkpoint: events
                         and chain were rewritten together
``witness-mismatch``     the same against a checkpoint the witness holds
``bad-signature``        a checkpoint does not verify under the trusted public keys:
                         a wrong signature, a key not trusted (named), or a date
                         outside the period its key was in use

See docs/audit.md for what each check proves and what it cannot.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import queue
import threading
from bisect import bisect_right
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import IO, Any
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from psycopg import Connection
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier, Literal

from audit.chain import NAME, PVI, SIZE, AuditError, ChainRow, Linker, genesis, link
from audit.checkpoints import (
    Checkpoint,
    PublishedKey,
    TrustedKeys,
    key_id,
    load_checkpoints,
    parse_public_key,
    public_key_text,
    witness_checkpoints,
)
from tenants.persistence import log_group_schema
from tenants.service import Tenants

FORMAT = "zongzhi-audit-export/1"
FETCH = 2000  # rows per round trip of the events cursor
BLOCK = 2000  # positions whose hashes the fast pass compares at once

#: One stored event: tenant position, notification id, originator id (its 16
#: raw bytes) and version, topic, state (bytes as stored).
EventRow = tuple[int, int, bytes, int, str, bytes]


def _id(raw: bytes | None) -> UUID | None:
    return None if raw is None else UUID(bytes=raw)


@dataclass(frozen=True)
class Violation:
    """What the chainer recorded when it found the log not as it should be."""

    position: int
    notification_id: int
    kind: str
    detail: str


@dataclass(frozen=True)
class Finding:
    """A broken link: what, where, and which event."""

    kind: str
    position: int
    detail: str
    originator_id: UUID | None = None
    originator_version: int | None = None
    notification_id: int | None = None

    def __str__(self) -> str:
        event = ""
        if self.originator_id is not None:
            event = f" [case {self.originator_id} v{self.originator_version}"
            event += f", notification {self.notification_id}]" if self.notification_id else "]"
        return f"{self.kind} at position {self.position}: {self.detail}{event}"


@dataclass
class Report:
    """The outcome of one verification."""

    tenant: str
    source: str
    key_id: str = ""
    events: int = 0  # event rows read
    verified: int = 0  # links recomputed and found as chained
    head: int = 0  # the last position verified
    checkpoints: int = 0  # signed checkpoints the recomputed chain reached
    witnessed: int = 0  # witness checkpoints the recomputed chain reached
    pending: int = 0  # events after the chain's end, not chained yet
    broken: Finding | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.broken is None

    def lines(self) -> list[str]:
        keys = "keys" if "," in self.key_id else "key"
        out = [f"tenant {self.tenant} ({self.source}), {keys} {self.key_id}: {self.events} events "
               f"read, {self.verified} links verified up to position {self.head}, "
               f"{self.checkpoints} checkpoints and {self.witnessed} witness checkpoints "
               "matched"]
        if self.pending:
            out.append(f"{self.pending} events after position {self.head} are not chained yet "
                       "(run `zongzhi audit chain`); they are not verified")
        out += self.notes
        out.append(f"BROKEN: {self.broken}" if self.broken else "OK: the log verifies")
        return out


# -- the check -----------------------------------------------------------------------------


Events = Generator[EventRow, None, None]
Blocks = Generator[Sequence[EventRow], None, None]


@dataclass(frozen=True)
class Source:
    """What the verifier reads, from a database snapshot or a file.

    The fast pass takes ``blocks()`` (the events, BLOCK at a time) and
    ``sample()`` (the hashes the chain records at every BLOCK-th position and at
    its end, ``chain_end``). The careful walk, only when the fast pass found
    something wrong, takes ``events()`` (them again, one by one) and
    ``chain()`` (every chain record). ``complete()``, asked once the events ran
    out, says whether the source was whole.
    """

    chain_end: int
    chain_count: int  # chain records (chain_end when positions 1..chain_end all have one)
    blocks: Callable[[], Blocks]
    sample: Callable[[], dict[int, bytes]]
    events: Callable[[], Events]
    chain: Callable[[], Sequence[ChainRow]]
    complete: Callable[[], bool] = lambda: True


def _batched(events: Iterator[EventRow]) -> Blocks:
    while rows := list(itertools.islice(events, BLOCK)):
        yield rows


def sampled(chain: Sequence[ChainRow]) -> dict[int, bytes]:
    """The recorded hashes the fast pass compares with: every BLOCK-th and the last."""
    end = max((r.position for r in chain), default=0)
    return {r.position: r.hash for r in chain if r.position % BLOCK == 0 or r.position == end}


class _Checker:
    def __init__(self, report: Report, source: Source,
                 checkpoints: Sequence[Checkpoint], witness: Sequence[Checkpoint] | None,
                 keys: TrustedKeys, violations: Sequence[Violation],
                 chained_upto: int) -> None:
        self.report = report
        self.tenant = report.tenant
        self.source = source
        self.chain_end = source.chain_end
        self.violations = {v.position: v for v in violations}
        self.chained_upto = chained_upto
        self.findings: list[Finding] = []
        report.key_id = ", ".join(keys.ids)
        self.signed: dict[int, list[Checkpoint]] = {}
        self.witness: dict[int, list[Checkpoint]] = {}
        for c in checkpoints:
            problem = keys.problem(c) if c.tenant == self.tenant else (
                f"names another tenant ({c.tenant})")
            if problem:
                self.findings.append(Finding(
                    "bad-signature", c.position,
                    f"the checkpoint of position {c.position} signed at {c.at.isoformat()} "
                    f"{problem}"))
            else:
                self.signed.setdefault(c.position, []).append(c)
        foreign: dict[str, int] = {}
        for c in witness or ():
            if c.key_id not in keys:
                foreign[c.key_id] = foreign.get(c.key_id, 0) + 1  # another deployment's
            elif problem := keys.problem(c) if c.tenant == self.tenant else (
                    f"names another tenant ({c.tenant})"):
                self.findings.append(Finding(
                    "bad-signature", c.position,
                    f"the witness's checkpoint of position {c.position} signed at "
                    f"{c.at.isoformat()} {problem}"))
            else:
                self.witness.setdefault(c.position, []).append(c)
        if foreign:
            report.notes.append(
                f"{sum(foreign.values())} witness checkpoints signed by other keys were not "
                f"considered (keys not trusted here: {', '.join(sorted(foreign))})")
        for v in violations:
            self.findings.append(Finding(
                v.kind, v.position, f"recorded by the chainer: {v.detail}",
                notification_id=v.notification_id))

    @cached_property
    def chain(self) -> dict[int, ChainRow]:
        return {c.position: c for c in self.source.chain()}

    @cached_property
    def by_nid(self) -> dict[int, ChainRow]:
        return {c.notification_id: c for c in self.chain.values()}

    def fast(self) -> bool:
        """Recompute the chain from the events and compare it with the recorded
        chain every BLOCK positions and at its end, and with every checkpoint:
        True (and the report filled) if all of it matches; False at the first
        difference, for :meth:`run` to find and name it.

        Comparing samples suffices: each hash covers every event before it
        (position included), so equal hashes at a position mean an equal log up
        to it; a difference anywhere shows at the next sample at the latest.
        """
        tenant, linker = self.tenant, Linker(self.tenant)
        topics, prefix = linker.topics, linker.prefix
        sha256, pack, size = hashlib.sha256, PVI.pack, SIZE.pack
        if self.source.chain_count != self.chain_end:
            return False  # a gap in the chain: the chainer's, or records removed
        recorded = self.source.sample()
        if self.chain_end and self.chain_end not in recorded:
            return False
        checks = sorted({*recorded, *self.signed, *self.witness})
        h, done = genesis(tenant), 0
        with closing(self.source.blocks()) as blocks:
            for rows in blocks:
                block: list[bytes] = []
                append = block.append
                for position, _, oid, version, topic, state in rows:
                    tp = topics.get(topic) or linker.topic(topic)
                    h = sha256(b"".join((h, prefix, pack(position, version, oid), tp,
                                         size(len(state)), state))).digest()
                    append(h)
                end = done + len(block)
                for q in checks[bisect_right(checks, done):bisect_right(checks, end)]:
                    if not self._matches(q, block[q - done - 1], recorded):
                        return False
                done = end
        if done != self.chain_end or not self.source.complete() or (checks and checks[-1] > done):
            return False
        self.report.events = self.report.verified = self.report.head = done
        return True

    def _matches(self, q: int, h: bytes, recorded: dict[int, bytes]) -> bool:
        if recorded.get(q, h) != h or any(c.hash != h for c in self.signed.get(q, ())) or \
                any(c.hash != h for c in self.witness.get(q, ())):
            return False
        self.report.checkpoints += len(self.signed.get(q, ()))
        self.report.witnessed += len(self.witness.get(q, ()))
        return True

    def finish(self) -> Report:
        if self.findings:
            self.report.broken = min(self.findings, key=lambda f: f.position)
        return self.report

    def run(self, events: Iterator[EventRow], complete: Callable[[], bool]) -> Report:
        """The careful walk: position by position against the chain records,
        stopping at the first that differs and naming it."""
        report, tenant = self.report, self.tenant
        report.checkpoints = report.witnessed = 0
        marks = {*self.signed, *self.witness}  # positions with a checkpoint to compare
        linker = Linker(tenant)
        h, p, read = genesis(tenant), 0, 0
        finding: Finding | None = None
        for row in events:
            read += 1
            expected = p + 1
            position, nid, oid, version, topic, state = row
            c = self.chain.get(expected)
            if c is not None and position == expected and c.notification_id == nid:
                hn = linker(h, position, oid, version, topic, state)
                if hn == c.hash:
                    h, p = hn, expected
                    if p in marks:
                        finding = self._checkpoints(p, h)
                        if finding is not None:
                            break
                    continue
                finding, more = self._edited(row, expected, hn, events)
                read += more
                break
            if c is None and expected > self.chain_end and position == expected \
                    and nid > self.chained_upto:
                report.pending = 1 + sum(1 for _ in events)
                read += report.pending - 1
                if not complete():
                    finding = Finding("truncated", p + report.pending + 1,
                                      "the file ends without its end record: it was cut")
                break
            finding, more = self._misplaced(expected, row, c, events)
            read += more
            break
        else:
            finding = self._ended(p, complete)
        report.events, report.verified, report.head = read, p, p
        if finding is not None:
            self.findings.append(finding)
        return self.finish()

    def _checkpoints(self, p: int, h: bytes) -> Finding | None:
        for c in self.signed.get(p, ()):
            if c.hash != h:
                before = [q for q in self.signed if q < p]
                since = max(before, default=0) + 1
                return Finding(
                    "checkpoint-mismatch", p,
                    f"the chain recomputed from the log reaches position {p} with another hash "
                    f"than the checkpoint signed at {c.at.isoformat()}: an event at positions "
                    f"{since}..{p} was changed together with its chain records")
            self.report.checkpoints += 1
        for c in self.witness.get(p, ()):
            if c.hash != h:
                return Finding(
                    "witness-mismatch", p,
                    f"the chain recomputed from the log reaches position {p} with another hash "
                    f"than the witness's checkpoint signed at {c.at.isoformat()}: the log and "
                    "its chain were rewritten (and re-signed) after the witness saw them")
            self.report.witnessed += 1
        return None

    def _edited(self, row: EventRow, expected: int, hn: bytes,
                rest: Iterator[EventRow]) -> tuple[Finding, int]:
        """The event at ``expected`` (as chained by notification id) hashes to ``hn``,
        not to its chain record."""
        _, nid, oid, version, topic, state = row
        after = self.chain.get(expected + 1)
        following = next(rest, None)
        confirmed = [c.at for c in (*self.signed.get(expected, ()),
                                    *self.witness.get(expected, ())) if c.hash == hn]
        if following is not None and after is not None:
            position2, _, oid2, version2, topic2, state2 = following
            if position2 == expected + 1 and Linker(self.tenant)(
                    hn, position2, oid2, version2, topic2, state2) == after.hash:
                confirmed.append(None)
        more = 0 if following is None else 1
        if confirmed:
            return Finding("chain-altered", expected,
                           f"the chain record of position {expected} was altered: the event "
                           "there is as chained (the next link or a checkpoint agrees with it)",
                           _id(oid), version, nid), more
        uuid = UUID(bytes=oid)
        for q, c in self.chain.items():  # the content of another chained event?
            prev = genesis(self.tenant) if q == 1 else (
                self.chain[q - 1].hash if q - 1 in self.chain else None)
            if q != expected and prev is not None and \
                    link(prev, self.tenant, q, uuid, version, topic, state) == c.hash:
                return Finding("reordered", expected,
                               f"the event stored at position {expected} was chained at "
                               f"position {q}", _id(oid), version, nid), more
        return Finding("edited", expected,
                       "the event's stored bytes (state, topic or identity) differ from what "
                       "was chained" + ("" if following is not None and after is not None else
                                        " (or, this being the chain's last record with no "
                                        "checkpoint on it, its chain record was altered)"),
                       _id(oid), version, nid), more

    def _misplaced(self, expected: int, row: EventRow, c: ChainRow | None,
                   rest: Iterator[EventRow]) -> tuple[Finding, int]:
        """Position ``expected`` does not hold the event chained there."""
        position, nid, oid, version, _, _ = row
        later = {nid: position}
        more = 0
        for r in rest:  # where every remaining event stands (no hashing)
            later[r[1]] = r[0]
            more += 1
        if c is None:
            if expected in self.violations:
                v = self.violations[expected]
                return Finding(v.kind, expected, f"recorded by the chainer: {v.detail}",
                               notification_id=v.notification_id), more
            if expected > self.chain_end:
                return Finding("inserted", expected,
                               f"an event stands at position {position} after the chain's end "
                               f"({self.chain_end}) though the chainer has passed its "
                               f"notification {nid}: it was put there behind the chainer",
                               _id(oid), version, nid), more
            return Finding("chain-altered", expected,
                           f"the chain has no record of position {expected} but goes on to "
                           f"{self.chain_end}: chain records were removed"), more
        if c.notification_id not in later:
            return Finding("deleted", expected,
                           f"the event chained at position {expected} is gone from the log",
                           _id(c.originator_id), c.originator_version, c.notification_id), more
        if position < expected:
            return Finding("inserted", expected,
                           f"a second event claims position {position}", _id(oid), version,
                           nid), more
        if position == expected:
            chained = self.by_nid.get(nid)
            if chained is None:
                return Finding("inserted", expected,
                               f"an event the chainer never saw stands at position {expected}; "
                               f"the event chained there now stands at position "
                               f"{later[c.notification_id]}", _id(oid), version, nid), more
            return Finding("reordered", expected,
                           f"the event stored at position {expected} was chained at position "
                           f"{chained.position}", _id(oid), version, nid), more
        return Finding("reordered", expected,
                       f"the event chained at position {expected} now stands at position "
                       f"{later[c.notification_id]}", _id(c.originator_id),
                       c.originator_version, c.notification_id), more

    def _ended(self, p: int, complete: Callable[[], bool]) -> Finding | None:
        """The events ran out after position ``p``."""
        c = self.chain.get(p + 1) if p < self.chain_end else None
        if not complete():
            return Finding("truncated", p + 1,
                           f"the file ends after position {p} without its end record: it was "
                           "cut" + (" (the next chained event is named)" if c else ""),
                           _id(c.originator_id) if c else None,
                           c.originator_version if c else None,
                           c.notification_id if c else None)
        if c is not None:
            return Finding("deleted", p + 1,
                           f"the log ends at position {p} but the chain goes on to "
                           f"{self.chain_end}: the event chained at position {p + 1} is gone",
                           _id(c.originator_id), c.originator_version, c.notification_id)
        if self.chain_end > p:
            return Finding("chain-altered", p + 1,
                           f"the chain has no record of position {p + 1} but goes on to "
                           f"{self.chain_end}")
        covered = [(q, c) for q, cs in [*self.signed.items(), *self.witness.items()]
                   for c in cs if q > p]
        if covered:
            q, cp = max(covered, key=lambda qc: qc[0])
            return Finding("truncated", p + 1,
                           f"the log and its chain end at position {p} but the checkpoint "
                           f"signed at {cp.at.isoformat()} covers position {q}: the tail "
                           f"{p + 1}..{q} was removed")
        return None


Keys = TrustedKeys | Ed25519PublicKey


def check(report: Report, source: Source, checkpoints: Sequence[Checkpoint],
          key: Keys, *, witness: Sequence[Checkpoint] | None = None,
          violations: Sequence[Violation] = (), chained_upto: int = 0) -> Report:
    """Verify what ``source`` holds against its checkpoints and the witness's,
    each under the trusted key its ``key_id`` names; fills ``report``. A fast
    pass compares whole blocks; only if it finds something wrong does a careful
    walk read the events again to name it."""
    checker = _Checker(report, source, checkpoints, witness, TrustedKeys.of(key), violations,
                       chained_upto)
    if checker.fast():
        return checker.finish()
    with closing(source.events()) as events:
        return checker.run(events, source.complete)


# -- a live tenant -------------------------------------------------------------------------


def _snapshot(conn: Connection[Any]) -> None:
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")


def load_chain(conn: Connection[Any], schema: str, tenant: str) -> list[ChainRow]:
    """A tenant's chain records by position."""
    with conn.cursor(row_factory=tuple_row, binary=True) as cur:
        return list(map(ChainRow._make, cur.execute(SQL(
            "SELECT position, notification_id, uuid_send(originator_id), originator_version, "
            "hash FROM {0}.audit_chain WHERE tenant = %s ORDER BY position").format(
            Identifier(schema)), (tenant,)).fetchall()))


def _side_tables(conn: Connection[Any], schema: str, tenant: str
                 ) -> tuple[tuple[int, int], list[Checkpoint], list[Violation], int]:
    """((the chain's last position, its record count), checkpoints, violations, the
    chainer's position)."""
    s = Identifier(schema)
    with conn.cursor(row_factory=tuple_row, binary=True) as cur:
        missing = cur.execute("SELECT to_regclass(%s) IS NULL",
                              (f'"{schema}"."audit_chain"',)).fetchone()
        if missing is None or missing[0]:
            return (0, 0), [], [], 0
        row = cur.execute(SQL("SELECT coalesce(max(position), 0), count(*) FROM "
                              "{0}.audit_chain WHERE tenant = %s").format(s),
                          (tenant,)).fetchone()
        end = (int(row[0]), int(row[1])) if row else (0, 0)
        checkpoints = load_checkpoints(cur, schema, tenant)
        violations = [Violation(*r) for r in cur.execute(SQL(
            "SELECT position, notification_id, kind, detail FROM {0}.audit_violations "
            "WHERE tenant = %s ORDER BY position").format(s), (tenant,))]
        row = cur.execute(SQL("SELECT max(notification_id) FROM {0}.tracking "
                              "WHERE application_name = %s").format(s), (NAME,)).fetchone()
        return end, checkpoints, violations, int(row[0] or 0) if row else 0


_cursors = itertools.count()
_EVENTS = ("SELECT tenant_position, notification_id, uuid_send(originator_id), "
           "originator_version, topic, state FROM {0}.events WHERE tenant = %s "
           "ORDER BY tenant_position")


def _prefetched(conn: Connection[Any], schema: str, tenant: str) -> Blocks:
    """The events BLOCK at a time, fetched by a thread of their own while the
    caller hashes the block before (the connection is that thread's until it
    ends)."""
    ready: queue.Queue[Sequence[EventRow] | BaseException | None] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def fetch() -> None:
        try:
            with conn.cursor(name=f"audit_events_{next(_cursors)}", row_factory=tuple_row,
                             binary=True) as events:
                events.execute(SQL(_EVENTS).format(Identifier(schema)), (tenant,))
                while not stop.is_set() and (rows := events.fetchmany(BLOCK)):
                    ready.put(rows)
            ready.put(None)
        except BaseException as e:
            ready.put(e)

    thread = threading.Thread(target=fetch, name=f"audit-fetch-{tenant}", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # let it finish its put and see ``stop``
            with suppress(queue.Empty):
                ready.get(timeout=0.05)
        thread.join()


def _sample(conn: Connection[Any], schema: str, tenant: str, end: int) -> dict[int, bytes]:
    with conn.cursor(row_factory=tuple_row, binary=True) as cur:
        return {p: bytes(h) for p, h in cur.execute(SQL(
            "SELECT position, hash FROM {0}.audit_chain WHERE tenant = %s "
            "AND (position %% {1} = 0 OR position = %s)").format(
            Identifier(schema), Literal(BLOCK)), (tenant, end)).fetchall()}


def read_events(conn: Connection[Any], schema: str, tenant: str) -> Events:
    """A tenant's stored events by position, streamed (inside a transaction), the
    originator id as its 16 raw bytes."""
    with conn.cursor(name=f"audit_events_{next(_cursors)}", row_factory=tuple_row,
                     binary=True) as cur:
        cur.execute(SQL(_EVENTS).format(Identifier(schema)), (tenant,))
        while rows := cur.fetchmany(FETCH):
            yield from rows


def verify_tenant(tenants: Tenants, tenant: str, key: Keys,
                  witness: str | Sequence[Checkpoint] | None = None) -> Report:
    """Verify a live tenant's log (one consistent snapshot) under ``key``, the
    published key or the set of trusted ones; ``witness`` is a NATS URL to fetch
    the witness's checkpoints from, or those checkpoints."""
    tenants.registry.get(tenant)  # raises UnknownTenant
    schema = log_group_schema(tenant[:4])
    held = witness_checkpoints(witness, tenant) if isinstance(witness, str) else witness
    report = Report(tenant, "database")
    with tenants.datastore_for(tenant[:4]).get_connection() as conn, conn.transaction():
        _snapshot(conn)
        (end, count), checkpoints, violations, upto = _side_tables(conn, schema, tenant)
        source = Source(end, count, lambda: _prefetched(conn, schema, tenant),
                        lambda: _sample(conn, schema, tenant, end),
                        lambda: read_events(conn, schema, tenant),
                        lambda: load_chain(conn, schema, tenant))
        return check(report, source, checkpoints, key, witness=held, violations=violations,
                     chained_upto=upto)


# -- export --------------------------------------------------------------------------------


def _line(f: IO[str], record: dict[str, Any]) -> None:
    f.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")


def export_tenant(tenants: Tenants, tenant: str, path: Path, key: Keys) -> int:
    """Write a tenant's whole log as stored, its chain, checkpoints and the
    chainer's violations to ``path`` (JSON lines, one snapshot). Returns the
    number of events written. The header names ``key`` (the deployment's
    current key) and, as register lines, every key it published."""
    keys = TrustedKeys.of(key)
    current = keys.primary
    tenants.registry.get(tenant)
    schema = log_group_schema(tenant[:4])
    count = 0
    with tenants.datastore_for(tenant[:4]).get_connection() as conn, conn.transaction():
        _snapshot(conn)
        _, checkpoints, violations, upto = _side_tables(conn, schema, tenant)
        chain = load_chain(conn, schema, tenant)
        tmp = path.with_name(path.name + ".part")
        with tmp.open("w", encoding="utf-8") as f:
            _line(f, {"kind": "header", "format": FORMAT, "tenant": tenant,
                      "public_key": public_key_text(current), "key_id": key_id(current),
                      "public_keys": [k.line() for k in keys.by_id.values()],
                      "exported_at": datetime.now(UTC).isoformat(), "chained_upto": upto,
                      "chain": len(chain), "checkpoints": len(checkpoints),
                      "violations": len(violations)})
            for c in checkpoints:
                _line(f, {"kind": "checkpoint", **c.to_json()})
            for v in violations:
                _line(f, {"kind": "violation", "position": v.position,
                          "notification_id": v.notification_id, "violation": v.kind,
                          "detail": v.detail})
            for r in chain:
                _line(f, {"kind": "chain", "position": r.position,
                          "notification_id": r.notification_id,
                          "originator_id": str(UUID(bytes=r.originator_id)),
                          "originator_version": r.originator_version, "hash": r.hash.hex()})
            for position, nid, oid, version, topic, state in read_events(conn, schema, tenant):
                _line(f, {"kind": "event", "position": position, "notification_id": nid,
                          "originator_id": str(UUID(bytes=oid)), "originator_version": version,
                          "topic": topic, "state": base64.b64encode(state).decode()})
                count += 1
            _line(f, {"kind": "end", "events": count, "chain": len(chain)})
        tmp.replace(path)
    return count


# -- an exported file ----------------------------------------------------------------------


class _File:
    """An export read once, front to back: side records first, then events lazily."""

    def __init__(self, path: Path) -> None:
        self.f = path.open(encoding="utf-8")
        self.lineno = 0
        self.complete = False
        self.counted = 0
        first = self._next()
        if first is None or first.get("kind") != "header" or first.get("format") != FORMAT:
            raise AuditError(f"{path} is not a zongzhi audit export ({FORMAT})")
        self.header = first
        self.checkpoints: list[Checkpoint] = []
        self.violations: list[Violation] = []
        self.chain: list[ChainRow] = []
        self.events_at = self.f.tell()
        while (record := self._next()) is not None:
            kind = record.get("kind")
            if kind == "checkpoint":
                self.checkpoints.append(Checkpoint.from_json(record))
            elif kind == "violation":
                self.violations.append(Violation(int(record["position"]),
                                                 int(record["notification_id"]),
                                                 str(record["violation"]),
                                                 str(record["detail"])))
            elif kind == "chain":
                self.chain.append(ChainRow(int(record["position"]),
                                           int(record["notification_id"]),
                                           UUID(record["originator_id"]).bytes,
                                           int(record["originator_version"]),
                                           bytes.fromhex(record["hash"])))
            else:
                break
            self.events_at = self.f.tell()

    def _next(self) -> dict[str, Any] | None:
        line = self.f.readline()
        if not line:
            return None
        self.lineno += 1
        if not line.endswith("\n"):
            return None  # a cut line
        try:
            record = json.loads(line)
        except ValueError:
            return None
        if not isinstance(record, dict):
            raise AuditError(f"line {self.lineno} is not a record")
        return record

    def events(self) -> Events:
        """The event records from the first on (again at each call)."""
        self.f.seek(self.events_at)
        self.complete, self.counted = False, 0
        record = self._next()
        while record is not None:
            kind = record.get("kind")
            if kind == "end":
                self.complete = (record.get("events") == self.counted
                                 and self._next() is None)
                return
            if kind != "event":
                raise AuditError(f"line {self.lineno}: unexpected {kind!r} among the events")
            self.counted += 1
            yield (int(record["position"]), int(record["notification_id"]),
                   UUID(record["originator_id"]).bytes, int(record["originator_version"]),
                   str(record["topic"]), base64.b64decode(record["state"]))
            record = self._next()

    def close(self) -> None:
        self.f.close()


def verify_file(path: Path, key: Keys | None = None,
                witness: str | Sequence[Checkpoint] | None = None) -> Report:
    """Verify an export offline. ``key`` is the published public key or the set
    of trusted ones; without it the keys the file names are used, which proves
    only that the file agrees with itself (a note says so)."""
    exported = _File(path)
    try:
        tenant = str(exported.header["tenant"])
        report = Report(tenant, str(path))
        named = parse_public_key(str(exported.header.get("public_key", "")))
        lines = exported.header.get("public_keys") or []
        if not isinstance(lines, list):
            raise AuditError(f"{path}: the header's public_keys is not a list")
        listed = [PublishedKey.parse(str(line), f"{path}: header") for line in lines]
        if key is None:
            key = TrustedKeys([named, *listed])
            report.notes.append("the file's own public keys were used: pass the published "
                                "keys (--public-key, --keys) to prove who signed its "
                                "checkpoints")
        elif key_id(named) not in TrustedKeys.of(key):
            report.notes.append(f"the file names key {key_id(named)}, not a published one "
                                f"({', '.join(TrustedKeys.of(key).ids)})")
        held = witness_checkpoints(witness, tenant) if isinstance(witness, str) else witness
        upto = int(exported.header.get("chained_upto") or 0)
        chain = exported.chain
        source = Source(max((r.position for r in chain), default=0),
                        len({r.position for r in chain}),
                        lambda: _batched(exported.events()), lambda: sampled(chain),
                        exported.events, lambda: chain, lambda: exported.complete)
        check(report, source, exported.checkpoints, key, witness=held,
              violations=exported.violations, chained_upto=upto)
        return report
    finally:
        exported.close()


__all__ = ["EventRow", "Finding", "Keys", "Report", "Violation", "check", "export_tenant",
           "read_events", "verify_file", "verify_tenant"]
