"""Small input checks shared by the domain's commands and policies."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from domain.errors import ValidationError

E = TypeVar("E", bound=StrEnum)


def require_aware(value: object, what: str = "a time") -> datetime:
    """``value`` must be a timezone-aware datetime: business times are instants."""
    if not isinstance(value, datetime):
        msg = f"{what} must be a datetime; got {type(value).__name__}"
        raise ValidationError(msg)
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"{what} must be timezone-aware; got the naive {value.isoformat()}"
        raise ValidationError(msg)
    return value


def require_text(value: object, what: str) -> str:
    """``value`` must be a string with something other than whitespace in it."""
    if not isinstance(value, str) or not value.strip():
        msg = f"{what} must not be empty"
        raise ValidationError(msg)
    if "\x00" in value:  # PostgreSQL text cannot hold it; read models would stall on it
        msg = f"{what} must not contain a NUL character"
        raise ValidationError(msg)
    return value


def require_member(enum: type[E], value: object, what: str) -> E:
    """``value`` must be one of ``enum``'s values (a member or its string)."""
    if isinstance(value, enum):
        return value
    if isinstance(value, str) and value in enum._value2member_map_:
        return enum(value)
    allowed = ", ".join(member.value for member in enum)
    msg = f"{what} must be one of {allowed}; got {value!r}"
    raise ValidationError(msg)
