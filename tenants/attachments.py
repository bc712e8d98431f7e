"""Photos of a case (evidence), stored encrypted beside the case's events.

A photo's bytes go to ``lg_<city>.attachments`` (one table per log group, as
the events), sealed with AES-GCM under a fresh content key; the content key is
stored as a personal field is, encrypted with the tenant's data key by the
keyring (so key versions and rotation apply). Shredding the tenant's key makes
every content key, and so every photo, unreadable. The case records each photo
as an immutable ``Case.PhotoAttached`` event (id, SHA-256, type, size, by, at),
so the history shows it and the audit chain covers it; the row is written just
before the event and removed again if the event cannot be saved.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from datetime import datetime
from uuid import UUID, uuid4

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg.sql import SQL, Identifier

from domain import Case
from domain.case import Photo, photo_type
from tenants.center import CenterApp
from tenants.persistence import DDL_LOCK

__all__ = ["PhotoNotFound", "PhotoUnreadable", "attach_photo", "read_photo", "stored_photos"]

_NONCE = 12
_ensured: set[tuple[str, str]] = set()  # (database url, schema) whose table exists
_ensured_lock = threading.Lock()


class PhotoNotFound(LookupError):
    """No such photo on this case (the case may exist; the photo is not on it)."""


class PhotoUnreadable(RuntimeError):
    """The photo's key is gone (the tenant's data key was shredded) or its
    bytes do not match the digest the case recorded."""


def _table(app: CenterApp) -> tuple[Identifier, Identifier]:
    return Identifier(app.store.datastore.schema), Identifier("attachments")


def _ensure_table(app: CenterApp) -> None:
    datastore = app.store.datastore
    key = (getattr(datastore, "url", ""), datastore.schema)
    with _ensured_lock:
        if key in _ensured:
            return
    schema, table = _table(app)
    with datastore.transaction(commit=True) as curs:
        curs.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK,))
        curs.execute(SQL(
            "CREATE TABLE IF NOT EXISTS {0}.{1} ("
            "tenant text NOT NULL, id uuid PRIMARY KEY, case_id uuid NOT NULL, "
            "content_type text NOT NULL, size integer NOT NULL, sha256 text NOT NULL, "
            "content_key text NOT NULL, content bytea NOT NULL, "
            "stored_at timestamptz NOT NULL DEFAULT now())").format(schema, table))
        curs.execute(SQL("CREATE INDEX IF NOT EXISTS attachments_case_idx "
                         "ON {0}.{1} (tenant, case_id)").format(schema, table))
    with _ensured_lock:
        _ensured.add(key)


def _aad(tenant: str, attachment_id: UUID) -> bytes:
    """A sealed photo is bound to its tenant and id: it cannot be swapped in elsewhere."""
    return f"{tenant}/attachment/{attachment_id}".encode()


def attach_photo(app: CenterApp, case_id: UUID, content: bytes, by: str,
                 at: datetime) -> tuple[Case, Photo]:
    """Check and store a photo, then record it on the case. Refused (nothing
    stored) for a type other than JPEG/PNG, an oversized photo, a full or
    closed case, or a shredded tenant key."""
    app.keyring.require_key(app.tenant)
    content = bytes(content) if isinstance(content, bytearray) else content
    content_type = photo_type(content)
    case = app.get_case(case_id)
    attachment_id = uuid4()
    digest = hashlib.sha256(content).hexdigest()
    case.attach_photo(attachment_id, digest, content_type, len(content), by, at)  # the rules
    content_key = secrets.token_bytes(32)
    nonce = secrets.token_bytes(_NONCE)
    sealed = nonce + AESGCM(content_key).encrypt(nonce, content, _aad(app.tenant, attachment_id))
    wrapped = app.keyring.encrypt(app.tenant, base64.b64encode(content_key).decode())
    _ensure_table(app)
    schema, table = _table(app)
    with app.store.datastore.transaction(commit=True) as curs:
        curs.execute(SQL(
            "INSERT INTO {0}.{1} (tenant, id, case_id, content_type, size, sha256, "
            "content_key, content) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)").format(
            schema, table),
            (app.tenant, attachment_id, case.id, content_type, len(content), digest, wrapped,
             sealed))
    try:
        app.save_case(case)
    except BaseException:
        with app.store.datastore.transaction(commit=True) as curs:
            curs.execute(SQL("DELETE FROM {0}.{1} WHERE id = %s").format(schema, table),
                         (attachment_id,))
        raise
    return case, case.photos[-1]


def read_photo(app: CenterApp, case: Case, attachment_id: UUID) -> tuple[Photo, bytes]:
    """A photo the case records, decrypted and checked against its digest."""
    photo = next((p for p in case.photos if p.attachment_id == attachment_id), None)
    if photo is None:
        raise PhotoNotFound(f"case {case.case_number} has no photo {attachment_id}")
    _ensure_table(app)
    schema, table = _table(app)
    with app.store.datastore.get_connection() as conn:
        row = conn.execute(SQL(
            "SELECT content_key, content FROM {0}.{1} "
            "WHERE tenant = %s AND case_id = %s AND id = %s").format(schema, table),
            (app.tenant, case.id, attachment_id)).fetchone()
    if row is None:
        raise PhotoNotFound(f"photo {attachment_id} of case {case.case_number} is not stored")
    wrapped = app.keyring.decrypt(app.tenant, row["content_key"])
    if wrapped is None:
        raise PhotoUnreadable(f"center {app.tenant}'s data key was shredded: its photos "
                              "can no longer be read")
    sealed = bytes(row["content"])
    try:
        content = AESGCM(base64.b64decode(wrapped)).decrypt(
            sealed[:_NONCE], sealed[_NONCE:], _aad(app.tenant, attachment_id))
    except InvalidTag:
        raise PhotoUnreadable(f"photo {attachment_id} does not open with its key") from None
    if hashlib.sha256(content).hexdigest() != photo.sha256:
        raise PhotoUnreadable(f"photo {attachment_id} does not match the digest its case "
                              "recorded")
    return photo, content


def stored_photos(app: CenterApp, case_id: UUID) -> list[bytes]:
    """The sealed bytes stored for a case's photos, as in the database (for
    audits and tests: they must never hold a plaintext image)."""
    _ensure_table(app)
    schema, table = _table(app)
    with app.store.datastore.get_connection() as conn:
        rows = conn.execute(SQL("SELECT content FROM {0}.{1} WHERE tenant = %s "
                                "AND case_id = %s ORDER BY stored_at").format(schema, table),
                            (app.tenant, case_id)).fetchall()
    return [bytes(r["content"]) for r in rows]
