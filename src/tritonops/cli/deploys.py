"""The commands that change or read what a model serves: deploy, status, history, rollback,
recover, step, plan."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import click

from tritonops.cli.app import cli
from tritonops.cli.options import (
    STEP_NAMES,
    common_options,
    emit,
    gate_options,
    gates_from,
    model_config_options,
    run_id_for,
    settings_from,
    setup_logging,
)
from tritonops.errors import ExitCode


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

    setup_logging(opts["verbose"])
    settings = settings_from(opts, allow_interface_change=allow_interface_change, gates=gates_from(opts))
    rid = run_id_for(model, run_id)
    journal = Deployer(settings).run(model, alias, rid)
    code = exit_code_for(journal)
    record = journal.history_record() | {"exit_code": int(code)}
    emit(record, opts["as_json"], lambda: _print_outcome(record))
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

    setup_logging(opts["verbose"])
    report = Deployer(settings_from(opts)).status(model)

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

    emit(report, opts["as_json"], human)
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
    settings = settings_from(opts)
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

    emit(records, opts["as_json"], human)


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

    setup_logging(opts["verbose"])
    settings = settings_from(opts, allow_interface_change=allow_interface_change, gates=gates_from(opts))
    version = parse_version(to_version) if to_version is not None else None
    journal = rollback_to(settings, model, version, run_id_for(model, run_id))
    code = exit_code_for(journal)
    record = journal.history_record() | {"exit_code": int(code)}
    emit(record, opts["as_json"], lambda: _print_outcome(record))
    sys.exit(int(code))


@cli.command()
@click.option("--model", required=True)
@common_options
def recover(model: str, **opts: Any) -> None:
    """Finish or undo a deploy that was killed, then make every replica serve current.json."""
    from tritonops.engine.manual import recover as do_recover

    setup_logging(opts["verbose"])
    result = do_recover(settings_from(opts), model, run_id_for(model, None))

    def human() -> None:
        for j in result["runs"]:
            click.echo(f"run {j['run_id']}: {j['outcome']} ({j.get('rollback_detail') or ''})")
        click.echo(f"{model}: {result['summary']}")

    emit(result, opts["as_json"], human)
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

    setup_logging(opts["verbose"])
    settings = settings_from(opts, allow_interface_change=allow_interface_change, gates=gates_from(opts))
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

    setup_logging(opts["verbose"])
    if not opts["verbose"]:  # the engine's info lines would drown the plan
        logging.getLogger("tritonops").setLevel(logging.WARNING)
    settings = settings_from(opts, allow_interface_change=allow_interface_change, gates=gates_from(opts))
    result = make_plan(settings, model, alias)
    emit(result, opts["as_json"], lambda: _print_plan(result))
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
