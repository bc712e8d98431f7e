"""The deployment, checked statically: no provider, image or cluster is reachable here.

What a user (an operator) would notice: Terraform that does not parse or fails the IaC
scanner, a process the code can start that nothing deploys, a setting the code reads
that no deployment sets and no document mentions, a secret written into code, an image
that floats, a size that overbooks its database.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import re
from pathlib import Path
from typing import Any

import pytest
from infra_support import INFRA, TERRAFORM, load_hcl
from support import ROOT

from zongzhi.cli import parser
from zongzhi.processes import NOT_DEPLOYED_MODULES, OPERATOR_COMMANDS, PROCESSES, Scaling

SIZES = ("small", "provincial")
ENV_NAME = re.compile(r"^(ZONGZHI|OTEL)_[A-Z0-9_]+$")
NOT_PRODUCT = {"tests", "bench", "infra", "scripts", "web", "docs", "data", "build"}


def unquote(value: Any) -> Any:
    """python-hcl2 keeps the quotes of string literals; strip them, recursively."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items()}
    return value


def terraform_files() -> list[Path]:
    return sorted(TERRAFORM.rglob("*.tf"))


def locals_block() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in terraform_files():
        for block in load_hcl(path).get("locals", []):
            merged.update(unquote(block))
    return merged


def module_calls() -> dict[str, dict[str, Any]]:
    calls: dict[str, dict[str, Any]] = {}
    for path in terraform_files():
        for block in load_hcl(path).get("module", []):
            calls.update(unquote(block))
    return calls


def resources() -> dict[str, dict[str, Any]]:
    """``type.name`` -> body, over every .tf file (modules included)."""
    found: dict[str, dict[str, Any]] = {}
    for path in terraform_files():
        for block in load_hcl(path).get("resource", []):
            for rtype, named in unquote(block).items():
                for name, body in named.items():
                    found[f"{rtype}.{name}"] = body
    return found


def tfvars(size: str) -> dict[str, Any]:
    return dict(unquote(load_hcl(TERRAFORM / "sizes" / f"{size}.tfvars")))


# -- Terraform parses and passes checkov -------------------------------------------------


def test_every_terraform_file_and_size_parses_as_hcl2() -> None:
    # given every .tf file and both sizes
    paths = terraform_files() + [TERRAFORM / "sizes" / f"{s}.tfvars" for s in SIZES]
    # when each is parsed, then none fails, and together they declare the whole stack
    parsed = {p: load_hcl(p) for p in paths}
    assert all(parsed.values())
    declared = set(resources())
    for needed in ("kubernetes_stateful_set_v1.citus", "helm_release.nats",
                   "kubernetes_deployment_v1.triton", "kubernetes_deployment_v1.otel",
                   "kubernetes_deployment_v1.pgbouncer", "kubernetes_job_v1.nats_streams",
                   "kubernetes_network_policy_v1.default_deny"):
        assert needed in declared, f"{needed} is not declared"


def test_checkov_finds_no_failed_check_and_every_skip_carries_its_reason(
        checkov_report: dict[str, dict[str, Any]]) -> None:
    # given checkov's report over the Terraform and the Dockerfiles
    for framework in ("terraform", "dockerfile"):
        report = checkov_report.get(framework)
        assert report is not None, f"checkov scanned no {framework}"
        summary = report["summary"]
        # then it scanned something, parsed everything, and nothing failed
        assert summary["resource_count"] > 0 and summary["passed"] > 0
        assert summary["parsing_errors"] == 0
        failed = [(f["check_id"], f["resource"], f["check_name"])
                  for f in report["results"].get("failed_checks", [])]
        assert failed == [], f"checkov {framework} failures: {failed}"
        # and every skip says why, inline
        for skipped in report["results"].get("skipped_checks", []):
            reason = (skipped.get("suppress_comment")
                      or skipped.get("check_result", {}).get("suppress_comment") or "").strip()
            assert len(reason) > 20, f"{skipped['check_id']} on {skipped['resource']} is " \
                                     "skipped without a reason"


# -- every process the code can start has a workload ---------------------------------------


def cli_commands(p: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every command path of the zongzhi CLI: ('router',), ('audit', 'chain') ..."""
    found: set[tuple[str, ...]] = set()
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                path = (*prefix, name)
                deeper = cli_commands(sub, path)
                found |= deeper or {path}
    return found


def test_every_cli_command_is_a_deployed_process_or_an_operator_command() -> None:
    # given every command the zongzhi CLI offers
    commands = cli_commands(parser())
    processes = {p.command[:2] if p.command[0] == "audit" else p.command[:1]
                 for p in PROCESSES if p.pending is None and p.entrypoint == ("zongzhi",)}
    # then each is either a process of zongzhi.processes or (a group of) operator commands
    unclassified = sorted(c for c in commands if c not in processes
                          and not any(c[:n] in OPERATOR_COMMANDS for n in range(1, len(c) + 1)))
    assert unclassified == [], (
        f"{unclassified}: a new command must be listed in zongzhi/processes.py, as a process "
        "(and deployed in infra/terraform) or as an operator command")
    # and nothing listed is a command the CLI lacks
    assert all(any(c[:len(o)] == o for c in commands) for o in OPERATOR_COMMANDS)
    assert processes <= commands


def test_a_process_is_marked_pending_exactly_when_the_cli_lacks_its_command() -> None:
    # given every process started through the zongzhi CLI
    for process in (p for p in PROCESSES if p.entrypoint == ("zongzhi",)):
        # when the CLI parses the very arguments the workload runs with
        try:
            args = parser().parse_args(list(process.command))
        except SystemExit:
            # then a command the CLI rejects is marked pending (with the reason) ...
            assert process.pending, f"{process.name}: the CLI rejects {process.command}"
        else:
            # ... and one it accepts runs a command and carries no stale mark
            assert callable(args.run), process.name
            assert process.pending is None, f"{process.name} exists now: drop its mark"


def runnable_modules() -> set[str]:
    """Product modules with an ``if __name__ == "__main__":`` block."""
    found = set()
    for path in product_sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) \
                    and "__name__" in ast.unparse(node.test):
                found.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return found


def test_every_runnable_module_is_a_deployed_process_or_says_why_not() -> None:
    # given every module of the product that can run as ``python -m``
    modules = runnable_modules()
    deployed = {p.entrypoint[2] for p in PROCESSES if p.entrypoint[:2] == ("python", "-m")}
    # then each is run by a workload, or listed with the reason none runs it that way
    unexplained = sorted(modules - deployed - set(NOT_DEPLOYED_MODULES))
    assert unexplained == [], f"{unexplained}: deploy it (zongzhi/processes.py) or say why not"
    assert {"zongzhi.cli", "vision.worker"} <= modules
    assert set(NOT_DEPLOYED_MODULES) <= modules, "a listed module no longer runs as a script"


def test_a_process_started_as_a_python_module_has_a_main_that_takes_its_command(
        capsys: pytest.CaptureFixture[str]) -> None:
    # given the processes started as ``python -m <module>`` (the vision worker)
    modules = [p for p in PROCESSES if p.entrypoint[:2] == ("python", "-m")]
    assert modules
    for process in modules:
        main = getattr(importlib.import_module(process.entrypoint[2]), "main", None)
        assert callable(main), f"{process.entrypoint[2]} has no main()"
        # when asked for its usage, then it answers (its arguments parse with argparse)
        with pytest.raises(SystemExit) as done:
            main(["--help"])
        assert done.value.code == 0
        assert "usage" in capsys.readouterr().out


def test_terraform_runs_every_process_with_its_command() -> None:
    # given the process list of the code and the Terraform's mirror of it
    mirror = locals_block()["processes"]
    modules = {body["name"]: body for body in module_calls().values()}
    assert set(mirror) == {p.name for p in PROCESSES}
    for process in PROCESSES:
        # then the command, servers and scaling are the same
        tf = mirror[process.name]
        assert tf["command"] == list(process.command), process.name
        assert sorted(tf["servers"]) == sorted(process.servers), process.name
        assert tf["scaling"] == process.scaling.value, process.name
        # and a module call deploys it with exactly that command
        body = modules.get(process.name)
        assert body is not None, f"no module call deploys {process.name}"
        assert body["source"] == "./modules/process"
        assert body["command"] == f'${{local.processes["{process.name}"].command}}'
        assert body["servers"] == f'${{local.processes["{process.name}"].servers}}'
        assert body.get("entrypoint", ["zongzhi"]) == list(process.entrypoint), process.name
        # shaped by how it scales
        if process.scaling is Scaling.SCHEDULE:
            assert body.get("schedule") == process.schedule
        elif process.scaling is Scaling.PER_CITY:
            assert body.get("shards") == "${var.city_shards}", process.name
        elif process.scaling is Scaling.PER_CAMERA_GROUP:
            assert "shard_files" in body and body.get("file_path") == process.command[0]
        else:
            assert "autoscale" in body, f"{process.name} scales by replicas: it needs an HPA"
        if process.http_port is not None:
            assert body.get("http_port") == process.http_port


def test_every_deployment_has_probes_resources_and_a_disruption_budget() -> None:
    # given every Deployment and StatefulSet the Terraform declares
    found = resources()
    workloads = {k: v for k, v in found.items()
                 if k.startswith(("kubernetes_deployment_v1.", "kubernetes_stateful_set_v1."))}
    budgets = {k.split(".", 1)[1] for k in found
               if k.startswith("kubernetes_pod_disruption_budget_v1.")}
    assert len(workloads) >= 5
    for key, body in workloads.items():
        spec = body["spec"][0]["template"][0]["spec"][0]
        for container in spec["container"]:
            text = repr(container)
            # then each container has liveness and readiness probes and resources
            assert "liveness_probe" in text and "readiness_probe" in text, key
            assert "requests" in text and "limits" in text, key
        # and a PodDisruptionBudget of the same name
        assert key.split(".", 1)[1] in budgets, f"{key} has no PodDisruptionBudget"


def test_every_component_gets_a_network_policy_besides_the_default_deny() -> None:
    found = resources()
    policies = {k.split(".", 1)[1] for k in found if k.startswith("kubernetes_network_policy_v1.")}
    # the namespace denies everything; each server opens only its own ports
    assert {"default_deny", "dns", "citus", "pgbouncer", "nats", "triton", "otel"} <= policies
    deny = found["kubernetes_network_policy_v1.default_deny"]["spec"][0]
    assert sorted(deny["policy_types"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny and "egress" not in deny
    # and the process module declares one per process
    assert "kubernetes_network_policy_v1.this" in found


# -- settings and secrets --------------------------------------------------------------------


def product_sources() -> list[Path]:
    return sorted(p for d in ROOT.iterdir()
                  if d.is_dir() and d.name not in NOT_PRODUCT and (d / "__init__.py").exists()
                  for p in d.rglob("*.py"))


def _constants(tree: ast.Module) -> dict[str, Any]:
    """Module-level ``NAME = "literal"`` and ``NAME = {...: "literal"}`` assignments."""
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if node.value is None:
                continue
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            for t in targets:
                if isinstance(t, ast.Name):
                    found[t.id] = value
    return found


def environment_reads() -> dict[str, set[str]]:
    """Every ZONGZHI_* / OTEL_* name the product reads from its process environment
    (``os.environ.get``, ``os.environ[...]``, ``os.getenv``), with constants resolved
    through the module and its ``from ... import`` lines -> the files reading it."""
    trees = {p: ast.parse(p.read_text(encoding="utf-8")) for p in product_sources()}
    by_module = {".".join(p.relative_to(ROOT).with_suffix("").parts): _constants(t)
                 for p, t in trees.items()}
    reads: dict[str, set[str]] = {}
    for path, tree in trees.items():
        names = dict(by_module[".".join(path.relative_to(ROOT).with_suffix("").parts)])
        modules: dict[str, dict[str, Any]] = {}  # ``from tenants import persistence``
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in by_module:
                for alias in node.names:
                    if alias.name in by_module[node.module]:
                        names[alias.asname or alias.name] = by_module[node.module][alias.name]
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in by_module:
                        modules[alias.asname or alias.name] = by_module[
                            f"{node.module}.{alias.name}"]
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in by_module and alias.asname:
                        modules[alias.asname] = by_module[alias.name]
        for alias_name, constants in modules.items():
            for constant, value in constants.items():
                names[f"{alias_name}.{constant}"] = value
        for node in ast.walk(tree):
            arg: ast.expr | None = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                f = node.func
                is_environ_get = (f.attr == "get" and isinstance(f.value, ast.Attribute)
                                  and f.value.attr == "environ")
                is_getenv = f.attr == "getenv"
                if (is_environ_get or is_getenv) and node.args:
                    arg = node.args[0]
            elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) \
                    and node.value.attr == "environ":
                arg = node.slice
            if arg is None:
                continue
            for value in _resolve(arg, names):
                if ENV_NAME.match(value):
                    reads.setdefault(value, set()).add(str(path.relative_to(ROOT)))
    return reads


def _resolve(arg: ast.expr, names: dict[str, Any]) -> list[str]:
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return [arg.value]
    if isinstance(arg, ast.Name) and isinstance(names.get(arg.id), str):
        return [names[arg.id]]
    if isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name) \
            and isinstance(names.get(f"{arg.value.id}.{arg.attr}"), str):
        return [names[f"{arg.value.id}.{arg.attr}"]]
    if isinstance(arg, ast.Subscript) and isinstance(arg.value, ast.Name) \
            and isinstance(names.get(arg.value.id), dict):
        return [v for v in names[arg.value.id].values() if isinstance(v, str)]
    return []


def terraform_env_names() -> set[str]:
    """Every variable name a workload of the Terraform sets (plain or from a Secret)."""
    names: set[str] = set()
    for key, value in locals_block().items():
        if key.endswith("_env") and isinstance(value, dict):
            names |= set(value)
    for body in module_calls().values():
        for key in ("env", "secret_env"):
            names |= set(re.findall(r"\b((?:ZONGZHI|OTEL)_[A-Z0-9_]+)\s*=", str(body.get(key))))
    return names


def documented_env_names() -> set[str]:
    text = (ROOT / "docs" / "runbook.md").read_text(encoding="utf-8")
    text += (TERRAFORM / "README.md").read_text(encoding="utf-8")
    return set(re.findall(r"`((?:ZONGZHI|OTEL)_[A-Z0-9_]+)`", text))


def test_the_scan_finds_the_settings_the_code_is_known_to_read() -> None:
    # given the scanner of environment reads, over the product's packages
    reads = environment_reads()
    # then it resolves literals, constants and imported constants alike
    for known in ("ZONGZHI_DATABASE_URL", "ZONGZHI_MASTER_KEY", "ZONGZHI_AUDIT_KEY",
                  "ZONGZHI_OIDC_ISSUER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME",
                  "ZONGZHI_PLACEMENT"):
        assert known in reads, known
    # and only names read from the environment: a stream name is not a setting
    assert "ZONGZHI_AUDIT" not in reads


def test_every_environment_variable_the_code_reads_is_set_or_documented() -> None:
    # given every ZONGZHI_* / OTEL_* name the product code reads
    reads = environment_reads()
    # when compared with what the deployments set and what the runbook documents
    missing = {name: sorted(files) for name, files in reads.items()
               if name not in terraform_env_names() and name not in documented_env_names()}
    # then none is left out
    assert missing == {}, f"set these in infra/terraform or document them in docs/runbook.md: " \
                          f"{missing}"


SECRET_SETTINGS = {"ZONGZHI_DATABASE_URL", "ZONGZHI_MASTER_KEY", "ZONGZHI_AUDIT_KEY",
                   "ZONGZHI_JWT_SECRET"}


def test_secrets_are_referenced_from_kubernetes_secrets_never_written_in_code() -> None:
    found = resources()
    # then Terraform creates no Secret (its value would land in the state)
    assert not [k for k in found if k.startswith(("kubernetes_secret", "random_"))]
    # and no process gets a secret setting as a plain value
    for name, body in module_calls().items():
        plain = set(re.findall(r"\b((?:ZONGZHI|OTEL)_[A-Z0-9_]+)\s*=", str(body.get("env"))))
        assert not plain & SECRET_SETTINGS, f"{name} sets {plain & SECRET_SETTINGS} in clear"
    local = locals_block()
    for key in ("database_env", "master_key_env", "audit_key_env"):
        for setting in local[key].values():
            assert set(setting) == {"secret", "key"}
    # and no file under infra/ holds something that looks like a key or a password
    for path in INFRA.rglob("*"):
        if path.is_file() and path.suffix in {".tf", ".tfvars", ".Dockerfile", ".md", ""}:
            text = path.read_text(encoding="utf-8", errors="replace")
            assert not re.search(r"(?i)password\s*=\s*\"[^\"$]", text), path
            assert not re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", text), path


# -- sizes -------------------------------------------------------------------------------------


def zhejiang_cities() -> set[str]:
    rows = (ROOT / "data" / "divisions" / "cities.csv").read_text(encoding="utf-8").splitlines()
    return {line.split(",")[0] for line in rows[1:] if line}


def _connections(size: dict[str, Any]) -> int:
    return int(size["pgbouncer"]["default_pool_size"]) * int(size["pgbouncer"]["replicas"])


@pytest.mark.parametrize("size", SIZES)
def test_a_size_follows_the_rules_of_the_variables(size: str) -> None:
    values = tfvars(size)
    # the NATS cluster is three servers with R3 streams
    assert values["nats"]["replicas"] == 3 and values["nats"]["stream_replica"] == 3
    # every city is followed by exactly one shard, and is a real city of the division files
    shards = [c for shard in values["city_shards"] for c in shard]
    assert len(shards) == len(set(shards)) and set(shards) <= zhejiang_cities()
    # the API survives a node loss
    assert values["api"]["min_replicas"] >= 2
    # PgBouncer never opens more server connections than the coordinator takes, leaving
    # room for Citus's own connections and the operator (docs/scaling.md)
    assert _connections(values) <= values["citus"]["max_connections"] - 40


def test_the_provincial_size_follows_every_city_of_zhejiang() -> None:
    values = tfvars("provincial")
    assert {c for shard in values["city_shards"] for c in shard} == zhejiang_cities()
    assert values["citus"]["workers"] >= 2


# -- images --------------------------------------------------------------------------------------


def dockerfiles() -> list[Path]:
    return sorted((INFRA / "images").glob("*.Dockerfile"))


def test_every_image_is_multi_stage_pinned_by_digest_and_runs_unprivileged() -> None:
    assert {p.name for p in dockerfiles()} >= {"zongzhi.Dockerfile", "models.Dockerfile",
                                                "citus.Dockerfile"}
    for path in dockerfiles():
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        args_without_default = {line.split()[1] for line in lines
                                if line.startswith("ARG ") and "=" not in line}
        froms = [line.split()[1] for line in lines if line.startswith("FROM ")]
        stages = {line.split()[-1] for line in lines if line.startswith("FROM ") and " AS " in line}
        # then it has a build stage and a runtime stage
        assert len(froms) >= 2, f"{path.name} is not multi-stage"
        for base in froms:
            # each base is a digest, an earlier stage, or a required build argument
            pinned = re.search(r"@sha256:[0-9a-f]{64}$", base) is not None
            required_arg = base.startswith("${") and base[2:-1] in args_without_default
            assert pinned or base in stages or required_arg, f"{path.name}: {base} floats"
        # and the image ends as a non-root user
        users = [line.split()[1] for line in lines if line.startswith("USER ")]
        assert users and users[-1].split(":")[0] not in {"root", "0"}, path.name


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-\[\],]+)==([^\s\\;]+)", line)
        if m:
            pins[re.sub(r"\[.*\]", "", m.group(1)).lower()] = m.group(2)
    return pins


def test_the_image_installs_the_same_versions_as_the_project_lock() -> None:
    # given the image's runtime lock (no dev tools) and the project's lock
    runtime = _pins(INFRA / "images" / "requirements-runtime.lock")
    project = _pins(ROOT / "requirements.lock")
    # then every runtime package is pinned to the version the tests ran with
    drift = {name: (v, project.get(name)) for name, v in runtime.items() if project.get(name) != v}
    assert runtime and drift == {}, f"regenerate infra/images/requirements-runtime.lock: {drift}"
