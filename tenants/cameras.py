"""A center's cameras and camera alerts: load, command, save.

A :class:`CameraApp` is a :class:`~tenants.center.CenterApp` (same tenant, same
log group, same keys) with the commands of cameras and their alerts. What must
not be split is saved in one transaction:

- an alert raised or repeated with its camera's ``AlertNoted`` (the camera
  says which alert is open per zone and rule, and the last episode recorded),
  so a redelivered detection finds its episode recorded and raises nothing;
- a confirmation with the case it creates (taken in as intake does, channel
  ``camera``) and the camera's ``AlertClosed``; a dismissal with the latter.

A save that lost a race with another writer of the same camera (the alert
service and a person's disposition) is retried on the new state.
:class:`Cameras` hands out one app per center (cached, bounded).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from domain import (
    Camera,
    CameraAlert,
    Case,
    Channel,
    Party,
    PartyRole,
    Personal,
    Place,
    ValidationError,
    Zone,
    category,
    tenant_of,
)
from domain.alert import CASE_CATEGORY
from tenants import persistence
from tenants.center import CenterApp, ConcurrentUpdate
from tenants.service import Tenants

__all__ = ["AlertNotFound", "CameraApp", "CameraNotFound", "Cameras", "Recorded"]

RETRIES = 8
T = TypeVar("T")


class CameraNotFound(LookupError):
    """No such camera in this center."""


class AlertNotFound(LookupError):
    """No such alert in this center."""


@dataclass(frozen=True)
class Recorded:
    """What recording a rule's firing did: ``raised`` a new alert, ``repeated`` the
    open one, or nothing because the episode was ``already`` recorded."""

    alert: CameraAlert
    outcome: str  # "raised" | "repeated" | "already"


class CameraApp(CenterApp):
    """The commands of a center's cameras and alerts."""

    # -- reads ---------------------------------------------------------------

    def get_camera(self, camera_id: UUID) -> Camera:
        if not isinstance(camera_id, UUID) or tenant_of(camera_id) != self.tenant:
            raise CameraNotFound(f"no camera {camera_id} in center {self.tenant}")
        try:
            camera: object = self.repository.get(camera_id)
        except AggregateNotFoundError:
            raise CameraNotFound(f"no camera {camera_id} in center {self.tenant}") from None
        if not isinstance(camera, Camera):
            raise CameraNotFound(f"no camera {camera_id} in center {self.tenant}")
        return camera

    def camera_by_ref(self, ref: str) -> Camera:
        try:
            camera_id = Camera.create_id(self.tenant, ref)
        except ValidationError:
            raise CameraNotFound(f"no camera {ref!r} in center {self.tenant}") from None
        try:
            return self.get_camera(camera_id)
        except CameraNotFound:
            raise CameraNotFound(f"no camera {ref!r} in center {self.tenant}") from None

    def get_alert(self, alert_id: UUID) -> CameraAlert:
        if not isinstance(alert_id, UUID) or tenant_of(alert_id) != self.tenant:
            raise AlertNotFound(f"no alert {alert_id} in center {self.tenant}")
        try:
            alert: object = self.repository.get(alert_id)
        except AggregateNotFoundError:
            raise AlertNotFound(f"no alert {alert_id} in center {self.tenant}") from None
        if not isinstance(alert, CameraAlert):
            raise AlertNotFound(f"no alert {alert_id} in center {self.tenant}")
        return alert

    def _retrying(self, attempt: Callable[[], T]) -> T:
        for _ in range(RETRIES):
            try:
                return attempt()
            except IntegrityError:
                continue  # another writer moved the camera or the alert: reload, retry
        raise ConcurrentUpdate("the camera kept changing while this was saved; retry")

    # -- cameras -------------------------------------------------------------

    def register_camera(self, ref: str, name: str, place: Place, zones: list[Zone],
                        by: str, at: datetime) -> Camera:
        camera = Camera.register(self.tenant, ref, name, place, zones, by, at)
        try:
            self.save(camera)
        except IntegrityError:
            raise ValidationError(
                f"camera refs are unique in a center; {ref!r} is registered in center "
                f"{self.tenant} already") from None
        return camera

    def change_camera_zones(self, camera_id: UUID, zones: list[Zone], by: str,
                            at: datetime) -> Camera:
        def attempt() -> Camera:
            camera = self.get_camera(camera_id)
            camera.change_zones(zones, by, at)
            self.save(camera)
            return camera
        return self._retrying(attempt)

    def retire_camera(self, camera_id: UUID, reason: str, by: str, at: datetime) -> Camera:
        def attempt() -> Camera:
            camera = self.get_camera(camera_id)
            camera.retire(reason, by, at)
            self.save(camera)
            return camera
        return self._retrying(attempt)

    # -- alerts: what the alert service records ------------------------------------

    def record_firing(self, camera_id: UUID, zone: str, kind: str, model: str,
                      confidence: float, first_frame: int, first_at: datetime,
                      last_frame: int, last_at: datetime, episode_at: datetime,
                      by: str) -> Recorded | None:
        """An episode of a zone's rule: a new alert, or a repeat of the open one.
        Recording the same episode again changes nothing (``already``, with the
        alert it went to when that can still be told; None otherwise)."""
        def attempt() -> Recorded | None:
            camera = self.get_camera(camera_id)
            key_open = camera.open_alerts.get(f"{zone}/{kind}")
            if camera.episode_recorded(zone, kind, episode_at):
                return self._already(camera_id, zone, kind, episode_at, key_open)
            if key_open is not None:
                alert = self.get_alert(key_open)
                alert.repeat(episode_at, last_frame, last_at, confidence)
                camera.note_alert(zone, kind, alert.id, episode_at, opened=False)
                self.save(camera, alert)
                return Recorded(alert, "repeated")
            alert = CameraAlert.raise_alert(
                camera_id, camera.ref, zone, kind, model, confidence, first_frame, first_at,
                last_frame, last_at, episode_at, by)
            camera.note_alert(zone, kind, alert.id, episode_at, opened=True)
            self.save(camera, alert)
            return Recorded(alert, "raised")
        return self._retrying(attempt)

    def _already(self, camera_id: UUID, zone: str, kind: str, episode_at: datetime,
                 open_alert: UUID | None) -> Recorded | None:
        own = CameraAlert.create_id(camera_id, zone, kind, episode_at)
        for alert_id in (own, open_alert):
            if alert_id is not None:
                try:
                    return Recorded(self.get_alert(alert_id), "already")
                except AlertNotFound:
                    continue
        return None  # a repeat counted on an alert since closed

    # -- alerts: disposition by a person ---------------------------------------------

    def acknowledge_alert(self, alert_id: UUID, note: str | None, by: str,
                          at: datetime) -> CameraAlert:
        def attempt() -> CameraAlert:
            alert = self.get_alert(alert_id)
            alert.acknowledge(note, by, at)
            self.save(alert)
            return alert
        return self._retrying(attempt)

    def confirm_alert(self, alert_id: UUID, reason: str, by: str, at: datetime, *,
                      case_id: UUID | None = None, category_code: str | None = None,
                      summary: str | None = None) -> tuple[CameraAlert, Case]:
        """Confirm into an existing case of this center (``case_id``), or into a new
        case taken in with ``category_code`` and ``summary`` (channel ``camera``; by
        default the kind's category and a summary naming camera, zone and kind)."""
        if case_id is not None:
            if category_code is not None or summary is not None:
                raise ValidationError("confirm into an existing case or into a new one "
                                      "(category and summary), not both")
            existing = self.get_case(case_id)
        else:
            seen = self.get_alert(alert_id)
            category_code = category_code or CASE_CATEGORY[seen.kind]
            summary = summary or (f"摄像头告警确认：{seen.camera_ref} {seen.zone} "
                                  f"{seen.kind.value}，{seen.first_at:%Y-%m-%d %H:%M}")
            category(category_code)
            self.keyring.require_key(self.tenant)
            existing = None
        number: list[str] = []

        def attempt() -> tuple[CameraAlert, Case]:
            alert = self.get_alert(alert_id)
            camera = self.get_camera(alert.camera_id)
            if existing is not None:
                alert.confirm(existing.id, False, reason, by, at)
                camera.note_alert_closed(alert.id)
                self.save(alert, camera)
                return alert, existing
            alert.require_open("confirmed")  # before a case number is spent
            if not number:
                number.append(self.next_case_number(at))
            assert category_code is not None and summary is not None
            case = Case.receive(
                tenant=self.tenant, case_number=number[0], channel=Channel.CAMERA,
                category=category_code, summary=summary,
                parties=[Party(Personal(f"摄像头 {camera.name} ({camera.ref})"),
                               role=PartyRole.OTHER.value)],
                place=camera.place, received_at=at, received_by=by)
            alert.confirm(case.id, True, reason, by, at)
            camera.note_alert_closed(alert.id)
            self.save(alert, camera, case)
            return alert, case
        return self._retrying(attempt)

    def dismiss_alert(self, alert_id: UUID, reason: str, by: str, at: datetime
                      ) -> CameraAlert:
        def attempt() -> CameraAlert:
            alert = self.get_alert(alert_id)
            camera = self.get_camera(alert.camera_id)
            alert.dismiss(reason, by, at)
            camera.note_alert_closed(alert.id)
            self.save(alert, camera)
            return alert
        return self._retrying(attempt)


class Cameras:
    """One :class:`CameraApp` per center, over a process's :class:`Tenants`."""

    def __init__(self, tenants: Tenants, cache_size: int = 256) -> None:
        self.tenants = tenants
        self._apps: OrderedDict[str, CameraApp] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def center(self, code: str) -> CameraApp:
        """The camera app of a registered center (``UnknownTenant`` otherwise)."""
        with self._lock:
            app = self._apps.get(code)
            if app is not None:
                self._apps.move_to_end(code)
                return app
        self.tenants.registry.get(code)  # raises UnknownTenant
        app = CameraApp(code, {**self.tenants.env, persistence.TENANT: code},
                        self.tenants.keyring, self.tenants.calendar, self.tenants.is_active)
        with self._lock:
            self._apps[code] = app
            while len(self._apps) > self._cache_size:
                self._apps.popitem(last=False)
        return app
