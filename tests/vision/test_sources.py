"""Frame sources on real files (OpenCV): folders, videos, RTSP; and the one-frame slot
that bounds memory when inference falls behind."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from vision_support import photo

from vision.sources import (
    CameraFeed,
    CapturedFrame,
    FeedStats,
    ImageFolder,
    LatestFrameSlot,
    RtspStream,
    SourceError,
    UnreadableFrame,
    VideoFile,
    open_source,
)
from zongzhi.servers import free_port


def write_photos(folder: Path, *names: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, name in enumerate(names):
        path = folder / f"{i:03d}-{name}.png"
        cv2.imwrite(str(path), cv2.cvtColor(photo(name), cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def write_video(path: Path, *names: str, size: tuple[int, int] = (320, 240)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for name in names:
        writer.write(cv2.cvtColor(cv2.resize(photo(name), size), cv2.COLOR_RGB2BGR))
    writer.release()


def test_a_folder_yields_its_images_in_name_order_as_rgb(tmp_path: Path) -> None:
    # given a folder with a cup and an astronaut
    write_photos(tmp_path, "coffee", "astronaut")
    source = ImageFolder(tmp_path)
    source.open()
    # when it is read to the end
    first, second, end = source.read(), source.read(), source.read()
    # then the frames come in name order, in RGB as the photos are, then the end
    assert first is not None and second is not None and end is None
    assert np.array_equal(first, photo("coffee"))
    assert np.array_equal(second, photo("astronaut"))


def test_an_unreadable_image_is_reported_by_name_and_the_folder_goes_on(tmp_path: Path) -> None:
    # given a folder whose second file is not an image at all
    write_photos(tmp_path, "coffee", "astronaut", "camera")
    (tmp_path / "001-astronaut.png").write_bytes(b"\x89PNG but truncated")
    source = ImageFolder(tmp_path)
    source.open()
    # when it is read
    assert source.read() is not None
    with pytest.raises(UnreadableFrame, match=r"001-astronaut\.png .* not a readable image"):
        source.read()
    # then the next image still comes
    third = source.read()
    assert third is not None and np.array_equal(third, photo("camera"))


def test_a_missing_or_empty_folder_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        ImageFolder(tmp_path / "nowhere").open()
    with pytest.raises(SourceError, match="holds no images"):
        ImageFolder(tmp_path).open()


def test_a_video_file_yields_every_frame_and_replays_when_looping(tmp_path: Path) -> None:
    # given a 4-frame video: astronaut, cup, astronaut, cup
    video = tmp_path / "clip.avi"
    write_video(video, "astronaut", "coffee", "astronaut", "coffee")
    # when it is read once, and looping
    once = VideoFile(video)
    once.open()
    frames = []
    while (frame := once.read()) is not None:
        frames.append(frame)
    looping = VideoFile(video, loop=True)
    looping.open()
    replayed = [looping.read() for _ in range(6)]
    # then 4 frames come, RGB (the astronaut's suit reads bright, the cup's table warm)
    assert len(frames) == 4
    expected = cv2.resize(photo("astronaut"), (320, 240)).astype(float)
    assert np.abs(frames[0].astype(float) - expected).mean() < 12
    # and the looping source starts over after the 4th
    assert all(f is not None for f in replayed)
    assert np.array_equal(replayed[4], frames[0])


def test_a_file_that_is_no_video_cannot_be_opened(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.avi"
    bogus.write_text("not a video")
    with pytest.raises(SourceError, match=r"notes\.avi cannot be opened"):
        VideoFile(bogus).open()
    with pytest.raises(SourceError, match="does not exist"):
        VideoFile(tmp_path / "gone.mp4").open()


def test_an_rtsp_camera_that_does_not_answer_is_a_clear_source_error() -> None:
    # given an RTSP address where nothing listens (credentials in the URL)
    url = f"rtsp://user:secret@127.0.0.1:{free_port()}/stream1"
    # when it is opened, then the error names the stream but not the password
    with pytest.raises(SourceError, match="cannot be opened") as raised:
        RtspStream(url, open_timeout_s=2).open()
    assert "secret" not in str(raised.value)


def test_sources_are_chosen_by_uri(tmp_path: Path) -> None:
    assert isinstance(open_source("rtsp://127.0.0.1/cam"), RtspStream)
    assert isinstance(open_source(str(tmp_path)), ImageFolder)
    assert isinstance(open_source(str(tmp_path / "clip.mp4")), VideoFile)


def test_the_slot_keeps_only_the_latest_frame_and_counts_the_rest_as_dropped() -> None:
    # given a slot nobody reads for a while
    async def run() -> tuple[list[int | None], int]:
        dropped = []
        slot = LatestFrameSlot(asyncio.get_running_loop(), lambda: dropped.append(1))
        image = np.zeros((2, 2, 3), np.uint8)
        # when 5 frames arrive before the consumer looks
        for seq in range(5):
            slot.put(CapturedFrame(seq, datetime.now(UTC), image))
        got = [(await slot.get())]
        slot.put(CapturedFrame(5, datetime.now(UTC), image))
        got.append(await slot.get())
        slot.close()
        got.append(await slot.get())
        return [f.seq if f else None for f in got], len(dropped)

    seqs, dropped = asyncio.run(run())
    # then the consumer gets the newest frame each time, 4 are counted dropped, then the end
    assert seqs == [4, 5, None]
    assert dropped == 4


def test_a_feed_never_reads_faster_than_its_frame_rate_cap(tmp_path: Path) -> None:
    # given a looping folder read at a cap of 10 frames a second
    write_photos(tmp_path, "coffee", "camera")

    async def run() -> tuple[FeedStats, list[int]]:
        stats = FeedStats()
        slot = LatestFrameSlot(asyncio.get_running_loop(), lambda: None)
        feed = CameraFeed("cam", ImageFolder(tmp_path, loop=True), 10.0, slot, stats)
        seen: list[int] = []
        feed.start()
        started = time.monotonic()
        while time.monotonic() - started < 1.0:
            frame = await asyncio.wait_for(slot.get(), 2)
            assert frame is not None
            seen.append(frame.seq)
        feed.stop()
        return stats, seen

    stats, seen = asyncio.run(run())
    # then about 10 frames a second were captured, not hundreds
    assert 8 <= stats.captured <= 13
    assert seen == sorted(seen)


class CountingFolder(ImageFolder):
    """An image folder that counts the frames it actually decodes."""

    decoded = 0

    def _decode(self, path: Path) -> np.ndarray:  # type: ignore[type-arg]
        self.decoded += 1
        return super()._decode(path)


def test_a_folder_feed_decodes_only_the_frames_inference_takes(tmp_path: Path) -> None:
    # given a folder camera capped at 40 frames a second and a consumer taking 4 a second
    write_photos(tmp_path, "coffee", "astronaut", "camera")
    source = CountingFolder(tmp_path, loop=True)

    async def run() -> tuple[FeedStats, list[CapturedFrame]]:
        stats = FeedStats()

        def dropped() -> None:
            stats.dropped_backpressure += 1

        slot = LatestFrameSlot(asyncio.get_running_loop(), dropped)
        feed = CameraFeed("cam", source, 40.0, slot, stats)
        taken: list[CapturedFrame] = []
        feed.start()
        for _ in range(4):
            await asyncio.sleep(0.25)
            frame = await asyncio.wait_for(slot.get(), 2)
            assert frame is not None
            taken.append(frame)
        feed.stop()
        return stats, taken

    stats, taken = asyncio.run(run())
    # then most captured frames were dropped, and none of those was ever decoded
    assert stats.dropped_backpressure >= 10
    assert source.decoded == 0
    # and a taken frame decodes to the right photo, once, on demand
    images = [frame.decoded() for frame in taken]
    assert source.decoded == 4
    expected = ["coffee", "astronaut", "camera"]
    assert all(np.array_equal(image, photo(expected[frame.seq % 3]))
               for image, frame in zip(images, taken, strict=True))


def test_a_captured_frame_has_an_image_or_a_decoder() -> None:
    with pytest.raises(ValueError, match="image or a decode function"):
        CapturedFrame(0, datetime.now(UTC))


def test_a_feed_on_a_missing_source_fails_alone_with_the_reason(tmp_path: Path) -> None:
    async def run() -> tuple[FeedStats, CapturedFrame | None]:
        stats = FeedStats()
        slot = LatestFrameSlot(asyncio.get_running_loop(), lambda: None)
        feed = CameraFeed("cam", ImageFolder(tmp_path / "nowhere"), 2.0, slot, stats)
        feed.start()
        frame = await asyncio.wait_for(slot.get(), 5)
        feed.stop()
        return stats, frame

    stats, frame = asyncio.run(run())
    assert frame is None
    assert stats.state.startswith("failed: image folder") and "does not exist" in stats.state
