"""The case view on real PostgreSQL: one row per case, holding the case as its
events left it and what only its history tells (first acceptance, breaches,
where the result came from); the same rows whether projected incrementally,
re-read from the store, or rebuilt while the centers keep writing."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

from view_support import (
    COURT_REFERENCE,
    ForgetfulShadow,
    Shadow,
    Story,
    at,
    center,
    receive,
    unit,
    view_rows,
)

from domain import HandlingClass, Outcome, Severity
from flows.router import Router
from projections.views import CaseView
from tenants.center import CenterApp
from tenants.service import Tenants


def row_of(story: Story, name: str) -> dict[str, object]:
    rows = {r["case_id"]: r for r in view_rows(story.tenants, story.city)}
    return rows[story.ids[name]]


def test_a_row_holds_the_loop_as_the_case_went_through_it(story: Story) -> None:
    b = row_of(story, "B")  # refused by labour, accepted late, referred to court
    assert b["tenant"] == story.t1 and b["status"] == "closed" and not b["is_open"]
    assert b["category"] == "labour-pay" and b["summary"] == "拖欠工资"
    assert (b["severity"], b["handling"]) == ("orange", "complex")
    assert b["refusals"] == {"labour": 1}
    assert b["breaches"] == {"justice-office": 1}  # accepted 2 h after respond_by
    assert b["respond_by"] == at(3, 10) and b["lead_accepted_at"] == at(3, 12)
    assert (b["lead_kind"], b["lead_ref"], b["assignees"]) == (
        "unit", "justice-office", ["justice-office"])
    assert b["resolved_at"] == at(5, 15) and b["resolved_by"] == "justice-office"
    assert (b["outcome"], b["court_reference"]) == ("referred-to-court", COURT_REFERENCE)
    assert b["stars"] == 3 and b["closed_at"] == at(6, 9, 20)
    assert b["progress_reports"] == 1 and b["last_progress_at"] == at(4, 9)
    assert b["due_by"] is None and b["next_step_at"] is None  # closed: nothing due

    f = row_of(story, "F")  # joint dispatch, accepted, overdue, urged once
    assert f["status"] == "accepted" and f["assignees"] == ["market-regulation", "police"]
    assert (f["due_kind"], f["due_by"]) == ("handling", at(3, 0))  # end of the working day
    assert f["urgings"] == 1 and f["last_instrument"] == "work-prompt-letter"
    assert f["last_urged_at"] == at(3, 9)
    assert f["breaches"] == {"market-regulation": 1}
    assert f["next_step_at"] == at(4, 9)  # the warning letter after 24 h of grace

    h = row_of(story, "H")  # a repeat complaint: a new round
    assert (h["status"], h["repeat_count"], h["repeat_against"]) == (
        "triaged", 1, "justice-office")
    assert h["round_started_at"] == at(3, 9) and h["received_at"] == at(2, 15)
    assert h["outcome"] is h["resolved_at"] is h["lead_accepted_at"] is h["closed_at"] is None

    g = row_of(story, "G")
    assert g["status"] == "withdrawn" and not g["is_open"]


def test_a_row_names_the_hand_overs_and_where_the_result_came_from(story: Story) -> None:
    ids = story.ids
    j, j2 = row_of(story, "J"), row_of(story, "J2")  # V12 escalated to T1
    assert j["escalated_to"] == story.t1 and j["linked_cases"] == [ids["J2"]]
    assert (j["resolved_by"], j["resolved_via"], j["resolved_at"]) == (
        story.t1, ids["J2"], at(2, 13))
    assert (j2["origin_case"], j2["origin_tenant"], j2["origin_direction"]) == (
        ids["J"], story.v12, "down")
    assert (j2["channel"], j2["status"], j2["resolved_by"]) == ("handover", "closed", "housing")
    assert j2["received_at"] == at(2, 9, 50)  # deadlines count from the hand-over

    i, i2 = row_of(story, "I"), row_of(story, "I2")  # T1 dispatched down to V11
    assert (i["status"], i["lead_kind"], i["lead_ref"]) == ("dispatched", "center", story.v11)
    assert i["linked_cases"] == [ids["I2"]]
    assert (i2["status"], i2["origin_direction"], i2["lead_ref"]) == (
        "dispatched", "up", story.v11)
    assert i2["due_by"] == at(6, 0) and i2["due_kind"] == "response"

    k, k2, k3 = row_of(story, "K"), row_of(story, "K2"), row_of(story, "K3")  # red: up twice
    assert (k["resolved_via"], k2["resolved_via"], k3["resolved_via"]) == (
        ids["K2"], ids["K3"], None)
    assert (k["resolved_by"], k2["resolved_by"], k3["resolved_by"]) == (
        story.t2, story.county, "police")
    assert k3["tenant"] == story.county and k3["severity"] == "red"


def test_every_row_equals_the_case_replayed_from_the_store(story: Story) -> None:
    rows = view_rows(story.tenants, story.city)
    assert len(rows) == len(story.ids) == 15
    for r in rows:
        case = story.tenants.center(r["tenant"]).get_case(r["case_id"])
        assert (r["status"], r["version"], r["last_at"], r["case_number"]) == (
            case.status.value, case.version, case.last_at, case.case_number)
        assert (r["stars"], r["closed_at"], r["repeat_count"], r["refusals"]) == (
            case.stars, case.closed_at, case.repeat_count, case.refusals)
        assert r["resolved_by"] == case.resolved_by_unit
        assert r["linked_cases"] == [k.case_id for k in case.links]
        assert r["urgings"] == len(case.urgings)


def test_a_projector_that_remembers_no_case_writes_the_same_rows(
        story: Story) -> None:
    forgetful = ForgetfulShadow(story.tenants, story.city)
    covered = 0
    while read := forgetful.run_once(limit=1):  # a batch an event, nothing kept between
        covered += read
    assert covered == 77 and forgetful.misses == 77 - 15  # every event but the first ones
    assert view_rows(story.tenants, story.city, forgetful.table) == \
        view_rows(story.tenants, story.city)


def test_a_center_whose_key_was_destroyed_still_counts(
        tenants: Tenants, city_tree: dict[str, list[str]], city: str) -> None:
    village = city_tree["village"][0]
    app = tenants.center(village)
    case = receive(app, at(2, 9))
    app.triage_case(case.id, Severity.BLUE, HandlingClass.SIMPLE, "dispatcher", at(2, 9, 5))
    tenants.shred_key(village, "center abolished", "operator", datetime.now(UTC))
    view = CaseView(tenants, city)
    assert view.rebuild() == 2
    (row,) = view_rows(tenants, city)
    assert (row["case_id"], row["status"], row["severity"]) == (case.id, "triaged", "blue")


# -- rebuilding while the centers write --------------------------------------------------


class Centers:
    """Staff of a county's centers working cases through their loops, from a thread."""

    def __init__(self, tenants: Tenants, tree: dict[str, list[str]], seed: int) -> None:
        self.tenants, self.tree = tenants, tree
        self.rng = random.Random(seed)
        self.now = at(2, 8)
        self.router = Router(tenants, tree["city"][0])
        self.commands = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.open: list[tuple[CenterApp, UUID, list[str]]] = []

    def tick(self) -> datetime:
        self.now += timedelta(minutes=self.rng.randint(1, 90))
        return self.now

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                if len(self.open) < 8:
                    self._new()
                else:
                    self._advance()
                if self.rng.random() < 0.05:
                    self.router.catch_up()
        except BaseException as e:  # re-raised by the test
            self.error = e

    def _new(self) -> None:
        code = self.rng.choice(self.tree["township"] + self.tree["village"])
        app = self.tenants.center(code)
        case = receive(app, self.tick(), self.rng.choice(
            ["neighbour-dispute", "labour-pay", "consumer", "environment-noise"]))
        app.triage_case(case.id, self.rng.choice([Severity.YELLOW, Severity.BLUE,
                                                  Severity.ORANGE]),
                        HandlingClass.SIMPLE, "dispatcher", self.tick())
        steps = ["dispatch", "accept", "progress", "resolve", "feedback", "confirm",
                 "evaluate", "close"]
        if len(code) == 9 and self.rng.random() < 0.2:
            steps = ["dispatch-down"]  # the linked case stays with the village
        elif self.rng.random() < 0.1:
            steps = ["withdraw"]
        self.commands += 2
        self.open.append((app, case.id, steps))

    def _advance(self) -> None:
        i = self.rng.randrange(len(self.open))
        app, case_id, steps = self.open[i]
        step, rest = steps[0], steps[1:]
        when = self.tick()
        lower = next((v for v in self.tree["village"] if v.startswith(app.tenant)), None)
        {
            "dispatch": lambda: app.dispatch_case(case_id, [unit("justice-office", True)],
                                                  "dispatcher", when),
            "dispatch-down": lambda: app.dispatch_case(case_id, [center(lower or "", True)],
                                                       "dispatcher", when),
            "accept": lambda: app.accept_case(case_id, "justice-office", "officer", when),
            "progress": lambda: app.report_progress(case_id, "走访", "officer", when),
            "resolve": lambda: app.resolve_case(case_id, Outcome.MEDIATED, "调解", "officer",
                                                when),
            "feedback": lambda: app.give_feedback(case_id, "已告知", "clerk", when),
            "confirm": lambda: app.confirm_case(case_id, "party", when),
            "evaluate": lambda: app.evaluate_case(case_id, self.rng.randint(1, 5), "",
                                                  "party", when),
            "close": lambda: app.close_case(case_id, "clerk", when),
            "withdraw": lambda: app.withdraw_case(case_id, "撤回", "clerk", when),
        }[step]()
        self.commands += 1
        if rest:
            self.open[i] = (app, case_id, rest)
        else:
            self.open.pop(i)


def test_a_rebuild_while_centers_keep_writing_ends_in_the_rows_of_a_projector_that_never_did(
        tenants: Tenants, city_tree: dict[str, list[str]], city: str, tmp_path: Path) -> None:
    view, follower = CaseView(tenants, city), Shadow(tenants, city)
    view.rebuild_batch = 10  # a rebuild of many transactions, the centers committing between
    centers = Centers(tenants, city_tree, seed=20261123)
    stop_following = threading.Event()
    threads = [threading.Thread(target=centers.run, name="centers"),
               threading.Thread(target=follower.run, args=(stop_following.is_set, 0.05),
                                name="follower")]
    for t in threads:
        t.start()
    try:
        during: list[tuple[int, int]] = []  # (commands made meanwhile, notifications)
        for _ in range(20):  # until 3 rebuilds (the last of 150+) ran while centers wrote
            time.sleep(0.5)
            view.catch_up()
            before = centers.commands
            rebuilt = view.rebuild()
            if centers.commands > before:
                during.append((centers.commands - before, rebuilt))
                if len(during) >= 3 and rebuilt >= 150:
                    break
    finally:
        centers.stop.set()
        threads[0].join()
        stop_following.set()
        threads[1].join()
    if centers.error is not None:
        raise centers.error
    centers.router.catch_up()
    view.catch_up()
    follower.catch_up()

    assert len(during) >= 3 and during[-1][1] >= 150, during
    rows = view_rows(tenants, city)
    assert len(rows) > 20
    assert view_rows(tenants, city, follower.table) == rows
