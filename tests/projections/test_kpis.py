"""The KPIs of DOMAIN.md computed over the case view of the story in
``view_support``, against figures worked out by hand from its cases (the
definitions are in docs/kpis.md)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from view_support import CST, NOW, Story, another_city, at, receive

from projections.kpis import Durations, HotSpot, Rate, UnitFigures, hot_spots, kpis
from projections.queries import Period
from projections.views import CaseView
from tenants.service import Tenants


def test_the_township_and_its_villages(story: Story) -> None:
    k = kpis(story.tenants, story.t1, NOW)
    # Matters: A..I at T1 and J at V12 (J2, opened at T1 by J's escalation, and I2,
    # opened at V11 by I's dispatch, are the same matters). G was withdrawn.
    assert (k.matters, k.withdrawn) == (10, 1)
    # Resolved: A (mediated), B (referred to court: resolved, not lost), J (by T1).
    # H's result ended when the repeat complaint re-opened it.
    assert k.resolution_rate == Rate(3, 9, 3 / 9)
    assert k.referred_to_court == 1
    assert k.repeat_complaint_rate == Rate(1, 4, 0.25)  # H of A, B, J, H
    assert k.satisfaction == Rate(2, 3, 2 / 3)  # A 5 and J 4 stars; B 3
    # Handling, receipt to result: A 3 h, J 3.5 h, B 77 h.
    assert k.handling_time == Durations(3, 3.5, 62.3)
    # Response, receipt to the lead's first acceptance, in the cases T1 dispatched:
    # F 0.5 h, A 1 h, J2 70 min (from the hand-over), B 26 h (labour refused first).
    assert k.response_time == Durations(4, pytest.approx(13 / 12),  # type: ignore[arg-type]
                                        pytest.approx(18.55))  # type: ignore[arg-type]
    assert k.on_time_rate == Rate(2, 3, 2 / 3)  # A and J2 in time; B accepted late
    assert k.overdue_now == 1  # F
    assert k.resolved_at_township_or_below == Rate(3, 3, 1.0)
    assert k.alert_precision is None  # no camera alert was dispositioned
    assert k.refusals == 1
    assert k.units == (
        UnitFigures("housing", 1, 1, 1.0, 0, 0, 0, 0),
        UnitFigures("justice-office", 2, 1, 0.5, 1, 0, 0, 1),  # H came back against it
        UnitFigures("labour", 0, 0, None, 0, 0, 1, 0),
        UnitFigures("market-regulation", 0, 0, None, 1, 1, 0, 0),  # F: urged, overdue
    )


def test_the_county_counts_the_red_matter_resolved_above_the_townships(story: Story) -> None:
    k = kpis(story.tenants, story.county, NOW)
    # K (V21, red) climbed to T2 and the county (K2, K3) and was handled there by police.
    assert (k.matters, k.withdrawn) == (11, 1)
    assert k.resolution_rate == Rate(4, 10, 0.4)
    assert k.repeat_complaint_rate == Rate(1, 5, 0.2)
    assert k.satisfaction == Rate(3, 4, 0.75)
    assert k.handling_time == Durations(4, 3.25, 54.95)  # K: 1.5 h
    assert k.response_time.count == 5 and k.response_time.median_hours == 1.0  # K3: 40 min
    assert k.on_time_rate == Rate(3, 4, 0.75)
    assert k.resolved_at_township_or_below == Rate(3, 4, 0.75)  # K was resolved in the county
    assert [u.unit for u in k.units] == ["housing", "justice-office", "labour",
                                         "market-regulation", "police"]
    assert k.units[-1] == UnitFigures("police", 1, 1, 1.0, 0, 0, 0, 0)
    # The city has this one county: its figures are the county's.
    assert kpis(story.tenants, story.city, NOW) == replace(k, scope=story.city)


def test_the_township_alone_counts_the_cases_it_worked(story: Story) -> None:
    k = kpis(story.tenants, story.t1, NOW, subtree=False)
    # J2 is T1's own case now (its origin lies outside the scope); J is not.
    assert (k.matters, k.withdrawn) == (10, 1)
    assert k.resolution_rate == Rate(3, 9, 3 / 9)  # A, B, J2
    assert k.satisfaction == Rate(1, 2, 0.5)  # the party evaluates at V12, not on J2
    assert k.handling_time == Durations(3, pytest.approx(3 + 1 / 6),  # type: ignore[arg-type]
                                        pytest.approx(3 + 1 / 6 + 0.8 * (77 - 3 - 1 / 6)))  # type: ignore[arg-type]
    assert k.resolved_at_township_or_below == Rate(3, 3, 1.0)
    village = kpis(story.tenants, story.v12, NOW, subtree=False)
    assert village.resolution_rate == Rate(1, 1, 1.0) and village.satisfaction == Rate(1, 1, 1.0)
    assert village.on_time_rate == Rate(0, 0, None)  # it dispatched nothing itself


def test_a_period_and_a_category_narrow_the_cohort(story: Story) -> None:
    morning = kpis(story.tenants, story.t1, NOW, period=Period(at(2, 9), at(2, 12)))
    assert morning.matters == 5  # A, J (09:30), B, C, D; E came in at 12:00
    assert morning.resolution_rate == Rate(3, 5, 0.6)
    assert morning.overdue_now == 0
    disputes = kpis(story.tenants, story.t1, NOW, category="neighbour-dispute")
    assert disputes.matters == 4  # A, D, H, J
    assert disputes.resolution_rate == Rate(2, 4, 0.5)
    assert disputes.repeat_complaint_rate == Rate(1, 3, 1 / 3)
    later = kpis(story.tenants, story.t1, NOW, period=Period(start=at(3, 0)))
    assert later.matters == 0 and later.resolution_rate == Rate(0, 0, None)
    assert later.handling_time == Durations(0, None, None)


def test_hot_spots_rank_category_place_and_week(story: Story) -> None:
    top = hot_spots(story.tenants, story.t1, top=3)
    assert top == (
        HotSpot("neighbour-dispute", story.t1, "2026-W10", 3),  # A, D, H
        HotSpot("consumer", story.t1, "2026-W10", 1),
        HotSpot("environment-noise", story.t1, "2026-W10", 1),
    )
    everything = hot_spots(story.tenants, story.county, top=50)
    assert sum(h.matters for h in everything) == 11
    assert HotSpot("neighbour-dispute", story.v12, "2026-W10", 1) in everything
    assert hot_spots(story.tenants, story.t1, category="labour-pay") == (
        HotSpot("labour-pay", story.t1, "2026-W10", 1),)


def test_hot_spot_weeks_are_iso_weeks_in_china_time(tenants: Tenants, tmp_path: Path) -> None:
    tree = another_city(tenants, tmp_path, counties=1, townships=1, villages=1)
    village = tree["village"][0]
    app = tenants.center(village)
    for when in (datetime(2025, 12, 28, 23, 30, tzinfo=CST),  # a Sunday: 2025-W52
                 datetime(2025, 12, 29, 0, 30, tzinfo=CST),   # Monday: ISO year 2026, W01
                 datetime(2026, 1, 4, 23, 59, tzinfo=CST),    # its Sunday, still 2026-W01
                 datetime(2026, 1, 4, 16, 30, tzinfo=CST)):   # (08:30 UTC) the same week
        receive(app, when)
    CaseView(tenants, tree["city"][0]).catch_up()
    assert hot_spots(tenants, village, top=10) == (
        HotSpot("neighbour-dispute", village, "2026-W01", 3),
        HotSpot("neighbour-dispute", village, "2025-W52", 1),
    )
