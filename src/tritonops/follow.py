"""``tritonops follow``: which followed models moved — the cheap check behind the polling CronWorkflow.

For every ``MODEL@ALIAS`` target the alias is resolved in the registry (metadata only: nothing
is downloaded or loaded) and its version compared with ``current.json``'s ``active_version``.
A target *moved* when they differ, or when nothing is committed yet. The moved targets are
printed as ``[{"model": ..., "alias": ...}]``, what the CronWorkflow submits a deploy for.

A moved target is left out (and said so on stderr) when submitting it would be wrong:

* a run holds a live lease on the model: a deploy is in progress, another would be refused;
* the alias's version already failed here — its last attempt was rolled back or rejected
  because the candidate was unfit (``error.kind == "verification"``), or its rollback failed:
  it would fail again every few minutes, quarantining another copy each time;
* production was rolled back *from* that version by hand (a committed ``tritonops rollback``
  after the version was last committed): following the alias would undo the rollback.

Each of these ends when the alias moves to another version, or when someone deploys by hand.

``--committed`` lists instead every model committed in the repository (it has a
``current.json``) that no run is working on: what the drift-repair CronWorkflow checks with
``tritonops status``. It needs no registry.

Exit codes: 0 every target was checked; otherwise the moved targets are still printed and the
exit code is the worst failure's (75 when every failure was the registry not answering).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from tritonops.adapters.registry import MlflowRegistry
from tritonops.adapters.storage import ModelRepository, StateStore
from tritonops.core.naming import validate_name
from tritonops.core.state import Candidate
from tritonops.engine.settings import Settings
from tritonops.errors import (
    ExitCode,
    InputError,
    RegistryUnavailable,
    TritonOpsError,
    exit_code_of,
)

log = logging.getLogger(__name__)

# The follower asks the registry one question per target every few minutes: fail fast rather
# than retry for minutes (the next run asks again).
REGISTRY_RETRIES = 1
REGISTRY_TIMEOUT_S = 20.0


class Resolver(Protocol):
    def resolve(self, model: str, alias: str) -> Candidate: ...


@dataclass(frozen=True)
class Target:
    model: str
    alias: str

    def __str__(self) -> str:
        return f"{self.model}@{self.alias}"


def parse_targets(text: str) -> list[Target]:
    """``fraud@champion,churn@champion`` (commas and/or whitespace between; duplicates once)."""
    targets: list[Target] = []
    for item in text.replace(",", " ").split():
        model, sep, alias = item.partition("@")
        if not sep or not model or not alias or "@" in alias:
            raise InputError(f"follow target {item!r} is not MODEL@ALIAS (e.g. fraud@champion)")
        target = Target(validate_name("model", model), validate_name("alias", alias))
        if target not in targets:
            targets.append(target)
    return targets


@dataclass
class FollowResult:
    moved: list[Target] = field(default_factory=list)
    errors: list[tuple[Target, TritonOpsError]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if not self.errors:
            return int(ExitCode.OK)
        # A target not checked because a dependency did not answer is a step Argo may retry
        # (TEMPFAIL); any other error outranks it.
        codes = [int(exit_code_of(e, step=True)) for _, e in self.errors]
        lasting = [c for c in codes if c != ExitCode.TEMPFAIL]
        return max(lasting) if lasting else int(ExitCode.TEMPFAIL)

    def as_json(self) -> list[dict[str, str]]:
        return [{"model": t.model, "alias": t.alias} for t in self.moved]


def _held_back(store: StateStore, target: Target, version: int, now: float) -> str | None:
    """Why a moved target must not be submitted now, or None."""
    lease = store.live_lease(target.model, now)
    if lease is not None:
        return f"a run is in progress ({lease.describe()})"
    history = store.history(target.model)
    attempts = [r for r in history if r.get("version") == version and r.get("kind", "deploy") == "deploy"]
    if attempts:
        last = attempts[-1]
        error = last.get("error") or {}
        unfit = last.get("outcome") in ("rolled_back", "rejected") and (
            error.get("kind") == "verification" or bool(error.get("unfit"))
        )
        if unfit or last.get("outcome") == "rollback_failed":
            return (
                f"version {version} already failed here (run {last.get('run_id')}: {last.get('outcome')}"
                f"{', ' + str(error.get('message')) if error.get('message') else ''}); not retried "
                "until the alias moves or someone deploys it by hand"
            )
    committed_at = [
        float(r.get("started_at") or 0)
        for r in history
        if r.get("version") == version and r.get("outcome") == "committed"
    ]
    if committed_at:
        rollbacks = [
            r
            for r in history
            if r.get("kind") == "rollback"
            and r.get("outcome") == "committed"
            and float(r.get("started_at") or 0) > max(committed_at)
        ]
        if rollbacks:
            back = rollbacks[-1]
            return (
                f"production was rolled back from version {version} to {back.get('version')} "
                f"by {back.get('actor')} (run {back.get('run_id')}); not redeployed until the alias "
                "moves or someone deploys it by hand"
            )
    return None


def check(
    settings: Settings,
    targets: Iterable[Target],
    registry: Resolver | None = None,
    clock: Callable[[], float] = time.time,
) -> FollowResult:
    """Resolve every target once and compare with what is committed."""
    repo = ModelRepository(settings.repo)
    store = StateStore(settings.state_dir)
    result = FollowResult()
    targets = list(targets)
    if not targets:
        return result
    if registry is None:
        quick = replace(settings.registry, max_retries=REGISTRY_RETRIES, timeout_s=REGISTRY_TIMEOUT_S)
        registry = MlflowRegistry(quick)
    unreachable: RegistryUnavailable | None = None
    for target in targets:
        if unreachable is not None:  # one registry for all: do not wait for it once per target
            result.errors.append((target, unreachable))
            log.error("%s: not checked: the registry did not answer (above)", target)
            continue
        try:
            current = repo.read_current(target.model)
            version = registry.resolve(target.model, target.alias).version
            committed = current.active_version if current else None
            if version == committed:
                log.info("%s: version %s is committed; nothing to do", target, version)
                continue
            reason = _held_back(store, target, version, clock())
            if reason:
                log.warning(
                    "%s -> version %s (committed: %s): held back: %s", target, version, committed, reason
                )
                continue
            log.info("%s -> version %s (committed: %s): deploy", target, version, committed or "nothing")
            result.moved.append(target)
        except RegistryUnavailable as exc:
            unreachable = exc
            result.errors.append((target, exc))
            log.error("%s: not checked: %s", target, exc)
        except TritonOpsError as exc:
            result.errors.append((target, exc))
            log.error("%s: not checked: %s", target, exc)
    return result


def committed_models(settings: Settings, clock: Callable[[], float] = time.time) -> list[str]:
    """Models with a ``current.json`` in the repository that no run holds a live lease on."""
    store = StateStore(settings.state_dir)
    models = []
    root = settings.repo
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if not (path / "current.json").is_file():
            continue
        try:
            validate_name("model", path.name)
        except InputError:
            log.warning("skipping %s: not a model name", path)
            continue
        lease = store.live_lease(path.name, clock())
        if lease is not None:
            log.info("%s: skipped, %s", path.name, lease.describe())
            continue
        models.append(path.name)
    return models


def run(settings: Settings, targets: str, committed: bool, as_json: bool) -> tuple[str, int]:
    """What ``tritonops follow`` prints on stdout, and its exit code."""
    if committed:
        models = committed_models(settings)
        data: list[dict[str, Any]] = [{"model": m} for m in models]
        text = json.dumps(data) if as_json else "\n".join(models)
        return text, int(ExitCode.OK)
    parsed = parse_targets(targets)
    if not parsed:
        log.warning("nothing to follow: no --targets and TRITONOPS_FOLLOW is empty")
    result = check(settings, parsed)
    text = json.dumps(result.as_json()) if as_json else "\n".join(str(t) for t in result.moved)
    return text, result.exit_code
