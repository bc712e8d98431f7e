"""The clock: urges overdue cases up the ladder and escalates what stays overdue.

The scheduler reads the cases whose next step is due from the case index
(``next_step_at``), asks the supervision policy what to issue, and issues it
as a command in the case's own center. Idempotent by construction: the policy
decides from the case's recorded urgings, and a command saved against a case
that changed meanwhile fails (optimistic concurrency) and is decided again
next tick — so two schedulers, or one run twice, issue each instrument once.
Time is a parameter: tests run weeks in a loop of ticks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from psycopg.sql import SQL, Identifier

from domain import Case, DomainError
from domain.supervision import SCHEDULER, Step, next_step
from projections.cases import CaseIndex
from tenants.center import CaseNotFound, CenterApp, ConcurrentUpdate
from tenants.service import Tenants

log = logging.getLogger(__name__)

BATCH = 500


@dataclass(frozen=True)
class Issued:
    """One step the clock took: which case, what, at what time."""

    case_number: str
    step: Step
    at: datetime


class Scheduler:
    """The clock of one city's log group."""

    def __init__(self, tenants: Tenants, city: str, index: CaseIndex | None = None) -> None:
        self.tenants = tenants
        self.city = city
        self.index = index or CaseIndex(tenants, city)
        self.due_statement = SQL(
            "SELECT case_id, tenant FROM {0}.case_index WHERE next_step_at <= %s "
            "ORDER BY next_step_at, case_id LIMIT %s").format(Identifier(self.index.schema))

    def tick(self, now: datetime) -> list[Issued]:
        """Bring the index up to date, then issue every step due at ``now``."""
        self.index.catch_up()
        with self.index.view.get_connection() as conn:
            due = conn.execute(self.due_statement, (now, BATCH)).fetchall()
        calendar = self.tenants.calendar()
        issued = []
        for row in due:
            app = self.tenants.center(row["tenant"])
            try:
                case = app.get_case(row["case_id"])
                step = next_step(case, now, calendar)
                if step is None:
                    continue
                at = max(now, case.last_at)
                self._issue(app, case, step, at)
            except (ConcurrentUpdate, CaseNotFound):
                continue  # changed meanwhile: decided again at the next tick
            except DomainError as e:
                log.warning("scheduler %s: %s not issued on %s: %s", self.city, step,
                            row["case_id"], e)
                continue
            issued.append(Issued(case.case_number, step, at))
        return issued

    def _issue(self, app: CenterApp, case: Case, step: Step, at: datetime) -> None:
        """Apply the step to the very state it was decided on and save that: had the
        case changed since it was read (another scheduler issued the step), the save
        fails. Going through ``urge_case``/``escalate_case`` would re-read the case
        and apply a stale decision to the newer state: a second prompt letter."""
        if step.instrument is None:
            assert step.to_tenant is not None
            app.require_parent_active()
            case.escalate(step.to_tenant, step.reason, SCHEDULER, at)
        else:
            case.urge(step.instrument, step.responsible_unit, step.reason, SCHEDULER, at)
        app.save_case(case)


__all__ = ["Issued", "Scheduler"]
