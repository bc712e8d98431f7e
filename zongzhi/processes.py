"""Every process the product runs in production, and how it is started.

One list that the deployment (``infra/terraform``), the images
(``infra/images``) and the tests read: ``tests/infra`` walks the ``zongzhi``
command line and fails when a command is neither a process listed here nor an
operator's one-shot command, and when a process listed here has no
Kubernetes workload running exactly its command.

``zongzhi processes`` prints this list for an operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Server(StrEnum):
    POSTGRES = "postgres"
    NATS = "nats"
    TRITON = "triton"


class Scaling(StrEnum):
    REPLICAS = "replicas"  # stateless: any number of copies, autoscaled
    PER_CITY = "per-city"  # follows log groups: copies split the cities (--city), or run as spares
    PER_CAMERA_GROUP = "per-camera-group"  # one copy per cameras file: a second would redo
    SCHEDULE = "schedule"  # a CronJob: one run at a time


@dataclass(frozen=True)
class Process:
    """A long-running (or scheduled) process of the product."""

    name: str  # the Kubernetes workload's name
    command: tuple[str, ...]  # arguments to the entry point
    servers: frozenset[Server]
    scaling: Scaling
    http_port: int | None = None  # serves /healthz and /readyz on this port
    schedule: str | None = None  # cron expression, for Scaling.SCHEDULE
    image: str = "zongzhi"  # which image of infra/images runs it
    entrypoint: tuple[str, ...] = ("zongzhi",)  # the image's ENTRYPOINT unless overridden
    pending: str | None = None  # why the command does not exist in the CLI yet


PG = frozenset({Server.POSTGRES})

PROCESSES: tuple[Process, ...] = (
    Process("api", ("serve", "--host", "0.0.0.0", "--port", "8000", "--no-workers"),
            frozenset({Server.POSTGRES, Server.NATS}), Scaling.REPLICAS, http_port=8000),
    Process("projector", ("projections", "run"), PG, Scaling.PER_CITY),
    Process("router", ("router",), PG, Scaling.PER_CITY),
    Process("scheduler", ("scheduler", "--every", "60"), PG, Scaling.PER_CITY),
    Process("audit-chain", ("audit", "chain", "--follow"), PG, Scaling.PER_CITY),
    Process("audit-checkpoint", ("audit", "checkpoint"),
            frozenset({Server.POSTGRES, Server.NATS}), Scaling.SCHEDULE,
            schedule="*/10 * * * *"),
    # frames -> Triton -> detections on NATS, for the cameras of one file (no database)
    Process("vision-worker", ("/etc/zongzhi/cameras.json",),
            frozenset({Server.NATS, Server.TRITON}), Scaling.PER_CAMERA_GROUP,
            image="zongzhi-vision", entrypoint=("python", "-m", "vision.worker")),
    # detections -> zone rules (tracked over time, so one copy per city) -> CameraAlert
    Process("alert-service", ("alerts",), frozenset({Server.POSTGRES, Server.NATS}),
            Scaling.PER_CITY),
)

# Modules runnable with ``python -m`` that no Deployment runs that way, and why.
NOT_DEPLOYED_MODULES: dict[str, str] = {
    "zongzhi.cli": "the zongzhi command itself (every CLI command is classified above)",
    "zongzhi.probe": "the workers' exec probes",
    "api.app": "the API alone, as `zongzhi serve --no-workers` (the api Deployment) runs it",
    "api.schema": "prints the GraphQL schema (development)",
    "projections.runner": "as `zongzhi projections run` (the projector Deployment) runs it",
    "vision.alerts": "as `zongzhi alerts` (the alert-service Deployment) runs it",
}

# Commands (or groups of them) an operator runs by hand, or a Job runs once; none of
# them is a deployment. tests/infra fails on a CLI command listed in neither place.
OPERATOR_COMMANDS: frozenset[tuple[str, ...]] = frozenset({
    ("demo",), ("servers",), ("tenants",), ("calendar",), ("token",), ("open311",),
    ("processes",),
    ("audit", "verify"), ("audit", "export"), ("audit", "history"), ("audit", "as-of"),
    ("audit", "public-key"), ("audit", "inspect"), ("audit", "kpis"), ("audit", "callbacks"),
    ("audit", "rotate-key"),
})


def by_name(name: str) -> Process:
    for process in PROCESSES:
        if process.name == name:
            return process
    raise KeyError(f"no process named {name!r}: see zongzhi.processes.PROCESSES")


def describe() -> list[str]:
    """One line per process: name, how it scales, its servers and its command."""
    lines = []
    for p in PROCESSES:
        servers = ",".join(sorted(p.servers))
        when = f" (cron {p.schedule})" if p.schedule else ""
        note = f"  [not in this build: {p.pending}]" if p.pending else ""
        lines.append(f"{p.name:<17}{p.scaling.value:<17}{servers:<24}"
                     f"{' '.join(p.entrypoint + p.command)}{when}{note}")
    return lines


__all__ = ["NOT_DEPLOYED_MODULES", "OPERATOR_COMMANDS", "PROCESSES", "Process", "Scaling",
           "Server", "by_name", "describe"]
