"""Running every projector of every city: catch-up, rebuild, following with
LISTEN/NOTIFY, the CLI, and a projector killed with SIGKILL over and over that
still ends in the rows of an uninterrupted run."""

from __future__ import annotations

import base64
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from support import MASTER_KEY, ROOT, product_env
from view_support import Shadow, another_city, at, receive, unit, view_rows

from domain import HandlingClass, Outcome, Severity
from projections import queries as q
from projections.runner import PROJECTORS, Covered, catch_up_all, rebuild_all, run_all
from tenants.persistence import log_group_schema
from tenants.service import Tenants
from zongzhi.cli import main
from zongzhi.servers import DATABASE_URL


def work_a_case(tenants: Tenants, code: str, minute: int, *, finish: bool) -> None:
    app = tenants.center(code)
    t = at(2, 9) + timedelta(minutes=minute)
    case = receive(app, t)
    app.triage_case(case.id, Severity.YELLOW, HandlingClass.SIMPLE, "d", t + timedelta(minutes=1))
    if finish:
        app.dispatch_case(case.id, [unit("justice-office", True)], "d", t + timedelta(minutes=2))
        app.accept_case(case.id, "justice-office", "o", t + timedelta(minutes=3))
        app.resolve_case(case.id, Outcome.MEDIATED, "调解", "o", t + timedelta(minutes=4))


def index_rows(tenants: Tenants, city: str) -> int:
    with tenants.datastore.get_connection() as conn:
        row = conn.execute(
            f'SELECT count(*) AS n FROM "{log_group_schema(city)}".case_index').fetchone()
    return int(row["n"]) if row else 0


def behind(tenants: Tenants, city: str) -> bool:
    """Whether the case index or the case view has not covered the whole log yet."""
    schema = log_group_schema(city)
    with tenants.datastore.get_connection() as conn:
        row = conn.execute(
            f'SELECT (SELECT max(notification_id) FROM "{schema}".events) AS last, '
            f'(SELECT min(n) FROM (SELECT max(notification_id) AS n FROM "{schema}".tracking '
            "WHERE application_name IN ('case_index', 'case_view') "
            "GROUP BY application_name HAVING count(*) > 0) AS t) AS covered, "
            f'(SELECT count(DISTINCT application_name) FROM "{schema}".tracking '
            "WHERE application_name IN ('case_index', 'case_view')) AS projectors").fetchone()
    assert row is not None
    return row["projectors"] < 2 or row["covered"] < row["last"]


def test_every_projector_of_every_city_catches_up_and_rebuilds(
        tenants: Tenants, tmp_path: Path) -> None:
    one, two = (another_city(tenants, tmp_path / n)["village"][0] for n in ("a", "b"))
    cities = [one[:4], two[:4]]
    for i in range(3):
        work_a_case(tenants, one, i * 10, finish=True)
    work_a_case(tenants, two, 0, finish=False)

    covered = catch_up_all(tenants, cities)
    # the case projectors cover every case event; the others (alerts, callbacks) none here
    case_events = {cities[0]: 15, cities[1]: 2}
    assert covered == [
        Covered(c, k.name, case_events[c] if k.name in ("case_index", "case_view") else 0)
        for c in cities for k in PROJECTORS]
    assert catch_up_all(tenants, cities) == [Covered(c, k.name, 0) for c in cities
                                             for k in PROJECTORS]
    assert [index_rows(tenants, c) for c in cities] == [3, 1]
    rows = [view_rows(tenants, c) for c in cities]
    assert [len(r) for r in rows] == [3, 1]

    assert rebuild_all(tenants, cities) == covered
    assert [view_rows(tenants, c) for c in cities] == rows
    assert q.view_position(tenants, cities[0]) == (15, 15)


def test_run_all_follows_new_cases_as_they_are_written_until_stopped(
        tenants: Tenants, tmp_path: Path) -> None:
    village = another_city(tenants, tmp_path)["village"][0]
    city = village[:4]
    stop, started = threading.Event(), threading.Event()
    follower = threading.Thread(target=run_all, args=(tenants, stop.is_set, [city]),
                                kwargs={"idle_wait": 3.0, "started": started})
    follower.start()
    try:
        assert started.wait(10)
        time.sleep(0.2)  # the projectors found nothing and wait (3 s unless woken)
        work_a_case(tenants, village, 0, finish=True)
        written = time.monotonic()
        while q.view_position(tenants, city)[0] < 5 and time.monotonic() < written + 10:
            time.sleep(0.02)
        assert time.monotonic() < written + 1.5  # woken by NOTIFY, not by its idle wait
        (row,) = q.cases(tenants, village).items
        assert row.status.value == "resolved" and row.resolved_by == "justice-office"
    finally:
        stop.set()
        follower.join(timeout=15)
    assert not follower.is_alive()
    assert index_rows(tenants, city) == 1


@pytest.fixture
def configured(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Another spelling of the session's database: the CLI's pool (closed when the
    # command ends) is then not the one the session's ``tenants`` share.
    monkeypatch.setenv(DATABASE_URL, f"{database_url} application_name=zongzhi-cli")
    monkeypatch.setenv("ZONGZHI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ZONGZHI_MASTER_KEY", base64.urlsafe_b64encode(MASTER_KEY).decode())


def test_the_cli_rebuilds_and_catches_up(
        configured: None, tenants: Tenants, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    village = another_city(tenants, tmp_path)["village"][0]
    city = village[:4]
    work_a_case(tenants, village, 0, finish=False)
    assert main(["projections", "catch-up", "--city", city]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{k.name} {city}: {2 if k.name in ('case_index', 'case_view') else 0} "
        "notifications caught up" for k in PROJECTORS]
    work_a_case(tenants, village, 10, finish=True)
    assert main(["projections", "rebuild", "--city", city]) == 0
    assert f"case_view {city}: 7 notifications projected" in capsys.readouterr().out
    assert len(q.cases(tenants, village).items) == 2
    assert main(["projections", "rebuild", "--city", village]) == 2
    assert "is not a city" in capsys.readouterr().err


# -- killed at random -------------------------------------------------------------------


class Writer:
    """Centers working cases through their loops while the projector dies and restarts."""

    def __init__(self, tenants: Tenants, tree: dict[str, list[str]], cases: int,
                 seed: int) -> None:
        self.tenants, self.tree, self.cases = tenants, tree, cases
        self.rng = random.Random(seed)
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.commands = 0

    def run(self) -> None:
        try:
            centers = self.tree["township"] + self.tree["village"]
            for i in range(self.cases):
                code = self.rng.choice(centers)
                work_a_case(self.tenants, code, i, finish=self.rng.random() < 0.8)
                self.commands += 5
                if i % 15 == 14:
                    time.sleep(0.3)  # bursts: a restarted projector finds a backlog
        except BaseException as e:  # re-raised by the test
            self.error = e
        finally:
            self.done.set()


def start_projector(city: str, env: dict[str, str], stderr: object) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "zongzhi.cli", "projections", "run",
                             "--city", city], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=stderr)  # type: ignore[arg-type]
    assert proc.stdout is not None
    readable, _, _ = select.select([proc.stdout], [], [], 30)
    assert readable, "the projector did not start"
    line = proc.stdout.readline().decode()
    assert line.startswith(f"projecting {city}"), line
    return proc


@pytest.mark.slow
def test_a_projector_killed_mid_batch_again_and_again_ends_in_the_rows_of_one_never_killed(
        tenants: Tenants, database_url: str, tmp_path: Path) -> None:
    tree = another_city(tenants, tmp_path, townships=2, villages=3)
    city = tree["city"][0]
    writer = Writer(tenants, tree, cases=260, seed=20261123)
    rng = random.Random(7)
    env = product_env(database_url)
    kills = busy = 0
    positions: list[int] = []
    thread = threading.Thread(target=writer.run, name="centers")
    with open(tmp_path / "projector.err", "wb") as stderr:
        thread.start()
        try:
            while not (writer.done.is_set() and kills >= 8):
                proc = start_projector(city, env, stderr)
                # each life commits a batch before it can be killed (on a busy machine a
                # projector killed straight after its start had done nothing yet)
                began, last = q.view_position(tenants, city)
                covered, progressed = began, time.monotonic() + 10
                while covered == began < last and time.monotonic() < progressed:
                    time.sleep(0.005)
                    covered, last = q.view_position(tenants, city)
                time.sleep(rng.uniform(0.01, 0.3))  # often while it works off a backlog
                covered, last = q.view_position(tenants, city)
                waited = time.monotonic() + 2
                while covered == last and time.monotonic() < waited:  # else on new work
                    time.sleep(0.005)
                    covered, last = q.view_position(tenants, city)
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                kills += 1
                busy += covered < last
                positions.append(covered)
                time.sleep(rng.uniform(0.0, 0.3))  # dead a while: work piles up
        finally:
            thread.join()
        if writer.error is not None:
            raise writer.error
        proc = start_projector(city, env, stderr)  # the last life, left to finish
        deadline = time.monotonic() + 60
        while behind(tenants, city):
            assert time.monotonic() < deadline, "the projectors did not catch up"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    errors = (tmp_path / "projector.err").read_text(errors="replace")
    assert "Traceback" not in errors, errors

    print(f"\n{kills} SIGKILLs, {busy} with notifications waiting; view positions at the "
          f"kills {positions}; {writer.commands} commands")
    assert kills >= 8 and busy >= 6
    assert len(set(positions)) >= 5  # it advanced between kills: killed in many places
    uninterrupted = Shadow(tenants, city)
    uninterrupted.catch_up()
    rows = view_rows(tenants, city)
    assert len(rows) == 260
    assert view_rows(tenants, city, uninterrupted.table) == rows
    assert index_rows(tenants, city) == 260
