"""Signed checkpoints of the tenants' chains, kept in the database and by a witness.

A checkpoint is the head of one tenant's chain (position and hash) at an
instant, signed with the deployment's Ed25519 key. Whoever holds the public
key (``zongzhi audit public-key``) can check that a log still leads to every
hash the deployment ever signed. Each checkpoint is also published to a NATS
JetStream stream (``zongzhi.audit.checkpoints.<tenant>``, limits retention,
nothing ever expires, deletion and purge denied): a copy held outside the
database, so that a later rewrite of the log, its chain and its checkpoints,
even by the holder of the signing key, contradicts what the witness holds.

The signing key comes from ``ZONGZHI_AUDIT_KEY`` (urlsafe base64 of the
32-byte Ed25519 seed; production: a secret store) or, for a laptop, from
``audit.key`` created in the data directory with mode 0600.

Keys rotate (:func:`rotate_signing_key`): a new key signs the new checkpoints
and the old public key stays **published**, so checkpoints keep verifying
under the key that signed them. A published key is one line of a register,
``<public key> <in use from> [<in use until>]`` (``-`` for unknown; ISO 8601
dates or instants, tz-aware); the deployment keeps its own in
``<data dir>/audit-keys/<key id>.pub``, one file per key, and auditors keep
theirs as one file (``zongzhi audit verify --keys FILE``). Verification trusts
a set of published keys (:class:`TrustedKeys`) and picks the key for each
checkpoint by the checkpoint's ``key_id``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from psycopg import Cursor
from psycopg.sql import SQL, Identifier

from audit.chain import AuditError, Chainer
from tenants.persistence import log_group_schema
from tenants.service import Tenants

AUDIT_KEY = "ZONGZHI_AUDIT_KEY"
KEY_FILE = "audit.key"
NEXT_KEY_FILE = "audit.key.next"  # a rotation's new seed until it replaces audit.key
KEYS_DIR = "audit-keys"  # the deployment's published public keys, <key id>.pub each
STREAM = "ZONGZHI_AUDIT"
SUBJECT_PREFIX = "zongzhi.audit.checkpoints"
_MESSAGE = b"zongzhi-audit-checkpoint/1\n"


# -- the key -------------------------------------------------------------------------------


def _new_seed_file(path: Path) -> None:
    """A fresh Ed25519 seed in a new file (mode 0600; refuses to overwrite)."""
    seed = Ed25519PrivateKey.generate().private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.urlsafe_b64encode(seed).decode() + "\n")


def _seed_key(value: str, source: str) -> Ed25519PrivateKey:
    try:
        seed = base64.urlsafe_b64decode(value.strip())
    except ValueError as e:
        raise AuditError(f"{source} is not urlsafe base64") from e
    if len(seed) != 32:
        raise AuditError(f"the audit key ({source}) must be urlsafe base64 of a 32-byte "
                         f"Ed25519 seed, got {len(seed)} bytes")
    return Ed25519PrivateKey.from_private_bytes(seed)


def load_signing_key(data_dir: Path | None = None, *, create: bool = True) -> Ed25519PrivateKey:
    """The deployment's signing key from the environment, or from (or, with
    ``create``, into) ``data_dir/audit.key``; a key created here is published
    in ``data_dir/audit-keys`` at once."""
    value = os.environ.get(AUDIT_KEY, "")
    if value:
        return _seed_key(value, AUDIT_KEY)
    if data_dir is None:
        raise AuditError(f"{AUDIT_KEY} is not set and no data directory was given")
    path = data_dir / KEY_FILE
    if not path.exists():
        if not create:
            raise AuditError(f"no audit key: {AUDIT_KEY} is not set and {path} does not "
                             "exist")
        data_dir.mkdir(parents=True, exist_ok=True)
        _new_seed_file(path)
        key = _seed_key(path.read_text(), str(path))
        publish_key(data_dir, PublishedKey(key.public_key(), datetime.now(UTC), None))
        return key
    return _seed_key(path.read_text(), str(path))


def public_key_text(key: Ed25519PublicKey) -> str:
    """The public key as published: urlsafe base64 of its 32 raw bytes."""
    return base64.urlsafe_b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def parse_public_key(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.urlsafe_b64decode(text.strip())
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as e:
        raise AuditError(f"not an Ed25519 public key (urlsafe base64 of 32 bytes): {text!r}"
                         ) from e


def key_id(key: Ed25519PublicKey) -> str:
    """A short name of a public key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


KEY_ID = re.compile(r"[0-9a-f]{16}")


def _instant_or_day(text: str, *, end: bool, where: str) -> datetime | None:
    """A register's time: ``-`` (unknown), a day (its start; with ``end``, the
    start of the next day, so the day counts whole) or a tz-aware instant."""
    if text == "-":
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=end)
        value = datetime.fromisoformat(text)
    except ValueError as e:
        raise AuditError(f"{where}: {text!r} is not a date (2026-11-23) or an instant "
                         "(2026-11-23T16:00:00+00:00)") from e
    if value.tzinfo is None:
        raise AuditError(f"{where}: {text!r} has no time zone")
    return value.astimezone(UTC)


@dataclass(frozen=True)
class PublishedKey:
    """A public key as published: in use from ``since`` until ``until`` (``None``:
    unknown, or still in use)."""

    key: Ed25519PublicKey
    since: datetime | None
    until: datetime | None

    @property
    def key_id(self) -> str:
        return key_id(self.key)

    def line(self) -> str:
        """The key as one register line."""
        since = _instant(self.since) if self.since else "-"
        until = f" {_instant(self.until)}" if self.until else ""
        return f"{public_key_text(self.key)} {since}{until}"

    @classmethod
    def parse(cls, line: str, where: str) -> PublishedKey:
        words = line.split()
        if not 1 <= len(words) <= 3:
            raise AuditError(f"{where}: a published key is '<public key> [<from> [<until>]]', "
                             f"got {line!r}")
        try:
            key = parse_public_key(words[0])
        except AuditError as e:
            raise AuditError(f"{where}: {e}") from e
        since = _instant_or_day(words[1], end=False, where=where) if len(words) > 1 else None
        until = _instant_or_day(words[2], end=True, where=where) if len(words) > 2 else None
        if since and until and until <= since:
            raise AuditError(f"{where}: key {key_id(key)} is retired before it was introduced")
        return cls(key, since, until)


def read_register(path: Path) -> list[PublishedKey]:
    """Published keys from a register file: one per line, ``#`` starts a comment."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise AuditError(f"the key register {path} cannot be read: {e}") from e
    keys = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line:
            keys.append(PublishedKey.parse(line, f"{path}:{n}"))
    if not keys:
        raise AuditError(f"the key register {path} names no key")
    return keys


class TrustedKeys:
    """The public keys a verification trusts, by key id; ``primary`` is the one
    named first (a deployment's: its current key)."""

    def __init__(self, keys: Iterable[PublishedKey | Ed25519PublicKey]) -> None:
        self.by_id: dict[str, PublishedKey] = {}
        for k in keys:
            published = k if isinstance(k, PublishedKey) else PublishedKey(k, None, None)
            known = self.by_id.get(published.key_id)
            if known is None or (known.since, known.until) == (None, None):
                self.by_id[published.key_id] = published
        if not self.by_id:
            raise AuditError("no public key to verify with")
        self.primary = next(iter(self.by_id.values())).key

    @classmethod
    def of(cls, keys: TrustedKeys | Ed25519PublicKey | Iterable[PublishedKey]) -> TrustedKeys:
        if isinstance(keys, TrustedKeys):
            return keys
        if isinstance(keys, Ed25519PublicKey):
            return cls([keys])
        return cls(keys)

    @property
    def ids(self) -> list[str]:
        return list(self.by_id)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self.by_id

    def problem(self, c: Checkpoint) -> str | None:
        """Why ``c`` does not verify under these keys, or ``None`` when it does."""
        published = self.by_id.get(c.key_id)
        if published is None:
            shown = c.key_id if KEY_ID.fullmatch(c.key_id) else f"{c.key_id!r} (not a key id)"
            return (f"is signed by key {shown}, which is not among the trusted keys "
                    f"({', '.join(self.ids)})")
        if not c.valid(published.key):
            return f"does not verify under key {c.key_id}"
        if (published.since and c.at < published.since) or \
                (published.until and c.at >= published.until):
            since = published.since.isoformat() if published.since else "-"
            until = published.until.isoformat() if published.until else "-"
            return (f"is dated outside the period key {c.key_id} was in use "
                    f"({since} .. {until})")
        return None


def keys_dir(data_dir: Path) -> Path:
    return data_dir / KEYS_DIR


def publish_key(data_dir: Path, published: PublishedKey) -> Path:
    """Write (or replace) ``audit-keys/<key id>.pub`` with the key's register line."""
    folder = keys_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{published.key_id}.pub"
    tmp = folder / f".{published.key_id}.pub.tmp"
    tmp.write_text(published.line() + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def published_keys(data_dir: Path) -> list[PublishedKey]:
    """The keys this deployment published in ``audit-keys``, oldest first."""
    folder = keys_dir(data_dir)
    found = []
    for path in sorted(folder.glob("*.pub")) if folder.is_dir() else []:
        if not KEY_ID.fullmatch(path.stem):
            raise AuditError(f"{path}: a published key's file is named by its key id "
                             "(16 lowercase hex digits), e.g. 3f2a9c0d41b7e865.pub")
        lines = [line for line in path.read_text(encoding="utf-8").splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]
        if len(lines) != 1:
            raise AuditError(f"{path}: holds {len(lines)} keys, not one")
        published = PublishedKey.parse(lines[0], str(path))
        if published.key_id != path.stem:
            raise AuditError(f"{path} holds key {published.key_id}: a published key's file "
                             "is named by its key id")
        found.append(published)
    return sorted(found, key=lambda k: k.since or datetime.min.replace(tzinfo=UTC))


def deployment_keys(data_dir: Path | None, *, create: bool = True) -> TrustedKeys | None:
    """The deployment's current public key (first) and every key it published
    before; ``None`` when it has no key yet and ``create`` is false."""
    if not create and not os.environ.get(AUDIT_KEY) and (
            data_dir is None or not (data_dir / KEY_FILE).exists()):
        return None
    current = load_signing_key(data_dir, create=create).public_key()
    earlier = published_keys(data_dir) if data_dir is not None else []
    mine = [k for k in earlier if k.key_id == key_id(current)]
    first: list[PublishedKey] = mine or [PublishedKey(current, None, None)]
    return TrustedKeys([*first, *earlier])


@dataclass(frozen=True)
class Rotation:
    """What :func:`rotate_signing_key` did: the retired key, the new one, and
    where the new seed is (``audit.key`` of the data directory, or ``seed_out``)."""

    retired: PublishedKey
    new: PublishedKey
    seed_at: Path


def rotate_signing_key(data_dir: Path, at: datetime, seed_out: Path | None = None) -> Rotation:
    """Make a new signing key; the current one is retired at ``at`` and stays
    published in ``audit-keys`` (both keys' register lines are returned).

    With the key in ``audit.key`` (no ``ZONGZHI_AUDIT_KEY``), the new seed
    replaces it: the next checkpoints are signed with it. A rotation cut short
    is finished by running it again (the new seed waits in ``audit.key.next``
    until it has been published). With ``ZONGZHI_AUDIT_KEY`` set the key lives
    in a secret store: the new seed is written to ``seed_out`` (a new file,
    mode 0600) for the operator to put there, both keys are recorded in this
    machine's ``audit-keys``, and the key in use changes only with the secret."""
    at = at.astimezone(UTC)
    from_env = bool(os.environ.get(AUDIT_KEY))
    if from_env and seed_out is None:
        raise AuditError(f"{AUDIT_KEY} is set, so the signing key lives in a secret store: "
                         "give --seed-out FILE to write the new seed there for it")
    if not from_env and seed_out is not None:
        raise AuditError(f"{AUDIT_KEY} is not set: the key is {data_dir / KEY_FILE}, which "
                         "the rotation replaces itself (no --seed-out)")
    current = load_signing_key(data_dir, create=False)
    target = seed_out if seed_out is not None else data_dir / NEXT_KEY_FILE
    if seed_out is not None or not target.exists():  # else: a rotation cut short, finish it
        try:
            _new_seed_file(target)
        except FileExistsError as e:
            raise AuditError(f"{target} exists: the new seed is never written over a file")\
                from e
    new = _seed_key(target.read_text(), str(target)).public_key()
    if key_id(new) == key_id(current.public_key()):
        raise AuditError("the new seed is the current key")
    known = {k.key_id: k for k in published_keys(data_dir)}
    old = known.get(key_id(current.public_key()))
    retired = PublishedKey(current.public_key(), old.since if old else None, at)
    fresh = PublishedKey(new, at, None)
    publish_key(data_dir, retired)
    publish_key(data_dir, fresh)
    if seed_out is None:
        target.replace(data_dir / KEY_FILE)  # from here on, checkpoints are signed by it
    return Rotation(retired, fresh, seed_out or data_dir / KEY_FILE)


# -- checkpoints ---------------------------------------------------------------------------


def _instant(at: datetime) -> str:
    if at.tzinfo is None:
        raise AuditError("a checkpoint's time must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def signed_message(tenant: str, position: int, hash: bytes, at: datetime) -> bytes:
    """The bytes a checkpoint's signature covers."""
    return _MESSAGE + f"{tenant}\n{position}\n{hash.hex()}\n{_instant(at)}".encode()


@dataclass(frozen=True)
class Checkpoint:
    """A tenant's chain head (``position``, ``hash``) signed at ``at``."""

    tenant: str
    position: int
    hash: bytes
    at: datetime
    key_id: str
    signature: bytes

    def valid(self, key: Ed25519PublicKey) -> bool:
        try:
            key.verify(self.signature,
                       signed_message(self.tenant, self.position, self.hash, self.at))
        except InvalidSignature:
            return False
        return True

    def to_json(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "position": self.position, "hash": self.hash.hex(),
                "at": _instant(self.at), "key_id": self.key_id,
                "signature": base64.b64encode(self.signature).decode()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        try:
            return cls(str(data["tenant"]), int(data["position"]), bytes.fromhex(data["hash"]),
                       datetime.fromisoformat(data["at"]), str(data["key_id"]),
                       base64.b64decode(data["signature"]))
        except (KeyError, TypeError, ValueError) as e:
            raise AuditError(f"not a checkpoint: {data!r}") from e


def sign(key: Ed25519PrivateKey, tenant: str, position: int, hash: bytes,
         at: datetime) -> Checkpoint:
    signature = key.sign(signed_message(tenant, position, hash, at))
    return Checkpoint(tenant, position, hash, at, key_id(key.public_key()), signature)


def load_checkpoints(curs: Cursor[Any], schema: str, tenant: str) -> list[Checkpoint]:
    """A tenant's checkpoints in the database, by position."""
    rows = curs.execute(SQL(
        "SELECT tenant, position, hash, at, key_id, signature FROM {0}.audit_checkpoints "
        "WHERE tenant = %s ORDER BY position, at").format(Identifier(schema)),
        (tenant,)).fetchall()
    return [Checkpoint(r[0], r[1], bytes(r[2]), r[3], r[4], bytes(r[5])) for r in rows]


def write_checkpoints(tenants: Tenants, city: str, at: datetime, key: Ed25519PrivateKey,
                      nats_url: str | None = None) -> list[Checkpoint]:
    """Sign the head of every tenant of ``city`` whose chain moved since its last
    checkpoint; store them, then publish them to the witness at ``nats_url``."""
    Chainer(tenants, city)  # the tables exist
    schema = Identifier(log_group_schema(city))
    with tenants.datastore_for(city).transaction(commit=True) as curs:
        heads = curs.execute(SQL(
            "SELECT h.tenant, h.position, h.hash FROM {0}.audit_heads h WHERE NOT EXISTS "
            "(SELECT 1 FROM {0}.audit_checkpoints c WHERE c.tenant = h.tenant "
            "AND c.position = h.position) ORDER BY h.tenant").format(schema)).fetchall()
        made = [sign(key, r["tenant"], r["position"], bytes(r["hash"]), at) for r in heads]
        curs.executemany(SQL(
            "INSERT INTO {0}.audit_checkpoints (tenant, position, hash, at, key_id, signature)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING").format(schema),
            [(c.tenant, c.position, c.hash, c.at, c.key_id, c.signature) for c in made])
    if nats_url and made:
        publish(nats_url, made)
    return made


# -- the witness ---------------------------------------------------------------------------


def subject(tenant: str) -> str:
    return f"{SUBJECT_PREFIX}.{tenant}"


async def _ensure_stream(js: Any) -> None:
    from nats.js.api import RetentionPolicy, StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(StreamConfig(
            name=STREAM, subjects=[f"{SUBJECT_PREFIX}.>"], retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE, max_msgs_per_subject=-1, max_age=0,
            deny_delete=True, deny_purge=True,
            description="signed checkpoints of zongzhi's audit chains (never expire)"))


async def _publish(url: str, checkpoints: Sequence[Checkpoint]) -> None:
    import nats

    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=2)
    try:
        js = nc.jetstream()
        await _ensure_stream(js)
        for c in checkpoints:
            msg_id = f"{c.key_id}:{c.tenant}:{c.position}:{c.hash.hex()[:16]}"
            await js.publish(subject(c.tenant), json.dumps(c.to_json()).encode(),
                             headers={"Nats-Msg-Id": msg_id})
    finally:
        await nc.close()


def publish(url: str, checkpoints: Sequence[Checkpoint]) -> None:
    """Publish checkpoints to the witness stream (created if missing)."""
    try:
        asyncio.run(_publish(url, checkpoints))
    except Exception as e:
        raise AuditError(f"the witness at {url} did not take the checkpoints: {e!r}") from e


async def _fetch(url: str, tenant: str) -> list[Checkpoint]:
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=2)
    try:
        js = nc.jetstream()
        try:
            await js.stream_info(STREAM)
        except NotFoundError:
            return []
        found: list[Checkpoint] = []
        seq = 1
        while True:
            try:
                msg = await js.get_msg(STREAM, seq=seq, subject=subject(tenant), next=True)
            except NotFoundError:
                return found
            found.append(Checkpoint.from_json(json.loads(msg.data or b"{}")))
            seq = (msg.seq or seq) + 1
    finally:
        await nc.close()


def witness_checkpoints(url: str, tenant: str) -> list[Checkpoint]:
    """Every checkpoint of ``tenant`` the witness at ``url`` holds, oldest first."""
    try:
        return asyncio.run(_fetch(url, tenant))
    except AuditError:
        raise
    except Exception as e:
        raise AuditError(f"the witness at {url} could not be read: {e!r}") from e


__all__ = [
    "AUDIT_KEY",
    "KEYS_DIR",
    "STREAM",
    "Checkpoint",
    "PublishedKey",
    "Rotation",
    "TrustedKeys",
    "deployment_keys",
    "key_id",
    "load_checkpoints",
    "load_signing_key",
    "parse_public_key",
    "public_key_text",
    "publish",
    "publish_key",
    "published_keys",
    "read_register",
    "rotate_signing_key",
    "sign",
    "signed_message",
    "subject",
    "witness_checkpoints",
    "write_checkpoints",
]
