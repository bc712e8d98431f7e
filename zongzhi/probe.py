"""Readiness and liveness probes of the worker processes (Kubernetes ``exec`` probes).

``python -m zongzhi.probe postgres [nats ...]`` checks that each named server
answers within a few seconds, using the URLs the process itself reads
(``ZONGZHI_DATABASE_URL``, ``ZONGZHI_NATS_URL``, ``ZONGZHI_TRITON_URL``).
Exit status 0: all answer; 1: one does not (the message names it); 2: bad
usage. The API process has HTTP probes instead (``/healthz``, ``/readyz``).
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

TIMEOUT_S = 3.0
URLS = {"postgres": "ZONGZHI_DATABASE_URL", "nats": "ZONGZHI_NATS_URL",
        "triton": "ZONGZHI_TRITON_URL"}


class ProbeFailed(Exception):
    """A server does not answer; the message says which and why."""


def _url(server: str) -> str:
    url = os.environ.get(URLS[server], "")
    if not url:
        raise ProbeFailed(f"{URLS[server]} is not set")
    return url


def check_postgres() -> None:
    import psycopg

    try:
        with psycopg.connect(_url("postgres"), connect_timeout=int(TIMEOUT_S)) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as e:
        raise ProbeFailed(f"postgres does not answer: {e}") from e


def _tcp(server: str, default_port: int) -> None:
    parts = urlsplit(_url(server) if "://" in _url(server) else f"tcp://{_url(server)}")
    host, port = parts.hostname or "localhost", parts.port or default_port
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S):
            pass
    except OSError as e:
        raise ProbeFailed(f"{server} at {host}:{port} does not answer: {e}") from e


CHECKS: dict[str, Callable[[], None]] = {
    "postgres": check_postgres,
    "nats": lambda: _tcp("nats", 4222),
    "triton": lambda: _tcp("triton", 8001),
}


def main(argv: Sequence[str] | None = None) -> int:
    names = list(sys.argv[1:] if argv is None else argv)
    unknown = [n for n in names if n not in CHECKS]
    if not names or unknown:
        print(f"zongzhi.probe: name one or more of {', '.join(CHECKS)}"
              + (f" (unknown: {', '.join(unknown)})" if unknown else ""), file=sys.stderr)
        return 2
    for name in names:
        try:
            CHECKS[name]()
        except ProbeFailed as e:
            print(f"zongzhi.probe: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
