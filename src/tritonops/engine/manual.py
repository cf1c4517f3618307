"""Operator actions: return to an earlier committed version; repair an interrupted run or drift."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

from tritonops.adapters.onnx_artifact import checksums, inspect
from tritonops.core import config as cfg
from tritonops.core import steps
from tritonops.core.naming import validate_name, validate_run_id
from tritonops.core.signature import Signature
from tritonops.core.state import Candidate, Journal, Phase
from tritonops.engine import configuration, fleet
from tritonops.engine.deployer import Deployer
from tritonops.engine.settings import Settings
from tritonops.errors import ExitCode, InputError, InterfaceChanged

log = logging.getLogger(__name__)


def rollback_to(settings: Settings, model: str, version: int | None, run_id: str) -> Journal:
    """Make ``version`` (default: the previous committed one) production, through the same checks.

    The target must have been committed before and its files must still be in
    the repository. A failure restores the state before the rollback; the
    target's files are never quarantined (they were production once).
    """
    validate_name("model", model)
    validate_run_id(run_id)
    deployer = Deployer(settings)
    chosen: dict[str, Any] = {}

    def choose() -> str:
        """Under the model's lock: the version to return to must be committed once, and installed."""
        current = deployer.repo.read_current(model)
        if current is None:
            raise InputError(f"{model} has nothing committed; there is nothing to roll back from")
        target = version if version is not None else current.previous_version
        if target is None:
            raise InputError(f"{model}: current.json records no previous version; pass --to VERSION")
        if target == current.active_version:
            raise InputError(f"{model} version {target} is already the committed version")
        committed = {
            int(r["version"]): r
            for r in deployer.store.history(model)
            if r.get("outcome") == "committed" and r.get("version") is not None
        }
        if target not in committed and target != current.previous_version:
            raise InputError(
                f"{model} version {target} was never committed; committed versions: {sorted(committed)}"
            )
        vdir = deployer.repo.version_dir(model, target)
        if not (vdir / "model.onnx").is_file():
            raise InputError(f"{model} version {target}: files are missing at {vdir}; cannot roll back to it")
        record = committed.get(target, {})
        chosen.update(current=current, target=target, vdir=vdir, record=record)
        return str(record.get("alias") or current.alias or "rollback")

    with contextlib.ExitStack() as held:
        journal, _ = deployer.begin(held, model, run_id, "rollback", choose)
        current, target, vdir, record = (chosen[k] for k in ("current", "target", "vdir", "record"))
        alias = journal.alias
        try:
            signature = inspect(vdir)
            config = _rollback_config(settings, model, signature, vdir, record)
            serving = configuration.committed_config(current, journal.previous_config)
            if not settings.allow_interface_change:
                changes = cfg.interface_gate(current.signature, serving, signature, config)
                if changes:
                    raise InterfaceChanged(
                        f"version {target} has a different interface: {'; '.join(changes)}; "
                        "pass --allow-interface-change"
                    )
            candidate = Candidate(
                version=target,
                run_id=record.get("model_run_id"),
                source=str(record.get("source") or f"models:/{model}/{target}"),
                alias=alias,
                registry_model=model,
            )
            journal = deployer.store.save(
                journal.at(
                    Phase.MATERIALIZED,
                    kind="rollback",
                    candidate=candidate,
                    signature=signature,
                    max_batch_size=config.max_batch_size,
                    config=cfg.to_dict(config),
                    config_diff=cfg.diff(serving, config),
                    files=checksums(vdir),
                    installed_dir=False,
                )
            )
            for spec in steps.ROLLBACK_TO:  # load, ready, smoke, commit: as a deploy after materialize
                journal = deployer.step(spec.name)(journal)
            return journal
        except Exception as exc:  # noqa: BLE001 - whatever failed, the state before the rollback is restored
            log.error("rollback of model=%s to version=%s failed: %s", model, target, exc)
            return deployer.rollback(deployer.store.load(model, run_id) or journal)


def _rollback_config(
    settings: Settings, model: str, signature: Signature, vdir: Path, record: dict[str, Any]
) -> cfg.ModelConfig:
    """The config to return to: the operator's template now in force, if any, over the
    target's own sources; without a template, exactly the config the target was committed with."""
    if configuration.template_path(settings, model) is None and record.get("config"):
        return cfg.from_dict(record["config"], f"history of version {record.get('version')}")
    return configuration.compose(settings, model, signature, vdir)


def recover(settings: Settings, model: str, run_id: str) -> dict[str, Any]:
    """Undo interrupted runs, then bring every drifting replica back to current.json."""
    validate_name("model", model)
    log.info("recover: model=%s (interrupted runs, then every replica against current.json)", model)
    deployer = Deployer(settings)
    with deployer.store.lock(model, run_id):
        runs = deployer.recover_interrupted(model, run_id)
        current = deployer.repo.read_current(model)
        fixed, failed = [], []
        for outcome in fleet.each(
            deployer.replicas, lambda r: deployer.serve_committed(r, model, current), "recover"
        ):
            if outcome.error is not None:
                failed.append(f"{outcome.url}: {outcome.error}")
            elif outcome.value:
                fixed.append(outcome.url)
    summary = (
        f"serving version {current.active_version} everywhere"
        if current
        else "nothing committed, nothing loaded"
    )
    if fixed:
        summary += f" (repaired {', '.join(fixed)})"
    if failed:
        summary = "NOT consistent: " + "; ".join(failed)
    return {
        "model": model,
        "runs": [j.history_record() for j in runs],
        "repaired_replicas": fixed,
        "failed_replicas": failed,
        "summary": summary,
        "exit_code": int(ExitCode.INCONSISTENT if failed else ExitCode.OK),
    }
