"""A camera alert: raised by the alert service, dispositioned by a person.

DOMAIN.md "Camera and sensor alerts": every alert needs a human disposition,
confirmed (it becomes or joins a case) or dismissed as false, and those
dispositions are the precision figure. An alert is:

- **raised** for one camera, zone and rule, with the model that saw it, its
  confidence and the detection frames that began and ended the episode;
- **repeated** while it is open: a storm of episodes of the same camera, zone
  and rule bumps its counter instead of raising new alerts (``repeats``);
- **acknowledged** (someone is looking at it), then either **confirmed** into a
  case (a new one taken in through intake, or an existing case of the same
  center) or **dismissed** as false. Each with who, when and why.

Its stream id is fixed by the camera, zone, rule and the episode's start, so
raising the same episode twice cannot make two alerts (the event store refuses
a second version 1).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.camera import RuleKind
from domain.checks import require_aware, require_member, require_text
from domain.codes import stream_id, tenant_of
from domain.errors import IllegalTransition, ValidationError

__all__ = ["CASE_CATEGORY", "AlertStatus", "CameraAlert"]

#: The case category a confirmed alert is taken in as, unless staff choose another.
CASE_CATEGORY: dict[RuleKind, str] = {
    RuleKind.CROWD: "crowd-gathering",
    RuleKind.FIRE_LANE: "fire-lane-blocked",
    RuleKind.STREET_VENDING: "street-vending",
    RuleKind.LOITERING: "other",
}


class AlertStatus(StrEnum):
    """Where an alert stands in its disposition."""

    RAISED = "raised"
    ACKNOWLEDGED = "acknowledged"
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"


OPEN = frozenset({AlertStatus.RAISED, AlertStatus.ACKNOWLEDGED})


def _camera_tenant(camera_id: object) -> str:
    tenant = tenant_of(camera_id) if isinstance(camera_id, UUID) else None
    if tenant is None:
        raise ValidationError(f"an alert names a camera id that carries its center; "
                              f"{camera_id!r} does not")
    return tenant


def _frame(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"{what} is a frame number from 0; got {value!r}")
    return value


class CameraAlert(Aggregate):
    """One alert of one camera's zone rule, from raising to its disposition."""

    @staticmethod
    def create_id(camera_id: UUID, zone: str, kind: str, episode_at: datetime) -> UUID:
        """The alert of one episode (camera, zone, rule, when it began), in the camera's
        center: the same episode always gets the same id."""
        require_aware(episode_at, "an episode's start")
        return stream_id(_camera_tenant(camera_id),
                         f"alert:{camera_id}:{zone}:{kind}:{episode_at.isoformat()}")

    @classmethod
    def raise_alert(cls, camera_id: UUID, camera_ref: str, zone: str, kind: str,
                    model: str, confidence: float, first_frame: int, first_at: datetime,
                    last_frame: int, last_at: datetime, episode_at: datetime,
                    by: str) -> CameraAlert:
        tenant = _camera_tenant(camera_id)
        require_text(camera_ref, "the camera's ref")
        require_text(zone, "the zone")
        rule = require_member(RuleKind, kind, "an alert's kind")
        require_text(model, "the model that saw it")
        if isinstance(confidence, bool) or not isinstance(confidence, int | float) or \
                not 0.0 <= confidence <= 1.0:
            raise ValidationError(f"an alert's confidence lies in 0..1; got {confidence!r}")
        _frame(first_frame, "the first detection frame")
        _frame(last_frame, "the last detection frame")
        require_aware(first_at, "the first detection's time")
        require_aware(last_at, "the last detection's time")
        require_aware(episode_at, "the episode's start")
        if last_at < first_at or last_frame < first_frame:
            raise ValidationError("an alert's last detection comes after its first")
        require_text(by, "the actor (by)")
        return cls(
            tenant=tenant,
            camera_id=camera_id, camera_ref=camera_ref, zone=zone, kind=rule, model=model,
            confidence=float(confidence), first_frame=first_frame, first_at=first_at,
            last_frame=last_frame, last_at=last_at, episode_at=episode_at, by=by)

    @event("Raised")
    def __init__(self, tenant: str, camera_id: UUID, camera_ref: str,
                 zone: str, kind: str, model: str, confidence: float, first_frame: int,
                 first_at: datetime, last_frame: int, last_at: datetime,
                 episode_at: datetime, by: str) -> None:
        self.tenant = tenant
        self.camera_id = camera_id
        self.camera_ref = camera_ref
        self.zone = zone
        self.kind = RuleKind(kind)
        self.model = model
        self.confidence = confidence
        self.first_frame, self.first_at = first_frame, first_at
        self.last_frame, self.last_at = last_frame, last_at
        self.episode_at = episode_at
        self.raised_at = last_at
        self.repeats = 0
        self.status = AlertStatus.RAISED
        self.acknowledged_by: str | None = None
        self.acknowledged_at: datetime | None = None
        self.disposed_by: str | None = None
        self.disposed_at: datetime | None = None
        self.reason: str | None = None
        self.case_id: UUID | None = None
        self.case_created = False

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def repeat(self, episode_at: datetime, frame: int, at: datetime,
               confidence: float) -> None:
        """Another episode while this alert is open: count it, keep one alert."""
        if not self.is_open:
            raise IllegalTransition("only an open alert counts repeats; a new episode after "
                                    "its disposition raises a new alert")
        require_aware(episode_at, "the episode's start")
        require_aware(at, "the detection's time")
        _frame(frame, "the detection frame")
        if episode_at <= self.episode_at:
            raise ValidationError("a repeat is a later episode than the one that raised it")
        if isinstance(confidence, bool) or not isinstance(confidence, int | float) or \
                not 0.0 <= confidence <= 1.0:
            raise ValidationError(f"an alert's confidence lies in 0..1; got {confidence!r}")
        self._repeated(episode_at, frame, at, float(confidence))

    @event("Repeated")
    def _repeated(self, episode_at: datetime, frame: int, at: datetime,
                  confidence: float) -> None:
        self.repeats += 1
        self.last_frame, self.last_at = frame, at
        self.confidence = max(self.confidence, confidence)

    def acknowledge(self, note: str | None, by: str, at: datetime) -> None:
        if self.status is not AlertStatus.RAISED:
            raise IllegalTransition(
                f"only a raised alert can be acknowledged; this one is {self.status}")
        if note is not None:
            require_text(note, "an acknowledgement's note")
        require_text(by, "the actor (by)")
        require_aware(at, "the time of the acknowledgement")
        self._acknowledged(note, by, at)

    @event("Acknowledged")
    def _acknowledged(self, note: str | None, by: str, at: datetime) -> None:
        self.status = AlertStatus.ACKNOWLEDGED
        self.acknowledged_by, self.acknowledged_at = by, at

    def require_open(self, verb: str) -> None:
        """IllegalTransition unless the alert is still open."""
        if not self.is_open:
            raise IllegalTransition(
                f"only an open (raised or acknowledged) alert can be {verb}; this one is "
                f"already {self.status}")

    def confirm(self, case_id: UUID, created: bool, reason: str, by: str,
                at: datetime) -> None:
        """A person saw it is real: it becomes a case (``created``) or joins one."""
        self.require_open("confirmed")
        if not isinstance(case_id, UUID) or tenant_of(case_id) != self.tenant:
            raise ValidationError(
                f"an alert is confirmed into a case of its own center {self.tenant}")
        require_text(reason, "the reason for confirming")
        require_text(by, "the actor (by)")
        require_aware(at, "the time of the confirmation")
        self._confirmed(case_id, bool(created), reason, by, at)

    @event("Confirmed")
    def _confirmed(self, case_id: UUID, created: bool, reason: str, by: str,
                   at: datetime) -> None:
        self.status = AlertStatus.CONFIRMED
        self.case_id, self.case_created = case_id, created
        self.reason, self.disposed_by, self.disposed_at = reason, by, at

    def dismiss(self, reason: str, by: str, at: datetime) -> None:
        """A person saw it is false: counted against the model's precision."""
        self.require_open("dismissed")
        require_text(reason, "the reason for dismissing as false")
        require_text(by, "the actor (by)")
        require_aware(at, "the time of the dismissal")
        self._dismissed(reason, by, at)

    @event("DismissedAsFalse")
    def _dismissed(self, reason: str, by: str, at: datetime) -> None:
        self.status = AlertStatus.DISMISSED
        self.reason, self.disposed_by, self.disposed_at = reason, by, at
