"""Nothing assumes one node: Zhejiang's 11 cities' log groups split over two real
PostgreSQL servers, with hand-overs, projections and audit verification on each.

The registry and the keys stay on the primary; cities placed elsewhere keep their
events, read models, router position and audit chain on their own server
(``Tenants(placement=...)``, ``ZONGZHI_PLACEMENT`` for processes).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from handover_support import Clock, drain, reload, triaged
from psycopg.conninfo import make_conninfo
from support import MASTER_KEY, ROOT, product_env, write_divisions

from audit.chain import Chainer
from audit.checkpoints import write_checkpoints
from audit.verify import verify_tenant
from domain import Assignee, AssigneeKind, Outcome, Status
from flows.router import Router
from projections.kpis import kpis
from projections.queries import cases, children_figures
from projections.runner import catch_up_all
from tenants.persistence import PLACEMENT
from tenants.service import Tenants
from zongzhi.servers import DATABASE_URL, Servers, free_port

pytestmark = pytest.mark.slow

CITIES = [f"33{n:02d}" for n in range(1, 12)]  # Zhejiang's 11 cities
ELSEWHERE = set(CITIES[::2])  # 3301, 3303, ... on the second server
UNIT = Assignee(AssigneeKind.UNIT, "justice-office", lead=True)


def _fresh_database(server_url: str) -> str:
    name = f"zz_two_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return make_conninfo(server_url, dbname=name)


def _drop(url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    server = make_conninfo(url, dbname="postgres")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def two_servers(database_url: str) -> Iterator[tuple[str, str]]:
    """A fresh database on the session's server and one on a second embedded
    server of its own (started even when ``ZONGZHI_DATABASE_URL`` names one)."""
    base = Path(os.environ.get("ZONGZHI_TEST_DATA_DIR") or ROOT / ".zongzhi" / "test")
    primary_server = make_conninfo(database_url, dbname="postgres")
    saved = os.environ.pop(DATABASE_URL, None)
    try:
        second = Servers(data_dir=base / "second", nats_port=free_port()).start(nats=False)
    finally:
        if saved is not None:
            os.environ[DATABASE_URL] = saved
    a, b = _fresh_database(primary_server), _fresh_database(second.database_url)
    yield a, b
    for url in (a, b):
        _drop(url)
    second.stop()


@pytest.fixture(scope="module")
def placed(two_servers: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Tenants, dict[str, dict[str, list[str]]]]]:
    a, b = two_servers
    tenants = Tenants(a, MASTER_KEY, placement={c: b for c in ELSEWHERE})
    trees = {}
    for city in CITIES:
        directory = tmp_path_factory.mktemp(f"div{city}")
        trees[city] = write_divisions(directory, city)
        tenants.import_divisions(directory, city, "test", datetime.now(UTC))
    yield tenants, trees
    tenants.close()


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT schemaname || '.' || tablename FROM pg_tables "
                            "WHERE schemaname LIKE 'lg\\_%' OR schemaname = 'zz_keys'")
        return {r[0] for r in rows}


def _escalate_resolve_and_close(tenants: Tenants, tree: dict[str, list[str]]) -> list[object]:
    """A village case climbs to the county, is resolved there, and its closure in
    the village closes the township's and the county's cases."""
    city = tree["city"][0]
    village, township, county = tree["village"][0], tree["township"][0], tree["county"][0]
    router, clock = Router(tenants, city), Clock()
    v_app, t_app, c_app = (tenants.center(x) for x in (village, township, county))
    origin = triaged(v_app, clock)
    origin = v_app.escalate_case(origin.id, township, "村级无法调处", "director-v", clock())
    drain(router)
    t_case = t_app.get_case(origin.links[0].case_id)
    t_case = t_app.escalate_case(t_case.id, county, "涉及多个乡镇", "director-t", clock())
    drain(router)
    c_case = c_app.get_case(t_case.links[0].case_id)
    assert c_case.parties[0].phone is not None
    assert c_case.parties[0].phone.text == "13912345678"  # re-encrypted with the county's key
    c_app.dispatch_case(c_case.id, [UNIT], "dispatcher-c", clock())
    c_app.accept_case(c_case.id, UNIT.ref, "officer-c", clock())
    c_app.resolve_case(c_case.id, Outcome.MEDIATED, "签订调解协议", "officer-c", clock())
    drain(router)
    v_app.give_feedback(origin.id, "已调解", "clerk-v", clock())
    v_app.confirm_case(origin.id, "party", clock())
    v_app.evaluate_case(origin.id, 5, "满意", "party", clock())
    v_app.close_case(origin.id, "clerk-v", clock())
    drain(router)
    return [reload(tenants, c) for c in (origin, t_case, c_case)]


def test_each_citys_log_group_lives_only_on_its_own_server(
        two_servers: tuple[str, str],
        placed: tuple[Tenants, dict[str, dict[str, list[str]]]]) -> None:
    a, b = two_servers
    on_a, on_b = _tables(a), _tables(b)
    for city in CITIES:
        here, there = (on_b, on_a) if city in ELSEWHERE else (on_a, on_b)
        assert f"lg_{city}.events" in here and f"lg_{city}.events" not in there
    assert "lg_registry.events" in on_a and "lg_registry.events" not in on_b
    assert "zz_keys.tenant_keys" in on_a and "zz_keys.tenant_keys" not in on_b


def test_hand_overs_projections_and_audit_are_correct_on_both_servers(
        two_servers: tuple[str, str],
        placed: tuple[Tenants, dict[str, dict[str, list[str]]]]) -> None:
    tenants, trees = placed
    # given: in every city, a case escalated village -> township -> county and back
    closed = {city: _escalate_resolve_and_close(tenants, trees[city]) for city in CITIES}
    for city, chain in closed.items():
        assert [c.status for c in chain] == [Status.CLOSED] * 3, city  # type: ignore[attr-defined]

    # when: the read models catch up on each city's own server
    covered = catch_up_all(tenants, CITIES)
    assert {c.city for c in covered} == set(CITIES)
    for city in CITIES:
        tree = trees[city]
        county = tree["county"][0]
        # then: the views answer through the placement, and count the matter once
        page = cases(tenants, city, subtree=True)
        assert len(page.items) == 3 and all(r.status == "closed" for r in page.items)
        figures = {c.code: c.figures for c in children_figures(tenants, city, datetime.now(UTC))}
        assert figures[county].received == 1 and figures[county].closed == 1
        assert kpis(tenants, city, datetime.now(UTC)).resolution_rate.value == 1.0

    # and: every tenant's chain verifies against checkpoints signed on its server
    key = Ed25519PrivateKey.generate()
    for city in CITIES:
        Chainer(tenants, city).catch_up()
        assert write_checkpoints(tenants, city, datetime.now(UTC), key)
        for tenant in (trees[city]["village"][0], trees[city]["township"][0],
                       trees[city]["county"][0]):
            report = verify_tenant(tenants, tenant, key.public_key())
            assert report.ok and report.events > 0 and report.checkpoints == 1, report.lines()


def test_verify_reads_the_placed_server_and_catches_an_edit_there(
        two_servers: tuple[str, str],
        placed: tuple[Tenants, dict[str, dict[str, list[str]]]]) -> None:
    tenants, trees = placed
    _, b = two_servers
    city = sorted(ELSEWHERE)[0]
    village = trees[city]["village"][1]
    clock = Clock()
    app = tenants.center(village)
    case = triaged(app, clock, phone="13800000001")
    Chainer(tenants, city).catch_up()
    key = Ed25519PrivateKey.generate()
    write_checkpoints(tenants, city, datetime.now(UTC), key)
    assert verify_tenant(tenants, village, key.public_key()).ok

    with psycopg.connect(b) as conn:  # an edit on the server that holds the city
        where = "WHERE tenant = %s AND originator_id = %s AND originator_version = 2"
        row = conn.execute(f"SELECT state FROM lg_{city}.events {where}",
                           (village, case.id)).fetchone()
        assert row is not None
        forged = bytes(row[0]).replace(b'"by":"dispatcher-1"', b'"by":"dispatcher-9"')
        assert forged != bytes(row[0])
        conn.execute(f"UPDATE lg_{city}.events SET state = %s {where}",
                     (forged, village, case.id))
    broken = verify_tenant(tenants, village, key.public_key()).broken
    assert broken is not None and broken.kind == "edited"
    assert broken.originator_id == case.id and broken.originator_version == 2


def test_processes_follow_the_placement_from_the_environment(
        two_servers: tuple[str, str],
        placed: tuple[Tenants, dict[str, dict[str, list[str]]]]) -> None:
    tenants, trees = placed
    a, b = two_servers
    city = sorted(ELSEWHERE)[1]
    app = tenants.center(trees[city]["township"][1])
    case = triaged(app, Clock(), phone="13800000002")
    env = {**product_env(a), PLACEMENT: json.dumps({c: b for c in ELSEWHERE})}
    done = subprocess.run([sys.executable, "-m", "zongzhi.cli", "projections", "catch-up",
                           f"--city={city}"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    rows = cases(tenants, city, subtree=True).items
    assert case.id in {r.case_id for r in rows}

    bad = {**env, PLACEMENT: '{"33": "postgresql://x"}'}
    refused = subprocess.run([sys.executable, "-m", "zongzhi.cli", "projections", "catch-up",
                              f"--city={city}"], env=bad, capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode != 0
    assert "ZONGZHI_PLACEMENT must map 4-digit city codes" in refused.stderr
