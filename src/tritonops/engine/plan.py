"""``tritonops plan``: what a deploy of ``model@alias`` would do, without doing any of it.

A plan reads what a deploy reads — ``current.json``, ``config.pbtxt``, the model's lease and
unfinished runs, what every replica serves (read-only HTTP: liveness and readiness), the alias
in the registry — and makes the decisions materialize makes: no-op, a new version, the same
version again (its config changed, or a replica drifted), or a rejection by the interface gate
or the artefact checks. It writes nothing on the shared volume and asks Triton to load nothing.

A version that is not installed is downloaded into a temporary directory outside the repository
and the state dir (``$TMPDIR``, or ``scratch``), inspected as materialize would, and deleted.
That costs a download; it is what makes the interface and config diff real.
"""

from __future__ import annotations

import difflib
import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tritonops.adapters.onnx_artifact import inspect
from tritonops.adapters.storage import ModelRepository, StateStore
from tritonops.adapters.triton import TritonReplica, replicas_from_urls
from tritonops.core import config as cfg
from tritonops.core.config import ModelConfig
from tritonops.core.naming import validate_name
from tritonops.core.signature import Signature
from tritonops.core.state import Candidate, Current
from tritonops.engine import configuration
from tritonops.engine.settings import Settings
from tritonops.errors import ArtifactInvalid, ExitCode, InputError, TritonOpsError, Unavailable

if TYPE_CHECKING:
    from tritonops.adapters.registry import MlflowRegistry

log = logging.getLogger(__name__)

# What a deploy would do (the plan's ``action``).
NOOP = "noop"  # the alias points at the committed version, same config, every replica serves it
DEPLOY = "deploy"  # a version other than the committed one
REDEPLOY = "redeploy"  # the committed version again: its config changed, or a replica drifted
REJECT = "reject"  # stopped at materialize (exit 3): interface changed, or the artefact is invalid


def plan(
    settings: Settings,
    model: str,
    alias: str,
    registry: MlflowRegistry | None = None,
    replicas: Sequence[TritonReplica] | None = None,
    scratch: Path | None = None,
) -> dict[str, Any]:
    """The plan, JSON-safe. ``refused`` lists what would stop the deploy before it starts.

    Raises InputError (exit 2) for bad input: a bad name, a template Triton's schema refuses, an
    alias or model the registry does not have, a registry that does not answer.
    """
    validate_name("model", model)
    validate_name("alias", alias)
    configuration.operator_template(settings, model)  # a bad template: exit 2, as for deploy
    repo, store = ModelRepository(settings.repo), StateStore(settings.state_dir)
    current = repo.read_current(model)
    committed = configuration.committed_config(current, repo.read_config(model))

    own = replicas is None
    fleet = (
        list(replicas)
        if replicas is not None
        else replicas_from_urls(list(settings.triton_urls), settings.triton_timeouts, settings.triton_headers)
    )
    try:
        serving = [_observe(r, model) for r in fleet]
    finally:
        if own:
            for r in fleet:
                r.close()
    refused = [
        f"{s['url']} is not live ({s['error']}): every replica must be live" for s in serving if not s["live"]
    ]
    lease = store.live_lease(model, time.time())
    if lease is not None:
        refused.append(f"model {model!r} is being changed: {lease.describe()}")
    interrupted = [j.run_id for j in store.unfinished(model)]

    if registry is None:
        from tritonops.adapters.registry import MlflowRegistry

        registry = MlflowRegistry(settings.registry)
    candidate = registry.resolve(model, alias)

    out: dict[str, Any] = {
        "model": model,
        "alias": alias,
        "committed": _committed_view(current),
        "candidate": {
            "version": candidate.version,
            "source": candidate.source,
            "run_id": candidate.run_id,
        },
        "version_change": [current.active_version if current else None, candidate.version],
        "recover_first": interrupted,
        "refused": refused,
        "replicas": serving,
        "reasons": [],
    }
    installed = repo.committed_intact(current, candidate.version)
    if current is not None and installed is not None:
        signature = current.signature
        config = configuration.compose(settings, model, signature, installed)
        smoke_input = _describe_input(installed, signature)
        out["artifact"] = f"installed at {installed} (no download)"
        same_config = current.config_digest == cfg.digest(config)
        drifted = [s["url"] for s in serving if s["live"] and s["ready_versions"] != [candidate.version]]
        if same_config and not drifted:
            out["action"] = NOOP
            out["reasons"].append(f"version {candidate.version} is committed with this config and served")
        else:
            out["action"] = REDEPLOY
            if not same_config:
                out["reasons"].append("the effective config of the committed version changed")
            if drifted:
                out["reasons"].append(f"replicas do not serve exactly version {candidate.version}: {drifted}")
        _compare(out, settings, current, committed, signature, config, candidate)
    else:
        _plan_download(out, settings, model, registry, candidate, current, committed, scratch)
        smoke_input = out.pop("_smoke_input", None)
    out["gates"] = _gates(settings, current, out.get("action"), smoke_input)
    out["steps"] = _steps(out)
    return out


def _observe(replica: TritonReplica, model: str) -> dict[str, Any]:
    """What one replica serves, read-only."""
    try:
        live = replica.is_live()
        versions = replica.ready_versions(model) if live else None
    except (Unavailable, InputError) as exc:
        return {"url": replica.url, "live": False, "ready_versions": None, "error": str(exc)}
    return {
        "url": replica.url,
        "live": live,
        "ready_versions": versions,
        "error": None if live else "not live",
    }


def _committed_view(current: Current | None) -> dict[str, Any] | None:
    if current is None:
        return None
    return {
        "version": current.active_version,
        "alias": current.alias,
        "updated_at_utc": current.updated_at_utc,
        "config_digest": current.config_digest,
    }


def _scratch_dir(settings: Settings, scratch: Path | None) -> Path:
    """A fresh temporary directory, never inside the repository or the state dir."""
    tmp = Path(tempfile.mkdtemp(prefix="tritonops-plan-", dir=scratch)).resolve()
    for root, what in ((settings.repo, "model repository"), (settings.state_dir, "state dir")):
        base = root.resolve()
        if tmp == base or base in tmp.parents:
            shutil.rmtree(tmp, ignore_errors=True)
            raise InputError(
                f"the temporary directory {tmp} is inside the {what} {root}; point TMPDIR elsewhere"
            )
    return tmp


def _plan_download(
    out: dict[str, Any],
    settings: Settings,
    model: str,
    registry: MlflowRegistry,
    candidate: Candidate,
    current: Current | None,
    committed: ModelConfig | None,
    scratch: Path | None,
) -> None:
    """Download the candidate into a temporary directory, judge it as materialize would, delete it."""
    tmp = _scratch_dir(settings, scratch)
    try:
        root = tmp / "download"
        model_dir = registry.download(candidate, root, settings.artifact_limits)
        configuration.adopt_artifact_config(root, model_dir)
        out["artifact"] = "downloaded into a temporary directory, inspected, deleted"
        try:
            signature = inspect(model_dir)
            config = configuration.compose(settings, model, signature, model_dir)
        except ArtifactInvalid as exc:
            out["action"] = REJECT
            out["reasons"].append(f"the artefact is invalid: {exc}")
            return
        out["_smoke_input"] = _describe_input(model_dir, signature)
        out["action"] = DEPLOY
        reason = f"the alias points at version {candidate.version}"
        out["reasons"].append(
            reason
            + (f", version {current.active_version} is committed" if current else ", nothing is committed")
        )
        _compare(out, settings, current, committed, signature, config, candidate)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _compare(
    out: dict[str, Any],
    settings: Settings,
    current: Current | None,
    committed: ModelConfig | None,
    signature: Signature,
    config: ModelConfig,
    candidate: Candidate,
) -> None:
    """Interface gate (the one materialize asks: core.config.interface_gate) and config diff."""
    changes = cfg.interface_gate(current.signature if current else None, committed, signature, config)
    gate_on = current is not None and not settings.allow_interface_change
    out["interface"] = {
        "changes": changes,
        "allowed": settings.allow_interface_change,
        "signature": signature.to_dict(),
    }
    if changes and gate_on:
        out["action"] = REJECT
        out["reasons"].append(
            "the interface gate would stop it (exit 3, the candidate quarantined) unless "
            "--allow-interface-change: " + "; ".join(changes)
        )
    before = (
        cfg.render_pbtxt(cfg.pinned(committed, [current.active_version])) if committed and current else ""
    )
    after = cfg.render_pbtxt(cfg.pinned(config, [candidate.version]))
    out["config"] = {
        "digest_before": current.config_digest if current else None,
        "digest_after": cfg.digest(config),
        "diff": cfg.diff(committed, config),
        "text_diff": list(
            difflib.unified_diff(
                before.splitlines(),
                after.splitlines(),
                f"config.pbtxt (committed, version {current.active_version})" if current else "(none)",
                f"config.pbtxt (candidate, version {candidate.version})",
                lineterm="",
            )
        ),
    }


def _describe_input(model_dir: Path, signature: Signature) -> str:
    from tritonops.adapters.registry import load_input_example

    try:
        example = load_input_example(model_dir, signature)
    except TritonOpsError:
        example = None
    if example is not None and not any(a.dtype == object for a in example.values()):
        return "the model's MLflow input example"
    return "an input synthesized from the signature"


def _gates(
    settings: Settings, current: Current | None, action: str | None, smoke_input: str | None
) -> list[dict[str, Any]]:
    if action == NOOP:
        return []
    gates: list[dict[str, Any]] = [
        {
            "name": "interface",
            "on": current is not None and not settings.allow_interface_change,
            "detail": "inputs, outputs and batching must equal the committed version's",
        }
    ]
    if action == REJECT:
        return gates
    gates.append(
        {"name": "smoke", "on": True, "detail": f"a real inference on every replica with {smoke_input}"}
    )
    g = settings.gates
    gates.append(
        {
            "name": "parity",
            "on": g.parity,
            "detail": f"Triton vs onnxruntime, rtol {g.parity_rtol:g}, atol {g.parity_atol:g}",
        }
    )
    latency = f"{g.latency_requests} requests per replica, p95 under {g.latency_budget_ms:g} ms"
    if current is not None:
        latency += f" and under {g.latency_factor:g}x production's"
    gates.append({"name": "latency", "on": g.latency_requests > 0, "detail": latency})
    return gates


def _steps(out: dict[str, Any]) -> list[str]:
    model, version, action = out["model"], out["candidate"]["version"], out.get("action")
    steps = [f"recover interrupted runs {out['recover_first']}"] if out["recover_first"] else []
    steps.append("snapshot: current.json, config.pbtxt and what every replica serves")
    if action == NOOP:
        return [*steps, "materialize: nothing to do (no-op, exit 0)"]
    if action == REJECT:
        return [
            *steps,
            f"materialize: version {version} rejected (exit 3), kept in quarantine; production untouched",
        ]
    how = (
        "verify the installed files again" if action == REDEPLOY else f"download version {version}, check it"
    )
    return [
        *steps,
        f"materialize: {how}, install as {model}/{version}/",
        f"load: _candidate.{model} version {version} on every replica (production untouched)",
        "ready: every replica reports it ready",
        "smoke and gates on every replica",
        f"commit: config.pbtxt pinned to version {version}, reload {model}, then current.json",
    ]


def exit_code(plan_out: dict[str, Any]) -> int:
    """0: the plan says what a deploy would do (a no-op and a rejection included);
    2: the deploy would be refused before it starts (failed precondition, as deploy exits)."""
    return int(ExitCode.BAD_INPUT if plan_out["refused"] else ExitCode.OK)


__all__ = ["DEPLOY", "NOOP", "REDEPLOY", "REJECT", "exit_code", "plan"]
