"""The supervision loop every long-running worker shares: a failure is logged and the
work resumes after a pause; stopping ends it at once, even mid-pause."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from tenants.supervision import pause, supervised

log = logging.getLogger("test.supervision")


def test_a_failing_step_is_logged_and_run_again_until_it_stops(
        caplog: pytest.LogCaptureFixture) -> None:
    # given a step that fails twice, then works and asks to stop
    calls: list[int] = []
    done = threading.Event()

    def step() -> None:
        calls.append(1)
        if len(calls) <= 2:
            raise ConnectionError("database restarting")
        done.set()

    # when it is supervised with a short pause
    with caplog.at_level(logging.ERROR, logger="test.supervision"):
        supervised(step, done.is_set, what="projector case_view of 3301", retry_after=0.05,
                   log=log)
    # then it ran three times, and each failure was logged with what failed and its cause
    assert len(calls) == 3
    failures = [r for r in caplog.records if "failed; resuming in 0.05 s" in r.getMessage()]
    assert len(failures) == 2
    assert all(r.getMessage().startswith("projector case_view of 3301") for r in failures)
    assert all(r.exc_info and isinstance(r.exc_info[1], ConnectionError) for r in failures)


def test_stopping_ends_a_pause_at_once() -> None:
    # given a worker that failed and pauses for a minute
    stop = threading.Event()

    def step() -> None:
        raise RuntimeError("broker gone")

    worker = threading.Thread(target=supervised, args=(step, stop.is_set), kwargs={
        "what": "camera alert service", "retry_after": 60.0, "log": log}, daemon=True)
    worker.start()
    time.sleep(0.2)
    # when it is told to stop
    stop.set()
    worker.join(2.0)
    # then it has ended well before the minute is up
    assert not worker.is_alive()


def test_a_pause_returns_when_its_time_is_up_or_on_stop() -> None:
    started = time.monotonic()
    pause(lambda: False, 0.15)
    assert time.monotonic() - started >= 0.15
    started = time.monotonic()
    pause(lambda: True, 30.0)
    assert time.monotonic() - started < 1.0
