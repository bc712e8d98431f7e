"""The vision worker end to end on real servers: frames from real files → the
nvidia-pytriton wheel's Triton → FrameDetections on real NATS JetStream."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import cv2
import nats
import pytest
from nats.js.api import DeliverPolicy
from vision_support import BAD_SHAPE, photo

from vision.messages import DETECTIONS_STREAM, FrameDetections, detections_subject
from vision.worker import CameraConfig, VisionWorker
from zongzhi.servers import EmbeddedTriton


def write_photos(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        cv2.imwrite(str(folder / f"{i:03d}-{name}.png"),
                    cv2.cvtColor(photo(name), cv2.COLOR_RGB2BGR))
    return folder


async def stored(nats_url: str, tenant: str, camera: str) -> list[tuple[str, FrameDetections]]:
    """Every message JetStream holds for one camera: (Nats-Msg-Id, body)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(detections_subject(tenant, camera), ordered_consumer=True,
                                 deliver_policy=DeliverPolicy.ALL)
        found: list[tuple[str, FrameDetections]] = []
        while True:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except nats.errors.TimeoutError:
                break
            found.append(((msg.headers or {}).get("Nats-Msg-Id", ""),
                          FrameDetections.decode(msg.data)))
        await sub.unsubscribe()
        return found
    finally:
        await nc.close()


async def until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.1)


def run(coro: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro())


@pytest.fixture
def tenant(city: str) -> str:
    return f"{city}01001"[:6] + "001"  # a township code inside this test's city


def test_every_analysed_frame_is_published_once_with_its_camera_and_seq_as_id(
        tmp_path: Path, nats_url: str, triton_url: str, tenant: str, unique: str) -> None:
    # given a camera replaying three real photos: a person, an empty cup, a person
    camera = f"gate-{unique}"
    folder = write_photos(tmp_path / "frames", "astronaut", "coffee", "camera")
    config = CameraConfig(camera, tenant, str(folder), model="ssdlite-person", fps=2)

    async def scenario() -> tuple[VisionWorker, list[tuple[str, FrameDetections]]]:
        # when the worker runs until the folder ends
        async with VisionWorker([config], nats_url=nats_url, triton_url=triton_url) as worker:
            await asyncio.wait_for(worker.wait(), 60)
        return worker, await stored(nats_url, tenant, camera)

    worker, messages = run(scenario)
    # then JetStream holds one message per frame, id <camera>:<seq>, with what was seen
    assert [msg_id for msg_id, _ in messages] == [f"{camera}:{i}" for i in range(3)]
    assert [[d.label for d in m.detections] for _, m in messages] == [["person"], [], ["person"]]
    first = messages[0][1]
    assert (first.camera, first.tenant, first.model) == (camera, tenant, "ssdlite-person")
    assert (first.width, first.height) == (512, 512)
    assert first.inference_ms > 0 and first.at.tzinfo is not None
    stats = worker.health().cameras[camera]
    assert (stats["published"], stats["dropped_backpressure"], stats["state"]) == (3, 0,
                                                                                   "finished")


def test_a_video_file_camera_publishes_each_of_its_frames(
        tmp_path: Path, nats_url: str, triton_url: str, tenant: str, unique: str) -> None:
    # given a camera whose source is a 4-frame video: person, cup, person, cup
    camera = f"video-{unique}"
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (512, 512))
    for name in ("astronaut", "coffee", "astronaut", "coffee"):
        writer.write(cv2.cvtColor(cv2.resize(photo(name), (512, 512)), cv2.COLOR_RGB2BGR))
    writer.release()
    config = CameraConfig(camera, tenant, str(video), fps=3)

    async def scenario() -> list[tuple[str, FrameDetections]]:
        # when the worker plays it through
        async with VisionWorker([config], nats_url=nats_url, triton_url=triton_url) as w:
            await asyncio.wait_for(w.wait(), 60)
        return await stored(nats_url, tenant, camera)

    messages = run(scenario)
    # then every frame is published with what it shows
    assert [m.seq for _, m in messages] == [0, 1, 2, 3]
    assert [[d.label for d in m.detections] for _, m in messages] == [
        ["person"], [], ["person"], []]


def test_a_republished_frame_is_stored_once_and_a_restart_continues_the_numbering(
        tmp_path: Path, nats_url: str, triton_url: str, tenant: str, unique: str) -> None:
    # given a camera that published two frames
    camera = f"lane-{unique}"
    folder = write_photos(tmp_path / "frames", "coffee", "astronaut")
    config = CameraConfig(camera, tenant, str(folder), model="ssdlite-person", fps=4)

    async def scenario() -> list[tuple[str, FrameDetections]]:
        async with VisionWorker([config], nats_url=nats_url, triton_url=triton_url) as w:
            await asyncio.wait_for(w.wait(), 60)
            first_two = await stored(nats_url, tenant, camera)
            # when the second frame's message is published again (a retry after a lost ack)
            assert await w.publish(first_two[1][1])
        # and the worker restarts and replays the folder
        async with VisionWorker([config], nats_url=nats_url, triton_url=triton_url) as w:
            await asyncio.wait_for(w.wait(), 60)
        return await stored(nats_url, tenant, camera)

    messages = run(scenario)
    # then the duplicate was dropped by JetStream and the restart used fresh ids
    assert [msg_id for msg_id, _ in messages] == [f"{camera}:{i}" for i in range(4)]
    assert [len(m.detections) for _, m in messages] == [0, 1, 0, 1]


def test_when_inference_falls_behind_old_frames_are_dropped_and_counted(
        tmp_path: Path, nats_url: str, triton_url: str, tenant: str, unique: str) -> None:
    # given a camera offering 40 frames at 200 a second, far faster than CPU inference
    camera = f"plaza-{unique}"
    folder = write_photos(tmp_path / "frames", *(["astronaut", "coffee"] * 20))
    config = CameraConfig(camera, tenant, str(folder), model="ssdlite-person", fps=200)

    async def scenario() -> tuple[VisionWorker, list[tuple[str, FrameDetections]]]:
        async with VisionWorker([config], nats_url=nats_url, triton_url=triton_url) as w:
            await asyncio.wait_for(w.wait(), 60)
        return w, await stored(nats_url, tenant, camera)

    worker, messages = run(scenario)
    stats = worker.health().cameras[camera]
    seqs = [m.seq for _, m in messages]
    # then frames were dropped, each one counted: captured = published + dropped
    assert stats["dropped_backpressure"] > 0
    assert stats["captured"] == 40
    assert stats["published"] + stats["dropped_backpressure"] == 40
    assert len(messages) == stats["published"]
    # and what was analysed is the newest frame each time, in order, ending with the last
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[-1] == 39
    # and each published frame's detections still belong to that frame (even: astronaut)
    assert all(len(m.detections) == (1 if m.seq % 2 == 0 else 0) for _, m in messages)


def test_triton_stopped_drops_and_counts_frames_reports_degraded_and_recovers(
        tmp_path: Path, nats_url: str, own_triton: EmbeddedTriton, tenant: str,
        unique: str) -> None:
    # given a camera looping over a photo at 5 frames a second through its own Triton
    camera = f"square-{unique}"
    folder = write_photos(tmp_path / "frames", "astronaut")
    config = CameraConfig(camera, tenant, str(folder), fps=5, loop=True)

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with VisionWorker([config], nats_url=nats_url,
                                triton_url=own_triton.url) as worker:
            stats = worker.stats[camera]
            await until(lambda: stats.published >= 2, 30, "first frames published")
            assert worker.health().line == "healthy"
            # when Triton stops
            await asyncio.to_thread(own_triton.stop)
            await until(lambda: stats.dropped_unavailable >= 3, 30, "frames dropped")
            seen["degraded"] = worker.health().line
            seen["published_while_down"] = stats.published
            await asyncio.sleep(1)
            seen["published_later_while_down"] = stats.published
            # and comes back
            await asyncio.to_thread(own_triton.start)
            await until(lambda: stats.published >= seen["published_while_down"] + 2, 60,
                        "publishing resumed")
            seen["recovered"] = worker.health().line
            seen["dropped"] = stats.dropped_unavailable
        return seen

    seen = run(scenario)
    # then while it was down frames were dropped and counted, none published, health said so
    assert seen["degraded"].startswith("degraded: triton unreachable")
    assert " since 20" in seen["degraded"]
    assert seen["published_later_while_down"] == seen["published_while_down"]
    assert seen["dropped"] >= 3
    # and once it answered again, frames flowed and health was back to healthy
    assert seen["recovered"] == "healthy"


def test_a_broken_model_unreadable_frames_and_a_missing_source_stay_with_their_camera(
        tmp_path: Path, nats_url: str, own_triton: EmbeddedTriton, tenant: str,
        unique: str) -> None:
    # given four cameras: one on a model answering in the wrong shape, one whose folder
    # holds a corrupt image, one whose folder does not exist, and a healthy one
    good = write_photos(tmp_path / "good", "astronaut", "coffee", "camera")
    corrupt = write_photos(tmp_path / "corrupt", "astronaut", "coffee", "camera")
    (corrupt / "001-coffee.png").write_bytes(b"garbage, not a PNG")
    cams = {name: f"{name}-{unique}" for name in ("broken", "corrupt", "missing", "good")}
    configs = [
        CameraConfig(cams["broken"], tenant, str(good), model="bad-shape", fps=4),
        CameraConfig(cams["corrupt"], tenant, str(corrupt), fps=4),
        CameraConfig(cams["missing"], tenant, str(tmp_path / "nowhere"), fps=4),
        CameraConfig(cams["good"], tenant, str(good), fps=4),
    ]

    async def scenario() -> tuple[VisionWorker, dict[str, list[tuple[str, FrameDetections]]]]:
        # when the worker runs them all
        async with VisionWorker(configs, nats_url=nats_url, triton_url=own_triton.url,
                                models={"bad-shape": BAD_SHAPE}) as worker:
            await asyncio.wait_for(worker.wait(), 60)
        return worker, {k: await stored(nats_url, tenant, v) for k, v in cams.items()}

    worker, messages = run(scenario)
    health = worker.health()
    stats = {k: health.cameras[v] for k, v in cams.items()}
    # then the broken model's frames fail with a message naming the shape, none published
    # (each of its 3 frames is either inferred and refused or, on a busy machine, replaced
    # by the next one before inference took it: counted as dropped, never lost silently)
    broken = stats["broken"]
    assert broken["model_errors"] >= 1 and messages["broken"] == []
    assert broken["model_errors"] + broken["dropped_backpressure"] == 3, broken
    assert "bad-shape" in stats["broken"]["last_error"]
    assert "expected [1, rows, 6]" in stats["broken"]["last_error"]
    # the corrupt frame is counted and named, the other two published (seq 1 skipped)
    assert stats["corrupt"]["unreadable"] == 1
    assert "001-coffee.png" in stats["corrupt"]["last_error"]
    assert [m.seq for _, m in messages["corrupt"]] == [0, 2]
    # the missing source failed alone, and health says which camera
    assert stats["missing"]["state"].startswith("failed: image folder")
    assert health.line == f"degraded: camera(s) failed: {cams['missing']}"
    # and the healthy camera published all of its frames
    assert [len(m.detections) for _, m in messages["good"]] == [1, 0, 1]


def test_a_camera_config_that_breaks_a_rule_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="must be a non-empty NATS token"):
        CameraConfig("gate.1", "330102", "/frames")
    with pytest.raises(ValueError, match="not a division code"):
        CameraConfig("gate-1", "33010", "/frames")
    with pytest.raises(ValueError, match="frame-rate cap must be above 0"):
        CameraConfig("gate-1", "330102", "/frames", fps=0)
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        VisionWorker([CameraConfig("gate-1", "330102", "/frames", model="resnet")],
                     nats_url="nats://127.0.0.1:1", triton_url="127.0.0.1:1")


def test_the_detections_stream_is_the_contract_s(nats_url: str) -> None:
    # the worker creates ZZ_DETECTIONS with de-duplication when nobody has yet
    async def scenario() -> Any:
        from vision.worker import ensure_detections_stream

        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            await ensure_detections_stream(js)
            return (await js.stream_info(DETECTIONS_STREAM)).config
        finally:
            await nc.close()

    config = run(scenario)
    assert "zz.detections.>" in config.subjects
    assert config.duplicate_window and config.duplicate_window > 0


def test_the_worker_command_runs_a_cameras_file_and_writes_its_health(
        tmp_path: Path, nats_url: str, triton_url: str, tenant: str, unique: str) -> None:
    # given a cameras file as an operator writes it, and the servers in the environment
    camera = f"cli-{unique}"
    folder = write_photos(tmp_path / "frames", "camera", "coffee")
    cameras = tmp_path / "cameras.json"
    cameras.write_text(json.dumps([{"camera": camera, "tenant": tenant, "source": str(folder),
                                    "model": "ssdlite-person", "fps": 4}]))
    health = tmp_path / "health.json"
    env = {**os.environ, "ZONGZHI_NATS_URL": nats_url, "ZONGZHI_TRITON_URL": triton_url}
    # when `python -m vision.worker` runs it (the folder ends, so the command does too)
    done = subprocess.run(
        [sys.executable, "-m", "vision.worker", str(cameras), "--health-every", "0.5",
         "--health-file", str(health)], env=env, capture_output=True, text=True, timeout=120)
    # then it exits cleanly, its frames are on JetStream, and the health file says so
    assert done.returncode == 0, done.stderr
    messages = run(lambda: stored(nats_url, tenant, camera))
    assert [len(m.detections) for _, m in messages] == [1, 0]
    body = json.loads(health.read_text())
    assert body["line"] == "healthy"
    assert body["cameras"][camera]["published"] == 2


def test_the_worker_command_without_servers_says_what_to_set(tmp_path: Path) -> None:
    cameras = tmp_path / "cameras.json"
    cameras.write_text("[]")
    env = {k: v for k, v in os.environ.items()
           if k not in ("ZONGZHI_NATS_URL", "ZONGZHI_TRITON_URL")}
    done = subprocess.run([sys.executable, "-m", "vision.worker", str(cameras)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "set ZONGZHI_NATS_URL and ZONGZHI_TRITON_URL" in done.stderr
