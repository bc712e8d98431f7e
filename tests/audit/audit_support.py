"""Builders for the audit suites: a driven log, and tampering with it in SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg.rows import dict_row

from audit.chain import Chainer, genesis, link
from audit.checkpoints import write_checkpoints
from audit.verify import Report, export_tenant, verify_file, verify_tenant
from domain import Assignee, AssigneeKind, Channel, HandlingClass, Outcome, Party, Personal, Place
from domain import Severity as Sev
from tenants.service import Tenants

UNIT = Assignee(AssigneeKind.UNIT, "justice-office", lead=True)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass
class Log:
    tenants: Tenants
    city: str
    tenant: str
    cases: list[UUID]

    @property
    def schema(self) -> str:
        return f"lg_{self.city}"

    def connect(self) -> psycopg.Connection[dict[str, Any]]:
        return psycopg.connect(self.tenants.datastore.url, autocommit=True,
                               row_factory=dict_row)

    def rows(self) -> list[dict[str, Any]]:
        with self.connect() as conn:
            return conn.execute(
                f"SELECT * FROM {self.schema}.events WHERE tenant = %s "
                "ORDER BY tenant_position", (self.tenant,)).fetchall()

    def row(self, position: int) -> dict[str, Any]:
        return next(r for r in self.rows() if r["tenant_position"] == position)

    def chain(self) -> int:
        return Chainer(self.tenants, self.city).catch_up()

    def checkpoint(self, key: Ed25519PrivateKey, nats_url: str | None = None) -> int:
        self.chain()
        return len(write_checkpoints(self.tenants, self.city, datetime.now(UTC), key, nats_url))

    def verify(self, key: Ed25519PrivateKey, mode: str = "database", *, tmp: Path | None = None,
               witness: str | None = None) -> Report:
        public = key.public_key()
        if mode == "database":
            return verify_tenant(self.tenants, self.tenant, public, witness)
        assert tmp is not None
        path = tmp / f"{self.tenant}.jsonl"
        export_tenant(self.tenants, self.tenant, path, public)
        return verify_file(path, public, witness)

    def rechain(self, start: int) -> None:
        """Recompute the chain records from ``start`` on from the events as they
        now stand: what someone with write access to the database (but not the
        signing key) does to hide an edit."""
        rows = self.rows()
        with self.connect() as conn:
            prev = genesis(self.tenant) if start == 1 else bytes(conn.execute(
                f"SELECT hash FROM {self.schema}.audit_chain WHERE tenant = %s AND position = %s",
                (self.tenant, start - 1)).fetchone()["hash"])  # type: ignore[index]
            for r in rows:
                if r["tenant_position"] < start:
                    continue
                prev = link(prev, self.tenant, r["tenant_position"], r["originator_id"],
                            r["originator_version"], r["topic"], bytes(r["state"]))
                conn.execute(f"UPDATE {self.schema}.audit_chain SET hash = %s "
                             "WHERE tenant = %s AND position = %s",
                             (prev, self.tenant, r["tenant_position"]))
            conn.execute(f"UPDATE {self.schema}.audit_heads SET hash = %s WHERE tenant = %s",
                         (prev, self.tenant))


def party() -> Party:
    return Party(name=Personal("王小明"), phone=Personal("13912345678"),
                 id_number=Personal("330782199001011234"))


def drive(tenants: Tenants, city: str, tenant: str, cases: int, *, chain: bool = True) -> Log:
    """``cases`` cases of ``tenant`` through receive .. close (7-10 events each)."""
    app = tenants.center(tenant)
    at = T0
    ids: list[UUID] = []

    def tick() -> datetime:
        nonlocal at
        at += timedelta(minutes=7)
        return at

    for i in range(cases):
        case = app.receive_case(channel=Channel.GRID_PATROL, category="neighbour-dispute",
                                summary=f"第{i}户噪声扰民", parties=[party()],
                                place=Place(tenant, "某路1号"), by="clerk-1", at=tick())
        app.triage_case(case.id, Sev.YELLOW, HandlingClass.COMPLEX, "dispatcher-1", tick())
        app.dispatch_case(case.id, [UNIT], "dispatcher-1", tick())
        app.accept_case(case.id, UNIT.ref, "officer-1", tick())
        app.report_progress(case.id, "已联系双方", "officer-1", tick())
        if i % 3 != 2:
            app.resolve_case(case.id, Outcome.MEDIATED, "签订调解协议", "officer-1", tick())
            app.give_feedback(case.id, "已告知当事人", "clerk-1", tick())
        if i % 3 == 0:
            app.confirm_case(case.id, "party", tick())
            app.close_case(case.id, "clerk-1", tick())
        ids.append(case.id)
    log = Log(tenants, city, tenant, ids)
    if chain:
        log.chain()
    return log
