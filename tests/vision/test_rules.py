"""The zone rules over frames: tracking across frames, timers, episodes. Pure, no server."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from domain import RuleKind, Zone, ZoneRule
from vision.messages import Detection, FrameDetections
from vision.rules import (
    CameraRules,
    Firing,
    Tracker,
    dump_state,
    in_polygon,
    iou,
    load_state,
)

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 5, 1, 9, 0, tzinfo=CST)
FPS = 2
LEFT = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]  # the left half of the frame


def person(x: float, y: float = 0.5, score: float = 0.9) -> Detection:
    """A person whose feet stand at (x, y)."""
    return Detection("person", score, (x - 0.03, y - 0.2, x + 0.03, y))


def car(x: float, y: float = 0.8, score: float = 0.8) -> Detection:
    return Detection("car", score, (x - 0.1, y - 0.1, x + 0.1, y))


def frame(seq: int, detections: Iterable[Detection], model: str = "ssdlite-person",
          start: datetime = T0) -> FrameDetections:
    return FrameDetections("cam-1", "330782", seq, start + timedelta(seconds=seq / FPS),
                           640, 480, model, 20.0, tuple(detections))


def feed(rules: CameraRules, frames: Iterable[FrameDetections]) -> list[Firing]:
    return [f for fr in frames for f in rules.observe(fr)]


def crowd_rules(people: int = 3, seconds: float = 10) -> CameraRules:
    return CameraRules([Zone("plaza", LEFT, [ZoneRule(RuleKind.CROWD, seconds,
                                                      people=people)])])


def crowd_forming(seconds: float, size: int = 6, at: float = 0.2) -> list[list[Detection]]:
    """One person, then people joining one per second until ``size``, standing
    for ``seconds`` seconds in all (2 fps)."""
    frames = []
    for i in range(int(seconds * FPS)):
        n = min(size, 1 + i // FPS)
        frames.append([person(at + 0.045 * k, 0.5 + 0.01 * (k % 3)) for k in range(n)])
    return frames


def test_a_crowd_above_n_people_for_t_seconds_fires_once_when_t_is_reached() -> None:
    # given a crowd rule: more than 3 people for 10 s
    rules = crowd_rules(people=3, seconds=10)
    # when people gather, reaching 4 at second 3, and stay for 30 s
    firings = feed(rules, (frame(i, dets) for i, dets in enumerate(crowd_forming(30))))
    # then exactly one firing, 10 s after the 4th person came
    assert len(firings) == 1
    fired = firings[0]
    assert (fired.zone, fired.kind, fired.count) == ("plaza", RuleKind.CROWD, 6)
    assert fired.episode_at == T0 + timedelta(seconds=3)
    assert fired.last_at == T0 + timedelta(seconds=13)
    assert 0.85 < fired.confidence <= 0.9


def test_a_crowd_outside_the_zone_or_not_lasting_fires_nothing() -> None:
    outside = crowd_rules()
    assert feed(outside, (frame(i, dets) for i, dets in
                          enumerate(crowd_forming(30, at=0.6)))) == []
    short = crowd_rules(seconds=10)
    assert feed(short, (frame(i, dets) for i, dets in enumerate(crowd_forming(12)))) == []


def test_a_crowd_flickering_below_n_for_a_frame_stays_one_episode() -> None:
    rules = crowd_rules(people=3, seconds=10)
    frames = []
    for i in range(40):
        n = 2 if i in (5, 6) else 5  # the detector misses people for 1 s
        frames.append(frame(i, [person(0.1 + 0.07 * k) for k in range(n)]))
    firings = feed(rules, frames)
    assert [f.episode_at for f in firings] == [T0]


def test_a_second_crowd_after_the_first_dispersed_is_a_second_episode() -> None:
    rules = crowd_rules(people=3, seconds=5)
    gather = [[person(0.1 + 0.07 * k) for k in range(5)]] * 20  # 10 s
    empty: list[list[Detection]] = [[]] * 10  # 5 s: longer than the grace
    firings = feed(rules, (frame(i, d) for i, d in enumerate(gather + empty + gather)))
    assert [f.episode_at for f in firings] == [T0, T0 + timedelta(seconds=15)]


def fire_lane_rules(seconds: float = 30) -> CameraRules:
    return CameraRules([Zone("lane", LEFT, [ZoneRule(RuleKind.FIRE_LANE, seconds)])])


def test_a_car_held_in_a_fire_lane_shorter_than_t_fires_nothing_longer_fires_once() -> None:
    # a car stops in the lane for 20 s, then drives off: under T = 30 s
    rules = fire_lane_rules(30)
    stop = [[car(0.25)]] * 40 + [[]] * 20
    assert feed(rules, (frame(i, d) for i, d in enumerate(stop))) == []
    # a car parks for 60 s: one firing at 30 s, the episode starting when it entered
    rules = fire_lane_rules(30)
    park = [[car(0.25)]] * 120
    firings = feed(rules, (frame(i, d) for i, d in enumerate(park)))
    assert [(f.kind, f.episode_at, f.last_at) for f in firings] == [
        (RuleKind.FIRE_LANE, T0, T0 + timedelta(seconds=30))]


def test_people_walking_through_a_fire_lane_are_not_an_obstruction() -> None:
    rules = fire_lane_rules(5)
    assert feed(rules, (frame(i, [person(0.25)]) for i in range(40))) == []


def test_a_car_missed_for_a_frame_keeps_its_track_and_its_timer() -> None:
    rules = fire_lane_rules(10)
    frames = [[car(0.25)] if i % 7 else [] for i in range(40)]  # every 7th frame missed
    firings = feed(rules, (frame(i, d) for i, d in enumerate(frames)))
    assert len(firings) == 1
    assert firings[0].episode_at == T0 + timedelta(seconds=0.5)


def test_a_stall_is_a_person_standing_still_and_a_passer_by_is_not() -> None:
    rules = CameraRules([Zone("pavement", LEFT,
                              [ZoneRule(RuleKind.STREET_VENDING, 20)])])
    walker = [[person(0.02 + 0.01 * i)] for i in range(40)]  # walks across in 20 s
    assert feed(rules, (frame(i, d) for i, d in enumerate(walker))) == []
    rules = CameraRules([Zone("pavement", LEFT,
                              [ZoneRule(RuleKind.STREET_VENDING, 20)])])
    vendor = [[person(0.3 + (0.005 if i % 2 else 0))] for i in range(60)]  # sways in place
    firings = feed(rules, (frame(i, d) for i, d in enumerate(vendor)))
    assert [(f.kind, f.episode_at) for f in firings] == [(RuleKind.STREET_VENDING, T0)]


def test_loitering_fires_only_within_the_quiet_hours() -> None:
    zone = Zone("yard", LEFT, [ZoneRule(RuleKind.LOITERING, 10, after="22:00", until="06:00")])
    day = datetime(2026, 5, 1, 14, 0, tzinfo=CST)
    night = datetime(2026, 5, 1, 23, 30, tzinfo=CST)
    for start, expected in ((day, 0), (night, 1)):
        rules = CameraRules([zone])
        firings = feed(rules, (frame(i, [person(0.2)], start=start) for i in range(40)))
        assert len(firings) == expected


def test_the_same_frames_give_the_same_firings_and_stale_frames_are_ignored() -> None:
    frames = [frame(i, dets) for i, dets in enumerate(crowd_forming(30))]
    first, second = crowd_rules(), crowd_rules()
    assert feed(first, frames) == feed(second, frames)
    assert feed(first, frames[:5]) == []  # redelivered old frames
    assert first.stale == 5


def test_the_tracker_follows_a_moving_object_and_tells_two_apart() -> None:
    tracker = Tracker()
    a = tracker.update(T0, 0, [person(0.2), person(0.7)])
    b = tracker.update(T0 + timedelta(seconds=0.5), 1, [person(0.71), person(0.205)])
    assert {t.id for t in a} == {t.id for t in b} == {1, 2}
    assert iou((0, 0, 1, 1), (0, 0, 1, 1)) == 1.0
    assert in_polygon((0.25, 0.5), LEFT) and not in_polygon((0.75, 0.5), LEFT)


def test_people_standing_on_the_frames_bottom_edge_count_in_a_zone_that_reaches_it() -> None:
    # a box clipped to the frame has its feet at y = 1.0, the zone's own edge
    assert in_polygon((0.25, 1.0), LEFT) and in_polygon((0.5, 0.5), LEFT)
    assert in_polygon((0.0, 0.0), LEFT) and not in_polygon((0.5001, 1.0), LEFT)
    rules = crowd_rules(people=3, seconds=2)
    firings = feed(rules, [frame(i, [person(0.05 + 0.09 * k, 1.0) for k in range(5)])
                           for i in range(10)])
    assert [f.kind for f in firings] == [RuleKind.CROWD]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=7), min_size=10, max_size=80),
       st.integers(min_value=0, max_value=79))
def test_rules_resumed_from_a_checkpoint_fire_exactly_as_if_never_stopped(
        crowd_sizes: list[int], cut: int) -> None:
    # given any sequence of crowd sizes (with a car in the lane when the crowd is odd)
    zones = [Zone("plaza", LEFT, [ZoneRule(RuleKind.CROWD, 3, people=3),
                                  ZoneRule(RuleKind.FIRE_LANE, 4)])]
    batch = [frame(i, [person(0.05 + 0.06 * k) for k in range(n)]
                   + ([car(0.3)] if n % 2 else []))
             for i, n in enumerate(crowd_sizes)]
    cut = min(cut, len(batch))
    # when one engine sees every frame, and another is checkpointed at the cut
    # (its state through JSON) and resumed
    whole = CameraRules(zones)
    expected = feed(whole, batch)
    before = CameraRules(zones)
    fired = feed(before, batch[:cut])
    resumed = load_state(zones, json.loads(json.dumps(dump_state(before))))
    fired += feed(resumed, batch[cut:])
    # then the firings are the same, and each episode fires once
    assert fired == expected
    assert len({(f.zone, f.kind, f.episode_at) for f in fired}) == len(fired)
