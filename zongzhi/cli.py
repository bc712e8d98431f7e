"""The ``zongzhi`` command line.

Every command gets its servers the product's way (``ZONGZHI_*_URL`` or
embedded ones in ``ZONGZHI_DATA_DIR``, default ``./.zongzhi``) and stops
again what it started, except ``servers start``. Bad input exits with
status 2 and one clear message; nothing is written.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from domain import DomainError, Tier
from tenants.calendar import read_schedule
from tenants.keys import (
    MASTER_KEY,
    KeyringError,
    load_master_key,
    load_new_master_key,
    replace_master_key_file,
    rewrap_keys,
)
from tenants.registry import UnknownTenant
from tenants.service import Tenants
from zongzhi.servers import (
    EmbeddedNats,
    EmbeddedPostgres,
    EmbeddedTriton,
    ServerError,
    Servers,
    default_data_dir,
)

DIVISIONS = Path(__file__).resolve().parents[1] / "data" / "divisions"
OPERATOR = "cli"


class UsageError(Exception):
    """Bad input to a command."""


@contextmanager
def product(*, keep_servers: bool = False, nats: bool = False, triton: bool = False
            ) -> Iterator[tuple[Servers, Tenants]]:
    servers = Servers().start(nats=nats, triton=triton)
    tenants = Tenants.from_env(servers.database_url, load_master_key(servers.data_dir))
    try:
        yield servers, tenants
    finally:
        tenants.close()
        if not keep_servers:
            servers.stop()


def cmd_demo(args: argparse.Namespace) -> None:
    from zongzhi import demo

    with product(keep_servers=args.keep_servers, nats=args.serve,
                 triton=args.serve and args.cameras) as (servers, tenants):
        print(f"PostgreSQL: {servers.database_url}")
        demo.run(tenants, args.divisions, args.city, args.cases, args.seed)
        if args.serve:
            from zongzhi.serve import demo_tokens, serve

            print("\nDevelopment tokens (send as 'Authorization: Bearer <token>'):")
            users = demo_tokens(tenants, args.city)
            for who, token in users:
                print(f"  {who}:\n    {token}")
            cameras = None
            if args.cameras:
                from zongzhi.demo_cameras import CameraDemo

                cameras = CameraDemo(tenants, args.city, servers.nats_url, servers.triton_url,
                                     servers.data_dir).start()
                print(f"Cameras: {', '.join(c.camera for c in cameras.configs)} in center "
                      f"{cameras.village}, replaying real photos through Triton "
                      f"({servers.triton_url})")
            print("Serving until Ctrl-C.", flush=True)
            try:
                serve(tenants, [args.city], args.host, args.port, data_dir=servers.data_dir,
                      demo_users=users, nats_url=servers.nats_url)
            finally:
                if cameras is not None:
                    cameras.stop()
        if args.keep_servers:
            print("Servers left running; stop them with: zongzhi servers stop")


def cmd_serve(args: argparse.Namespace) -> None:
    from zongzhi.serve import serve

    with product(nats=True) as (servers, tenants):
        serve(tenants, _cities(tenants, args.city), args.host, args.port,
              data_dir=servers.data_dir, with_workers=args.workers,
              nats_url=servers.nats_url)


def cmd_processes(args: argparse.Namespace) -> None:
    from zongzhi.processes import describe

    print("\n".join(describe()))


def cmd_servers(args: argparse.Namespace) -> None:
    if args.action == "start":
        servers = Servers().start()
        print(f"database: {servers.database_url}\nnats:     {servers.nats_url}")
    elif args.action == "stop":  # stops only what runs in the data directory; starts nothing
        data_dir = default_data_dir()
        EmbeddedTriton(data_dir, ()).stop()  # the demo's, when its cameras ran
        EmbeddedNats(data_dir).stop()
        EmbeddedPostgres(data_dir).stop()
        print(f"embedded servers in {data_dir} stopped")


def cmd_tenants(args: argparse.Namespace) -> None:
    now = datetime.now(UTC)
    if args.action == "rewrap-keys":
        return rewrap_tenant_keys(args)
    with product() as (_, tenants):
        if args.action == "import":
            report = tenants.import_divisions(args.divisions, args.scope, OPERATOR, now)
            print(f"{report} (cities: {', '.join(report.cities)})")
        elif args.action == "list":
            rows = tenants.registry.subtree(args.under) if args.under else tenants.registry.all()
            for c in rows:
                if args.tier is None or c.tier == args.tier:
                    flag = " (retired)" if c.retired else ""
                    print(f"{c.code:<13}{c.tier.value:<9}{c.name}{flag}")
        elif args.action == "shred-key":
            if not args.reason:
                raise UsageError("shred-key needs --reason: the destruction is recorded")
            tenants.shred_key(args.code, args.reason, OPERATOR, now)
            print(f"data key of {args.code} destroyed: its personal fields are unrecoverable")
        elif args.action == "rotate-key":
            if not args.code:
                raise UsageError("rotate-key needs the center's code")
            tenants.registry.get(args.code)  # UnknownTenant
            version = tenants.keyring.rotate(args.code)
            print(f"data key of {args.code} rotated: version {version} encrypts its personal "
                  f"fields from now on; versions 1..{version - 1} still decrypt the older ones")
        elif args.action == "rebuild":
            print(f"centers table rebuilt from events: {tenants.registry.rebuild_centers()}")


def rewrap_tenant_keys(args: argparse.Namespace) -> None:
    """Re-wrap every data key under the new master key (docs/runbook.md); a
    laptop's ``master.key`` is replaced once every key is under the new one."""
    import os

    new = load_new_master_key(args.new_master_key_file)  # bad input: nothing started
    with product() as (servers, tenants):
        old = load_master_key(servers.data_dir)
        report = rewrap_keys(tenants.datastore, old, new)
        print(report)
        if os.environ.get(MASTER_KEY):
            print(f"every data key is now under the new master key: put it in {MASTER_KEY} "
                  "(Secret zongzhi-keys, key master) and restart every process")
        else:
            path = replace_master_key_file(servers.data_dir, new)
            print(f"{path} now holds the new master key")


def cmd_calendar(args: argparse.Namespace) -> None:
    with product() as (_, tenants):
        if args.action == "load":
            schedule = read_schedule(args.file)
            tenants.registry.load_calendar_year(schedule, OPERATOR, datetime.now(UTC))
            print(f"{schedule.year}: {len(schedule.holidays)} days off, "
                  f"{len(schedule.makeup_workdays)} make-up working days ({schedule.source})")
        elif args.action == "show":
            calendar = tenants.calendar()
            years = sorted(calendar.official_years)
            print(f"official schedules: {years[0]}-{years[-1]}"
                  if years == list(range(years[0], years[-1] + 1)) else
                  f"official schedules: {', '.join(map(str, years))}")


def _cities(tenants: Tenants, wanted: list[str] | None) -> list[str]:
    from projections.runner import cities_of

    cities = cities_of(tenants, wanted)
    for code in cities:
        if tenants.registry.get(code).tier is not Tier.CITY:
            raise UsageError(f"{code} is not a city: flows follow a city's log group")
    return cities


def _until_signalled() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def cmd_router(args: argparse.Namespace) -> None:
    from flows.router import Router

    with product() as (_, tenants):
        routers = [Router(tenants, city) for city in _cities(tenants, args.city)]
        if args.once:
            for router in routers:
                print(f"router {router.city}: {router.catch_up()} notifications read, "
                      f"{router.handed_over} cases opened or updated")
            return
        stop = _until_signalled()
        threads = [threading.Thread(target=r.run, args=(stop.is_set,), daemon=True)
                   for r in routers]
        for t in threads:
            t.start()
        print(f"routing {', '.join(r.city for r in routers)}; stop with Ctrl-C", flush=True)
        stop.wait()
        for t in threads:
            t.join()


def cmd_scheduler(args: argparse.Namespace) -> None:
    from flows.scheduler import Scheduler

    with product() as (_, tenants):
        schedulers = [Scheduler(tenants, city) for city in _cities(tenants, args.city)]
        stop = None if args.once else _until_signalled()
        while True:
            now = args.at or datetime.now(UTC)
            for scheduler in schedulers:
                for issued in scheduler.tick(now):
                    what = issued.step.instrument or f"escalation to {issued.step.to_tenant}"
                    print(f"{issued.at.isoformat()} {issued.case_number}: {what}", flush=True)
            if stop is None or stop.wait(args.every):
                return


def cmd_token(args: argparse.Namespace) -> None:
    """A signed development token (verification checks the registry on every use)."""
    from datetime import timedelta

    from api.auth import AuthConfigError, TokenService, TokenSettings

    if args.ttl_hours <= 0:
        raise UsageError("--ttl-hours must be positive")
    try:
        settings = TokenSettings.from_env(default_data_dir())
        if settings.production:
            raise UsageError("ZONGZHI_OIDC_ISSUER is set: tokens come from the OIDC provider")
        service = TokenService(settings, centers=_NoRegistry())
    except AuthConfigError as e:
        raise UsageError(str(e)) from e
    print(service.issue(args.tenant, args.role, subject=args.subject, name=args.name,
                        unit=args.unit, grid=args.grid,
                        ttl=timedelta(hours=args.ttl_hours)))


class _NoRegistry:
    """Issuing needs no registry (only verification looks centers up)."""

    def get(self, code: str) -> NoReturn:
        raise LookupError(code)

    def cached(self, code: str) -> None:
        return None


def cmd_open311(args: argparse.Namespace) -> None:
    from api.open311 import Open311Keys

    with product() as (_, tenants):
        keys = Open311Keys(tenants)
        if args.action == "issue-key":
            try:
                key = keys.issue_key(args.target, args.label)
            except ValueError as e:
                raise UsageError(str(e)) from None
            print(key)
            print(f"Open311 key for {args.target} ({args.label.strip()}): shown once, only its "
                  "hash is kept", file=sys.stderr)
        elif args.action == "revoke-key":
            revoked = keys.revoke_key(args.target)
            if revoked is None:
                raise UsageError("no live Open311 key matches: never issued, already revoked, "
                                 "or the key id is ambiguous")
            print(f"revoked Open311 key {revoked.key_id} of {revoked.tenant} ({revoked.label})")
        elif args.action == "list-keys":
            tenants.registry.get(args.target)  # an unknown code is an error, not an empty list
            for k in keys.list_keys(args.target):
                state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "live"
                print(f"{k.key_id}  {k.created_at:%Y-%m-%d}  {state:<18}{k.label}")


def cmd_alerts(args: argparse.Namespace) -> int:
    """The camera alert service (vision/alerts.py) until SIGINT/SIGTERM."""
    from vision.alerts import main as run_alerts

    return run_alerts([*(f"--city={c}" for c in args.city or []),
                       *([f"--durable={args.durable}"] if args.durable else []),
                       f"--ack-wait={args.ack_wait}"])


def cmd_projections(args: argparse.Namespace) -> None:
    from projections import runner

    with product() as (_, tenants):
        cities = _cities(tenants, args.city)
        if args.action in ("rebuild", "catch-up"):
            work = runner.rebuild_all if args.action == "rebuild" else runner.catch_up_all
            for done in work(tenants, cities):
                print(f"{done.projector} {done.city}: {done.notifications} notifications "
                      f"{'projected' if args.action == 'rebuild' else 'caught up'}", flush=True)
            return
        stop = _until_signalled()
        started = threading.Event()
        follower = threading.Thread(target=runner.run_all, args=(tenants, stop.is_set, cities),
                                    kwargs={"started": started})
        follower.start()
        started.wait()
        print(f"projecting {', '.join(cities)}; stop with Ctrl-C", flush=True)
        stop.wait()
        follower.join()


def _aware(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("give a time zone, e.g. 2026-03-02T09:00+08:00")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zongzhi", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="start servers, load a real city, drive cases, summarize")
    demo.add_argument("--city", default="3307", help="city code (default 3307 金华市)")
    demo.add_argument("--cases", type=int, default=300)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--divisions", type=Path, default=DIVISIONS)
    demo.add_argument("--keep-servers", action="store_true")
    demo.add_argument("--no-serve", dest="serve", action="store_false",
                      help="print the summary and exit instead of serving the API")
    demo.add_argument("--no-cameras", dest="cameras", action="store_false",
                      help="serve without Triton and the demo cameras")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.set_defaults(run=cmd_demo)

    serve = sub.add_parser("serve", help="serve the API with projectors, router and clock")
    serve.add_argument("--city", action="append", help="city to serve (default: all)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-workers", dest="workers", action="store_false",
                       help="serve only the API; the workers run as processes of their own")
    serve.set_defaults(run=cmd_serve)

    processes = sub.add_parser("processes", help="list the processes a deployment runs")
    processes.set_defaults(run=cmd_processes)

    servers = sub.add_parser("servers", help="start or stop the embedded servers")
    servers.add_argument("action", choices=["start", "stop"])
    servers.set_defaults(run=cmd_servers)

    tenants = sub.add_parser("tenants", help="the registry of centers")
    tenants.add_argument("action",
                         choices=["import", "list", "shred-key", "rotate-key", "rebuild",
                                  "rewrap-keys"])
    tenants.add_argument("code", nargs="?", help="center code (shred-key, rotate-key)")
    tenants.add_argument("--divisions", type=Path, default=DIVISIONS)
    tenants.add_argument("--scope", help="province, city or county code to import")
    tenants.add_argument("--under", help="list only this subtree")
    tenants.add_argument("--tier", type=Tier, choices=list(Tier))
    tenants.add_argument("--reason")
    tenants.add_argument("--new-master-key-file", type=Path, metavar="FILE",
                         help="rewrap-keys: the new master key (default $ZONGZHI_NEW_MASTER_KEY)")
    tenants.set_defaults(run=cmd_tenants)

    calendar = sub.add_parser("calendar", help="the official working-day calendar")
    calendar.add_argument("action", choices=["load", "show"])
    calendar.add_argument("file", nargs="?", type=Path, help="schedule JSON (load)")
    calendar.set_defaults(run=cmd_calendar)

    router = sub.add_parser("router", help="perform hand-overs between centers")
    router.add_argument("--city", action="append", help="city to follow (default: all)")
    router.add_argument("--once", action="store_true", help="catch up, then exit")
    router.set_defaults(run=cmd_router)

    scheduler = sub.add_parser("scheduler", help="urge and escalate overdue cases")
    scheduler.add_argument("--city", action="append", help="city to follow (default: all)")
    scheduler.add_argument("--at", type=_aware, help="act as if it were this time (tz-aware)")
    scheduler.add_argument("--once", action="store_true", help="one tick, then exit")
    scheduler.add_argument("--every", type=float, default=60.0, help="seconds between ticks")
    scheduler.set_defaults(run=cmd_scheduler)

    token = sub.add_parser("token", help="print a signed development token")
    token.add_argument("--tenant", required=True, help="the center's code (auditors: a province)")
    token.add_argument("--role", action="append", required=True,
                       help="clerk, dispatcher, unit-officer, grid-worker, director, inspector,"
                            " auditor (repeat for several)")
    token.add_argument("--subject", help="the sub claim (default derived from role and tenant)")
    token.add_argument("--name", help="display name")
    token.add_argument("--unit", help="a unit officer's unit (its assignee ref)")
    token.add_argument("--grid", help="a grid worker's assignee ref (default: the subject)")
    token.add_argument("--ttl-hours", type=float, default=12.0)
    token.set_defaults(run=cmd_token)

    open311 = sub.add_parser("open311", help="API keys of the Open311 citizen intake")
    open311.add_argument("action", choices=["issue-key", "revoke-key", "list-keys"])
    open311.add_argument("target", nargs="?",
                         help="center code (issue-key, list-keys); key or key id (revoke-key)")
    open311.add_argument("--label", help="the client app the key is for (issue-key)")
    open311.set_defaults(run=cmd_open311)

    alerts = sub.add_parser("alerts", help="raise camera alerts from detections on NATS")
    alerts.add_argument("--city", action="append", help="city to take (default: all)")
    alerts.add_argument("--durable", default=None,
                        help="the JetStream consumer (default zz-alerts[-<city>...])")
    alerts.add_argument("--ack-wait", type=float, default=30.0,
                        help="seconds before an unacknowledged detection is redelivered")
    alerts.set_defaults(run=cmd_alerts)

    projections = sub.add_parser("projections", help="rebuild or follow the read models")
    projections.add_argument("action", choices=["rebuild", "catch-up", "run"])
    projections.add_argument("--city", action="append", help="city (default: all)")
    projections.set_defaults(run=cmd_projections)

    from audit.command import add_parser as add_audit_parser

    add_audit_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "tenants" and args.action == "shred-key" and not args.code:
        return _fail("shred-key needs the center's code")
    if args.command == "calendar" and args.action == "load" and args.file is None:
        return _fail("calendar load needs a schedule file")
    if args.command == "open311" and not args.target:
        return _fail(f"open311 {args.action} needs "
                     + ("a key or key id" if args.action == "revoke-key" else "a center code"))
    if args.command == "open311" and args.action == "issue-key" and not args.label:
        return _fail("open311 issue-key needs --label naming the client app")
    if args.command == "demo" and args.cases < 1:
        return _fail("--cases must be at least 1")
    try:
        status = args.run(args)  # ``audit verify`` returns 1 when the log does not verify
    except (UsageError, DomainError, UnknownTenant, ServerError, KeyringError) as e:
        return _fail(str(e))
    return int(status or 0)


def _fail(message: str) -> int:
    print(f"zongzhi: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
