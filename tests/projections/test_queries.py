"""Each tier's working views and figures, read from the case view of the story in
``view_support`` (see its docstring for the cases and their times)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest
from view_support import NOW, Story, another_city, at, receive, view_rows

from domain import HandlingClass, Severity, Status, Tier, ValidationError, new_stream_id
from projections import queries as q
from projections.queries import CaseFilter, Figures, Period
from projections.views import CaseView
from tenants.service import Tenants


def test_the_inbox_holds_what_waits_for_the_center(story: Story) -> None:
    # T1: triaged C, received D, H re-opened by a repeat complaint; oldest first.
    assert story.names(q.inbox(story.tenants, story.t1).items) == ["C", "D", "H"]
    # V11: the order T1 dispatched down, awaiting its acceptance or refusal.
    (order,) = q.inbox(story.tenants, story.v11).items
    assert story.name_of(order.case_id) == "I2" and order.handed_down
    assert order.status is Status.DISPATCHED and order.due_by == at(6, 0)
    assert q.inbox(story.tenants, story.v12).items == ()  # J was closed


def test_the_dispatch_board_shows_each_lead_with_its_cases(story: Story) -> None:
    board = q.dispatch_board(story.tenants, story.t1)
    assert story.names(board.items) == ["I", "F", "E"]  # V11's code, then by unit
    assert [r.lead_ref for r in board.items] == [story.v11, "market-regulation", "police"]
    lanes = q.dispatch_lanes(story.tenants, story.t1, NOW)
    assert lanes == (
        q.Lane(story.v11, "center", dispatched=1, accepted=0, overdue=0),
        q.Lane("market-regulation", "unit", dispatched=0, accepted=1, overdue=1),
        q.Lane("police", "unit", dispatched=1, accepted=0, overdue=0),
    )
    police = q.dispatch_board(story.tenants, story.t1, filters=CaseFilter(assignee="police"))
    assert story.names(police.items) == ["F", "E"]  # police is a co-unit of F
    # V11 answers orders from above in its inbox; nothing on its board.
    assert q.dispatch_board(story.tenants, story.v11).items == ()


def test_overdue_and_due_soon_follow_the_deadline_that_applies(story: Story) -> None:
    tenants = story.tenants
    # Wednesday noon: F (accepted) missed the end of Monday; nothing else is due yet.
    (f,) = q.overdue(tenants, story.t1, NOW).items
    assert story.name_of(f.case_id) == "F" and f.due_kind == "handling"
    assert story.names(q.overdue(tenants, story.county, NOW, subtree=True).items) == ["F"]
    # Due within three days: I's response (Thursday's end); with the subtree, also the
    # order it became at V11 (same deadline, then by case id).
    assert story.names(q.due_soon(tenants, story.t1, NOW, timedelta(days=3)).items) == ["I"]
    soon = q.due_soon(tenants, story.t1, NOW, timedelta(days=3), subtree=True).items
    assert sorted(story.names(soon)) == ["I", "I2"]
    assert [r.case_id for r in soon] == sorted(r.case_id for r in soon)
    # Friday noon: I and I2 are late too, longest overdue first.
    friday = at(6, 12)
    late = story.names(q.overdue(tenants, story.t1, friday, subtree=True).items)
    assert late[0] == "F" and sorted(late[1:]) == ["I", "I2"]
    assert story.names(q.due_soon(tenants, story.t1, friday, timedelta(days=7)).items) == ["E"]


def test_a_list_row_is_the_view_row_whole_and_frozen(story: Story) -> None:
    # F: led by market-regulation, which accepted it late (a breach), overdue now
    (f,) = q.overdue(story.tenants, story.t1, NOW).items
    (raw,) = [r for r in view_rows(story.tenants, story.t1[:4]) if r["case_id"] == f.case_id]
    assert f.breaches == (q.UnitCount("market-regulation", 1),)
    expected = {**raw, "status": Status(raw["status"]),
                "severity": Severity(raw["severity"]) if raw["severity"] else None,
                "assignees": tuple(raw["assignees"]), "linked_cases": tuple(raw["linked_cases"]),
                "refusals": tuple(q.UnitCount(k, v) for k, v in sorted(raw["refusals"].items())),
                "breaches": tuple(q.UnitCount(k, v) for k, v in sorted(raw["breaches"].items()))}
    assert f == q.CaseRow(**expected)  # built without __init__, equal to one built with it
    with pytest.raises(AttributeError):
        f.status = Status.CLOSED  # type: ignore[misc]


def test_a_subtree_shows_the_cases_below_and_a_center_alone_its_own(story: Story) -> None:
    tenants = story.tenants
    own = q.cases(tenants, story.t1)
    assert sorted(story.names(own.items)) == ["A", "B", "C", "D", "E", "F", "G", "H", "I",
                                              "J2"]
    below = q.cases(tenants, story.t1, subtree=True)
    assert sorted(story.names(below.items)) == sorted([*story.names(own.items), "I2", "J"])
    assert len(q.cases(tenants, story.county, subtree=True).items) == 15
    assert len(q.cases(tenants, story.city, subtree=True).items) == 15
    assert story.names(q.cases(tenants, story.t2).items) == ["K2"]
    newest_first = [r.received_at for r in below.items]
    assert newest_first == sorted(newest_first, reverse=True)


def test_filters_narrow_a_list(story: Story) -> None:
    tenants, t1 = story.tenants, story.t1

    def names(**kw: object) -> list[str]:
        page = q.cases(tenants, t1, subtree=True, filters=CaseFilter(**kw))  # type: ignore[arg-type]
        return sorted(story.names(page.items))

    assert names(statuses=(Status.CLOSED,)) == ["A", "B", "J", "J2"]
    assert names(statuses=(Status.CLOSED, Status.WITHDRAWN)) == ["A", "B", "G", "J", "J2"]
    assert names(category="neighbour-dispute") == ["A", "D", "H", "J", "J2"]
    assert names(severity=Severity.ORANGE) == ["B", "F"]
    assert names(assignee="justice-office") == ["A", "B"]  # H's dispatch ended with its round
    assert names(received_from=at(2, 10), received_to=at(2, 12)) == ["B", "C", "D"]
    assert names(category="neighbour-dispute", statuses=(Status.TRIAGED,)) == ["H"]
    inbox = q.inbox(tenants, t1, filters=CaseFilter(category="neighbour-dispute"))
    assert story.names(inbox.items) == ["D", "H"]


def test_cases_by_ids_answers_in_the_order_asked(story: Story) -> None:
    ids = story.ids
    unknown = new_stream_id(story.v11)
    elsewhere = new_stream_id("3307")
    rows = q.cases_by_ids(story.tenants, [ids["K3"], unknown, ids["A"], elsewhere, ids["K3"]])
    assert [r.case_id if r else None for r in rows] == [ids["K3"], None, ids["A"], None,
                                                        ids["K3"]]
    assert rows[0] is not None and rows[0].tenant == story.county
    assert rows[2] is not None and rows[2].stars == 5 and rows[2].outcome == "mediated"


def test_figures_count_each_matter_once_along_the_tree(story: Story) -> None:
    tenants = story.tenants
    roll = q.rollup(tenants, story.county, NOW)
    # 11 matters: T1's nine, J at V12 (escalated to T1: J2 not counted again), K at V21
    # (escalated up to the county: K2 and K3 not counted again).
    assert roll.total == Figures(received=11, open=6, closed=4, withdrawn=1, resolved=4,
                                 overdue=1)
    assert [(t.tier, t.centers, t.figures) for t in roll.tiers] == [
        (Tier.COUNTY, 1, Figures()),
        (Tier.TOWNSHIP, 2, Figures(received=9, open=6, closed=2, withdrawn=1, resolved=2,
                                   overdue=1)),
        (Tier.VILLAGE, 4, Figures(received=2, closed=2, resolved=2)),
    ]
    assert [(c.code, c.figures) for c in roll.children] == [
        (story.t1, Figures(received=10, open=6, closed=3, withdrawn=1, resolved=3, overdue=1)),
        (story.t2, Figures(received=1, closed=1, resolved=1)),
    ]
    assert roll.children == q.children_figures(tenants, story.county, NOW)
    # The center alone counts what it worked itself, J2 included.
    own = q.figures_for(tenants, [story.t1, story.v11, story.county], NOW, subtree=False)
    assert own == {
        story.t1: Figures(received=10, open=6, closed=3, withdrawn=1, resolved=3, overdue=1),
        story.v11: Figures(received=1, open=1),
        story.county: Figures(received=1, closed=1, resolved=1),  # K3
    }
    # Friday noon, only what was received on Monday morning.
    morning = Period(at(2, 9), at(2, 12))
    assert q.figures_for(tenants, [story.t1], at(6, 12), period=morning) == {
        story.t1: Figures(received=5, open=2, closed=3, resolved=3)}  # A B C D J


def test_a_scope_must_be_a_center_and_a_cursor_one_of_the_list(story: Story) -> None:
    with pytest.raises(ValidationError, match="division code"):
        q.cases(story.tenants, "33")
    with pytest.raises(ValidationError, match="first must be 1 to 500"):
        q.cases(story.tenants, story.t1, first=0)
    inbox_cursor = q.inbox(story.tenants, story.t1, first=1).end_cursor
    assert inbox_cursor is not None
    with pytest.raises(q.InvalidCursor):
        q.cases(story.tenants, story.t1, after=inbox_cursor)
    with pytest.raises(q.InvalidCursor):
        q.cases(story.tenants, story.t1, after="not-a-cursor")
    with pytest.raises(q.InvalidCursor):
        q.cases(story.tenants, story.t1, after=inbox_cursor[:-3])


def test_pages_cover_a_list_once_in_a_stable_order(tenants: Tenants, tmp_path: Path) -> None:
    tree = another_city(tenants, tmp_path)
    city, village = tree["city"][0], tree["village"][0]
    app = tenants.center(village)
    for i in range(25):  # pairs received at the same minute: the case id breaks the tie
        case = receive(app, at(2, 8) + timedelta(minutes=10 * (i // 2)))
        if i % 3 == 0:
            app.triage_case(case.id, Severity.BLUE, HandlingClass.SIMPLE, "d",
                            at(2, 8) + timedelta(minutes=10 * (i // 2) + 1))
    view = CaseView(tenants, city)
    view.catch_up()
    whole = [r.case_id for r in q.cases(tenants, village, first=500).items]
    assert len(whole) == 25

    seen: list[UUID] = []
    page = q.cases(tenants, village, first=10)
    pages = [page]
    seen += [r.case_id for r in page.items]
    newest = receive(app, at(9, 9))  # arrives between pages: newer than any seen
    view.catch_up()
    while page.has_next:
        page = q.cases(tenants, village, first=10, after=page.end_cursor)
        pages.append(page)
        seen += [r.case_id for r in page.items]
    assert [len(p.items) for p in pages] == [10, 10, 5]
    assert [p.has_next for p in pages] == [True, True, False]
    assert seen == whole  # no repeat, no gap, the same order
    assert newest.id not in seen  # it sorts before the first page: read from the top
    assert q.cases(tenants, village, first=1).items[0].case_id == newest.id
    assert q.cases(tenants, village, first=10, after=pages[-1].end_cursor).items == ()
    # Filters hold across pages too.
    triaged = CaseFilter(statuses=(Status.TRIAGED,))
    first = q.cases(tenants, village, first=5, filters=triaged)
    rest = q.cases(tenants, village, first=5, filters=triaged, after=first.end_cursor)
    assert len(first.items) + len(rest.items) == 9 and not rest.has_next
    assert len(view_rows(tenants, city)) == 26


def test_a_view_never_built_reads_as_empty(tenants: Tenants, tmp_path: Path) -> None:
    tree = another_city(tenants, tmp_path)
    village = tree["village"][0]
    receive(tenants.center(village), at(2, 9))
    assert q.cases(tenants, village) == q.Page((), None, False)
    assert q.figures_for(tenants, [village], NOW) == {village: Figures()}
    assert q.view_position(tenants, tree["city"][0])[0] == 0
