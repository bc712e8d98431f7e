"""The zone rules over time: tracking objects across frames, and the rules' timers.

Pure: no I/O and no clock; time is the frames' capture time (``FrameDetections.at``),
so the same frames always give the same firings at the same instants, and an
episode's start, which fixes the alert's id, is reproducible after a redelivery.

- :class:`Tracker` follows objects from frame to frame by greedy IoU matching
  (people and objects apart). A track survives ``TRACK_GAP`` unseen (a missed
  detection), and remembers when it entered each zone and since when it has
  stood still (its box centre within ``STILL_RADIUS`` of where it stopped).
- :class:`CameraRules` evaluates every rule of every zone of one camera on each
  frame. A rule's condition holding starts an **episode**; it fires once, when
  the condition has held for the rule's seconds, and ends when the condition
  has lapsed for longer than ``EPISODE_GRACE`` (a detector flickers). The next
  episode fires again: the alert service turns that into a repeat of the open
  alert, or a new alert.

A point is in a zone when the bottom centre of its box (where it touches the
ground) lies inside the zone's polygon.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from typing import Any

from domain.camera import RuleKind, Zone, ZoneRule
from vision.messages import Detection, FrameDetections

__all__ = [
    "EPISODE_GRACE",
    "MIN_SCORE",
    "PEOPLE",
    "STILL_RADIUS",
    "TRACK_GAP",
    "CameraRules",
    "Firing",
    "Track",
    "Tracker",
    "dump_state",
    "foot_point",
    "in_polygon",
    "iou",
    "load_state",
]

CHINA = timezone(timedelta(hours=8))
PEOPLE = frozenset({"person"})
MIN_SCORE = 0.3  # detections below this are noise for every rule
IOU_MATCH = 0.3  # a detection continues a track when their boxes overlap this much
TRACK_GAP = timedelta(seconds=2)
EPISODE_GRACE = timedelta(seconds=2)
STILL_RADIUS = 0.04  # normalised: how far a standing person or parked car may drift

Box = tuple[float, float, float, float]


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (x1, y1, x2, y2)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def foot_point(box: Box) -> tuple[float, float]:
    """Where a box touches the ground: the middle of its bottom edge."""
    return ((box[0] + box[2]) / 2, box[3])


def _centre(box: Box) -> tuple[float, float]:
    return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)


def in_polygon(point: tuple[float, float], polygon: Sequence[Sequence[float]]) -> bool:
    """Ray casting: whether ``point`` lies inside ``polygon`` or on its edge (a box
    clipped to the frame has its foot on the frame's edge, which a zone may share)."""
    x, y = point
    inside = False
    n = len(polygon)
    for i in range(n):
        x1, y1 = polygon[i][0], polygon[i][1]
        x2, y2 = polygon[(i + 1) % n][0], polygon[(i + 1) % n][1]
        if _on_segment(x, y, x1, y1, x2, y2):
            return True
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
            inside = not inside
    return inside


def _on_segment(x: float, y: float, x1: float, y1: float, x2: float, y2: float,
                eps: float = 1e-9) -> bool:
    if abs((x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)) > eps:
        return False
    return (min(x1, x2) - eps <= x <= max(x1, x2) + eps
            and min(y1, y2) - eps <= y <= max(y1, y2) + eps)


def _kind_of(label: str) -> str:
    return "person" if label in PEOPLE else "object"


@dataclass
class Track:
    """One object followed across frames."""

    id: int
    kind: str  # "person" or "object"
    box: Box
    score: float
    seen_at: datetime
    seen_seq: int
    still_at: tuple[float, float]  # where it stopped
    still_since: datetime
    zones: dict[str, tuple[datetime, int]] = field(default_factory=dict)  # entered (at, seq)


class Tracker:
    """Greedy IoU tracking of one camera's detections, people and objects apart."""

    def __init__(self) -> None:
        self.tracks: list[Track] = []
        self._next = 1

    def update(self, at: datetime, seq: int, detections: Sequence[Detection]) -> list[Track]:
        """Match the frame's detections to tracks; returns the tracks seen in it."""
        dets = [d for d in detections if d.score >= MIN_SCORE]
        pairs = sorted(
            ((iou(t.box, d.box), ti, di) for ti, t in enumerate(self.tracks)
             for di, d in enumerate(dets) if t.kind == _kind_of(d.label)),
            reverse=True)
        used_t: set[int] = set()
        used_d: set[int] = set()
        seen: list[Track] = []
        for overlap, ti, di in pairs:
            if overlap < IOU_MATCH:
                break
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            track, det = self.tracks[ti], dets[di]
            track.box, track.score, track.seen_at, track.seen_seq = det.box, det.score, at, seq
            centre = _centre(det.box)
            if abs(centre[0] - track.still_at[0]) > STILL_RADIUS or \
                    abs(centre[1] - track.still_at[1]) > STILL_RADIUS:
                track.still_at, track.still_since = centre, at
            seen.append(track)
        for di, det in enumerate(dets):
            if di not in used_d:
                track = Track(self._next, _kind_of(det.label), det.box, det.score, at, seq,
                              _centre(det.box), at)
                self._next += 1
                self.tracks.append(track)
                seen.append(track)
        self.tracks = [t for t in self.tracks if at - t.seen_at <= TRACK_GAP]
        return seen


@dataclass(frozen=True)
class Firing:
    """A rule's condition has held long enough: one episode, to be alerted."""

    zone: str
    kind: RuleKind
    episode_at: datetime  # when the condition began to hold (fixes the alert's id)
    first_seq: int
    first_at: datetime
    last_seq: int
    last_at: datetime  # the frame at which it fired
    confidence: float
    count: int  # people in the zone (crowd) or objects/people holding the rule


@dataclass
class _Episode:
    start: datetime
    first_seq: int
    last_true: datetime
    fired: bool = False


def _quiet(rule: ZoneRule, at: datetime) -> bool:
    """Whether ``at`` falls in a loitering rule's quiet hours (China time)."""
    assert rule.after is not None and rule.until is not None
    now = at.astimezone(CHINA).time()
    after, until = time.fromisoformat(rule.after), time.fromisoformat(rule.until)
    return after <= now < until if after < until else (now >= after or now < until)


class CameraRules:
    """Every zone rule of one camera, fed the camera's frames in order."""

    def __init__(self, zones: Sequence[Zone]) -> None:
        self.zones = list(zones)
        self.tracker = Tracker()
        self.episodes: dict[tuple[str, RuleKind], _Episode] = {}
        self.last_at: datetime | None = None
        self.stale = 0  # frames older than one already seen (ignored)

    def observe(self, frame: FrameDetections) -> list[Firing]:
        """Feed one frame; returns the rules that fire at it."""
        if self.last_at is not None and frame.at <= self.last_at:
            self.stale += 1
            return []
        self.last_at = at = frame.at
        seen = self.tracker.update(at, frame.seq, frame.detections)
        for track in seen:
            point = foot_point(track.box)
            for zone in self.zones:
                if in_polygon(point, zone.polygon):
                    track.zones.setdefault(zone.name, (at, frame.seq))
                else:
                    track.zones.pop(zone.name, None)
        firings: list[Firing] = []
        for zone in self.zones:
            for rule in zone.rules:
                firing = self._evaluate(zone, rule, frame)
                if firing is not None:
                    firings.append(firing)
        return firings

    def _holding(self, zone: Zone, rule: ZoneRule, frame: FrameDetections
                 ) -> tuple[datetime, int, float, int] | None:
        """(since, first seq, confidence, count) when the rule's condition holds now."""
        at = frame.at
        hold = timedelta(seconds=rule.seconds)
        live = [t for t in self.tracker.tracks if zone.name in t.zones]
        if rule.kind is RuleKind.CROWD:
            people = [t for t in live if t.kind == "person" and t.seen_at == at]
            if len(people) <= rule.people:
                return None
            return at, frame.seq, sum(t.score for t in people) / len(people), len(people)
        if rule.kind is RuleKind.FIRE_LANE:
            held = [(t.zones[zone.name], t) for t in live if t.kind == "object"]
        elif rule.kind is RuleKind.STREET_VENDING:
            held = [(max(t.zones[zone.name], (t.still_since, t.zones[zone.name][1])), t)
                    for t in live if t.kind == "person"]
        else:  # loitering
            if not _quiet(rule, at):
                return None
            held = [(t.zones[zone.name], t) for t in live if t.kind == "person"]
        held = [(since, t) for since, t in held if at - since[0] >= hold]
        if not held:
            return None
        (since_at, since_seq), _ = min(held, key=lambda h: h[0])
        return since_at, since_seq, max(t.score for _, t in held), len(held)

    def _evaluate(self, zone: Zone, rule: ZoneRule, frame: FrameDetections) -> Firing | None:
        key = (zone.name, RuleKind(rule.kind))
        at = frame.at
        episode = self.episodes.get(key)
        holding = self._holding(zone, rule, frame)
        if holding is None:
            if episode is not None and at - episode.last_true > EPISODE_GRACE:
                del self.episodes[key]
            return None
        since, since_seq, confidence, count = holding
        if episode is None or at - episode.last_true > EPISODE_GRACE:
            episode = self.episodes[key] = _Episode(since, since_seq, at)
        episode.last_true = at
        if episode.fired or at - episode.start < timedelta(seconds=rule.seconds):
            return None
        episode.fired = True
        return Firing(zone.name, RuleKind(rule.kind), episode.start, episode.first_seq,
                      episode.start, frame.seq, at, round(min(1.0, max(0.0, confidence)), 4),
                      count)


# -- state, for the alert service's checkpoints ---------------------------------------------


def _t(value: datetime) -> str:
    return value.isoformat()


def dump_state(rules: CameraRules) -> dict[str, Any]:
    """The rules' state as JSON-ready data (tracks, episodes, the frame clock)."""
    return {
        "last_at": _t(rules.last_at) if rules.last_at else None,
        "next": rules.tracker._next,
        "tracks": [{
            "id": t.id, "kind": t.kind, "box": list(t.box), "score": t.score,
            "seen_at": _t(t.seen_at), "seen_seq": t.seen_seq, "still_at": list(t.still_at),
            "still_since": _t(t.still_since),
            "zones": {z: [_t(at), seq] for z, (at, seq) in t.zones.items()},
        } for t in rules.tracker.tracks],
        "episodes": [{
            "zone": zone, "kind": kind.value, "start": _t(e.start), "first_seq": e.first_seq,
            "last_true": _t(e.last_true), "fired": e.fired,
        } for (zone, kind), e in rules.episodes.items()],
    }


def load_state(zones: Sequence[Zone], state: dict[str, Any]) -> CameraRules:
    """Rules over ``zones`` in the state ``dump_state`` gave (same firings after)."""
    at = datetime.fromisoformat
    rules = CameraRules(zones)
    rules.last_at = at(state["last_at"]) if state["last_at"] else None
    rules.tracker._next = int(state["next"])
    rules.tracker.tracks = [
        Track(int(t["id"]), str(t["kind"]), _box(t["box"]), float(t["score"]),
              at(t["seen_at"]), int(t["seen_seq"]),
              (float(t["still_at"][0]), float(t["still_at"][1])), at(t["still_since"]),
              {z: (at(v[0]), int(v[1])) for z, v in t["zones"].items()})
        for t in state["tracks"]]
    rules.episodes = {
        (str(e["zone"]), RuleKind(e["kind"])): _Episode(
            at(e["start"]), int(e["first_seq"]), at(e["last_true"]), bool(e["fired"]))
        for e in state["episodes"]}
    return rules


def _box(values: Sequence[float]) -> Box:
    return (float(values[0]), float(values[1]), float(values[2]), float(values[3]))
