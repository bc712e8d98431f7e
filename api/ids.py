"""Ids that clients send: case, camera and alert ids are stream ids naming their center."""

from __future__ import annotations

from uuid import UUID

from api.errors import not_found
from domain import ValidationError, tenant_of

__all__ = ["center_of", "stream_id"]


def stream_id(value: object, what: str) -> UUID:
    """The id of a ``what`` ("case", "camera", "alert") given by a client:
    VALIDATION unless it is a UUID, NOT_FOUND unless it names a center."""
    try:
        found = UUID(str(value))
    except ValueError:
        raise ValidationError(f"a {what} id is a UUID; {value!r} is not") from None
    if tenant_of(found) is None:
        raise not_found(f"no {what} {found}")
    return found


def center_of(stream: UUID) -> str:
    """The center of an id :func:`stream_id` accepted."""
    tenant = tenant_of(stream)
    assert tenant is not None, stream
    return tenant
