"""The alert service on real NATS JetStream and PostgreSQL: detections published
as the inference workers publish them, alerts read back from the event store
and from ``ZZ_ALERTS``."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from camera_alerts_support import (
    CST,
    alert_messages,
    cam,
    car,
    crowd,
    crowd_zone,
    empty,
    fire_lane_zone,
    frames,
    person,
    publish,
    raised_alerts,
    register,
    service_running,
    wait_until,
)
from support import product_env

from domain import AlertStatus, RuleKind, Zone, ZoneRule
from tenants.cameras import Cameras
from tenants.service import Tenants
from vision.messages import FrameDetections
from zongzhi.servers import EmbeddedNats, free_port

START = datetime(2026, 5, 1, 9, 0, tzinfo=CST)


def test_a_crowd_forming_in_a_zone_raises_exactly_one_alert_published_once(
        tenants: Tenants, nats_url: str, city_tree: dict[str, list[str]]) -> None:
    # given a village camera whose plaza alerts on more than 3 people for 5 s
    village = city_tree["village"][0]
    camera = register(tenants, village, cam("cam-plaza"), [crowd_zone(seconds=5, people=3)])
    # when 2 people stand there for 5 s, then 6 for 20 s (the frames published twice over)
    batch = frames(cam("cam-plaza"), village, crowd(5, size=2) + crowd(20, size=6), START)
    with service_running(tenants, nats_url, city_tree["city"][0]) as service:
        publish(nats_url, batch)
        publish(nats_url, batch)  # a worker re-publishing: JetStream drops the duplicates
        wait_until(lambda: service.stats["frames"] >= len(batch), what="frames consumed")
        messages = wait_until(lambda: alert_messages(nats_url, city_tree["city"][0],
                                                     [cam("cam-plaza")]),
                              what="the alert on NATS")
    # then one alert, in the village's center, from the frame when the 4th person came
    alerts = raised_alerts(tenants, camera)
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert.tenant, alert.kind, alert.zone, alert.model) == (
        village, RuleKind.CROWD, "plaza", "ssdlite-person")
    assert alert.episode_at == START + timedelta(seconds=5)
    assert (alert.first_frame, alert.last_frame, alert.repeats) == (10, 20, 0)
    assert alert.status is AlertStatus.RAISED
    # and it is published once, on the subject that names its whole branch
    assert [m.alert_id for m in messages] == [str(alert.id)]
    assert service.stats["frames"] == len(batch)


def test_a_fire_lane_obstruction_shorter_than_t_raises_nothing_longer_raises_one(
        tenants: Tenants, nats_url: str, city_tree: dict[str, list[str]]) -> None:
    township = city_tree["township"][0]
    camera = register(tenants, township, cam("cam-lane"), [fire_lane_zone(seconds=30)])
    # a delivery van stops for 20 s and leaves; later a car parks for 60 s
    short = frames(cam("cam-lane"), township, [[car(0.25)]] * 40 + empty(10), START,
                   model="yolov3-tiny")
    long = frames(cam("cam-lane"), township, [[car(0.3)]] * 120, START + timedelta(minutes=5),
                  first_seq=len(short), model="yolov3-tiny")
    with service_running(tenants, nats_url, city_tree["city"][0]) as service:
        publish(nats_url, short)
        wait_until(lambda: service.stats["frames"] >= len(short))
        assert raised_alerts(tenants, camera) == []
        publish(nats_url, long)
        wait_until(lambda: service.stats["frames"] >= len(short) + len(long))
    alerts = raised_alerts(tenants, camera)
    assert [(a.kind, a.model) for a in alerts] == [(RuleKind.FIRE_LANE, "yolov3-tiny")]
    # the episode began when the car stopped, and fired 30 s later
    assert alerts[0].episode_at == long[0].at
    assert alerts[0].last_at == long[0].at + timedelta(seconds=30)


def test_a_storm_of_episodes_bumps_the_open_alerts_counter_until_it_is_dispositioned(
        tenants: Tenants, nats_url: str, city_tree: dict[str, list[str]]) -> None:
    county = city_tree["county"][0]
    camera = register(tenants, county, cam("cam-storm"), [crowd_zone(seconds=3, people=3)])
    # three crowds gather and disperse
    storm = frames(cam("cam-storm"), county,
                   crowd(6) + empty(5) + crowd(6) + empty(5) + crowd(6) + empty(5), START)
    app = Cameras(tenants).center(county)
    with service_running(tenants, nats_url, city_tree["city"][0]) as service:
        publish(nats_url, storm)
        wait_until(lambda: service.stats["frames"] >= len(storm))
        # then one alert counting two repeats
        (alert,) = raised_alerts(tenants, camera)
        assert app.get_alert(alert.id).repeats == 2
        # when staff dismiss it, the next crowd raises a new alert
        app.dismiss_alert(alert.id, "演练人员", "dispatcher-1", datetime.now(CST))
        again = frames(cam("cam-storm"), county, crowd(6), START + timedelta(minutes=10),
                       first_seq=len(storm))
        publish(nats_url, again)
        wait_until(lambda: len(raised_alerts(tenants, camera)) == 2)
    messages = alert_messages(nats_url, city_tree["city"][0], [cam("cam-storm")])
    assert [m.repeats for m in messages if m.alert_id == str(alert.id)] == [0, 1, 2]


def test_bad_messages_are_dropped_with_a_reason_and_other_cameras_still_alert(
        tenants: Tenants, nats_url: str, city_tree: dict[str, list[str]]) -> None:
    city, village = city_tree["city"][0], city_tree["village"][1]
    camera = register(tenants, village, cam("cam-good"), [crowd_zone(seconds=3)])
    unknown_center = f"{city}99001001"  # a well-formed village code nobody registered
    bad: list[tuple[str, bytes]] = [
        (f"zz.detections.{city}.{village}.{cam('cam-good')}", b"{not json"),
        (f"zz.detections.{city}.{village}.{cam('cam-good')}", b'{"camera": "cam-good"}'),
        (f"zz.detections.{city}.{village}.{cam('cam-x')}",  # body names another camera
         frames(cam("cam-good"), village, [[]], START)[0].encode()),
    ]
    ghost = frames(cam("cam-1"), unknown_center, crowd(1), START)
    unregistered = frames(cam("cam-nobody"), village, crowd(1), START)
    good = frames(cam("cam-good"), village, crowd(10), START)
    with service_running(tenants, nats_url, city) as service:
        publish(nats_url, bad)
        publish(nats_url, [*ghost, *unregistered])
        publish(nats_url, good)
        wait_until(lambda: service.stats["frames"] >= len(good))
        rejected = service.stats["rejected"]
    assert rejected == len(bad) + len(ghost) + len(unregistered)
    assert len(raised_alerts(tenants, camera)) == 1


def test_frames_of_a_retired_camera_raise_nothing(
        tenants: Tenants, nats_url: str, city_tree: dict[str, list[str]]) -> None:
    township = city_tree["township"][1]
    camera = register(tenants, township, cam("cam-old"), [crowd_zone(seconds=3)])
    Cameras(tenants).center(township).retire_camera(camera.id, "拆除", "director-1",
                                                    datetime.now(CST))
    batch: list[FrameDetections] = frames(cam("cam-old"), township, crowd(10), START)
    with service_running(tenants, nats_url, city_tree["city"][0]) as service:
        publish(nats_url, batch)
        wait_until(lambda: service.stats["retired"] >= len(batch))
    assert raised_alerts(tenants, camera) == []


def test_changed_zones_take_effect_without_restarting_the_service(
        tenants: Tenants, nats_url: str, city_tree: dict[str, list[str]]) -> None:
    village, ref = city_tree["village"][3], cam("cam-moved")
    camera = register(tenants, village, ref, [crowd_zone(seconds=3)])
    app = Cameras(tenants).center(village)
    right = [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]
    with service_running(tenants, nats_url, city_tree["city"][0], reload_every=0.0) as service:
        # when the plaza moves to the right half, a crowd in the left half alerts no more
        app.change_camera_zones(camera.id, [Zone("plaza", right, [
            ZoneRule(RuleKind.CROWD, 3, people=3)])], "director-1", datetime.now(CST))
        left_crowd = frames(ref, village, crowd(10), START)
        publish(nats_url, left_crowd)
        wait_until(lambda: service.stats["frames"] >= len(left_crowd))
        assert raised_alerts(tenants, camera) == []
        # and a crowd in the right half does
        right_crowd = frames(ref, village, [[person(0.6 + 0.07 * k) for k in range(5)]] * 20,
                             START + timedelta(minutes=1), first_seq=len(left_crowd))
        publish(nats_url, right_crowd)
        wait_until(lambda: raised_alerts(tenants, camera), what="the alert on the right")
    assert app.get_camera(camera.id).zones[0].polygon == right


# -- faults ----------------------------------------------------------------------------------


def test_nats_restarted_mid_stream_loses_no_alert_and_doubles_none(
        tenants: Tenants, city_tree: dict[str, list[str]], tmp_path: Path) -> None:
    # given a NATS server of this test's own, and two cameras
    own = EmbeddedNats(tmp_path / "nats", port=free_port())
    url = own.start()
    city, first, second = city_tree["city"][0], cam("cam-n1"), cam("cam-n2")
    cams = {ref: register(tenants, village, ref, [crowd_zone(seconds=3)])
            for ref, village in ((first, city_tree["village"][0]),
                                 (second, city_tree["village"][1]))}
    try:
        with service_running(tenants, url, city) as service:
            # the first camera alerts before the restart
            publish(url, frames(first, cams[first].tenant, crowd(8), START))
            wait_until(lambda: raised_alerts(tenants, cams[first]), what="the first alert")
            # when the second camera's crowd is published and NATS stops at once,
            # with messages still unacknowledged, then comes back on the same store
            publish(url, frames(second, cams[second].tenant, crowd(8), START))
            own.stop()
            time.sleep(1.0)
            own.start()
            wait_until(lambda: raised_alerts(tenants, cams[second]), timeout=60,
                       what="the second alert after the restart")
            messages = wait_until(
                lambda: (m := alert_messages(url, city, [first, second])) and len(m) >= 2 and m,
                timeout=60, what="both alerts on NATS")
            time.sleep(1.0)  # anything doubled would arrive now
            messages = alert_messages(url, city, [first, second])
    finally:
        own.stop()
    # then each camera has one alert, published once, none counted twice
    alerts = {ref: raised_alerts(tenants, camera) for ref, camera in cams.items()}
    assert {ref: len(found) for ref, found in alerts.items()} == {first: 1, second: 1}
    assert all(found[0].repeats == 0 for found in alerts.values())
    assert sorted(m.alert_id for m in messages) == sorted(
        str(found[0].id) for found in alerts.values())
    assert service.stats["frames"] == 32


def _checkpointed(tenants: Tenants, city: str, durable: str, key: str, last: datetime) -> bool:
    with tenants.datastore_for(city).get_connection() as conn:
        row = conn.execute(
            f'SELECT state FROM "lg_{city}".alert_rule_state WHERE consumer = %s '
            "AND camera = %s", (durable, key)).fetchone()
    return row is not None and datetime.fromisoformat(row["state"]["last_at"]) >= last


def test_the_alert_service_killed_and_restarted_resumes_its_episodes_without_duplicates(
        tenants: Tenants, nats_url: str, database_url: str, city_tree: dict[str, list[str]],
        tmp_path: Path) -> None:
    city, village, ref = city_tree["city"][0], city_tree["village"][2], cam("cam-kill")
    camera = register(tenants, village, ref, [crowd_zone(seconds=3)])
    durable = f"alerts-kill-{city}-{ref}"
    env = {**product_env(database_url), "ZONGZHI_NATS_URL": nats_url,
           "ZONGZHI_DATA_DIR": str(tmp_path / "data")}
    command = [sys.executable, "-m", "zongzhi.cli", "alerts", "--city", city,
               "--durable", durable, "--ack-wait", "2"]

    def start() -> subprocess.Popen[str]:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True)
        assert process.stdout is not None
        assert "consuming" in process.stdout.readline()
        return process

    # given the service running as its own process, a crowd alerting
    process = start()
    try:
        opening = frames(ref, village, crowd(8), START)
        publish(nats_url, opening)
        wait_until(lambda: raised_alerts(tenants, camera), what="the alert")
        wait_until(lambda: _checkpointed(tenants, city, durable,
                                         f"{village}/{ref}/ssdlite-person", opening[-1].at),
                   what="the checkpoint")
        # when it is killed outright while the crowd stays, disperses and gathers again
        process.kill()
        process.wait(10)
        rest = frames(ref, village, crowd(8) + empty(5) + crowd(6), START,
                      first_seq=len(opening))
        publish(nats_url, rest)
        process = start()
        app = Cameras(tenants).center(village)
        (alert,) = raised_alerts(tenants, camera)
        wait_until(lambda: app.get_alert(alert.id).repeats >= 1, timeout=30,
                   what="the second gathering counted")
        # and killed again at once, in the middle of its work, before a third gathering
        process.kill()
        process.wait(10)
        third = frames(ref, village, empty(5) + crowd(6), START,
                       first_seq=len(opening) + len(rest))
        publish(nats_url, third)
        process = start()
        wait_until(lambda: _checkpointed(tenants, city, durable,
                                         f"{village}/{ref}/ssdlite-person", third[-1].at),
                   timeout=30, what="everything consumed")
    finally:
        process.kill()
        process.wait(10)
    # then still one alert; the crowd that stayed through the first kill is the same
    # episode, and each later gathering is counted once, published once
    assert [a.id for a in raised_alerts(tenants, camera)] == [alert.id]
    assert app.get_alert(alert.id).repeats == 2
    messages = alert_messages(nats_url, city, [ref])
    assert [(m.alert_id, m.repeats) for m in messages] == [
        (str(alert.id), 0), (str(alert.id), 1), (str(alert.id), 2)]
