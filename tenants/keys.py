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
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
from collections import OrderedDict
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg.sql import SQL

from tenants.persistence import SharedDatastore

MASTER_KEY = "ZONGZHI_MASTER_KEY"
_NONCE = 12
_SCHEMA = "zz_keys"


class KeyringError(Exception):
    """Base for key problems the caller must handle."""


class TenantKeyShredded(KeyringError):
    """The tenant's data key was destroyed: new personal data cannot be written."""


class MasterKeyMismatch(KeyringError):
    """A wrapped key does not open with this deployment's master key."""


def load_master_key(data_dir: Path | None = None) -> bytes:
    """The master key from the environment, or from (or into) ``data_dir/master.key``."""
    value = os.environ.get(MASTER_KEY, "")
    if not value:
        if data_dir is None:
            raise KeyringError(f"{MASTER_KEY} is not set and no data directory was given")
        path = data_dir / "master.key"
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
        value = path.read_text().strip()
    key = base64.urlsafe_b64decode(value)
    if len(key) != 32:
        raise KeyringError(f"{MASTER_KEY} must be urlsafe base64 of 32 bytes, got {len(key)} bytes")
    return key


class Keyring:
    """Creates, caches (bounded) and shreds the tenants' data keys."""

    SHREDDED = b""  # cache marker for a tenant whose key is gone

    def __init__(self, datastore: SharedDatastore, master_key: bytes, cache_size: int = 4096):
        self._datastore = datastore
        self._master = AESGCM(master_key)
        self._cache: OrderedDict[str, bytes | None] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        with datastore.transaction(commit=True) as curs:
            curs.execute(SQL(
                f"CREATE SCHEMA IF NOT EXISTS {_SCHEMA}; "
                f"CREATE TABLE IF NOT EXISTS {_SCHEMA}.tenant_keys ("
                "tenant text PRIMARY KEY, wrapped bytea, "
                "created_at timestamptz NOT NULL DEFAULT now(), shredded_at timestamptz)"
            ))

    def _remember(self, tenant: str, key: bytes | None) -> None:
        with self._lock:
            self._cache[tenant] = key
            self._cache.move_to_end(tenant)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _unwrap(self, tenant: str, wrapped: bytes) -> bytes:
        try:
            return self._master.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], tenant.encode())
        except InvalidTag as e:
            raise MasterKeyMismatch(
                f"the data key of tenant {tenant} does not open with this master key"
            ) from e

    def data_key(self, tenant: str, *, create: bool, fresh: bool = False) -> bytes | None:
        """The tenant's data key; ``None`` if it never had one (and ``create``
        is false); ``SHREDDED`` if it was destroyed. ``fresh`` looks past the
        cache at whether another process shredded it meanwhile (one indexed
        read): every write of personal data asks so."""
        with self._lock:
            cached = self._cache.get(tenant)
            if cached is not None:
                self._cache.move_to_end(tenant)
        if cached is not None and (cached == self.SHREDDED or not fresh):
            return cached
        if cached is not None:
            with self._datastore.get_connection() as conn:
                row = conn.execute(
                    f"SELECT shredded_at FROM {_SCHEMA}.tenant_keys WHERE tenant = %s",
                    (tenant,)).fetchone()
            if row is None or row["shredded_at"] is None:
                return cached
            self._remember(tenant, self.SHREDDED)
            return self.SHREDDED
        with self._datastore.transaction(commit=True) as curs:
            if create:
                key = secrets.token_bytes(32)
                nonce = secrets.token_bytes(_NONCE)
                wrapped = nonce + self._master.encrypt(nonce, key, tenant.encode())
                curs.execute(
                    f"INSERT INTO {_SCHEMA}.tenant_keys (tenant, wrapped) VALUES (%s, %s) "
                    "ON CONFLICT (tenant) DO NOTHING", (tenant, wrapped))
            row = curs.execute(
                f"SELECT wrapped, shredded_at FROM {_SCHEMA}.tenant_keys WHERE tenant = %s",
                (tenant,)).fetchone()
        if row is None:
            return None
        key_or_marker = self.SHREDDED if row["shredded_at"] else self._unwrap(
            tenant, bytes(row["wrapped"]))
        self._remember(tenant, key_or_marker)
        return key_or_marker

    def encrypt(self, tenant: str, plaintext: str) -> bytes:
        key = self.data_key(tenant, create=True)
        if not key:
            raise TenantKeyShredded(
                f"tenant {tenant}'s data key was shredded: personal data can no longer "
                "be recorded for this center")
        nonce = secrets.token_bytes(_NONCE)
        return nonce + AESGCM(key).encrypt(nonce, plaintext.encode(), tenant.encode())

    def decrypt(self, tenant: str, blob: bytes) -> str | None:
        """The plaintext, or ``None`` when the tenant's key has been shredded."""
        key = self.data_key(tenant, create=False)
        if not key:
            return None
        return AESGCM(key).decrypt(blob[:_NONCE], blob[_NONCE:], tenant.encode()).decode()

    def require_key(self, tenant: str) -> None:
        """Refuse, looking past the cache, if the tenant's key was shredded by
        any process: asked once before each write of personal data."""
        if not self.data_key(tenant, create=True, fresh=True):
            raise TenantKeyShredded(
                f"tenant {tenant}'s data key was shredded: personal data can no longer "
                "be recorded for this center")

    def match_key(self, tenant: str, kind: str, value: str) -> str:
        """A keyed hash of a personal value, for finding duplicates without
        storing the value: equal inputs match within a tenant, and nothing can
        be matched (or guessed) once the tenant's key is shredded."""
        key = self.data_key(tenant, create=True)
        if not key:
            raise TenantKeyShredded(f"tenant {tenant}'s data key was shredded")
        normalized = "".join(value.split()).upper()
        subkey = hmac.new(key, b"zongzhi/match-keys", hashlib.sha256).digest()  # not the AES key
        digest = hmac.new(subkey, f"{kind}:{normalized}".encode(), hashlib.sha256)
        return f"{kind}:{digest.hexdigest()[:32]}"

    def shred(self, tenant: str) -> bool:
        """Destroy the tenant's data key. Returns False if it was already gone."""
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(
                f"INSERT INTO {_SCHEMA}.tenant_keys (tenant, wrapped, shredded_at) "
                "VALUES (%s, NULL, now()) ON CONFLICT (tenant) DO UPDATE "
                "SET wrapped = NULL, shredded_at = now() "
                f"WHERE {_SCHEMA}.tenant_keys.shredded_at IS NULL RETURNING tenant",
                (tenant,))
            changed = curs.fetchone() is not None
        self._remember(tenant, self.SHREDDED)
        return changed
