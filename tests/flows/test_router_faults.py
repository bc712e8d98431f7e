"""The router killed with SIGKILL at random instants, restarted, and run beside a
second router: still exactly one linked case per hand-over, and every relay back
(acceptance, refusal, progress, outcome) entered once on the origin.

The test process plays the centers: it opens cases and hands them over (village
cases escalated to their township, township cases dispatched to one or two of
its villages), and works the linked cases the router opens (accepts, reports
progress, resolves, now and then refuses an order). Meanwhile ``zongzhi router``
runs as a subprocess of the product's CLI and is killed with SIGKILL a random
0.05-0.6 s after it says it is routing, then started again after a random
0-0.4 s, over and over (seeded). The hand-overs come in portions, the next
one after each kill, so that restarts find a backlog, and go on until enough
kills were "busy": the router had routed in that life and notifications were
waiting for it at the instant of the kill. At the end one ``router --once``
finishes the work and the whole log group is checked: each hand-over's linked
case exists once, each progress note, outcome and answer is entered once on the
origin, and the log holds no case beyond the origins and their linked cases.

A variant of the router that commits its follow-up events and its position in
two transactions fails here (a relay is repeated after a kill between them).
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from handover_support import Clock, triaged
from support import ROOT, product_env, write_divisions

from domain import Assignee, AssigneeKind, Case, Outcome
from flows.router import TOPICS, Router
from tenants.center import CaseNotFound, CenterApp, ConcurrentUpdate
from tenants.service import Tenants

pytestmark = pytest.mark.slow

UNIT = Assignee(AssigneeKind.UNIT, "justice-office", lead=True)
SEED = 20261123
KILL_DELAY = (0.05, 0.6)  # seconds after the router says it is routing
DOWN_TIME = (0.0, 0.4)  # seconds dead before the restart: the centers pile up work
READY_TIMEOUT = 30.0


def center(code: str, lead: bool = False) -> Assignee:
    return Assignee(AssigneeKind.CENTER, code, lead=lead)


# -- the centers' side: hand-overs and the work on linked cases ---------------------------


@dataclass
class Drive:
    """The staff commands planned for one linked case, performed once it exists."""

    tenant: str
    case_id: UUID
    steps: list[str]
    done: int = 0


@dataclass
class Workload:
    """Origins handed over and linked cases worked, from one thread of the test."""

    tenants: Tenants
    tree: dict[str, list[str]]
    origins_wanted: int
    rng: random.Random
    clock: Clock = field(default_factory=lambda: Clock(step=timedelta(minutes=1)))
    origins: list[tuple[str, UUID]] = field(default_factory=list)
    handovers: int = 0
    drives: deque[Drive] = field(default_factory=deque)
    commands: int = 0
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)  # the test gave up
    paced: Callable[[int], bool] = lambda i: True  # may the i-th origin be handed over now?
    more: Callable[[], bool] = lambda: False  # go on beyond origins_wanted?

    def run(self) -> None:
        try:
            i = 0
            while i < self.origins_wanted or (self.more() and i < 3 * self.origins_wanted):
                while not self.paced(i):
                    if self.stop.is_set():
                        return
                    if not self._advance():
                        time.sleep(0.01)
                if self.stop.is_set():
                    return
                self._hand_over(i)
                i += 1
                for _ in range(2):
                    self._advance()
            while self.drives and not self.stop.is_set():
                if not self._advance():
                    time.sleep(0.01)  # linked cases not opened yet: the router is down
        except BaseException as e:  # re-raised by the test
            self.error = e
        finally:
            self.finished.set()

    def _hand_over(self, i: int) -> None:
        township = self.rng.choice(self.tree["township"])
        villages = [v for v in self.tree["village"] if v.startswith(township)]
        phone = f"139{i:08d}"  # one party per case: no repeat-complaint matching
        roll = self.rng.random()
        if roll < 0.45:  # a village escalates to its township
            village = self.rng.choice(villages)
            app = self.tenants.center(village)
            case = triaged(app, self.clock, phone=phone)
            case = app.escalate_case(case.id, township, "村级无法调处", "director-v",
                                     self.clock())
            self.commands += 3
            link = case.links[0]
            self._plan(link.tenant, link.case_id, ["dispatch-unit", "accept-unit"],
                       may_resolve=True)
        else:  # the township dispatches down: to one village, or jointly to two
            app = self.tenants.center(township)
            case = triaged(app, self.clock, phone=phone)
            joint = roll >= 0.8
            chosen = self.rng.sample(villages, 2 if joint else 1)
            case = app.dispatch_case(
                case.id, [center(v, lead=k == 0) for k, v in enumerate(chosen)],
                "dispatcher-t", self.clock())
            self.commands += 3
            for link in case.links:
                if not joint and self.rng.random() < 0.1:
                    self.drives.append(Drive(link.tenant, link.case_id, ["refuse"]))
                    continue
                # The lead of a joint dispatch only reports, so that no relay depends
                # on whether the co-unit answers before or after the origin resolves.
                self._plan(link.tenant, link.case_id, ["accept"],
                           may_resolve=not (joint and link.lead))
        self.origins.append((app.tenant, case.id))
        self.handovers += len(case.links)

    def _plan(self, tenant: str, case_id: UUID, start: list[str], may_resolve: bool) -> None:
        if self.rng.random() < 0.3:
            return  # left as it was opened
        steps = start + ["progress"] * self.rng.randint(1, 3)
        if may_resolve and self.rng.random() < 0.6:
            steps.append("resolve")
        self.drives.append(Drive(tenant, case_id, steps))

    def _advance(self) -> bool:
        """One step of the oldest planned linked case that exists; False if none did."""
        for _ in range(len(self.drives)):
            drive = self.drives.popleft()
            app = self.tenants.center(drive.tenant)
            try:
                app.get_case(drive.case_id)
            except CaseNotFound:
                self.drives.append(drive)
                continue
            self._step(app, drive)
            drive.done += 1
            if drive.done < len(drive.steps):
                self.drives.append(drive)
            return True
        return False

    def _step(self, app: CenterApp, drive: Drive) -> None:
        step, cid, here = drive.steps[drive.done], drive.case_id, drive.tenant
        note = f"{cid.hex}-{drive.done}"  # unique: each relay is traceable
        commands: dict[str, Callable[[datetime], Case]] = {
            "dispatch-unit": lambda at: app.dispatch_case(cid, [UNIT], "dispatcher", at),
            "accept-unit": lambda at: app.accept_case(cid, UNIT.ref, "officer", at),
            "accept": lambda at: app.accept_case(cid, here, "director", at),
            "refuse": lambda at: app.refuse_case(cid, here, "不属本村辖区", "director", at),
            "progress": lambda at: app.report_progress(cid, note, "officer", at),
            "resolve": lambda at: app.resolve_case(cid, Outcome.MEDIATED, f"调解 {note}",
                                                   "officer", at),
        }
        for attempt in range(5):
            try:
                commands[step](self.clock())
                break
            except ConcurrentUpdate:
                if attempt == 4:
                    raise
        self.commands += 1


# -- the router's side: subprocesses killed at random ------------------------------------


@dataclass
class Kills:
    lives: int = 0
    killed: int = 0
    killed_running: int = 0  # the process had not exited by itself
    killed_busy: int = 0  # ... had routed in this life and had notifications waiting
    positions: list[int] = field(default_factory=list)  # the router's position after each


class RouterSlot:
    """One ``zongzhi router`` subprocess, started again a little while after each kill."""

    def __init__(self, city: str, env: dict[str, str], stderr: Any,
                 rng: random.Random) -> None:
        self.city, self.env, self.stderr, self.rng = city, env, stderr, rng
        self.proc: subprocess.Popen[bytes] | None = None
        self.restart_at = 0.0
        self.started_at = 0.0
        self.start_position = 0
        self.kill_at: float | None = None  # set once the router says it is routing

    def start(self, position: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zongzhi.cli", "router", "--city", self.city],
            cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=self.stderr)
        self.started_at, self.start_position, self.kill_at = time.monotonic(), position, None

    def due(self) -> bool:
        """Time for its kill? Reads the "routing ..." line once it is there."""
        assert self.proc is not None and self.proc.stdout is not None
        now = time.monotonic()
        if self.kill_at is None:
            readable, _, _ = select.select([self.proc.stdout], [], [], 0)
            if readable:
                line = self.proc.stdout.readline().decode()
                assert line.startswith("routing"), line
                self.kill_at = now + self.rng.uniform(*KILL_DELAY)
            elif self.proc.poll() is not None:
                raise AssertionError(f"the router exited with {self.proc.returncode}")
            elif now - self.started_at > READY_TIMEOUT:
                raise AssertionError("the router did not start")
            return False
        return now >= self.kill_at

    def kill(self) -> bool:
        """SIGKILL; True if the process was still running."""
        assert self.proc is not None and self.proc.stdout is not None
        running = self.proc.poll() is None
        if running:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc.stdout.close()
        self.proc = None
        self.restart_at = time.monotonic() + self.rng.uniform(*DOWN_TIME)
        return running


def kill_routers_while(workload: Workload, kills: Kills, city: str, database_url: str,
                       routers: int, min_kills: int, stderr_path: Path, seed: int) -> None:
    """Run ``routers`` router subprocesses and keep killing and restarting them
    until the workload is finished and at least ``min_kills`` kills were made."""
    rng = random.Random(seed)
    probe = Router(workload.tenants, city)  # reads the shared position only
    deadline = time.monotonic() + 150
    with open(stderr_path, "ab") as stderr:
        slots = [RouterSlot(city, product_env(database_url), stderr, rng)
                 for _ in range(routers)]
        try:
            while not (workload.finished.is_set() and kills.killed >= min_kills):
                assert time.monotonic() < deadline, (
                    f"fault loop took too long: {kills}; {len(workload.origins)} origins, "
                    f"{len(workload.drives)} linked cases still to work on, router at "
                    f"{probe.position()}")
                for slot in slots:
                    if slot.proc is None:
                        if time.monotonic() >= slot.restart_at:
                            slot.start(probe.position())
                            kills.lives += 1
                        continue
                    if not slot.due():
                        continue
                    position = probe.position()
                    behind = bool(probe.recorder.select_notifications(
                        position, 1, topics=TOPICS, inclusive_of_start=False))
                    running = slot.kill()
                    kills.killed += 1
                    kills.killed_running += running
                    kills.killed_busy += running and behind and position > slot.start_position
                    kills.positions.append(probe.position())
                time.sleep(0.005)
        finally:
            for slot in slots:
                if slot.proc is not None:
                    slot.kill()


# -- the checks --------------------------------------------------------------------------


def finish_and_check(tenants: Tenants, city: str, database_url: str, workload: Workload,
                     stderr_path: Path) -> dict[str, int]:
    once = subprocess.run(
        [sys.executable, "-m", "zongzhi.cli", "router", "--city", city, "--once"],
        cwd=ROOT, env=product_env(database_url), capture_output=True, text=True, timeout=120)
    assert once.returncode == 0, once.stderr
    assert Router(tenants, city).catch_up() == 0  # nothing left behind its position

    stderr = stderr_path.read_text(encoding="utf-8", errors="replace") + once.stderr
    assert "Traceback" not in stderr, stderr
    assert "not relayed" not in stderr, stderr  # no relay skipped as illegal

    counts: Counter[str] = Counter()
    linked_ids: set[UUID] = set()
    for tenant, origin_id in workload.origins:
        origin_app = tenants.center(tenant)
        origin = origin_app.get_case(origin_id)
        origin_events = origin_app.case_events(origin_id)
        assert origin.links, f"{origin.case_number} lost its hand-over"
        for link in origin.links:
            linked_ids.add(link.case_id)
            app = tenants.center(link.tenant)
            try:
                events = app.case_events(link.case_id)
            except CaseNotFound:
                raise AssertionError(
                    f"hand-over of {origin.case_number} to {link.tenant} missing") from None
            kinds = [type(e).__name__ for e in events]
            assert kinds.count("Received") == 1
            linked = app.get_case(link.case_id)
            assert linked.origin is not None and linked.origin.case_id == origin.id

            def relayed(kind: str, case_id: UUID = link.case_id,
                        history: list[Any] = origin_events) -> list[Any]:
                return [e for e in history if type(e).__name__ == kind
                        and getattr(e, "linked_case", None) == case_id]

            notes = [e.note for e in events if type(e).__name__ == "ProgressReported"]
            assert [e.note for e in relayed("LinkedProgressNoted")] == notes, \
                f"progress of {linked.case_number} relayed to {origin.case_number} wrongly"
            resolved = kinds.count("Resolved")
            assert resolved <= 1
            assert len(relayed("LinkedOutcomeNoted")) == resolved
            if linked.handed_down:  # the order's answer goes back as the origin's own
                answers = [type(e).__name__ for e in origin_events
                           if type(e).__name__ in ("Accepted", "Refused")
                           and e.ref == link.tenant]
                assert answers == [k for k in kinds if k in ("Accepted", "Refused")]
            counts["handovers"] += 1
            counts["progress relays"] += len(notes)
            counts["outcome relays"] += resolved
            counts["answers relayed"] += kinds.count("Accepted") + kinds.count("Refused")
    assert counts["handovers"] == workload.handovers

    # Nothing beyond: every case of the log group is an origin or a planned linked case.
    log = Router(tenants, city).recorder
    received = log.select_notifications(0, 1_000_000, topics=[TOPICS_RECEIVED])
    ids = {n.originator_id for n in received}
    assert len(received) == len(ids) == len(workload.origins) + workload.handovers
    assert ids == linked_ids | {cid for _, cid in workload.origins}
    progress, outcome = _topic("LinkedProgressNoted"), _topic("LinkedOutcomeNoted")
    relays = Counter(n.topic for n in log.select_notifications(
        0, 1_000_000, topics=[progress, outcome]))
    assert relays[progress] == counts["progress relays"]
    assert relays[outcome] == counts["outcome relays"]
    return dict(counts)


def _topic(name: str) -> str:
    from eventsourcing.utils import get_topic

    return get_topic(getattr(Case, name))


TOPICS_RECEIVED = _topic("Received")


def setup_city(tenants: Tenants, city: str, directory: Path) -> dict[str, list[str]]:
    tree: dict[str, list[str]] = write_divisions(directory, city, counties=1, townships=2,
                                                 villages=3)
    tenants.import_divisions(directory, city, "test", datetime.now(UTC))
    return tree


def run_faults(tenants: Tenants, city: str, database_url: str, tmp_path: Path, *,
               origins: int, routers: int, min_kills: int, min_busy: int, seed: int,
               ) -> tuple[Workload, Kills, dict[str, int]]:
    """Hand over ``origins`` cases under routers killed at random, then finish and
    check. The origins come in portions, the next one after each kill, so that
    restarts find a backlog; more portions follow (up to 3 x ``origins``) until
    ``min_busy`` kills were busy."""
    tree = setup_city(tenants, city, tmp_path / "divisions")
    workload, kills = Workload(tenants, tree, origins, random.Random(seed)), Kills()
    portion = -(-origins // min_kills)
    workload.paced = lambda i: i < portion * (kills.killed + 1)
    workload.more = lambda: kills.killed_busy < min_busy
    driver = threading.Thread(target=workload.run, name="centers")
    stderr_path = tmp_path / "routers.err"
    driver.start()
    try:
        kill_routers_while(workload, kills, city, database_url, routers, min_kills,
                           stderr_path, seed + 1)
    finally:
        workload.stop.set()
        driver.join()
    if workload.error is not None:
        raise workload.error
    counts = finish_and_check(tenants, city, database_url, workload, stderr_path)
    print(f"\n{routers} router(s): {kills.lives} lives, {kills.killed} SIGKILLs "
          f"({kills.killed_running} running, {kills.killed_busy} with work waiting); "
          f"{len(workload.origins)} origins, {counts}; {workload.commands} staff commands; "
          f"positions at the kills {kills.positions}")
    return workload, kills, counts


def test_a_router_killed_at_random_neither_loses_nor_repeats_a_hand_over(
        tenants: Tenants, city: str, database_url: str, tmp_path: Path) -> None:
    _, kills, counts = run_faults(tenants, city, database_url, tmp_path, origins=190,
                                  routers=1, min_kills=15, min_busy=12, seed=SEED)
    assert counts["handovers"] >= 200
    assert counts["progress relays"] >= 100 and counts["outcome relays"] >= 30
    assert kills.killed >= 15 and kills.killed_running >= 15
    assert kills.killed_busy >= 12, kills


def test_two_routers_at_once_and_killed_at_random_stay_exactly_once(
        tenants: Tenants, city: str, database_url: str, tmp_path: Path) -> None:
    _, kills, counts = run_faults(tenants, city, database_url, tmp_path, origins=80,
                                  routers=2, min_kills=8, min_busy=6, seed=SEED + 7)
    assert counts["handovers"] >= 80 and counts["progress relays"] >= 40
    assert kills.killed_running >= 8 and kills.killed_busy >= 6
