"""The ``tritonops`` command line: parse options, call one engine function, map errors to exit codes.

Exit codes (contract): 0 committed or no-op · 2 bad input, nothing changed ·
3 verification failed and production restored · 4 rollback failed or state
inconsistent: an operator must look.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from tritonops.core import steps
from tritonops.core.lease import DEFAULT_LEASE_S
from tritonops.core.limits import (
    DEFAULT_QUARANTINE_KEEP,
    WEBHOOK_MAX_CONNECTIONS,
    WEBHOOK_REQUEST_DEADLINE_S,
    ArtifactLimits,
)
from tritonops.engine.settings import GateSettings
from tritonops.errors import ExitCode, InputError, TritonOpsError

F = TypeVar("F", bound=Callable[..., Any])

# The gate flags' defaults are GateSettings' own: one place to change them (and the limits').
GATE_DEFAULTS = GateSettings()
ARTIFACT_LIMITS = ArtifactLimits()

STEP_NAMES = steps.NAMES  # the step table's (core/steps.py), then rollback and report


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("tritonops").setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("mlflow", "alembic", "urllib3", "geventhttpclient"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _split_urls(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    """``--triton-url`` may repeat; TRITONOPS_TRITON_URL is comma-separated."""
    urls: list[str] = []
    for item in value:
        urls += [u.strip() for u in item.split(",") if u.strip()]
    return tuple(urls) or ("http://localhost:8000",)


def common_options(fn: F) -> F:
    """Where things are: the same flags (and env fallbacks) on every command."""
    options = [
        click.option(
            "--repo",
            envvar="TRITONOPS_REPO",
            type=click.Path(path_type=Path, file_okay=False),
            required=True,
            help="Triton model repository (the models/ dir on the shared volume). Env: TRITONOPS_REPO.",
        ),
        click.option(
            "--state-dir",
            envvar="TRITONOPS_STATE_DIR",
            type=click.Path(path_type=Path, file_okay=False),
            default=None,
            help="Journals, history, quarantine, locks; must be outside --repo. "
            "Default: 'state' beside the repo. Env: TRITONOPS_STATE_DIR.",
        ),
        click.option(
            "--triton-url",
            "triton_urls",
            envvar="TRITONOPS_TRITON_URL",
            multiple=True,
            callback=_split_urls,
            help="A Triton replica's HTTP URL; repeat for every replica, or give "
            "dns+http://<headless-service>:8000 for one replica per address. "
            "Default http://localhost:8000. Env: TRITONOPS_TRITON_URL (comma-separated).",
        ),
        click.option(
            "--tracking-uri",
            envvar="MLFLOW_TRACKING_URI",
            default=None,
            help="MLflow tracking URI (required for deploy, plan and registry tags). "
            "Env: MLFLOW_TRACKING_URI.",
        ),
        click.option(
            "--registry-uri",
            envvar="MLFLOW_REGISTRY_URI",
            default=None,
            help="MLflow model registry URI when it is not the tracking server "
            "(e.g. databricks-uc). Default: the tracking URI. Env: MLFLOW_REGISTRY_URI.",
        ),
        click.option(
            "--pushgateway",
            envvar="TRITONOPS_PUSHGATEWAY",
            default=None,
            help="Prometheus Pushgateway URL for deploy metrics. Env: TRITONOPS_PUSHGATEWAY.",
        ),
        click.option(
            "--lease-seconds",
            envvar="TRITONOPS_LEASE_SECONDS",
            type=click.FloatRange(min=1),
            default=DEFAULT_LEASE_S,
            show_default=True,
            help="How long a run keeps its claim on a model after its last step stopped renewing it "
            "(the longest gap expected between two Argo steps). Env: TRITONOPS_LEASE_SECONDS.",
        ),
        click.option(
            "--quarantine-keep",
            envvar="TRITONOPS_QUARANTINE_KEEP",
            type=click.IntRange(min=1),
            default=DEFAULT_QUARANTINE_KEEP,
            show_default=True,
            help="Failed versions kept in quarantine per model; older ones are deleted (with a history "
            "line), never the only copy of a version once committed. Env: TRITONOPS_QUARANTINE_KEEP.",
        ),
        click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout."),
        click.option("-v", "--verbose", is_flag=True, help="Debug logging."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def gate_options(fn: F) -> F:
    """Verification gates beyond the smoke test (deploy, rollback, step)."""
    options = [
        click.option(
            "--no-parity-gate",
            is_flag=True,
            envvar="TRITONOPS_NO_PARITY_GATE",
            help="Skip comparing Triton's answer with onnxruntime run locally on the same artefact. "
            "Env: TRITONOPS_NO_PARITY_GATE=1.",
        ),
        click.option(
            "--parity-rtol",
            type=float,
            default=GATE_DEFAULTS.parity_rtol,
            show_default=True,
            envvar="TRITONOPS_PARITY_RTOL",
            help="Golden parity: relative tolerance (GPU/TensorRT replicas: ~1e-2). Env: TRITONOPS_PARITY_RTOL.",
        ),
        click.option(
            "--parity-atol",
            type=float,
            default=GATE_DEFAULTS.parity_atol,
            show_default=True,
            envvar="TRITONOPS_PARITY_ATOL",
            help="Golden parity: absolute tolerance (GPU/TensorRT replicas: ~1e-3). Env: TRITONOPS_PARITY_ATOL.",
        ),
        click.option(
            "--parity-max-bytes",
            type=click.IntRange(min=0),
            default=GATE_DEFAULTS.parity_max_bytes,
            show_default=True,
            envvar="TRITONOPS_PARITY_MAX_BYTES",
            help="Skip (and record as skipped) the parity gate for models larger than this: it runs "
            "the model in the step's own memory. Env: TRITONOPS_PARITY_MAX_BYTES.",
        ),
        click.option(
            "--latency-requests",
            type=click.IntRange(min=0),
            default=GATE_DEFAULTS.latency_requests,
            show_default=True,
            envvar="TRITONOPS_LATENCY_REQUESTS",
            help="Timed requests per replica for the latency gate; 0 turns it off. "
            "Env: TRITONOPS_LATENCY_REQUESTS.",
        ),
        click.option(
            "--latency-budget-ms",
            type=float,
            default=GATE_DEFAULTS.latency_budget_ms,
            show_default=True,
            envvar="TRITONOPS_LATENCY_BUDGET_MS",
            help="The candidate's p95 must stay under this. Env: TRITONOPS_LATENCY_BUDGET_MS.",
        ),
        click.option(
            "--latency-factor",
            type=float,
            default=GATE_DEFAULTS.latency_factor,
            show_default=True,
            envvar="TRITONOPS_LATENCY_FACTOR",
            help="...and under this many times production's p95 measured in the same run. "
            "Env: TRITONOPS_LATENCY_FACTOR.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def model_config_options(fn: F) -> F:
    """The operator's Triton config template (deploy, rollback, step)."""
    options = [
        click.option(
            "--model-config",
            envvar="TRITONOPS_MODEL_CONFIG",
            type=click.Path(path_type=Path, dir_okay=False),
            default=None,
            help="Triton config template (config.pbtxt syntax) for this model: instance groups, "
            "batching, accelerators, warmup... Overrides the artefact's own config.pbtxt; tritonops "
            "still owns name, backend, version policy and tensor names/types. Env: TRITONOPS_MODEL_CONFIG.",
        ),
        click.option(
            "--model-config-dir",
            envvar="TRITONOPS_MODEL_CONFIG_DIR",
            type=click.Path(path_type=Path, file_okay=False),
            default=None,
            help="A directory of per-model templates <model>.pbtxt (a ConfigMap in Kubernetes); "
            "used when --model-config is not given. Env: TRITONOPS_MODEL_CONFIG_DIR.",
        ),
        click.option(
            "--artifact-config-fields",
            envvar="TRITONOPS_ARTIFACT_CONFIG_FIELDS",
            default="",
            metavar="FIELD,...",
            help="Widen what the artefact's own config.pbtxt may set (by default only what describes "
            "the model: tensors' dims/reshape/optional/allow_ragged_batch, max_batch_size, "
            "dynamic_batching, sequence_batching), e.g. 'parameters,input.format'. Anything else in "
            "it is refused (exit 2). Env: TRITONOPS_ARTIFACT_CONFIG_FIELDS.",
        ),
        click.option(
            "--max-artifact-bytes",
            envvar="TRITONOPS_MAX_ARTIFACT_BYTES",
            type=click.IntRange(min=1),
            default=ARTIFACT_LIMITS.max_bytes,
            show_default=True,
            help="Largest artefact accepted, from the registry's listing before downloading and "
            "again while downloading (exit 2). Env: TRITONOPS_MAX_ARTIFACT_BYTES.",
        ),
        click.option(
            "--max-artifact-files",
            envvar="TRITONOPS_MAX_ARTIFACT_FILES",
            type=click.IntRange(min=1),
            default=ARTIFACT_LIMITS.max_files,
            show_default=True,
            help="Most files an artefact may have (exit 2). Env: TRITONOPS_MAX_ARTIFACT_FILES.",
        ),
        click.option(
            "--free-space-margin-bytes",
            envvar="TRITONOPS_FREE_SPACE_MARGIN_BYTES",
            type=click.IntRange(min=0),
            default=ARTIFACT_LIMITS.free_margin_bytes,
            show_default=True,
            help="A download starts only if the volume keeps this much free after it (exit 2). "
            "Env: TRITONOPS_FREE_SPACE_MARGIN_BYTES.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _gates(opts: dict[str, Any]) -> GateSettings:
    return GateSettings(
        parity=not opts.pop("no_parity_gate"),
        parity_rtol=opts.pop("parity_rtol"),
        parity_atol=opts.pop("parity_atol"),
        parity_max_bytes=opts.pop("parity_max_bytes"),
        latency_requests=opts.pop("latency_requests"),
        latency_budget_ms=opts.pop("latency_budget_ms"),
        latency_factor=opts.pop("latency_factor"),
    )


def _actor() -> str:
    """Who runs this: TRITONOPS_ACTOR (the workflow sets it), else user@host."""
    import getpass
    import socket

    if os.environ.get("TRITONOPS_ACTOR"):
        return os.environ["TRITONOPS_ACTOR"]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def _triton_headers() -> dict[str, str]:
    """The restricted model-repository API key, from the environment only (never a flag:
    flags show up in process lists and shell history). Never logged."""
    key = os.environ.get("TRITONOPS_TRITON_API_KEY", "")
    if not key:
        return {}
    header = os.environ.get("TRITONOPS_TRITON_API_HEADER", "triton-api-key")
    return {header: key}


def _settings(opts: dict[str, Any], **extra: Any) -> Any:
    from tritonops.adapters.registry import RegistrySettings
    from tritonops.core.config import ArtifactFields
    from tritonops.engine.settings import Settings

    repo: Path = opts["repo"]
    state_dir: Path = opts["state_dir"] or Settings.default_state_dir(repo)
    repo_abs, state_abs = repo.resolve(), state_dir.resolve()
    if state_abs == repo_abs or repo_abs in state_abs.parents:
        raise InputError(
            f"state dir {state_dir} is inside the model repository {repo}; Triton would read it as a model"
        )
    return Settings(
        repo=repo,
        state_dir=state_dir,
        triton_urls=opts["triton_urls"],
        registry=RegistrySettings(tracking_uri=opts["tracking_uri"], registry_uri=opts["registry_uri"]),
        pushgateway=opts["pushgateway"],
        model_config=opts.get("model_config"),
        lease_s=opts["lease_seconds"],
        model_config_dir=opts.get("model_config_dir"),
        artifact_fields=ArtifactFields.widened(opts.get("artifact_config_fields", "").split(",")),
        artifact_limits=ArtifactLimits(
            max_bytes=opts.get("max_artifact_bytes", ARTIFACT_LIMITS.max_bytes),
            max_files=opts.get("max_artifact_files", ARTIFACT_LIMITS.max_files),
            free_margin_bytes=opts.get("free_space_margin_bytes", ARTIFACT_LIMITS.free_margin_bytes),
        ),
        quarantine_keep=opts["quarantine_keep"],
        triton_headers=_triton_headers(),
        actor=_actor(),
        **extra,
    )


def _emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        human()


def _run_id(model: str, given: str | None) -> str:
    from tritonops.core.naming import new_run_id, validate_name

    validate_name("model", model)
    return given or new_run_id(model, datetime.now(UTC), secrets.token_hex(3))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="tritonops")
def cli() -> None:
    """Deploy the model version an MLflow alias points at to Triton — verified, or rolled back.

    \b
    deploy    snapshot → materialize → load → ready → smoke → commit; any failure rolls back
    status    what current.json says and what every replica serves (drift)
    history   every attempt: version, outcome, times, error, quarantine path
    rollback  back to an earlier committed version, verified like a deploy
    recover   finish or undo a deploy that was killed
    step      one step of a deploy (what each Argo container runs)
    plan      what a deploy would do now (version, interface, config diff, gates); changes nothing
    webhook   receive MLflow registry webhooks: an alias set deploys (here, or as an Argo workflow)

    Exit codes: 0 committed or no-op, 2 bad input (nothing changed),
    3 verification failed (production restored), 4 rollback failed (look now).
    """


# ----------------------------------------------------------------- deploy
@cli.command()
@click.option("--model", required=True, help="Registered model name; also the Triton model name.")
@click.option("--alias", required=True, help="Registry alias to deploy, e.g. champion.")
@click.option("--run-id", default=None, help="Run id (default: generated). Argo passes the workflow name.")
@click.option(
    "--allow-interface-change",
    is_flag=True,
    help="Accept a candidate whose inputs/outputs differ from the committed version's.",
)
@gate_options
@model_config_options
@common_options
def deploy(model: str, alias: str, run_id: str | None, allow_interface_change: bool, **opts: Any) -> None:
    """Deploy MODEL@ALIAS: load, verify on every replica, then commit — or roll back."""
    from tritonops.engine.deployer import Deployer, exit_code_for

    _setup_logging(opts["verbose"])
    settings = _settings(opts, allow_interface_change=allow_interface_change, gates=_gates(opts))
    rid = _run_id(model, run_id)
    journal = Deployer(settings).run(model, alias, rid)
    code = exit_code_for(journal)
    record = journal.history_record() | {"exit_code": int(code)}
    _emit(record, opts["as_json"], lambda: _print_outcome(record))
    sys.exit(int(code))


def _print_outcome(record: dict[str, Any]) -> None:
    model, version, outcome = record["model"], record["version"], record["outcome"]
    for step, seconds in record["steps"].items():
        click.echo(f"  {step:<12} {seconds:7.2f}s", err=True)
    prev = record["previous_version"]
    err = record.get("error") or {}
    if outcome == "committed":
        click.echo(f"committed: {model} version {version} is serving (was {prev or 'nothing'})")
    elif outcome == "noop":
        click.echo(f"no-op: {model} version {version} is already committed and serving")
    elif outcome == "rolled_back":
        click.echo(
            f"rolled back: {model} version {version} failed at {err.get('step')}: {err.get('message')}"
        )
        click.echo(
            f"  production: {record.get('rollback_detail')}; candidate kept at {record.get('quarantine')}"
        )
    elif outcome == "rejected":
        click.echo(f"rejected: {model}: {err.get('message')}")
        if record.get("quarantine"):
            click.echo(f"  production untouched; candidate kept at {record['quarantine']}")
    else:
        click.echo(f"ROLLBACK FAILED: {model} version {version}: {err.get('message')}")
        click.echo(f"  {record.get('rollback_detail')}")
        click.echo("  production may not match current.json: run `tritonops status` and `tritonops recover`")


# ----------------------------------------------------------------- status / history
@cli.command()
@click.option("--model", required=True)
@common_options
def status(model: str, **opts: Any) -> None:
    """What current.json says, and which versions every replica serves. Exit 4 on drift."""
    from tritonops.engine.deployer import Deployer

    _setup_logging(opts["verbose"])
    report = Deployer(_settings(opts)).status(model)

    def human() -> None:
        cur = report["current"]
        if cur:
            click.echo(
                f"{model}: version {cur['active_version']} committed {cur['updated_at_utc']} "
                f"(alias {cur['alias']}, run {cur['deploy_run']})"
            )
        else:
            click.echo(f"{model}: nothing committed")
        click.echo(f"  on disk: versions {report['versions_on_disk']}")
        for r in report["replicas"]:
            state = "DRIFT" if r["drift"] else "ok"
            served = r["ready_versions"] if r["live"] else f"unreachable ({r.get('error')})"
            click.echo(f"  {r['url']}: serving {served} [{state}]")
        if cur and cur.get("config_digest"):
            click.echo(f"  config: {cur['config_digest']}")
        live = report["in_progress"]
        if live:
            click.echo(f"  in progress: run {live['run_id']} ({live['holder']}) holds the model")
        interrupted = [r for r in report["unfinished_runs"] if not live or r != live["run_id"]]
        if interrupted:
            click.echo(f"  interrupted runs: {interrupted} — run `tritonops recover`")

    _emit(report, opts["as_json"], human)
    sys.exit(int(ExitCode.INCONSISTENT) if report["drift"] else 0)


@cli.command()
@click.option("--model", required=True)
@click.option("--limit", type=int, default=20, show_default=True, help="Most recent N attempts (0: all).")
@common_options
def history(model: str, limit: int, **opts: Any) -> None:
    """Every attempt: version, outcome, when, how long, error, quarantine path."""
    from tritonops.adapters.storage import StateStore
    from tritonops.core.naming import validate_name

    validate_name("model", model)
    settings = _settings(opts)
    records = StateStore(settings.state_dir).history(model)
    records = records[-limit:] if limit else records

    def human() -> None:
        if not records:
            click.echo(f"{model}: no deploys recorded")
        for r in records:
            when = datetime.fromtimestamp(r["started_at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
            took = (r.get("finished_at") or r["started_at"]) - r["started_at"]
            line = f"{when}Z  v{r.get('version') or '?':<4} {r['outcome']:<16} {took:6.1f}s  {r['run_id']}"
            click.echo(line)
            if r.get("error"):
                click.echo(f"    {r['error'].get('step')}: {r['error'].get('message')}")
            if r.get("outcome") == "pruned":
                click.echo(f"    {r.get('detail')}: {r.get('quarantine')}")
            elif r.get("quarantine"):
                click.echo(f"    kept at {r['quarantine']}")

    _emit(records, opts["as_json"], human)


# ----------------------------------------------------------------- rollback / recover
@cli.command()
@click.option("--model", required=True)
@click.option(
    "--to", "to_version", default=None, help="Committed version to return to (default: the previous one)."
)
@click.option("--run-id", default=None)
@click.option("--allow-interface-change", is_flag=True, help="Allow returning to a different interface.")
@gate_options
@model_config_options
@common_options
def rollback(
    model: str, to_version: str | None, run_id: str | None, allow_interface_change: bool, **opts: Any
) -> None:
    """Return production to an earlier committed version, verified on every replica."""
    from tritonops.core.naming import parse_version
    from tritonops.engine.deployer import exit_code_for
    from tritonops.engine.manual import rollback_to

    _setup_logging(opts["verbose"])
    settings = _settings(opts, allow_interface_change=allow_interface_change, gates=_gates(opts))
    version = parse_version(to_version) if to_version is not None else None
    journal = rollback_to(settings, model, version, _run_id(model, run_id))
    code = exit_code_for(journal)
    record = journal.history_record() | {"exit_code": int(code)}
    _emit(record, opts["as_json"], lambda: _print_outcome(record))
    sys.exit(int(code))


@cli.command()
@click.option("--model", required=True)
@common_options
def recover(model: str, **opts: Any) -> None:
    """Finish or undo a deploy that was killed, then make every replica serve current.json."""
    from tritonops.engine.manual import recover as do_recover

    _setup_logging(opts["verbose"])
    result = do_recover(_settings(opts), model, _run_id(model, None))

    def human() -> None:
        for j in result["runs"]:
            click.echo(f"run {j['run_id']}: {j['outcome']} ({j.get('rollback_detail') or ''})")
        click.echo(f"{model}: {result['summary']}")

    _emit(result, opts["as_json"], human)
    sys.exit(int(result["exit_code"]))


# ----------------------------------------------------------------- step
@cli.command()
@click.argument("name", type=click.Choice(STEP_NAMES))
@click.option("--model", required=True)
@click.option("--run-id", required=True, help="Shared by all steps of one run (Argo: {{workflow.name}}).")
@click.option("--alias", default=None, help="Only for the snapshot step.")
@click.option("--allow-interface-change", is_flag=True)
@gate_options
@model_config_options
@common_options
def step(
    name: str, model: str, run_id: str, alias: str | None, allow_interface_change: bool, **opts: Any
) -> None:
    """Run one step of run RUN_ID; state passes through the journal on the shared volume."""
    from tritonops.engine.steps import run_step

    _setup_logging(opts["verbose"])
    settings = _settings(opts, allow_interface_change=allow_interface_change, gates=_gates(opts))
    message, code = run_step(settings, name, model, run_id, alias)
    click.echo(message)
    sys.exit(int(code))


# ----------------------------------------------------------------- plan
@cli.command()
@click.option("--model", required=True, help="Registered model name; also the Triton model name.")
@click.option("--alias", required=True, help="Registry alias a deploy would follow, e.g. champion.")
@click.option(
    "--allow-interface-change",
    is_flag=True,
    help="Plan as `deploy --allow-interface-change` would run (the interface gate off).",
)
@gate_options
@model_config_options
@common_options
def plan(model: str, alias: str, allow_interface_change: bool, **opts: Any) -> None:
    """What `deploy` would do now, changing nothing: version, interface, config diff, replicas, gates.

    \b
    Exit 0: the plan (a no-op or a rejection included); 2: bad input, or the deploy would be
    refused before it starts (a replica down, another run holds the model).
    """
    from tritonops.engine.plan import exit_code
    from tritonops.engine.plan import plan as make_plan

    _setup_logging(opts["verbose"])
    if not opts["verbose"]:  # the engine's info lines would drown the plan
        logging.getLogger("tritonops").setLevel(logging.WARNING)
    settings = _settings(opts, allow_interface_change=allow_interface_change, gates=_gates(opts))
    result = make_plan(settings, model, alias)
    _emit(result, opts["as_json"], lambda: _print_plan(result))
    sys.exit(exit_code(result))


def _print_plan(p: dict[str, Any]) -> None:
    before, after = p["version_change"]
    was = f"version {before}" if before is not None else "nothing"
    click.echo(
        f"plan for {p['model']}@{p['alias']}: {p['action']} (committed: {was}; alias: version {after})"
    )
    for reason in p["reasons"]:
        click.echo(f"  why:        {reason}")
    click.echo(
        f"  version:    {before if before is not None else '-'} -> {after} ({p['candidate']['source']})"
    )
    interface = p.get("interface")
    if interface is not None:
        changes = interface["changes"]
        click.echo(f"  interface:  {'CHANGED: ' + '; '.join(changes) if changes else 'unchanged'}")
    config = p.get("config")
    if config is not None:
        d = config["diff"]
        parts = [f"{k} {d[k]}" for k in ("added", "changed", "removed") if d[k]]
        click.echo(f"  config:     {'; '.join(parts) if parts else 'unchanged'} ({config['digest_after']})")
        for line in config["text_diff"]:
            click.echo(f"      {line}")
    for r in p["replicas"]:
        served = r["ready_versions"] if r["live"] else f"NOT LIVE ({r['error']})"
        touch = "untouched" if p["action"] in ("noop", "reject") else "would load, verify and switch"
        click.echo(f"  replica:    {r['url']} serves {served}: {touch}")
    for g in p["gates"]:
        click.echo(f"  gate:       {g['name']:<10} {'on ' if g['on'] else 'off'} {g['detail']}")
    for s in p["steps"]:
        click.echo(f"  step:       {s}")
    for r in p["refused"]:
        click.echo(f"  REFUSED:    {r}")
    click.echo("nothing was changed (plan is a dry run)")


# ----------------------------------------------------------------- webhook
@cli.command()
@click.option(
    "--listen", required=True, help="HOST:PORT to serve on, e.g. 0.0.0.0:8080 ([::]:8080 for IPv6)."
)
@click.option(
    "--secret-env",
    required=True,
    help="Name of the environment variable holding the secret the MLflow webhook was created with "
    "(the secret is never a flag: flags show in process lists).",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    help="A model whose alias events deploy (repeat). With --alias, or --follow-all: required.",
)
@click.option(
    "--alias", "aliases", multiple=True, help="An alias of those models that deploys when set (repeat)."
)
@click.option(
    "--follow-all",
    is_flag=True,
    help="Deploy every model and alias a signed event names (instead of --model/--alias). "
    "Anyone who can register a model then chooses what this receiver deploys.",
)
@click.option(
    "--mode",
    type=click.Choice(["local", "argo"]),
    required=True,
    help="local: run the deploy in this process (the deploy settings below); "
    "argo: submit the tritonops-deploy WorkflowTemplate through the Argo Server API.",
)
@click.option(
    "--argo-server",
    envvar="TRITONOPS_ARGO_SERVER",
    default=None,
    help="Argo Server URL. Env: TRITONOPS_ARGO_SERVER.",
)
@click.option(
    "--argo-namespace",
    envvar="TRITONOPS_ARGO_NAMESPACE",
    default=None,
    help="Namespace of the WorkflowTemplate. Env: TRITONOPS_ARGO_NAMESPACE.",
)
@click.option(
    "--argo-token-env",
    default="ARGO_TOKEN",
    show_default=True,
    help="Name of the environment variable holding the Argo Server bearer token.",
)
@click.option(
    "--argo-ca-file",
    envvar="TRITONOPS_ARGO_CA_FILE",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="CA bundle for the Argo Server's TLS certificate (default: the system's). Env: TRITONOPS_ARGO_CA_FILE.",
)
@click.option(
    "--argo-insecure",
    is_flag=True,
    help="Allow an http:// Argo Server: the bearer token then crosses the network in clear text.",
)
@click.option(
    "--max-connections",
    envvar="TRITONOPS_WEBHOOK_MAX_CONNECTIONS",
    type=click.IntRange(min=1),
    default=WEBHOOK_MAX_CONNECTIONS,
    show_default=True,
    help="Connections served at once; a request beyond them gets 503. Env: TRITONOPS_WEBHOOK_MAX_CONNECTIONS.",
)
@click.option(
    "--request-deadline-seconds",
    envvar="TRITONOPS_WEBHOOK_REQUEST_DEADLINE_SECONDS",
    type=click.FloatRange(min=0.1),
    default=WEBHOOK_REQUEST_DEADLINE_S,
    show_default=True,
    help="A request (headers and body) must arrive within this; a slower client is disconnected. "
    "Env: TRITONOPS_WEBHOOK_REQUEST_DEADLINE_SECONDS.",
)
@click.option(
    "--argo-poll-seconds",
    type=click.FloatRange(min=0.05),
    default=5.0,
    show_default=True,
    help="How often a submitted workflow's phase is read (events meanwhile collapse into one follow-up).",
)
@click.option(
    "--replay-window-seconds",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="Signed timestamps further than this from now are refused.",
)
@click.option(
    "--max-parallel",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Deploys of different models at once (one per model, always).",
)
@gate_options
@model_config_options
@common_options
def webhook(
    listen: str,
    secret_env: str,
    models: tuple[str, ...],
    aliases: tuple[str, ...],
    follow_all: bool,
    mode: str,
    argo_server: str | None,
    argo_namespace: str | None,
    argo_token_env: str,
    argo_ca_file: Path | None,
    argo_insecure: bool,
    max_connections: int,
    request_deadline_seconds: float,
    argo_poll_seconds: float,
    replay_window_seconds: float,
    max_parallel: int,
    **opts: Any,
) -> None:
    """Receive MLflow model-registry webhooks; deploy when an allowed alias is set.

    \b
    The alias is resolved again by the deploy: a delivery never decides the version.
    Signature (HMAC-SHA256, MLflow's scheme) checked first; 202 at once, deploy after.
    GET /healthz, GET /metrics (Prometheus).
    """
    from dataclasses import replace

    from tritonops import webhook as wh
    from tritonops.webhook import server

    _setup_logging(opts["verbose"])
    secret = os.environ.get(secret_env, "")
    if not secret:
        raise InputError(f"environment variable {secret_env} (--secret-env) is empty or unset")
    rules = wh.Rules.explicit(frozenset(models), frozenset(aliases), follow_all)
    server.parse_listen(listen)
    deploy: wh.DeployFn
    if mode == "local":
        if opts["repo"] is None:
            raise InputError("--mode local needs --repo (or TRITONOPS_REPO): it runs the deploys itself")
        settings = _settings(opts, gates=_gates(opts))
        settings = replace(settings, actor=f"{settings.actor} (webhook)")
        settings.registry.resolved()  # no tracking URI: exit 2 now, not at the first event
        deploy = wh.LocalDeploys(settings)
    else:
        token = os.environ.get(argo_token_env, "")
        missing = [
            what
            for what, value in (
                ("--argo-server", argo_server),
                ("--argo-namespace", argo_namespace),
                (f"${argo_token_env}", token),
            )
            if not value
        ]
        if missing:
            raise InputError(f"--mode argo needs {', '.join(missing)}")
        assert argo_server is not None and argo_namespace is not None
        if not argo_server.lower().startswith("https://") and not argo_insecure:
            raise InputError(
                f"--argo-server {argo_server} is not https://: the bearer token would cross the network "
                "in clear text (--argo-insecure allows it, e.g. for a port-forward on loopback)"
            )
        deploy = wh.ArgoSubmits(
            wh.ArgoSettings(
                server=argo_server,
                namespace=argo_namespace,
                token=token,
                poll_s=argo_poll_seconds,
                verify=str(argo_ca_file) if argo_ca_file else True,
            )
        )
    dispatcher = wh.Dispatcher(deploy, max_parallel=max_parallel)
    receiver = wh.Receiver(secret.encode("utf-8"), rules, dispatcher, window_s=replay_window_seconds)
    server.serve(receiver, listen, deadline_s=request_deadline_seconds, max_connections=max_connections)


# --repo is what --mode local deploys into; --mode argo has no repository of its own.
for _param in webhook.params:
    if _param.name == "repo":
        _param.required = False


# ----------------------------------------------------------------- local / demo
@cli.group()
def local() -> None:
    """Run real dependencies on this machine."""


@local.command("triton")
@click.option(
    "--repo", required=True, type=click.Path(path_type=Path, file_okay=False), envvar="TRITONOPS_REPO"
)
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="Interface to serve HTTP, gRPC and metrics on (0.0.0.0: every interface, other machines too).",
)
@click.option("--http-port", type=int, default=8000, show_default=True)
@click.option("--grpc-port", type=int, default=8001, show_default=True)
@click.option("--metrics-port", type=int, default=8002, show_default=True)
@click.option(
    "--restricted-api-key-env",
    default=None,
    help="Name of an env var holding '<header>=<value>': the model-repository API then requires it.",
)
def local_triton(
    repo: Path,
    address: str,
    http_port: int,
    grpc_port: int,
    metrics_port: int,
    restricted_api_key_env: str | None,
) -> None:
    """Run a real Triton in the foreground (explicit model control, committed models loaded)."""
    from tritonops.local.triton import TritonLaunch, command, redact

    _setup_logging(False)
    repo.mkdir(parents=True, exist_ok=True)
    restricted = os.environ.get(restricted_api_key_env) if restricted_api_key_env else None
    if restricted_api_key_env and not restricted:
        raise InputError(f"environment variable {restricted_api_key_env} is empty or unset")
    launch = TritonLaunch(
        repo, http_port, grpc_port, metrics_port, restricted_api=restricted, address=address
    )
    argv, env = command(launch)
    click.echo("starting: " + " ".join(redact(argv)), err=True)
    os.execve(argv[0], argv, env)  # noqa: S606 - replace this process: signals reach Triton directly


@cli.command()
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".demo"),
    show_default=True,
    help="Where the demo's volume, registry and logs go (wiped first).",
)
@click.option("--http-port", type=int, default=18000, show_default=True)
def demo(workdir: Path, http_port: int) -> None:
    """The whole story on this machine: a real MLflow registry, a real Triton, four deploys."""
    from tritonops.demo import run_demo

    _setup_logging(False)
    started = time.monotonic()
    run_demo(workdir, http_port)
    click.echo(f"\ndemo finished in {time.monotonic() - started:.0f}s")


# ----------------------------------------------------------------- follow
@cli.command()
@click.option(
    "--targets",
    envvar="TRITONOPS_FOLLOW",
    default="",
    help="MODEL@ALIAS pairs to follow, comma-separated, e.g. fraud@champion,churn@champion. "
    "Env: TRITONOPS_FOLLOW.",
)
@click.option(
    "--committed",
    is_flag=True,
    help="List every committed model no run is working on instead (what drift repair checks); "
    "no registry needed, --targets ignored.",
)
@common_options
def follow(targets: str, committed: bool, **opts: Any) -> None:
    """Which followed MODEL@ALIAS moved: the alias points at a version not committed here.

    Prints them (--json: [{"model": ..., "alias": ...}]); nothing is downloaded or changed."""
    from tritonops.follow import run as run_follow

    _setup_logging(opts["verbose"])
    text, code = run_follow(_settings(opts), targets, committed, opts["as_json"])
    if text:
        click.echo(text)
    sys.exit(code)


def main() -> None:
    """Entry point: the one error boundary of the CLI."""
    try:
        cli.main(standalone_mode=False)
        code: int | str | None = 0
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        code = int(ExitCode.BAD_INPUT)
    except click.ClickException as exc:
        exc.show()
        code = int(ExitCode.BAD_INPUT)
    except TritonOpsError as exc:
        click.echo(f"tritonops: error: {exc}", err=True)
        code = int(exc.exit_code)
    except SystemExit as exc:
        code = exc.code
    except Exception as exc:
        logging.getLogger("tritonops").debug("unexpected error", exc_info=True)
        click.echo(f"tritonops: unexpected error: {type(exc).__name__}: {exc}", err=True)
        click.echo("  state may be inconsistent: run `tritonops status` / `tritonops recover`", err=True)
        code = int(ExitCode.INCONSISTENT)
    _exit(code)


def _exit(code: int | str | None) -> NoReturn:
    """Exit with ``code`` without tearing the interpreter down module by module.

    Once MLflow (and SQLAlchemy, pandas, ...) is imported, a normal exit spends ~0.7 s freeing
    modules after the work is done (bench/step_startup.py measures it): in every workflow step
    and every CLI deploy. What a normal exit does that matters still runs first: atexit handlers
    (logging flushed, temporary files removed) and stdio flushed. With another non-daemon thread
    alive, Python's own shutdown (which joins it) is kept.
    """
    if isinstance(code, str):  # sys.exit("message"): Python prints it and exits 1
        click.echo(code, err=True)
        code = 1
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if others:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing left to tell anyone
            stream.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    main()
