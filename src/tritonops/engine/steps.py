"""One step of a run, as an Argo container runs it: load the journal, act, save, exit."""

from __future__ import annotations

import contextlib
from dataclasses import replace

from tritonops.core.state import Outcome
from tritonops.engine.deployer import AlreadyFinished, Deployer, exit_code_for
from tritonops.engine.settings import Settings
from tritonops.errors import ExitCode, InputError, exit_code_of, reaction_of


def run_step(
    settings: Settings, name: str, model: str, run_id: str, alias: str | None
) -> tuple[str, ExitCode]:
    """Run step ``name`` of run ``run_id``; returns (one-line message, exit code).

    A failing deploy step exits with the code the error ladder gives a step (its class's; 75
    for a dependency that did not answer, which Argo retries) and leaves the error in the
    journal; the workflow's exit handler then runs ``rollback``, which is a no-op for a run
    that already finished, and ``report``, which never fails.
    """
    # One push per workflow: the exit handler's `report` step, whichever step ended the run.
    deployer = Deployer(replace(settings, push_on_finish=False))
    if name == "snapshot":
        if not alias:
            raise InputError("the snapshot step needs --alias")
        # A run killed without its exit handler (argo terminate) is repaired here, once its
        # lease has ended; a live run of another workflow refuses this one (Busy).
        with contextlib.ExitStack() as held:
            snap, recovered = deployer.begin(held, model, run_id, "deploy", alias)
        if recovered:
            repaired = ", ".join(f"{j.run_id} ({j.outcome})" for j in recovered)
            return (
                f"snapshot: {model} run {run_id} recorded after repairing interrupted runs {repaired}",
                ExitCode.OK,
            )
        return (
            f"snapshot: {model} run {run_id} recorded (serving {dict(snap.serving_before)})",
            ExitCode.OK,
        )

    loaded = deployer.store.load(model, run_id)
    if loaded is None:
        if name in ("rollback", "report"):
            # The workflow stopped before its snapshot (e.g. in recover): nothing changed, nothing to say.
            return f"{name}: run {run_id} of {model} never started; nothing to do", ExitCode.OK
        raise InputError(f"no journal for run {run_id!r} of model {model!r}: run the snapshot step first")
    journal = loaded
    deployer.pin_replicas(journal)

    if name == "report":
        if journal.outcome is None:
            return f"report: run {run_id} has no outcome yet; nothing pushed", ExitCode.OK
        pushed = deployer.report(journal)
        where = settings.pushgateway or "no pushgateway configured"
        return (
            f"report: outcome {journal.outcome.value} {'pushed to' if pushed else 'NOT pushed:'} {where}",
            ExitCode.OK,
        )

    with deployer.store.lock(model, run_id):
        if name == "rollback":
            if journal.is_finished:
                return f"rollback: nothing to do, run {run_id} ended {journal.outcome}", ExitCode.OK
            done = deployer.rollback(journal)
            code = ExitCode.INCONSISTENT if done.outcome is Outcome.ROLLBACK_FAILED else ExitCode.OK
            return f"rollback: {done.outcome}: {done.rollback_detail}", code
        step = deployer.step(name)
        try:
            done = step(journal)
        except AlreadyFinished as finished:
            # A no-op ends the run at materialize: the later steps have nothing to do. A run that
            # someone else ended (recovered after its lease expired) must not show green.
            ended = finished.journal
            return f"{name}: skipped, run {run_id} already ended {ended.outcome}", exit_code_for(ended)
        except Exception as exc:  # noqa: BLE001 - recorded in the journal; the exit handler rolls back
            code = exit_code_of(exc, step=True)
            if code is ExitCode.TEMPFAIL:
                return f"{name}: FAILED (temporary, safe to retry): {exc}", code
            if reaction_of(exc) is None:
                return f"{name}: FAILED ({type(exc).__name__}): {exc}", code
            return f"{name}: FAILED: {exc}", code
    if done.is_finished:
        return f"{name}: run {run_id} ended {done.outcome}", exit_code_for(done)
    return f"{name}: ok ({done.phase.value})", ExitCode.OK
