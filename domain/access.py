"""Access records: every unmasked view of a citizen's personal fields, as an event.

DOMAIN.md "Sensitive data": access is by role, tier and assignment, and every
view is itself recorded. One ``AccessRecord`` is created per view (who, with
which roles, at which center, which case, which fields, why, when) and saved in
the *case's* tenant, beside the case, so the center's own hash-chained history
says who looked at its citizens.

A record's stream id carries the case's tenant and is fixed by the case and a
serial number (1, 2, 3 ... per case): the records of a case are found without an
index, and two viewers racing for the same serial cannot both write it.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.checks import require_aware, require_text
from domain.codes import stream_id, tenant_of
from domain.errors import ValidationError

__all__ = ["PERSONAL_FIELDS", "AccessRecord"]

#: The personal fields of a ``Party`` that are encrypted at rest and masked in views.
PERSONAL_FIELDS: tuple[str, ...] = ("name", "phone", "id_number", "address")


def _case_tenant(case_id: object) -> str:
    tenant = tenant_of(case_id) if isinstance(case_id, UUID) else None
    if tenant is None:
        raise ValidationError(f"an access record names a case id that carries its tenant; "
                              f"{case_id!r} does not")
    return tenant


class AccessRecord(Aggregate):
    """One view of a case's personal fields, in clear, by one member of staff."""

    @staticmethod
    def create_id(case_id: UUID, serial: int) -> UUID:
        """The ``serial``-th view of ``case_id``, inside the case's tenant."""
        return stream_id(_case_tenant(case_id), f"access:{case_id}:{serial}")

    @classmethod
    def record(
        cls,
        case_id: UUID,
        case_number: str,
        serial: int,
        viewer: str,
        viewer_tenant: str,
        roles: list[str],
        fields: list[str],
        reason: str,
        at: datetime,
    ) -> AccessRecord:
        """Record a view; the reason is required (no reason, no unmasking)."""
        _case_tenant(case_id)
        require_text(case_number, "a case number")
        if not isinstance(serial, int) or isinstance(serial, bool) or serial < 1:
            raise ValidationError(f"an access record's serial counts from 1; got {serial!r}")
        require_text(viewer, "the viewer")
        require_text(viewer_tenant, "the viewer's center")
        if not isinstance(roles, list) or not roles or not all(
                isinstance(r, str) and r for r in roles):
            raise ValidationError("an access record names the viewer's roles")
        if not isinstance(fields, list) or not fields:
            raise ValidationError("an access record names the personal fields viewed")
        unknown = [f for f in fields if f not in PERSONAL_FIELDS]
        if unknown:
            raise ValidationError(
                f"personal fields are {', '.join(PERSONAL_FIELDS)}; got {unknown!r}")
        if len(set(fields)) != len(fields):
            raise ValidationError("an access record names each field once")
        require_text(reason, "the reason for viewing personal data")
        require_aware(at, "the time of the view")
        return cls(case_id=case_id, case_number=case_number, serial=serial, viewer=viewer,
                   viewer_tenant=viewer_tenant, roles=list(roles), fields=list(fields),
                   reason=reason.strip(), at=at)

    @event("Viewed")
    def __init__(
        self,
        case_id: UUID,
        case_number: str,
        serial: int,
        viewer: str,
        viewer_tenant: str,
        roles: list[str],
        fields: list[str],
        reason: str,
        at: datetime,
    ) -> None:
        self.case_id = case_id
        self.tenant = _case_tenant(case_id)
        self.case_number = case_number
        self.serial = serial
        self.viewer = viewer
        self.viewer_tenant = viewer_tenant
        self.roles = list(roles)
        self.fields = list(fields)
        self.reason = reason
        self.at = at
