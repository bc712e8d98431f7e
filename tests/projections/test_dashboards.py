"""The upper tiers' dashboards: kept computed, exact at their instant, never
older than asked, dropped with a rebuilt view."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from view_support import NOW, Story, another_city, at, receive

from projections import dashboards
from projections.dashboards import DEFAULT_MAX_AGE, REFRESH_EVERY, compute, dashboard, refresh
from projections.kpis import Rate
from projections.runner import rebuild_all
from projections.views import CaseView
from tenants.service import Tenants


def test_a_kept_dashboard_equals_the_live_figures_at_its_instant(story: Story) -> None:
    # given the story's city with its dashboards refreshed at NOW
    written = refresh(story.tenants, story.city, NOW)
    assert written == 4  # the city, its county and two townships; villages are not kept
    for scope in (story.city, story.county, story.t1, story.t2):
        # when a dashboard is asked for within its age
        kept = dashboard(story.tenants, scope, NOW + timedelta(seconds=5))
        # then it is the snapshot, and it holds exactly the live figures of NOW
        live = compute(story.tenants, scope, NOW)
        assert not kept.live and kept.computed_at == NOW
        assert kept.kpis == live.kpis and kept.rollup == live.rollup
    t1 = dashboard(story.tenants, story.t1, NOW)
    assert t1.kpis.resolution_rate == Rate(3, 9, 3 / 9)  # as worked out in test_kpis
    assert t1.rollup.total.received == t1.kpis.matters == 10


def test_a_village_dashboard_is_computed_live_and_not_kept(story: Story) -> None:
    found = dashboard(story.tenants, story.v12, NOW)
    again = dashboard(story.tenants, story.v12, NOW + timedelta(seconds=1))
    assert found.live and again.live
    assert found.kpis.matters == 1  # J


def test_new_work_shows_after_a_refresh_and_never_later_than_the_max_age(
        tenants: Tenants, tmp_path: Path) -> None:
    tree = another_city(tenants, tmp_path)
    city, county, village = tree["city"][0], tree["county"][0], tree["village"][0]
    view, app = CaseView(tenants, city), tenants.center(village)
    receive(app, at(2, 9))
    view.catch_up()
    t = at(2, 10)
    refresh(tenants, city, t)
    assert dashboard(tenants, county, t).kpis.matters == 1

    # a second matter: the kept dashboard lags until the next refresh ...
    receive(app, at(2, 10, 5))
    view.catch_up()
    stale = dashboard(tenants, county, t + timedelta(seconds=10))
    assert not stale.live and stale.kpis.matters == 1
    assert refresh(tenants, city, t + timedelta(seconds=10)) == 0  # refreshed a moment ago
    later = t + REFRESH_EVERY
    assert refresh(tenants, city, later) == 4  # every kept scope: the city's view moved
    fresh = dashboard(tenants, county, later)
    assert not fresh.live and fresh.kpis.matters == 2 and fresh.computed_at == later

    # ... and never beyond the age asked for: then it is computed live
    receive(app, at(2, 10, 10))
    view.catch_up()
    assert dashboard(tenants, county, later + timedelta(seconds=1)).kpis.matters == 2
    beyond = dashboard(tenants, county, later + DEFAULT_MAX_AGE + timedelta(seconds=1))
    assert beyond.live and beyond.kpis.matters == 3
    zero = dashboard(tenants, county, later + DEFAULT_MAX_AGE + timedelta(seconds=2),
                     max_age=timedelta(0))
    assert zero.live


def test_a_rebuilt_view_drops_the_dashboards(tenants: Tenants, tmp_path: Path) -> None:
    tree = another_city(tenants, tmp_path)
    city, county = tree["city"][0], tree["county"][0]
    receive(tenants.center(tree["village"][0]), at(2, 9))
    CaseView(tenants, city).catch_up()
    refresh(tenants, city, at(2, 10))
    assert not dashboard(tenants, county, at(2, 10)).live

    rebuild_all(tenants, [city])

    again = dashboard(tenants, county, at(2, 10))
    assert again.live and again.kpis.matters == 1


def test_an_unreadable_snapshot_is_recomputed_not_served(
        tenants: Tenants, tmp_path: Path) -> None:
    tree = another_city(tenants, tmp_path)
    city, county = tree["city"][0], tree["county"][0]
    receive(tenants.center(tree["village"][0]), at(2, 9))
    CaseView(tenants, city).catch_up()
    refresh(tenants, city, at(2, 10))
    with psycopg.connect(tenants.datastore_for(city).url) as conn:  # an older release's shape
        conn.execute(f"UPDATE lg_{city}.dashboards SET body = '{{\"kpis\": {{}}}}'")

    found = dashboard(tenants, county, at(2, 10))

    assert found.live and found.kpis.matters == 1
    assert not dashboard(tenants, county, at(2, 10)).live  # kept again


def test_another_processs_newer_snapshot_is_read_within_a_second(
        tenants: Tenants, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = another_city(tenants, tmp_path)
    city, county, village = tree["city"][0], tree["county"][0], tree["village"][0]
    view, app = CaseView(tenants, city), tenants.center(village)
    receive(app, at(2, 9))
    view.catch_up()
    refresh(tenants, city, at(2, 10))
    clock = [1000.0]
    monkeypatch.setattr(dashboards, "_monotonic", lambda: clock[0])
    held = dashboard(tenants, county, at(2, 10))
    assert not held.live and held.kpis.matters == 1

    # when the projection worker (another process) keeps a newer snapshot: two matters
    receive(app, at(2, 9, 30))
    view.catch_up()
    newer = compute(tenants, county, at(2, 10, 1))
    body = json.dumps({"kpis": dashboards.encode(newer.kpis),
                       "rollup": dashboards.encode(newer.rollup)})
    with psycopg.connect(tenants.datastore_for(city).url) as conn:
        conn.execute(f"UPDATE lg_{city}.dashboards SET computed_at = %s, position = %s, "
                     "body = %s WHERE scope = %s",
                     (newer.computed_at, newer.position, body, county))

    # then this process serves the snapshot it read for up to a second, not asking again ...
    clock[0] += dashboards.RECHECK_S / 2
    assert dashboard(tenants, county, at(2, 10, 1)).computed_at == at(2, 10)
    # ... and the newer one after it
    clock[0] += dashboards.RECHECK_S / 2
    seen = dashboard(tenants, county, at(2, 10, 1))
    assert not seen.live and seen.computed_at == at(2, 10, 1) and seen.kpis.matters == 2
