"""The demo's simulated intake times: in office hours and never in the future, whatever
the hour the demo runs at (a future intake made the rules refuse a later step)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from domain.calendar import CHINA
from zongzhi.demo import intake_time


def test_intake_times_are_office_hours_of_the_last_month_and_never_after_now() -> None:
    rng = random.Random(20261124)
    for hour in (0, 3, 8, 12, 13, 17, 18, 23):
        # given the demo started at this hour, China time
        now = datetime(2026, 11, 24, hour, 30, tzinfo=CHINA)
        # when many matters are given intake times
        times = [intake_time(now, rng) for _ in range(3000)]
        # then none is after now, none older than 31 days, each in office hours
        assert max(times) <= now
        assert min(times) >= now - timedelta(days=31)
        assert {t.hour for t in times} <= set(range(8, 18))
