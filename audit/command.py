"""``zongzhi audit``: chain, checkpoint, verify, export, history, as-of, public-key,
rotate-key;
for inspectors: inspect, callbacks sample|record, kpis (``--xlsx FILE`` writes the
spreadsheet as well).

``verify`` exits with status 1 when the log does not verify, printing the
first broken link; bad input exits with status 2 and one message.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from audit.callbacks import CallbackResults, record_callback, sample
from audit.chain import AuditError, Chainer
from audit.checkpoints import (
    KEYS_DIR,
    PublishedKey,
    TrustedKeys,
    deployment_keys,
    load_signing_key,
    parse_public_key,
    public_key_text,
    read_register,
    rotate_signing_key,
    write_checkpoints,
)
from audit.history import case_as_of, history
from audit.inspection import inspect
from audit.reports import KPI_COLUMNS, inspection_workbook, kpi_report, kpi_workbook
from audit.verify import Report, export_tenant, verify_file, verify_tenant
from domain import DomainError, tenant_of
from domain.calendar import CHINA
from domain.case import CallbackResult
from tenants.center import CaseNotFound
from tenants.registry import UnknownTenant

NATS_URL = "ZONGZHI_NATS_URL"


def _aware(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("give a time zone, e.g. 2026-03-02T09:00+08:00")
    return value


def add_parser(sub: Any) -> None:
    """Add ``audit`` and its actions to the ``zongzhi`` command line."""
    audit = sub.add_parser("audit", help="tamper evidence: chain, checkpoints, verify, history")
    actions = audit.add_subparsers(dest="action", required=True)

    chain = actions.add_parser("chain", help="chain every event not chained yet")
    chain.add_argument("--city", action="append", help="city (default: all)")
    chain.add_argument("--follow", action="store_true",
                       help="keep chaining as events arrive, until Ctrl-C")

    checkpoint = actions.add_parser("checkpoint",
                                    help="chain, then sign every tenant's head that moved")
    checkpoint.add_argument("--city", action="append", help="city (default: all)")
    checkpoint.add_argument("--witness", metavar="NATS_URL",
                            help=f"publish to this NATS JetStream (default ${NATS_URL})")

    verify = actions.add_parser("verify", help="verify a live tenant or an exported file")
    what = verify.add_mutually_exclusive_group(required=True)
    what.add_argument("--tenant", help="a center's code (reads the database)")
    what.add_argument("--file", type=Path, help="an export (offline: no database)")
    verify.add_argument("--witness", metavar="NATS_URL",
                        help="also check against the checkpoints this witness holds")
    verify.add_argument("--public-key", action="append", default=[],
                        help="a published key to trust (repeat for each key in use since "
                             "the log began; default: this deployment's keys)")
    verify.add_argument("--keys", type=Path, metavar="FILE",
                        help="a register of published keys, one '<key> <from> [<until>]' a line")

    export = actions.add_parser("export", help="write a tenant's full log as one file")
    export.add_argument("--tenant", required=True)
    export.add_argument("--out", type=Path, required=True)

    hist = actions.add_parser("history", help="a tenant's or a case's events: who, when, why")
    which = hist.add_mutually_exclusive_group(required=True)
    which.add_argument("--tenant")
    which.add_argument("--case", type=UUID)
    hist.add_argument("--since", type=_aware, help="recorded at or after (tz-aware)")
    hist.add_argument("--until", type=_aware, help="recorded at or before (tz-aware)")
    hist.add_argument("--type", action="append", default=[], help="event type, e.g. Triaged")
    hist.add_argument("--actor", help="only events by this actor")
    hist.add_argument("--limit", type=int)

    as_of = actions.add_parser("as-of", help="a case as it stood at an instant")
    as_of.add_argument("--case", type=UUID, required=True)
    as_of.add_argument("--at", type=_aware, required=True, help="the instant (tz-aware)")

    public = actions.add_parser("public-key",
                                help="print this deployment's public key (publish it)")
    public.add_argument("--all", action="store_true",
                        help=f"every key it published (<data dir>/{KEYS_DIR}) as register "
                             "lines: '<key> <from> [<until>]'")

    rotate = actions.add_parser("rotate-key", help="make a new signing key; the current one "
                                "stays published, retired now")
    rotate.add_argument("--seed-out", type=Path, metavar="FILE",
                        help="with ZONGZHI_AUDIT_KEY set: write the new seed here (mode 0600) "
                             "for the secret store")

    def period(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--scope", required=True, help="a center's code (and its subtree)")
        parser.add_argument("--from", dest="start", type=_aware, required=True,
                            help="start of the period, inclusive (tz-aware)")
        parser.add_argument("--to", dest="end", type=_aware, required=True,
                            help="end of the period, exclusive (tz-aware)")

    inspection = actions.add_parser("inspect", help="closed-loop inspection of the cases "
                                    "closed in a period (docs/audit.md)")
    period(inspection)
    inspection.add_argument("--xlsx", type=Path, help="also write the report here")

    callbacks = actions.add_parser("callbacks", help="callback (回访) samples and results")
    which_callback = callbacks.add_subparsers(dest="callback", required=True)
    draw = which_callback.add_parser("sample", help="a reproducible sample of closed cases")
    period(draw)
    draw.add_argument("--size", type=int, default=20)
    draw.add_argument("--salt", default="", help="any text; another salt, another draw")
    record = which_callback.add_parser("record", help="record a callback's result")
    record.add_argument("--case", type=UUID, required=True)
    record.add_argument("--result", required=True, choices=[r.value for r in CallbackResult])
    record.add_argument("--satisfied", choices=["yes", "no"],
                        help="the party's answer (only when reached)")
    record.add_argument("--note", default="")
    record.add_argument("--by", required=True, help="the inspector")
    record.add_argument("--at", type=_aware, help="when (tz-aware; default now)")
    record.add_argument("--scope", help="refuse a case outside this subtree")

    kpi = actions.add_parser("kpis", help="the KPI report of a center and its children")
    period(kpi)
    kpi.add_argument("--xlsx", type=Path, help="also write the report here")
    audit.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        return _ACTIONS[args.action](args)
    except (AuditError, CaseNotFound, UnknownTenant, DomainError, OSError) as e:
        print(f"zongzhi: error: {e}", file=sys.stderr)
        return 2


def _data_dir() -> Path:
    from zongzhi.servers import default_data_dir

    return default_data_dir()


def _trusted(args: argparse.Namespace, *, create: bool) -> TrustedKeys | None:
    """The keys ``verify`` trusts: those given (``--public-key``, ``--keys``), else
    the deployment's current and published ones."""
    given: list[PublishedKey] = [PublishedKey(parse_public_key(k), None, None)
                                 for k in args.public_key]
    if args.keys is not None:
        given += read_register(args.keys)
    if given:
        return TrustedKeys(given)
    return deployment_keys(_data_dir(), create=create)


def _chain(args: argparse.Namespace) -> int:
    from zongzhi.cli import _cities, _until_signalled, product

    with product() as (_, tenants):
        chainers = [Chainer(tenants, city) for city in _cities(tenants, args.city)]
        for c in chainers:
            print(f"audit chain {c.city}: {c.catch_up()} notifications chained", flush=True)
        if args.follow:
            stop = _until_signalled()
            threads = [threading.Thread(target=c.run, args=(stop.is_set,), daemon=True)
                       for c in chainers]
            for t in threads:
                t.start()
            print(f"chaining {', '.join(c.city for c in chainers)}; stop with Ctrl-C",
                  flush=True)
            stop.wait()
            for t in threads:
                t.join()
    return 0


def _checkpoint(args: argparse.Namespace) -> int:
    from zongzhi.cli import _cities, product

    witness = args.witness or os.environ.get(NATS_URL) or None
    with product() as (servers, tenants):
        key = load_signing_key(servers.data_dir)
        now = datetime.now(UTC)
        for city in _cities(tenants, args.city):
            chained = Chainer(tenants, city).catch_up()
            made = write_checkpoints(tenants, city, now, key, witness)
            print(f"audit checkpoint {city}: {chained} notifications chained, {len(made)} "
                  f"tenants signed" + (f", published to {witness}" if witness and made else ""),
                  flush=True)
    return 0


def _print(report: Report) -> int:
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


def _verify(args: argparse.Namespace) -> int:
    if args.file is not None:
        if not args.file.is_file():
            raise AuditError(f"no such file: {args.file}")
        return _print(verify_file(args.file, _trusted(args, create=False), args.witness))
    from zongzhi.cli import product

    keys = _trusted(args, create=True)  # bad keys are refused before servers start
    assert keys is not None
    with product() as (_, tenants):
        return _print(verify_tenant(tenants, args.tenant, keys, args.witness))


def _export(args: argparse.Namespace) -> int:
    from zongzhi.cli import product

    with product() as (servers, tenants):
        keys = deployment_keys(servers.data_dir)
        assert keys is not None
        count = export_tenant(tenants, args.tenant, args.out, keys)
    print(f"{args.out}: {count} events of {args.tenant} with their chain and checkpoints")
    return 0


def _history(args: argparse.Namespace) -> int:
    from zongzhi.cli import product

    with product() as (_, tenants):
        for e in history(tenants, tenant=args.tenant, case_id=args.case, since=args.since,
                         until=args.until, types=args.type, actor=args.actor,
                         limit=args.limit):
            print(e.line())
    return 0


def _as_of(args: argparse.Namespace) -> int:
    from zongzhi.cli import product

    with product() as (_, tenants):
        case = case_as_of(tenants, args.case, args.at)
        if case is None:
            print(f"case {args.case} did not exist yet at {args.at.isoformat()}")
            return 0
        severity = case.severity.value if case.severity else "-"
        print(f"{case.case_number} as of {args.at.isoformat()}: version {case.version}, "
              f"status {case.status.value}, severity {severity}, last business time "
              f"{case.last_at.isoformat()}, outcome {case.outcome or '-'}")
    return 0


def _public(args: argparse.Namespace) -> int:
    if not args.all:
        print(public_key_text(load_signing_key(_data_dir()).public_key()))
        return 0
    keys = deployment_keys(_data_dir())
    assert keys is not None
    print("# zongzhi audit public keys: <key> <in use from> [<in use until>]")
    for k in keys.by_id.values():
        print(f"{k.line()}  # key id {k.key_id}")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    done = rotate_signing_key(_data_dir(), datetime.now(UTC), args.seed_out)
    print(public_key_text(done.new.key))
    print(f"new signing key {done.new.key_id} (seed in {done.seed_at}); key "
          f"{done.retired.key_id} retired, still published. Register lines:", file=sys.stderr)
    for k in (done.retired, done.new):
        print(f"{k.line()}  # key id {k.key_id}", file=sys.stderr)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from zongzhi.cli import product

    with product() as (_, tenants):
        report = inspect(tenants, args.scope, args.start, args.end)
    for v in report.violations:
        print(f"{v.case_number} {v.tenant} [{v.unit}] {v.code}: {v.message}")
    for t in report.by_tenant():
        print(f"center {t.tenant}: {t.inspected} inspected, {t.clean} clean, "
              f"{t.violations} violations")
    print(f"{report.scope} {args.start.isoformat()} .. {args.end.isoformat()}: "
          f"{report.inspected} closed cases inspected, {len(report.violations)} violations")
    if args.xlsx:
        args.xlsx.write_bytes(inspection_workbook(report))
        print(f"{args.xlsx}: written")
    return 0


def _callbacks(args: argparse.Namespace) -> int:
    from zongzhi.cli import product

    with product() as (_, tenants):
        if args.callback == "sample":
            drawn = sample(tenants, args.scope, args.start, args.end, args.size, args.salt)
            print(f"seed {drawn.seed}: {len(drawn.cases)} of {drawn.population} closed cases")
            for c in drawn.cases:
                answer = {None: "", True: ", satisfied", False: ", dissatisfied"}[c.satisfied]
                print(f"{c.case_number} {c.case_id} {c.tenant} closed "
                      f"{c.closed_at.isoformat()} ({c.callbacks} callbacks{answer})")
            return 0
        satisfied = None if args.satisfied is None else args.satisfied == "yes"
        at = args.at or datetime.now(CHINA)
        case = record_callback(tenants, args.case, CallbackResult(args.result), satisfied,
                               args.note, args.by, at, scope=args.scope)
        tenant = tenant_of(case.id)
        assert tenant is not None
        CallbackResults(tenants, tenant[:4]).catch_up()  # the KPIs read it from there
        print(f"{case.case_number}: callback recorded ({args.result}"
              + ("" if satisfied is None else f", satisfied {args.satisfied}") + ")")
    return 0


def _kpis(args: argparse.Namespace) -> int:
    from zongzhi.cli import product

    with product() as (_, tenants):
        report = kpi_report(tenants, args.scope, args.start, args.end, datetime.now(CHINA))
    print("\t".join(en for _, en, _ in KPI_COLUMNS))
    for row in report.rows:
        print("\t".join("" if (v := value(row)) is None else str(v)
                        for _, _, value in KPI_COLUMNS))
    if args.xlsx:
        args.xlsx.write_bytes(kpi_workbook(report))
        print(f"{args.xlsx}: written")
    return 0


_ACTIONS = {"chain": _chain, "checkpoint": _checkpoint, "verify": _verify, "export": _export,
            "history": _history, "as-of": _as_of, "public-key": _public, "rotate-key": _rotate,
            "inspect": _inspect, "callbacks": _callbacks, "kpis": _kpis}


__all__ = ["add_parser", "run"]
