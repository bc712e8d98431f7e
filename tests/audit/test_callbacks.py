"""Callbacks (回访): a reproducible sample, results as events, and what they count for."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from loop_support import MARCH, full_loop, receive
from openpyxl import load_workbook
from psycopg.conninfo import make_conninfo
from support import MASTER_KEY

from audit.callbacks import CallbackResults, record_callback, sample
from audit.chain import AuditError
from audit.history import history
from domain import IllegalTransition, ValidationError, tenant_of
from domain.calendar import CHINA
from domain.case import CallbackResult
from projections.kpis import kpis
from projections.queries import Period
from projections.views import CaseView
from tenants.center import CaseNotFound
from tenants.service import Tenants
from zongzhi.cli import main
from zongzhi.servers import DATABASE_URL

START = datetime(2026, 3, 1, tzinfo=CHINA)
APRIL = datetime(2026, 4, 1, tzinfo=CHINA)


def month(tenants: Tenants, centers: list[str], per_center: int = 3) -> list[UUID]:
    """Closed cases spread over March in each center."""
    return [full_loop(tenants.center(code), MARCH[(i * per_center + j) % len(MARCH)])
            for i, code in enumerate(centers) for j in range(per_center)]


def test_the_same_inputs_draw_the_same_sample_and_another_period_another(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    # Given twelve cases closed in March in a county's subtree, and one in April
    county = city_tree["county"][0]
    closed = month(tenants, [county, *city_tree["township"], city_tree["village"][0]])
    full_loop(tenants.center(county), APRIL + timedelta(days=1))

    # When two inspectors draw 4 with the same scope, period and salt (one writing
    # the period in UTC)
    first = sample(tenants, county, START, APRIL, 4, salt="2026-Q1")
    second = sample(tenants, county, START.astimezone(UTC), APRIL.astimezone(UTC), 4,
                    salt="2026-Q1")
    # Then they get the same cases, drawn from March's closed cases only
    assert first.population == len(closed) == 12
    assert [c.case_id for c in first.cases] == [c.case_id for c in second.cases]
    assert len(first.cases) == 4 and {c.case_id for c in first.cases} <= set(closed)
    # ... and anyone can recompute the draw from the documented formula
    seed = hashlib.sha256("\n".join((
        "zongzhi-callback-sample/1", county, START.astimezone(UTC).isoformat(),
        APRIL.astimezone(UTC).isoformat(), "2026-Q1")).encode()).digest()
    ranked = sorted(closed, key=lambda c: hashlib.sha256(seed + c.bytes).hexdigest())
    assert [c.case_id for c in first.cases] == ranked[:4]

    # When the period (or the salt) differs, the same population is drawn in another order
    everyone = sample(tenants, county, START, APRIL, 12, salt="2026-Q1")
    wider = sample(tenants, county, START - timedelta(days=28), APRIL, 12, salt="2026-Q1")
    salted = sample(tenants, county, START, APRIL, 12, salt="2026-Q2")
    assert {c.case_id for c in wider.cases} == {c.case_id for c in everyone.cases}
    assert [c.case_id for c in wider.cases] != [c.case_id for c in everyone.cases]
    assert [c.case_id for c in salted.cases] != [c.case_id for c in everyone.cases]
    # ... and a narrower period draws only from the cases it holds
    early = sample(tenants, county, START, MARCH[5], 12, salt="2026-Q1")
    assert 0 < early.population < 12
    assert all(c.closed_at < MARCH[5] for c in early.cases)


def test_a_callback_result_is_an_event_in_the_cases_center(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    # Given a closed village case
    village = tenants.center(city_tree["village"][0])
    case_id = full_loop(village, MARCH[0])
    at = MARCH[3]
    # When an inspector of the county records that the party was reached and is not satisfied
    case = record_callback(tenants, case_id, CallbackResult.REACHED, False, "说问题又出现了",
                           "inspector-1", at, scope=city_tree["county"][0])
    # Then the case holds a CallbackRecorded event saying who, when, what and why
    last = village.case_events(case_id)[-1]
    assert type(last).__name__ == "CallbackRecorded"
    assert (last.by, last.at, last.result, last.satisfied, last.note) == \
        ("inspector-1", at, CallbackResult.REACHED, False, "说问题又出现了")
    assert [(c.by, c.satisfied) for c in case.callbacks] == [("inspector-1", False)]
    assert case.status.value == "closed"  # the callback does not reopen it
    # ... in the case's own center's history, and the sample shows it was called back
    [entry] = history(tenants, case_id=case_id, types=["CallbackRecorded"])
    assert entry.by == "inspector-1" and entry.why == "说问题又出现了"
    drawn = sample(tenants, village.tenant, START, APRIL, 5)
    assert [(c.callbacks, c.satisfied) for c in drawn.cases] == [(1, False)]


def test_a_dissatisfied_callback_counts_as_a_repeat_complaint(
        tenants: Tenants, city_tree: dict[str, list[str]], city: str) -> None:
    # Given four closed cases of a township, as the KPIs count them
    township = tenants.center(city_tree["township"][0])
    cases = [full_loop(township, MARCH[i]) for i in range(4)]
    view, results = CaseView(tenants, city), CallbackResults(tenants, city)

    def repeat_rate() -> tuple[int, int]:
        view.catch_up()
        results.catch_up()
        rate = kpis(tenants, township.tenant, APRIL, period=Period(START, APRIL))
        return rate.repeat_complaint_rate.numerator, rate.repeat_complaint_rate.denominator

    assert repeat_rate() == (0, 4)
    # When callbacks find one party satisfied and one not reachable
    record_callback(tenants, cases[0], CallbackResult.REACHED, True, "", "inspector-1",
                    MARCH[6])
    record_callback(tenants, cases[1], CallbackResult.UNREACHABLE, None, "无人接听",
                    "inspector-1", MARCH[6])
    # Then the figure does not move
    assert repeat_rate() == (0, 4)
    # When one party says it is not satisfied (twice: it counts once)
    record_callback(tenants, cases[2], CallbackResult.REACHED, False, "没解决", "inspector-1",
                    MARCH[6])
    record_callback(tenants, cases[2], CallbackResult.REACHED, False, "还是没解决",
                    "inspector-2", MARCH[7])
    # Then that case counts as a repeat complaint
    assert repeat_rate() == (1, 4)


def test_a_callback_is_refused_on_an_open_unknown_or_foreign_case_and_nothing_is_written(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    [first, second] = city_tree["township"]
    app = tenants.center(first)
    open_case = receive(app, MARCH[0])
    closed = full_loop(app, MARCH[1])
    with pytest.raises(IllegalTransition, match="only on a closed case; this one is received"):
        record_callback(tenants, open_case.id, CallbackResult.REACHED, True, "", "i", MARCH[2])
    unknown = UUID(int=open_case.id.int ^ 1)
    with pytest.raises(CaseNotFound):
        record_callback(tenants, unknown, CallbackResult.REACHED, True, "", "i", MARCH[2])
    with pytest.raises(AuditError, match=f"inside the inspector's subtree {second}"):
        record_callback(tenants, closed, CallbackResult.REACHED, True, "", "i", MARCH[3],
                        scope=second)
    with pytest.raises(ValidationError, match="says whether it is satisfied"):
        record_callback(tenants, closed, CallbackResult.REACHED, None, "", "i", MARCH[3])
    with pytest.raises(ValidationError, match="only a callback that reached the party"):
        record_callback(tenants, closed, CallbackResult.UNREACHABLE, False, "", "i", MARCH[3])
    with pytest.raises(ValidationError, match="time must not run backwards"):
        record_callback(tenants, closed, CallbackResult.REACHED, True, "", "i", MARCH[0])
    assert app.get_case(open_case.id).version == 1
    assert app.get_case(closed).callbacks == []


def test_a_sample_needs_a_sane_size_and_period(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    county = city_tree["county"][0]
    with pytest.raises(AuditError, match="1 to 5000 cases"):
        sample(tenants, county, START, APRIL, 0)
    with pytest.raises(AuditError, match="starts before it ends"):
        sample(tenants, county, APRIL, START, 5)


@pytest.fixture
def configured(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line's environment over the session's database (its own pool)."""
    monkeypatch.setenv(DATABASE_URL, make_conninfo(database_url, application_name="audit2-cli"))
    monkeypatch.setenv("ZONGZHI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ZONGZHI_MASTER_KEY", base64.urlsafe_b64encode(MASTER_KEY).decode())


def test_the_command_line_samples_records_inspects_and_writes_spreadsheets(
        configured: None, tenants: Tenants, city_tree: dict[str, list[str]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Given closed cases in a county, one of them never confirmed by the party
    county = city_tree["county"][0]
    closed = month(tenants, [county, city_tree["township"][0]], per_center=2)
    planted = full_loop(tenants.center(county), MARCH[9], confirm=False)
    period = ["--scope", county, "--from", START.isoformat(), "--to", APRIL.isoformat()]

    # When an inspector draws a sample twice, the same cases are listed
    assert main(["audit", "callbacks", "sample", *period, "--size", "3", "--salt", "s"]) == 0
    first = capsys.readouterr().out
    assert main(["audit", "callbacks", "sample", *period, "--size", "3", "--salt", "s"]) == 0
    assert capsys.readouterr().out == first
    assert first.splitlines()[0].endswith(f"3 of {len(closed) + 1} closed cases")
    # ... records a callback on one of them
    picked = UUID(first.splitlines()[1].split()[1])
    assert main(["audit", "callbacks", "record", "--case", str(picked), "--result", "reached",
                 "--satisfied", "no", "--note", "没解决", "--by", "inspector-1",
                 "--at", MARCH[15].isoformat(), "--scope", county]) == 0
    assert "callback recorded (reached, satisfied no)" in capsys.readouterr().out
    assert tenants.center(tenant_of(picked) or "").get_case(picked).callbacks[0].satisfied \
        is False
    # ... and a bad one is refused with one message and status 2
    assert main(["audit", "callbacks", "record", "--case", str(picked), "--result", "reached",
                 "--by", "inspector-1", "--at", MARCH[16].isoformat()]) == 2
    assert "says whether it is satisfied" in capsys.readouterr().err

    # When the county is inspected, with the spreadsheet
    out = tmp_path / "inspection.xlsx"
    assert main(["audit", "inspect", *period, "--xlsx", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "MISSING_CONFIRMATION" in printed and f"{len(closed) + 1} closed cases inspected, " \
        "1 violations" in printed
    violations = load_workbook(out, read_only=True)["违规明细 Violations"]
    [row] = list(violations.iter_rows(min_row=3, values_only=True))
    assert (row[1], row[5]) == (str(planted), "MISSING_CONFIRMATION")
    # ... and its KPIs (the dissatisfied callback is a repeat complaint)
    CaseView(tenants, county[:4]).catch_up()
    sheet = tmp_path / "kpis.xlsx"
    assert main(["audit", "kpis", *period, "--xlsx", str(sheet)]) == 0
    capsys.readouterr()
    kpi_rows = list(load_workbook(sheet, read_only=True)["考核指标 KPIs"].iter_rows(
        min_row=3, values_only=True))
    assert (kpi_rows[0][0], kpi_rows[0][7], kpi_rows[0][8]) == (county, 1, len(closed) + 1)
