"""Per-tenant data keys: envelope encryption of citizens' personal fields.

Each tenant has its own 256-bit data key, stored wrapped (AES-GCM) by the
deployment's master key in ``zz_keys.tenant_keys``. Personal fields are
encrypted with the tenant's data key before an event reaches the store, with
the tenant code as associated data, so a ciphertext cannot be replayed into
another tenant. Shredding a tenant's key (crypto-shredding) deletes the
wrapped key: its events stay readable and verifiable, its personal fields
become unrecoverable, and reads say so instead of failing.

The master key comes from ``ZONGZHI_MASTER_KEY`` (urlsafe base64 of 32 bytes;
production: injected from a secret store or KMS) or, for a laptop, from a file
``master.key`` created in the data directory with mode 0600.

Rotating the master key re-wraps every data key under the new master
(:func:`rewrap_keys`, ``zongzhi tenants rewrap-keys``): in batches, each one
transaction, so a run cut short leaves every key wrapped by exactly one of the
two masters, and a re-run finishes; the data keys themselves (and so every
ciphertext in the events) do not change.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg import Cursor
from psycopg.sql import SQL

from tenants.persistence import SharedDatastore

MASTER_KEY = "ZONGZHI_MASTER_KEY"
NEW_MASTER_KEY = "ZONGZHI_NEW_MASTER_KEY"  # only while rotating: the master to re-wrap under
MASTER_KEY_FILE = "master.key"
_NONCE = 12
_SCHEMA = "zz_keys"


class KeyringError(Exception):
    """Base for key problems the caller must handle."""


class TenantKeyShredded(KeyringError):
    """The tenant's data key was destroyed: new personal data cannot be written."""


class MasterKeyMismatch(KeyringError):
    """A wrapped key does not open with this deployment's master key."""


def parse_master_key(value: str, source: str) -> bytes:
    """A master key from its text form (urlsafe base64 of 32 bytes); ``source``
    names where it came from in the error."""
    try:
        key = base64.urlsafe_b64decode(value.strip().encode("ascii"))
    except ValueError as e:
        raise KeyringError(f"{source} must be urlsafe base64 of 32 bytes: it is not base64"
                           ) from e
    if len(key) != 32:
        raise KeyringError(f"{source} must be urlsafe base64 of 32 bytes, got {len(key)} bytes")
    return key


def load_master_key(data_dir: Path | None = None) -> bytes:
    """The master key from the environment, or from (or into) ``data_dir/master.key``."""
    value = os.environ.get(MASTER_KEY, "")
    if value:
        return parse_master_key(value, MASTER_KEY)
    if data_dir is None:
        raise KeyringError(f"{MASTER_KEY} is not set and no data directory was given")
    path = data_dir / MASTER_KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    return parse_master_key(path.read_text(), str(path))


def load_new_master_key(file: Path | None = None) -> bytes:
    """The master key to rotate to: from ``file`` (urlsafe base64 of 32 bytes,
    one line), else from ``ZONGZHI_NEW_MASTER_KEY``."""
    if file is not None:
        try:
            return parse_master_key(file.read_text(), str(file))
        except OSError as e:
            raise KeyringError(f"the new master key file {file} cannot be read: {e}") from e
    value = os.environ.get(NEW_MASTER_KEY, "")
    if not value:
        raise KeyringError(f"the new master key is missing: set {NEW_MASTER_KEY} or give "
                           "--new-master-key-file FILE (urlsafe base64 of 32 bytes)")
    return parse_master_key(value, NEW_MASTER_KEY)


def replace_master_key_file(data_dir: Path, key: bytes) -> Path:
    """Put ``key`` in ``data_dir/master.key`` (atomically, mode 0600): a laptop's
    last step of a rotation, once every data key is wrapped under it."""
    path = data_dir / MASTER_KEY_FILE
    tmp = data_dir / f".{MASTER_KEY_FILE}.new"
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.urlsafe_b64encode(key).decode())
    tmp.replace(path)
    return path


def _aad(tenant: str, version: int) -> bytes:
    """What a wrapped key is bound to: its tenant (version 1, as before versions
    existed) or its tenant and version, so versions cannot be swapped."""
    return tenant.encode() if version == 1 else f"{tenant}/v{version}".encode()


def _wrap(master: AESGCM, tenant: str, key: bytes, version: int = 1) -> bytes:
    nonce = secrets.token_bytes(_NONCE)
    return nonce + master.encrypt(nonce, key, _aad(tenant, version))


def _opens(master: AESGCM, tenant: str, wrapped: bytes, version: int = 1) -> bytes | None:
    try:
        return master.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], _aad(tenant, version))
    except InvalidTag:
        return None


@dataclass(frozen=True)
class RewrapReport:
    """What one :func:`rewrap_keys` run found: keys it re-wrapped, keys already
    under the new master (an earlier run's), and shredded tenants (no key)."""

    rewrapped: int
    already: int
    shredded: int

    def __str__(self) -> str:
        return (f"{self.rewrapped} data keys re-wrapped under the new master key, "
                f"{self.already} already were, {self.shredded} shredded (no key to wrap)")


def _rewrap_batch(curs: Cursor[Any], rows: Sequence[dict[str, Any]], old: AESGCM,
                  new: AESGCM) -> tuple[int, int, int]:
    """Re-wrap one batch of locked rows, every key version of each; (tenants
    re-wrapped, tenants already under the new master, shredded tenants)."""
    moved: list[tuple[bytes, list[bytes], str]] = []
    already = shredded = 0
    for row in rows:
        tenant = row["tenant"]
        if row["wrapped"] is None:
            shredded += 1
            continue
        versions = [bytes(row["wrapped"]), *(bytes(w) for w in row["rotated"] or ())]
        rewrapped, changed = [], False
        for version, wrapped in enumerate(versions, 1):
            if _opens(new, tenant, wrapped, version) is not None:
                rewrapped.append(wrapped)
                continue
            key = _opens(old, tenant, wrapped, version)
            if key is None:
                raise MasterKeyMismatch(
                    f"the data key of tenant {tenant} (version {version}) opens with neither "
                    "the current nor the new master key: nothing of its batch was changed "
                    "(was it re-wrapped under another key?)")
            rewrapped.append(_wrap(new, tenant, key, version))
            changed = True
        if changed:
            moved.append((rewrapped[0], rewrapped[1:], tenant))
        else:
            already += 1
    if moved:
        curs.executemany(f"UPDATE {_SCHEMA}.tenant_keys SET wrapped = %s, rotated = %s "
                         "WHERE tenant = %s", moved)
    return len(moved), already, shredded


def rewrap_keys(datastore: SharedDatastore, old_master: bytes, new_master: bytes, *,
                batch: int = 500, passes: int = 5) -> RewrapReport:
    """Re-wrap every tenant's data key from ``old_master`` to ``new_master``.

    Rows are taken in tenant order, ``batch`` at a time, each batch locked and
    rewritten in one transaction: a run cut short leaves every key under exactly
    one of the two masters, and a re-run (same two keys) skips the keys already
    moved and finishes. Only wrapped keys are ever written. A key that opens with
    neither master stops the run, naming the tenant. When a pass moved keys,
    another pass follows, to catch keys that processes still on the old master
    created meanwhile; the report is of the whole run."""
    if len(old_master) != 32 or len(new_master) != 32:
        raise KeyringError("master keys are 32 bytes")
    if hmac.compare_digest(old_master, new_master):
        raise KeyringError("the new master key is the current one: re-wrapping under it "
                           "would change nothing")
    if batch < 1:
        raise KeyringError("batch must be at least 1")
    old, new = AESGCM(old_master), AESGCM(new_master)
    Keyring(datastore, old_master, cache_size=1)  # the table exists
    rewrapped = 0
    for _ in range(passes):
        moved = already = shredded = 0
        after = ""
        while True:
            with datastore.transaction(commit=True) as curs:
                rows = curs.execute(
                    f"SELECT tenant, wrapped, rotated FROM {_SCHEMA}.tenant_keys "
                    "WHERE tenant > %s "
                    "ORDER BY tenant LIMIT %s FOR UPDATE", (after, batch)).fetchall()
                if not rows:
                    break
                done = _rewrap_batch(curs, rows, old, new)
            moved, already, shredded = (moved + done[0], already + done[1],
                                        shredded + done[2])
            after = rows[-1]["tenant"]
        rewrapped += moved
        if not moved:
            return RewrapReport(rewrapped, already - rewrapped, shredded)
    raise KeyringError(f"keys keep being created under the old master key ({passes} passes): "
                       "stop the processes still running with it, then run this again")


_VERSIONED = re.compile(r"v([1-9][0-9]*):")


class Keyring:
    """Creates, caches (bounded), rotates and shreds the tenants' data keys.

    A tenant's key has versions: version 1 is ``wrapped``, versions 2.. are
    ``rotated`` (one array in the same row, so a row is re-wrapped or shredded
    whole). New personal fields are encrypted with the newest version; a
    field's text names its version (``v<n>:`` before the base64; none for
    version 1, the format from before versions), so every older field still
    decrypts. Match keys stay keyed by version 1: a phone recorded before and
    after a rotation must still match."""

    SHREDDED = b""  # what data_key returns for a tenant whose key is gone

    def __init__(self, datastore: SharedDatastore, master_key: bytes, cache_size: int = 4096):
        self._datastore = datastore
        self._master = AESGCM(master_key)
        self._cache: OrderedDict[str, tuple[bytes, ...]] = OrderedDict()  # () = shredded
        self._cache_size = cache_size
        self._lock = threading.Lock()
        with datastore.transaction(commit=True) as curs:
            curs.execute(SQL(
                f"CREATE SCHEMA IF NOT EXISTS {_SCHEMA}; "
                f"CREATE TABLE IF NOT EXISTS {_SCHEMA}.tenant_keys ("
                "tenant text PRIMARY KEY, wrapped bytea, "
                "created_at timestamptz NOT NULL DEFAULT now(), shredded_at timestamptz, "
                "rotated bytea[] NOT NULL DEFAULT '{}')"
            ))
            if curs.execute(
                    "SELECT 1 FROM information_schema.columns WHERE table_schema = %s "
                    "AND table_name = 'tenant_keys' AND column_name = 'rotated'",
                    (_SCHEMA,)).fetchone() is None:  # a keyring from before versions
                curs.execute(f"ALTER TABLE {_SCHEMA}.tenant_keys ADD COLUMN IF NOT EXISTS "
                             "rotated bytea[] NOT NULL DEFAULT '{}'")

    def _remember(self, tenant: str, keys: tuple[bytes, ...]) -> tuple[bytes, ...]:
        with self._lock:
            self._cache[tenant] = keys
            self._cache.move_to_end(tenant)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return keys

    def _unwrap(self, tenant: str, wrapped: bytes, version: int = 1) -> bytes:
        key = _opens(self._master, tenant, wrapped, version)
        if key is None:
            raise MasterKeyMismatch(
                f"the data key of tenant {tenant} does not open with this master key"
                + ("" if version == 1 else f" (version {version})"))
        return key

    def _load(self, tenant: str, *, create: bool) -> tuple[bytes, ...] | None:
        """Every version of the tenant's key from the table (creating version 1
        with ``create``); ``None`` if it never had one, ``()`` if shredded."""
        with self._datastore.transaction(commit=True) as curs:
            if create:
                curs.execute(
                    f"INSERT INTO {_SCHEMA}.tenant_keys (tenant, wrapped) VALUES (%s, %s) "
                    "ON CONFLICT (tenant) DO NOTHING",
                    (tenant, _wrap(self._master, tenant, secrets.token_bytes(32))))
            row = curs.execute(
                f"SELECT wrapped, rotated, shredded_at FROM {_SCHEMA}.tenant_keys "
                "WHERE tenant = %s", (tenant,)).fetchone()
        if row is None:
            return None
        if row["shredded_at"] is not None or row["wrapped"] is None:
            return self._remember(tenant, ())
        versions = [bytes(row["wrapped"]), *(bytes(w) for w in row["rotated"] or ())]
        return self._remember(tenant, tuple(
            self._unwrap(tenant, w, v) for v, w in enumerate(versions, 1)))

    def _keys(self, tenant: str, *, create: bool, fresh: bool = False
              ) -> tuple[bytes, ...] | None:
        with self._lock:
            cached = self._cache.get(tenant)
            if cached is not None:
                self._cache.move_to_end(tenant)
        if cached is not None and (not cached or not fresh):
            return cached
        if cached is not None:  # fresh: shredded or rotated by another process meanwhile?
            with self._datastore.get_connection() as conn:
                row = conn.execute(
                    f"SELECT shredded_at, cardinality(rotated) AS n FROM {_SCHEMA}.tenant_keys "
                    "WHERE tenant = %s", (tenant,)).fetchone()
            if row is None or (row["shredded_at"] is None and row["n"] + 1 == len(cached)):
                return cached
        return self._load(tenant, create=create)

    def data_key(self, tenant: str, *, create: bool, fresh: bool = False) -> bytes | None:
        """The tenant's current data key (its newest version); ``None`` if it
        never had one (and ``create`` is false); ``SHREDDED`` if it was
        destroyed. ``fresh`` looks past the cache at whether another process
        shredded or rotated it meanwhile (one indexed read): every write of
        personal data asks so."""
        keys = self._keys(tenant, create=create, fresh=fresh)
        if keys is None:
            return None
        return keys[-1] if keys else self.SHREDDED

    def versions(self, tenant: str) -> int:
        """How many versions the tenant's key has (0: none, or shredded)."""
        return len(self._keys(tenant, create=False, fresh=True) or ())

    def encrypt(self, tenant: str, plaintext: str) -> str:
        """A personal field as stored: base64 of nonce and AES-GCM ciphertext under
        the newest key version, ``v<n>:`` before it from version 2 on."""
        keys = self._keys(tenant, create=True)
        if not keys:
            raise TenantKeyShredded(
                f"tenant {tenant}'s data key was shredded: personal data can no longer "
                "be recorded for this center")
        nonce = secrets.token_bytes(_NONCE)
        text = base64.b64encode(
            nonce + AESGCM(keys[-1]).encrypt(nonce, plaintext.encode(), tenant.encode())).decode()
        return text if len(keys) == 1 else f"v{len(keys)}:{text}"

    def decrypt(self, tenant: str, text: str) -> str | None:
        """The plaintext, or ``None`` when the tenant's key has been shredded."""
        version, body = 1, text
        if (m := _VERSIONED.match(text)) is not None:
            version, body = int(m.group(1)), text[m.end():]
        keys = self._keys(tenant, create=False)
        if keys and version > len(keys):  # rotated by another process since cached
            keys = self._load(tenant, create=False)
        if not keys:
            return None
        if version > len(keys):
            raise KeyringError(f"a personal field of tenant {tenant} names key version "
                               f"{version}, which does not exist (versions 1..{len(keys)})")
        blob = base64.b64decode(body)
        return AESGCM(keys[version - 1]).decrypt(blob[:_NONCE], blob[_NONCE:],
                                                 tenant.encode()).decode()

    def require_key(self, tenant: str) -> None:
        """Refuse, looking past the cache, if the tenant's key was shredded by
        any process: asked once before each write of personal data (which also
        picks up a rotation made by another process)."""
        if not self.data_key(tenant, create=True, fresh=True):
            raise TenantKeyShredded(
                f"tenant {tenant}'s data key was shredded: personal data can no longer "
                "be recorded for this center")

    def match_key(self, tenant: str, kind: str, value: str) -> str:
        """A keyed hash of a personal value, for finding duplicates without
        storing the value: equal inputs match within a tenant, and nothing can
        be matched (or guessed) once the tenant's key is shredded. Keyed by the
        key's version 1, so values match across rotations."""
        keys = self._keys(tenant, create=True)
        if not keys:
            raise TenantKeyShredded(f"tenant {tenant}'s data key was shredded")
        normalized = "".join(value.split()).upper()
        subkey = hmac.new(keys[0], b"zongzhi/match-keys", hashlib.sha256).digest()  # not AES's
        digest = hmac.new(subkey, f"{kind}:{normalized}".encode(), hashlib.sha256)
        return f"{kind}:{digest.hexdigest()[:32]}"

    def rotate(self, tenant: str) -> int:
        """Add a new version of the tenant's data key, which encrypts every
        personal field written from now on; the older versions stay, to decrypt
        what they encrypted. Returns the new version's number."""
        with self._datastore.transaction(commit=True) as curs:
            row = curs.execute(
                f"SELECT wrapped, rotated, shredded_at FROM {_SCHEMA}.tenant_keys "
                "WHERE tenant = %s FOR UPDATE", (tenant,)).fetchone()
            if row is None:
                raise KeyringError(f"tenant {tenant} has no data key yet: its first personal "
                                   "field creates one, so there is nothing to rotate")
            if row["shredded_at"] is not None or row["wrapped"] is None:
                raise TenantKeyShredded(f"tenant {tenant}'s data key was shredded: there is "
                                        "nothing to rotate")
            version = 2 + len(row["rotated"] or ())
            self._unwrap(tenant, bytes(row["wrapped"]))  # this master is the row's
            curs.execute(
                f"UPDATE {_SCHEMA}.tenant_keys SET rotated = array_append(rotated, %s) "
                "WHERE tenant = %s",
                (_wrap(self._master, tenant, secrets.token_bytes(32), version), tenant))
        self._load(tenant, create=False)
        return version

    def shred(self, tenant: str) -> bool:
        """Destroy every version of the tenant's data key. Returns False if it
        was already gone."""
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(
                f"INSERT INTO {_SCHEMA}.tenant_keys (tenant, wrapped, shredded_at) "
                "VALUES (%s, NULL, now()) ON CONFLICT (tenant) DO UPDATE "
                "SET wrapped = NULL, rotated = '{}', shredded_at = now() "
                f"WHERE {_SCHEMA}.tenant_keys.shredded_at IS NULL RETURNING tenant",
                (tenant,))
            changed = curs.fetchone() is not None
        self._remember(tenant, ())
        return changed
