"""Keeping a long-running loop alive: the projectors, the router, the audit chainer,
the camera alert service and the demo's cameras all run the same way. A failure (the
database restarting, a broker gone, a bug) is logged with its traceback, the loop
pauses, then starts again from its durable position; ``stop()`` ends it at once,
even mid-pause.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["pause", "supervised"]


def pause(stop: Callable[[], bool], seconds: float) -> None:
    """Sleep ``seconds``, waking every 0.1 s to return as soon as ``stop()``."""
    deadline = time.monotonic() + seconds
    while not stop() and time.monotonic() < deadline:
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


def supervised(step: Callable[[], object], stop: Callable[[], bool], *, what: str,
               retry_after: float, log: logging.Logger) -> None:
    """Run ``step`` until ``stop()``; when it raises, log "<what> failed; resuming in
    N s", pause ``retry_after`` seconds and run it again. A ``step`` that returns is
    run again too (it is expected to return only once ``stop()`` holds)."""
    while not stop():
        try:
            step()
        except Exception:
            log.exception("%s failed; resuming in %g s", what, retry_after)
            pause(stop, retry_after)
