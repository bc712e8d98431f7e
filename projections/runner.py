"""Runs every projector (the case index, the case view ...) for every city, and
keeps the upper tiers' dashboards computed (``projections.dashboards``).

``catch_up_all`` and ``rebuild_all`` work through the cities one after the
other; ``run_all`` follows them all at once, one thread per city and projector,
each waking on its log group's NOTIFY. A projector that fails (the database
restarting, say) logs the error and tries again after a pause; its position is
only ever saved with the rows it covers, so nothing is lost or written twice.

    python -m projections.runner [--city C ...] [--rebuild | --once]

does what ``zongzhi projections run`` does (follow until SIGINT/SIGTERM), for
processes that are started without the CLI.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from audit.callbacks import CallbackResults
from domain import Tier
from projections import dashboards
from projections.alerts import AlertViews
from projections.cases import CaseIndex
from projections.follower import Projector
from projections.views import CaseView
from tenants.service import Tenants
from tenants.supervision import supervised

log = logging.getLogger(__name__)

PROJECTORS: tuple[type[Projector], ...] = (CaseIndex, CaseView, AlertViews, CallbackResults)
RETRY_AFTER = 2.0  # seconds a failed projector waits before it goes on


@dataclass(frozen=True)
class Covered:
    """What one projector of one city did: notifications covered."""

    city: str
    projector: str
    notifications: int


def cities_of(tenants: Tenants, cities: Sequence[str] | None = None) -> list[str]:
    """The cities asked for, or every registered city."""
    if cities:
        return list(dict.fromkeys(cities))
    return [c.code for c in tenants.registry.all() if c.tier is Tier.CITY]


def projectors_for(tenants: Tenants, cities: Sequence[str] | None = None,
                   kinds: Sequence[type[Projector]] = PROJECTORS) -> list[Projector]:
    """One projector of each kind per city (creating their tables if missing)."""
    return [kind(tenants, city) for city in cities_of(tenants, cities) for kind in kinds]


def catch_up_all(tenants: Tenants, cities: Sequence[str] | None = None) -> list[Covered]:
    """Bring every projector up to its log group's last notification."""
    return [Covered(p.city, p.name, p.catch_up()) for p in projectors_for(tenants, cities)]


def rebuild_all(tenants: Tenants, cities: Sequence[str] | None = None) -> list[Covered]:
    """Delete every projector's rows and position, and project each log again
    (the dashboards' snapshots of those cities are dropped first)."""
    for city in cities_of(tenants, cities):
        dashboards.clear(tenants, city)
    return [Covered(p.city, p.name, p.rebuild()) for p in projectors_for(tenants, cities)]


def run_all(tenants: Tenants, stop: Callable[[], bool], cities: Sequence[str] | None = None,
            *, idle_wait: float = 1.0, started: threading.Event | None = None) -> None:
    """Follow every city with every projector until ``stop()``; returns when all
    threads have finished. ``started`` is set once every thread is following."""
    projectors = projectors_for(tenants, cities)
    threads = [threading.Thread(target=_follow, args=(p, stop, idle_wait),
                                name=f"{p.name}-{p.city}", daemon=True)
               for p in projectors]
    threads.append(threading.Thread(  # the upper tiers' dashboards, kept computed
        target=dashboards.refresh_forever, args=(tenants, cities_of(tenants, cities), stop),
        name="dashboards", daemon=True))
    for t in threads:
        t.start()
    if started is not None:
        started.set()
    for t in threads:
        t.join()


def _follow(projector: Projector, stop: Callable[[], bool], idle_wait: float) -> None:
    supervised(lambda: projector.run(stop, idle_wait), stop,
               what=f"projector {projector.name} of {projector.city}",
               retry_after=RETRY_AFTER, log=log)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m projections.runner [--city C ...] [--rebuild | --once]``: the same
    as ``zongzhi projections run | rebuild | catch-up``."""
    from zongzhi.cli import main as cli

    p = argparse.ArgumentParser(prog="python -m projections.runner",
                                description="run the projectors (case index, case view)")
    p.add_argument("--city", action="append", default=[], help="city (default: all)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--rebuild", action="store_true", help="rebuild, then exit")
    what.add_argument("--once", action="store_true", help="catch up, then exit")
    args = p.parse_args(argv)
    action = "rebuild" if args.rebuild else "catch-up" if args.once else "run"
    return cli(["projections", action, *(f"--city={c}" for c in args.city)])


__all__ = ["PROJECTORS", "Covered", "catch_up_all", "cities_of", "projectors_for",
           "rebuild_all", "run_all"]

if __name__ == "__main__":
    sys.exit(main())
