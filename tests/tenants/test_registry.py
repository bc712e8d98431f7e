"""The tenant registry on real PostgreSQL: import, idempotence, changes as
events, and bad division files rejected whole."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import psycopg
import pytest
from support import ROOT, write_divisions

from domain import tenant_of
from tenants.divisions import DivisionDataError
from tenants.registry import UnknownTenant
from tenants.service import Tenants

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def registry_position(tenants: Tenants) -> int:
    return tenants.registry.recorder.max_notification_id() or 0


def relation_count(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_class").fetchone()
    assert row is not None
    return int(row[0])


def test_a_real_county_imports_with_its_tree_and_reimport_changes_nothing(
        tenants: Tenants) -> None:
    report = tenants.import_divisions(ROOT / "data" / "divisions", "330782", "importer", NOW)
    yiwu = tenants.registry.get("330782")
    assert yiwu.name == "义乌市" and yiwu.tier.value == "county" and yiwu.parent == "3307"
    assert tenants.registry.get("3307").name == "金华市"  # the scope's ancestors come along
    townships = tenants.registry.children("330782")
    assert len(townships) > 5 and all(t.tier.value == "township" for t in townships)
    assert report.registered == len(tenants.registry.subtree("330782")) + 1

    position = registry_position(tenants)
    again = tenants.import_divisions(ROOT / "data" / "divisions", "330782", "importer", NOW)
    assert again.registered == again.renamed == again.retired == 0
    assert registry_position(tenants) == position  # not a single event written


def test_renames_and_retirements_become_events_not_overwrites(
        tenants: Tenants, city: str, tmp_path: Path) -> None:
    tree = write_divisions(tmp_path, city)
    tenants.import_divisions(tmp_path, city, "importer", NOW)
    village, gone = tree["village"][0], tree["village"][1]
    villages = tmp_path / "villages.csv"
    lines = villages.read_text(encoding="utf-8").splitlines()
    lines = [line.replace(f'{village},"', f'{village},"新名') for line in lines
             if not line.startswith(gone)]
    villages.write_text("\n".join(lines) + "\n", encoding="utf-8")

    report = tenants.import_divisions(tmp_path, city, "importer", NOW)

    assert (report.renamed, report.retired, report.registered) == (1, 1, 0)
    assert tenants.registry.get(village).name.startswith("新名")
    assert tenants.registry.get(gone).retired
    topics = [n.topic for n in tenants.registry.recorder.select_notifications(
        start=None, limit=1_000_000) if n.originator_id in {
            tenants.registry._center(village).id, tenants.registry._center(gone).id}]
    assert topics.count("domain.registry:Center.Renamed") == 1
    assert topics.count("domain.registry:Center.Retired") == 1


def test_provisioning_creates_no_table_per_tenant(
        tenants: Tenants, database_url: str, city: str, tmp_path: Path) -> None:
    write_divisions(tmp_path / "a", city, counties=1, townships=1, villages=1)
    tenants.import_divisions(tmp_path / "a", city, "importer", NOW)
    before = relation_count(database_url)
    write_divisions(tmp_path / "b", city, counties=3, townships=4, villages=5)
    report = tenants.import_divisions(tmp_path / "b", city, "importer", NOW)
    assert report.registered > 60
    assert relation_count(database_url) == before


@pytest.mark.parametrize(("file", "extra_row", "message"), [
    ("villages.csv", '{c}01777001,"孤村",{c}01777,61,{c},{c}01', "has no parent {c}01777"),
    ("townships.csv", "123,bad", "2 fields, the header has 5"),
    ("counties.csv", '{c}01,"另一个县",{c},61', "is '另一个县' here but '测试县1'"),
    ("villages.csv", "abc,x,y,z,w,v", "'abc' is not a 12-digit village code"),
])
def test_bad_division_files_name_the_row_and_import_nothing(
        tenants: Tenants, city: str, tmp_path: Path, file: str, extra_row: str,
        message: str) -> None:
    write_divisions(tmp_path, city)
    with (tmp_path / file).open("a", encoding="utf-8") as f:
        f.write(extra_row.format(c=city) + "\n")
    message = message.format(c=city)
    position = registry_position(tenants)

    with pytest.raises(DivisionDataError, match=r"nothing imported") as raised:
        tenants.import_divisions(tmp_path, city, "importer", NOW)

    assert any(message in p for p in raised.value.problems), raised.value.problems
    assert any(p.startswith(f"{file}:") for p in raised.value.problems)
    assert registry_position(tenants) == position
    with pytest.raises(UnknownTenant):
        tenants.registry.get(city)


def test_a_file_without_its_columns_is_rejected_by_name(
        tenants: Tenants, city: str, tmp_path: Path) -> None:
    write_divisions(tmp_path, city)
    path = tmp_path / "cities.csv"
    path.write_text(path.read_text(encoding="utf-8").replace("code,name", "id,title", 1),
                    encoding="utf-8")
    with pytest.raises(DivisionDataError, match=r"cities.csv:1: header lacks column\(s\) code"):
        tenants.import_divisions(tmp_path, city, "importer", NOW)


def test_an_unknown_scope_or_tenant_code_is_a_clear_error(
        tenants: Tenants, tmp_path: Path, city: str) -> None:
    write_divisions(tmp_path, city)
    with pytest.raises(DivisionDataError, match="scope 1999 is not in the division files"):
        tenants.import_divisions(tmp_path, "1999", "importer", NOW)
    with pytest.raises(DivisionDataError, match="not a province, city, county"):
        tenants.import_divisions(tmp_path, "12345", "importer", NOW)
    with pytest.raises(UnknownTenant, match="no center is registered under code '199901'"):
        tenants.center("199901")


def test_the_centers_table_rebuilds_from_the_events_alone(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    before = {c.code: c for c in tenants.registry.all()}
    count = tenants.registry.rebuild_centers()
    after = {c.code: c for c in tenants.registry.all()}
    assert count == len(before)
    assert after == before


def test_an_import_cut_short_leaves_whole_centers_and_a_rerun_completes_it(
        tenants: Tenants, city: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = write_divisions(tmp_path, city, counties=3, townships=6, villages=30)  # > 1 batch
    everything = [code for codes in tree.values() for code in codes]
    real_save = tenants.registry.save_centers
    calls = []

    def crash_after_first_batch(centers: object) -> None:
        calls.append(1)
        if len(calls) > 1:
            raise ConnectionError("process killed between two batches")
        real_save(centers)  # type: ignore[arg-type]

    monkeypatch.setattr(tenants.registry, "save_centers", crash_after_first_batch)
    with pytest.raises(ConnectionError):
        tenants.import_divisions(tmp_path, city, "importer", NOW)
    monkeypatch.undo()

    tenants.registry.refresh()
    registered = {c.code for c in tenants.registry.subtree(city)}
    assert 0 < len(registered) < len(everything)
    recorded = {tenant_of(UUID(str(n.originator_id))) for n in
                tenants.registry.recorder.select_notifications(
                    start=None, limit=1_000_000, topics=["domain.registry:Center.Registered"])}
    assert {code for code in recorded if code and code.startswith(city)} == registered
    report = tenants.import_divisions(tmp_path, city, "importer", NOW)
    assert report.registered == len(everything) - len(registered)
    assert {c.code for c in tenants.registry.subtree(city)} == set(everything)


def test_a_retirement_by_another_process_is_seen_within_the_refresh_period(
        tenants: Tenants, database_url: str, city_tree: dict[str, list[str]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from support import MASTER_KEY

    import tenants.registry as registry_module

    village = city_tree["village"][0]
    assert not tenants.registry.get(village).retired  # this process holds its copy
    other = Tenants(database_url, MASTER_KEY)  # another process's registry
    other.registry.retire(village, "merged into a neighbour", "admin", NOW)
    assert other.registry.get(village).retired
    assert not tenants.registry.get(village).retired  # within the period: the old copy

    monkeypatch.setattr(registry_module, "REFRESH_AFTER", 0.0)  # the period has passed
    assert tenants.registry.get(village).retired
    assert not tenants.is_active(village)


def test_children_and_subtrees_follow_the_codes(tenants: Tenants,
                                                city_tree: dict[str, list[str]]) -> None:
    city, county = city_tree["city"][0], city_tree["county"][0]
    every = [c.code for c in tenants.registry.all()]
    assert every == sorted(every)
    assert [c.code for c in tenants.registry.subtree(county)] == sorted(
        code for code in every if code.startswith(county))
    assert [c.code for c in tenants.registry.children(county)] == city_tree["township"]
    assert [c.code for c in tenants.registry.children(city)] == [county]
    assert tenants.registry.children(city_tree["village"][0]) == []
    assert tenants.registry.subtree(city + "9") == []


def test_a_center_is_answered_from_memory_only_when_that_needs_no_io(
        tenants: Tenants, city_tree: dict[str, list[str]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import tenants.registry as registry_module

    registry = tenants.registry
    village = city_tree["village"][0]
    registry.refresh()
    assert registry.cached(village) is None  # not loaded yet: get() would read
    assert registry.get(village) == registry.cached(village)
    assert registry.cached("339999") is None  # not held: get() looks it up
    county = city_tree["county"][0]
    assert registry.cached_children(county) is None  # the index of children is not built
    assert registry.children(county) == registry.cached_children(county) != []

    # another thread is reading the table again: the memory may be about to change
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with registry._lock:
            holding.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(5)
    try:
        assert registry.cached(village) is None
        assert registry.cached_children(county) is None
    finally:
        release.set()
        holder.join()
    assert registry.cached(village) is not None

    monkeypatch.setattr(registry_module, "REFRESH_AFTER", 0.0)  # due for a refresh
    assert registry.cached(village) is None and registry.cached_children(county) is None
