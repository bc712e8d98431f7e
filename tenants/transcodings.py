"""How the domain's value types become JSON, and personal fields ciphertext.

Enums are ``StrEnum`` and travel as their value (the domain restores members);
frozen dataclasses travel field by field; a :class:`~domain.Personal` travels
only as AES-GCM ciphertext under its tenant's data key, so no plaintext
personal field ever reaches PostgreSQL.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from enum import Enum
from typing import Any

from eventsourcing.persistence import JSONTranscoder, Transcoding

from domain import TRANSCODED_TYPES, Personal
from tenants.keys import Keyring


class DataclassAsDict(Transcoding):
    """A frozen domain dataclass as a dict of its fields (nested values are
    transcoded by the JSON encoder in turn)."""

    def __init__(self, cls: type) -> None:
        self.type = cls
        self.name = cls.__name__
        self._fields = [f.name for f in dataclasses.fields(cls)]

    def encode(self, obj: Any) -> dict[str, Any]:
        return {name: getattr(obj, name) for name in self._fields}

    def decode(self, data: dict[str, Any]) -> Any:
        return self.type(**data)


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class PersonalAsCiphertext(Transcoding):
    """A personal field, encrypted with its tenant's data key."""

    type = Personal
    name = "personal"

    def __init__(self, keyring: Keyring, tenant: str) -> None:
        self.keyring, self.tenant = keyring, tenant

    def encode(self, obj: Personal) -> str:
        if obj.text is None:
            raise ValueError("a shredded personal field cannot be written again")
        return self.keyring.encrypt(self.tenant, obj.text)  # names its key version

    def decode(self, data: str) -> Personal:
        return Personal(self.keyring.decrypt(self.tenant, data))


def register_domain_transcodings(transcoder: JSONTranscoder) -> None:
    """Every domain dataclass except ``Personal``, which needs a tenant's key."""
    transcoder.register(DateAsISO())
    for cls in TRANSCODED_TYPES:
        if dataclasses.is_dataclass(cls) and cls is not Personal:
            transcoder.register(DataclassAsDict(cls))
        else:
            assert cls is Personal or issubclass(cls, Enum), cls
