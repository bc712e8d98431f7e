"""Waking up when a log group records events (PostgreSQL LISTEN/NOTIFY).

Every insert into a log group's events table notifies its channel; followers
(router, projectors) wait on it between catch-ups instead of polling hard.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg


class listening:
    """LISTEN to a log group's channel on a connection of its own."""

    def __init__(self, url: str, channel: str) -> None:
        self.url = url
        self.channel = channel
        self.conn: psycopg.Connection[Any] | None = None

    def __enter__(self) -> Callable[[float], list[str]]:
        self.conn = psycopg.connect(self.url, autocommit=True)
        self.conn.execute(f'LISTEN "{self.channel}"')
        return self.wait

    def wait(self, timeout: float) -> list[str]:
        """Block until a NOTIFY (or ``timeout``); the payloads (writers' trace contexts)."""
        assert self.conn is not None
        payloads = [n.payload for n in self.conn.notifies(timeout=timeout, stop_after=1)]
        payloads += [n.payload for n in self.conn.notifies(timeout=0)]  # drain the burst
        return payloads

    def __exit__(self, *exc: object) -> None:
        if self.conn is not None:
            self.conn.close()


__all__ = ["listening"]
