"""Reading official division files (统计用区划代码) into centers.

The format is the one shipped in ``data/divisions/`` (any province): four CSV
files, ``cities.csv``, ``counties.csv``, ``townships.csv``, ``villages.csv``,
each with ``code`` and ``name`` and a column naming the parent. Every row is
checked before anything is written; all problems are reported together, each
naming its file and line.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from domain import Tier, ValidationError, is_within, parent_of

#: file, tier, the column naming the parent (None: a city's parent is its province)
FILES: list[tuple[str, Tier, str | None]] = [
    ("cities.csv", Tier.CITY, None),
    ("counties.csv", Tier.COUNTY, "cityCode"),
    ("townships.csv", Tier.TOWNSHIP, "areaCode"),
    ("villages.csv", Tier.VILLAGE, "streetCode"),
]
_LENGTH = {Tier.CITY: 4, Tier.COUNTY: 6, Tier.TOWNSHIP: 9, Tier.VILLAGE: 12}
MAX_REPORTED = 20


class DivisionDataError(ValidationError):
    """The division files have problems; nothing was imported."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = "\n  ".join(problems[:MAX_REPORTED])
        hidden = len(problems) - MAX_REPORTED
        more = f"\n  ... and {hidden} more" if hidden > 0 else ""
        super().__init__(f"{len(problems)} problem(s) in the division files, nothing imported:\n"
                         f"  {shown}{more}")


@dataclass(frozen=True)
class Division:
    code: str
    name: str
    tier: Tier
    where: str  # file:line, for messages


def read_divisions(directory: Path, scope: str | None = None,
                   known: set[str] = frozenset()) -> dict[str, Division]:  # type: ignore[assignment]
    """Every division in ``directory`` inside ``scope`` (a province, city or
    county code; None for all), with the ancestors of the scope. ``known``
    codes (already registered) may serve as parents of the rows read."""
    problems: list[str] = []
    found: dict[str, Division] = {}
    if scope is not None and (not scope.isdigit() or len(scope) not in (2, 4, 6, 9)):
        raise DivisionDataError([f"scope {scope!r} is not a province, city, county or "
                                 "township code"])
    for filename, tier, parent_column in FILES:
        path = directory / filename
        if not path.exists():
            problems.append(f"{path}: file missing")
            continue
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            needed = ["code", "name"] + ([parent_column] if parent_column else [])
            missing = [c for c in needed if c not in header]
            if missing:
                problems.append(f"{path}:1: header lacks column(s) {', '.join(missing)}")
                continue
            index = {c: header.index(c) for c in needed}
            for line, row in enumerate(reader, start=2):
                where = f"{filename}:{line}"
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    problems.append(f"{where}: {len(row)} fields, the header has {len(header)}")
                    continue
                code, name = row[index["code"]].strip(), row[index["name"]].strip()
                if not code.isdigit() or len(code) != _LENGTH[tier] or code[0] == "0":
                    problems.append(f"{where}: code {code!r} is not a {_LENGTH[tier]}-digit "
                                    f"{tier.value} code")
                    continue
                if not name:
                    problems.append(f"{where}: division {code} has no name")
                    continue
                named_parent = row[index[parent_column]].strip() if parent_column else None
                if parent_column is not None and named_parent != parent_of(code):
                    problems.append(f"{where}: {parent_column} {named_parent!r} is "
                                    f"not the prefix {parent_of(code)} of code {code}")
                    continue
                if scope is not None and not (is_within(code, scope) or is_within(scope, code)):
                    continue
                previous = found.get(code)
                if previous is not None:
                    if previous.name != name:
                        problems.append(f"{where}: code {code} is {name!r} here but "
                                        f"{previous.name!r} at {previous.where}")
                    continue
                found[code] = Division(code, name, tier, where)
    for division in found.values():
        parent = parent_of(division.code)
        if parent is not None and parent not in found and parent not in known:
            problems.append(f"{division.where}: {division.tier.value} {division.code} "
                            f"({division.name}) has no parent {parent} in the files or registry")
    if scope is not None and len(scope) > 2 and scope not in found and not problems:
        problems.append(f"scope {scope} is not in the division files")
    if problems:
        raise DivisionDataError(problems)
    return found
