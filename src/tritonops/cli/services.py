"""The long-running and local commands: the webhook receiver, the follower, a local Triton,
the demo."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from tritonops.cli.app import cli
from tritonops.cli.options import (
    common_options,
    gate_options,
    gates_from,
    model_config_options,
    settings_from,
    setup_logging,
)
from tritonops.core.limits import (
    WEBHOOK_MAX_CONNECTIONS,
    WEBHOOK_REQUEST_DEADLINE_S,
)
from tritonops.errors import InputError


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

    setup_logging(opts["verbose"])
    secret = os.environ.get(secret_env, "")
    if not secret:
        raise InputError(f"environment variable {secret_env} (--secret-env) is empty or unset")
    rules = wh.Rules.explicit(frozenset(models), frozenset(aliases), follow_all)
    server.parse_listen(listen)
    deploy: wh.DeployFn
    if mode == "local":
        if opts["repo"] is None:
            raise InputError("--mode local needs --repo (or TRITONOPS_REPO): it runs the deploys itself")
        settings = settings_from(opts, gates=gates_from(opts))
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

    setup_logging(False)
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

    setup_logging(False)
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

    setup_logging(opts["verbose"])
    text, code = run_follow(settings_from(opts), targets, committed, opts["as_json"])
    if text:
        click.echo(text)
    sys.exit(code)
