"""Division codes (统计用区划代码) and the tenant-carrying stream ids.

A tenant is a center keyed by its division code: city 4 digits, county 6,
township 9, village 12. A code starts with its parent's code, so "is X inside Y"
is a prefix test. A province (2 digits) is an auditing scope, not a tenant.

Stream (aggregate) ids carry their tenant: a UUID in the version 8 layout whose
first 48 bits are the tenant code's integer value. Codes never start with 0
(they start with 1-6), so the digit count, hence the code, is recovered from the
integer alone and codes of different lengths never collide.
"""

from __future__ import annotations

import hashlib
import uuid
from enum import StrEnum
from typing import TypeGuard
from uuid import UUID

from domain.errors import ValidationError

__all__ = [
    "Tier",
    "city_of",
    "is_within",
    "new_stream_id",
    "parent_of",
    "stream_id",
    "tenant_of",
    "tier_of",
]


class Tier(StrEnum):
    """The four tiers of governance centers, each a tenant of the product."""

    CITY = "city"
    COUNTY = "county"
    TOWNSHIP = "township"
    VILLAGE = "village"


_TIER_BY_LENGTH = {4: Tier.CITY, 6: Tier.COUNTY, 9: Tier.TOWNSHIP, 12: Tier.VILLAGE}
_PARENT_LENGTH = {Tier.VILLAGE: 9, Tier.TOWNSHIP: 6, Tier.COUNTY: 4}
_PROVINCE_LENGTH = 2
_FIRST_DIGITS = "123456"

_TENANT_BITS = 48
_REST_BITS = 128 - _TENANT_BITS  # 80: 4 version bits, 2 variant bits, 74 bits of payload
_VERSION = 8


def _is_code(code: object, *, allow_province: bool) -> TypeGuard[str]:
    lengths = set(_TIER_BY_LENGTH)
    if allow_province:
        lengths.add(_PROVINCE_LENGTH)
    return (
        isinstance(code, str)
        and len(code) in lengths
        and code.isascii()
        and code.isdigit()
        and code[0] in _FIRST_DIGITS
    )


def _check(code: object, *, allow_province: bool = False) -> str:
    if not _is_code(code, allow_province=allow_province):
        scope = "2 (province), " if allow_province else ""
        msg = (
            f"a division code has {scope}4, 6, 9 or 12 digits and starts with 1-6;"
            f" {code!r} is not one"
        )
        raise ValidationError(msg)
    return code


def tier_of(code: str) -> Tier:
    """The tier of a tenant code; raises ValidationError for anything else."""
    return _TIER_BY_LENGTH[len(_check(code))]


def parent_of(code: str) -> str | None:
    """The next tier up (village → township → county → city); None for a city.

    Escalation never goes above a city, so a city has no parent tenant.
    """
    length = _PARENT_LENGTH.get(tier_of(code))
    return None if length is None else code[:length]


def is_within(code: str, ancestor: str) -> bool:
    """Whether ``code`` lies inside ``ancestor`` (or is it). Provinces are allowed."""
    _check(code, allow_province=True)
    _check(ancestor, allow_province=True)
    return code.startswith(ancestor)


def city_of(code: str) -> str:
    """The city (log group) a tenant belongs to: its first 4 digits."""
    return _check(code)[:4]


def _compose(tenant: str, rest: int) -> UUID:
    value = int(_check(tenant)) << _REST_BITS
    # rest supplies 74 bits: 12 above the variant, 62 below it.
    high = (rest >> 62) & 0xFFF
    low = rest & ((1 << 62) - 1)
    value |= _VERSION << 76
    value |= high << 64
    value |= 0b10 << 62  # RFC 4122 variant
    value |= low
    return UUID(int=value)


def stream_id(tenant: str, key: str) -> UUID:
    """A deterministic stream id for ``key`` inside ``tenant`` (same inputs, same id)."""
    digest = hashlib.sha256(f"{tenant}\x00{key}".encode()).digest()
    return _compose(tenant, int.from_bytes(digest[:10], "big"))


def new_stream_id(tenant: str) -> UUID:
    """A fresh random stream id inside ``tenant``."""
    return _compose(tenant, uuid.uuid4().int)


def tenant_of(stream: UUID) -> str | None:
    """The tenant a stream id carries; None for ids not made by this module."""
    if stream.version != _VERSION or stream.variant != uuid.RFC_4122:
        return None
    code = str(stream.int >> _REST_BITS)
    return code if _is_code(code, allow_province=False) else None
