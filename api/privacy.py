"""Citizens' personal fields: masked by default, unmasked only when needed, every
unmasked view recorded (DOMAIN.md "Sensitive data").

- ``mask_party`` is what every view shows: 张**, 138****1234, 330***********1234.
- ``needs_unmasked`` is the policy: the principal holds ``personal:view`` for the
  case's center and, as a unit officer or grid worker, the case is assigned to it.
- ``unmask`` (or ``record_view`` then ``reveal_party``) shows fields in clear:
  refused without ``personal:view`` (FORBIDDEN) or without a reason
  (``ValidationError``: VALIDATION), and recorded *before* anything is shown, as an
  ``AccessRecord`` event in the case's own center.
- ``views_of`` lists a case's access records (an ``audit:read`` matter for the
  caller to authorize).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from api.auth import Principal
from api.authz import Action, Authorizer, default_authorizer
from domain.access import PERSONAL_FIELDS, AccessRecord
from domain.case import Case
from domain.checks import require_text
from domain.codes import tenant_of
from domain.errors import ValidationError
from domain.values import Party, Personal
from tenants.center import CenterApp
from tenants.service import Tenants

__all__ = [
    "PERSONAL_FIELDS",
    "mask_party",
    "needs_unmasked",
    "record_view",
    "reveal_party",
    "unmask",
    "views_of",
]

_MAX_RACES = 32  # other viewers of the same case taking the next serial first


def _field(value: Personal | None, clear: bool) -> str | None:
    if value is None:
        return None
    if clear and value.text is not None:
        return value.text
    return value.masked()  # "[shredded]" when the center's key was destroyed


def mask_party(party: Party) -> dict[str, str | None]:
    """A party as every view shows it: each personal field masked (None if absent)."""
    return reveal_party(party, ())


def reveal_party(party: Party, fields: Sequence[str]) -> dict[str, str | None]:
    """A party with ``fields`` in clear and the rest masked. Call only after
    ``record_view`` (or use ``unmask``, which does both)."""
    shown = {name: _field(getattr(party, name), name in fields) for name in PERSONAL_FIELDS}
    return {**shown, "role": party.role}


def needs_unmasked(principal: Principal, case: Case,
                   authorizer: Authorizer | None = None) -> bool:
    """Whether the principal may see this case's personal fields in clear: it
    holds ``personal:view`` for the case's center (assignment included)."""
    auth = authorizer or default_authorizer()
    return auth.can_on_case(principal, Action.PERSONAL_VIEW, case)


def _checked_fields(fields: Sequence[str]) -> list[str]:
    if isinstance(fields, str) or not fields:
        raise ValidationError(f"name the personal fields to show: {', '.join(PERSONAL_FIELDS)}")
    chosen = list(dict.fromkeys(fields))
    unknown = [f for f in chosen if f not in PERSONAL_FIELDS]
    if unknown:
        raise ValidationError(
            f"personal fields are {', '.join(PERSONAL_FIELDS)}; got {', '.join(unknown)}")
    return chosen


def _next_serial(app: CenterApp, case_id: UUID) -> int:
    """The first serial with no access record yet (serials are gap-free):
    doubling, then bisection, so O(log n) point reads."""
    def taken(serial: int) -> bool:
        return bool(app.recorder.select_events(AccessRecord.create_id(case_id, serial),
                                               limit=1))

    high = 1
    while taken(high):
        high *= 2
    low = high // 2  # taken (or 0)
    while high - low > 1:
        middle = (low + high) // 2
        if taken(middle):
            low = middle
        else:
            high = middle
    return high


def record_view(tenants: Tenants, principal: Principal, case: Case, fields: Sequence[str],
                reason: str, at: datetime, *,
                authorizer: Authorizer | None = None) -> AccessRecord:
    """Record that the principal is shown ``fields`` of the case's parties in
    clear, in the case's center; refuses (FORBIDDEN) unless ``needs_unmasked``,
    and (VALIDATION) without a reason."""
    auth = authorizer or default_authorizer()
    auth.require_on_case(principal, Action.PERSONAL_VIEW, case)
    chosen = _checked_fields(fields)
    require_text(reason, "the reason for viewing personal data")
    app = tenants.center(case.tenant)
    serial = _next_serial(app, case.id)
    for _ in range(_MAX_RACES):
        record = AccessRecord.record(
            case_id=case.id, case_number=case.case_number, serial=serial,
            viewer=principal.subject, viewer_tenant=principal.tenant,
            roles=[r.value for r in principal.roles], fields=chosen, reason=reason, at=at)
        try:
            app.save(record)
        except IntegrityError:
            serial += 1  # another view of this case took the serial first
            continue
        return record
    raise RuntimeError(f"could not record a view of case {case.case_number}: too many races")


def unmask(tenants: Tenants, principal: Principal, case: Case, fields: Sequence[str],
           reason: str, at: datetime, *,
           authorizer: Authorizer | None = None) -> list[dict[str, str | None]]:
    """The case's parties with ``fields`` in clear, after recording the view."""
    record = record_view(tenants, principal, case, fields, reason, at, authorizer=authorizer)
    return [reveal_party(p, record.fields) for p in case.parties]


def views_of(tenants: Tenants, case_id: UUID) -> list[AccessRecord]:
    """Every recorded unmasked view of the case, oldest first."""
    tenant = tenant_of(case_id) if isinstance(case_id, UUID) else None
    if tenant is None:
        raise ValidationError(f"{case_id!r} is not a case id of any center")
    app = tenants.center(tenant)
    records: list[AccessRecord] = []
    serial = 1
    while True:
        try:
            record: AccessRecord = app.repository.get(AccessRecord.create_id(case_id, serial))
        except AggregateNotFoundError:
            return records
        assert isinstance(record, AccessRecord)
        records.append(record)
        serial += 1
