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
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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
STREAM = "ZONGZHI_AUDIT"
SUBJECT_PREFIX = "zongzhi.audit.checkpoints"
_MESSAGE = b"zongzhi-audit-checkpoint/1\n"


# -- the key -------------------------------------------------------------------------------


def load_signing_key(data_dir: Path | None = None, *, create: bool = True) -> Ed25519PrivateKey:
    """The deployment's signing key from the environment, or from (or, with
    ``create``, into) ``data_dir/audit.key``."""
    value = os.environ.get(AUDIT_KEY, "")
    if not value:
        if data_dir is None:
            raise AuditError(f"{AUDIT_KEY} is not set and no data directory was given")
        path = data_dir / KEY_FILE
        if not path.exists():
            if not create:
                raise AuditError(f"no audit key: {AUDIT_KEY} is not set and {path} does not "
                                 "exist")
            data_dir.mkdir(parents=True, exist_ok=True)
            seed = Ed25519PrivateKey.generate().private_bytes(
                Encoding.Raw, PrivateFormat.Raw, NoEncryption())
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(base64.urlsafe_b64encode(seed).decode())
        value = path.read_text().strip()
    try:
        seed = base64.urlsafe_b64decode(value)
    except ValueError as e:
        raise AuditError(f"{AUDIT_KEY} is not urlsafe base64") from e
    if len(seed) != 32:
        raise AuditError(f"the audit key must be urlsafe base64 of a 32-byte Ed25519 seed, "
                         f"got {len(seed)} bytes")
    return Ed25519PrivateKey.from_private_bytes(seed)


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
    "STREAM",
    "Checkpoint",
    "key_id",
    "load_checkpoints",
    "load_signing_key",
    "parse_public_key",
    "public_key_text",
    "publish",
    "sign",
    "signed_message",
    "subject",
    "witness_checkpoints",
    "write_checkpoints",
]
