"""The CLI's options and how they become Settings: the shared option stacks, each with its
environment variable, the gate and model-config flags, and the settings they build."""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from tritonops.core import steps
from tritonops.core.lease import DEFAULT_LEASE_S
from tritonops.core.limits import (
    DEFAULT_QUARANTINE_KEEP,
    ArtifactLimits,
)
from tritonops.engine.settings import GateSettings
from tritonops.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])

# The gate flags' defaults are GateSettings' own: one place to change them (and the limits').
GATE_DEFAULTS = GateSettings()
ARTIFACT_LIMITS = ArtifactLimits()

STEP_NAMES = steps.NAMES  # the step table's (core/steps.py), then rollback and report


def setup_logging(verbose: bool) -> None:
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


def gates_from(opts: dict[str, Any]) -> GateSettings:
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


def settings_from(opts: dict[str, Any], **extra: Any) -> Any:
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


def emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        human()


def run_id_for(model: str, given: str | None) -> str:
    from tritonops.core.naming import new_run_id, validate_name

    validate_name("model", model)
    return given or new_run_id(model, datetime.now(UTC), secrets.token_hex(3))
