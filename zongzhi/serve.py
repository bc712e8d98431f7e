"""Serving the product: the API (GraphQL, GraphiQL, Open311) with its workers.

One process runs, for the cities it serves: the projectors (read models on
NOTIFY), the router (hand-overs) and the scheduler (the clock, one tick a
minute), each in its own thread, plus the HTTP server. Every worker keeps its
position in PostgreSQL, so any of them can instead run as a process of its own
(``zongzhi projections run``, ``zongzhi router``, ``zongzhi scheduler``) and
several copies may run at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from audit.chain import Chainer
from audit.checkpoints import load_signing_key, write_checkpoints
from domain import Tier
from flows.router import Router
from flows.scheduler import Scheduler
from projections import runner
from tenants.service import Tenants
from tenants.supervision import supervised
from zongzhi.servers import NATS_URL

log = logging.getLogger(__name__)
TICK_SECONDS = 60.0
CHECKPOINT_SECONDS = 600.0


class Workers:
    """The background workers of one serving process."""

    def __init__(self, tenants: Tenants, cities: Sequence[str],
                 data_dir: Path | None = None, nats_url: str | None = None) -> None:
        self.tenants = tenants
        self.cities = list(cities)
        self.data_dir = data_dir
        self.nats_url = nats_url  # runs the camera alert service when set
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> Workers:
        stop = self.stopping.is_set
        started = threading.Event()
        self._spawn("projections", lambda: runner.run_all(self.tenants, stop, self.cities,
                                                          started=started))
        for city in self.cities:
            router = Router(self.tenants, city)
            self._spawn(f"router-{city}", functools.partial(router.run, stop))
            scheduler = Scheduler(self.tenants, city)
            self._spawn(f"scheduler-{city}", functools.partial(self._tick, scheduler))
            chainer = Chainer(self.tenants, city)
            self._spawn(f"audit-chain-{city}", functools.partial(_chain, chainer, stop))
        self._spawn("audit-checkpoints", self._checkpoints)
        if self.nats_url and self.cities:
            self._spawn("camera-alerts", self._alerts)
        started.wait(30)
        return self

    def _alerts(self) -> None:
        """The camera alert service (``zongzhi alerts``) in this process's thread."""
        from vision.alerts import AlertService

        async def run() -> None:
            stop = asyncio.Event()
            service = AlertService(self.tenants, str(self.nats_url), cities=self.cities)
            task = asyncio.create_task(service.run(stop))
            while not self.stopping.is_set() and not task.done():
                await asyncio.sleep(0.2)
            stop.set()
            await task

        supervised(lambda: asyncio.run(run()), self.stopping.is_set,
                   what="camera alert service", retry_after=2.0, log=log)

    def _spawn(self, name: str, target: Callable[[], Any]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _tick(self, scheduler: Scheduler) -> None:
        while not self.stopping.is_set():
            try:
                scheduler.tick(datetime.now(UTC))
            except Exception:
                log.exception("scheduler of %s failed; next tick in %.0f s",
                              scheduler.city, TICK_SECONDS)
            self.stopping.wait(TICK_SECONDS)

    def _checkpoints(self) -> None:
        """Sign every tenant's chain head every ten minutes (and publish to the witness
        when ``ZONGZHI_NATS_URL`` names one)."""
        witness = os.environ.get(NATS_URL) or None
        while not self.stopping.wait(CHECKPOINT_SECONDS):
            for city in self.cities:
                try:
                    key = load_signing_key(self.data_dir)
                    write_checkpoints(self.tenants, city, datetime.now(UTC), key, witness)
                except Exception:
                    log.exception("audit checkpoints of %s failed; next in %.0f s", city,
                                  CHECKPOINT_SECONDS)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=10)


def _chain(chainer: Chainer, stop: Callable[[], bool]) -> None:
    supervised(lambda: chainer.run(stop), stop, what=f"audit chain of {chainer.city}",
               retry_after=2.0, log=log)


def demo_tokens(tenants: Tenants, city: str) -> list[tuple[str, str]]:
    """Development tokens for a city director, a county dispatcher, a township
    clerk, a village grid worker, a city inspector and a provincial auditor of
    ``city`` (12 hours)."""
    from api.auth import Role, TokenService

    tokens = TokenService.from_env(tenants.registry)
    county = first_child(tenants, city, Tier.COUNTY)
    township = first_child(tenants, county, Tier.TOWNSHIP)
    village = first_child(tenants, township, Tier.VILLAGE)
    # the township clerk also dispatches (a clerk alone may not: see authorization.md)
    wanted = [(city, [Role.DIRECTOR], "city director"),
              (county, [Role.DISPATCHER], "county dispatcher"),
              (township, [Role.CLERK, Role.DISPATCHER], "township clerk"),
              (village, [Role.GRID_WORKER], "village grid worker"),
              (city, [Role.INSPECTOR], "city inspector")]
    return [(f"{label} {code} {tenants.registry.get(code).name}",
             tokens.issue(code, roles, name=label, ttl=timedelta(hours=12),
                          grid=f"grid-{code[-3:]}-1" if Role.GRID_WORKER in roles else None))
            for code, roles, label in wanted] + [
        (f"provincial auditor {city[:2]}",
         tokens.issue(city[:2], [Role.AUDITOR], name="provincial auditor",
                      ttl=timedelta(hours=12)))]


def first_child(tenants: Tenants, parent: str, tier: Tier) -> str:
    """The first active center of ``tier`` below ``parent`` (the demo's picks)."""
    return next(c.code for c in tenants.registry.children(parent)
                if c.tier is tier and not c.retired)


def serve(tenants: Tenants, cities: Sequence[str], host: str, port: int,
          out: Callable[[str], None] = print, data_dir: Path | None = None,
          demo_users: Sequence[tuple[str, str]] | None = None,
          with_workers: bool = True, nats_url: str | None = None) -> None:
    """Run the workers and the HTTP server until interrupted; ``demo_users``
    (the demo only) are offered by the web client's sign-in picker. Without
    ``with_workers`` only the API runs (a deployment runs the workers as
    processes of their own: ``zongzhi.processes``). With ``nats_url`` the
    ``alertRaised`` subscription follows that NATS and the workers include the
    camera alert service."""
    import uvicorn

    from api.app import WEB_DIST, create_app

    app = create_app(tenants, demo_users=demo_users, nats_url=nats_url)
    workers = Workers(tenants, cities if with_workers else [], data_dir, nats_url)
    if with_workers:
        workers.start()
    if (WEB_DIST / "index.html").is_file():
        out(f"Web client: http://{host}:{port}/")
    out(f"API: http://{host}:{port}/graphql (GraphiQL in a browser), "
        f"Open311: http://{host}:{port}/open311/v2/services.json?jurisdiction_id=<code>")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        workers.stop()


__all__ = ["Workers", "demo_tokens", "first_child", "serve"]
