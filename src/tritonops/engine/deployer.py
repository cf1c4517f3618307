"""The deploy state machine: snapshot → materialize → load → ready → smoke → commit, or rollback.

Every step reads the run's journal, does one thing, and saves the journal
before returning, so a step can run in its own container (Argo) or in-process
(the CLI) with the same effect, and a run that dies anywhere can be undone.

Which versions a replica holds during a deploy
----------------------------------------------
Production clients name the model without a version, and Triton answers them with its highest
ready version, so a candidate loaded under the production name would answer them unverified.
``load`` therefore loads the candidate under a staging name, ``_candidate.<model>`` (hard links
to the installed files, a load-API config override: the committed ``config.pbtxt`` is never
touched), and ``ready`` and ``smoke`` verify it there; production keeps serving the committed
version throughout. ``commit`` unloads the staging copy, writes ``config.pbtxt`` pinned to the
candidate and reloads the production model from disk: Triton loads the new version and retires
the old one once the new is ready, so unversioned requests are answered throughout. Rolling
back before commit is unloading the staging copy; production was never touched.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tritonops.adapters import files, pushgateway
from tritonops.adapters.onnx_artifact import checksums, inspect
from tritonops.adapters.storage import ModelRepository, StateStore
from tritonops.adapters.triton import TritonReplica, replicas_from_urls
from tritonops.core import config as cfg
from tritonops.core import steps
from tritonops.core.config import ModelConfig
from tritonops.core.naming import utc_stamp, validate_name, validate_run_id
from tritonops.core.signature import Array, Signature
from tritonops.core.state import Candidate, Current, Journal, Outcome, Phase, StepRecord
from tritonops.core.verdict import smoke_problems, synthesize_inputs
from tritonops.engine import configuration, fleet
from tritonops.engine.leases import LeaseKeeper
from tritonops.engine.settings import Settings
from tritonops.errors import (
    CorruptState,
    ExitCode,
    GateFailed,
    InconsistentState,
    InputError,
    InterfaceChanged,
    NotReady,
    RollbackFailed,
    SmokeFailed,
    TritonOpsError,
    Unavailable,
    exit_code_for_kind,
    history_kind,
)

if TYPE_CHECKING:
    from tritonops.adapters.registry import MlflowRegistry

log = logging.getLogger(__name__)

RegistryFactory = Callable[[], "MlflowRegistry"]


def _default_registry_factory(settings: Settings) -> RegistryFactory:
    def make() -> MlflowRegistry:
        from tritonops.adapters.registry import MlflowRegistry

        return MlflowRegistry(settings.registry)

    return make


def exit_code_for(journal: Journal) -> ExitCode:
    """Map a finished run to the CLI's exit code (contract): its outcome first, then the kind of
    error it recorded (the ladder in :mod:`tritonops.errors`)."""
    if journal.outcome in (Outcome.COMMITTED, Outcome.NOOP):
        return ExitCode.OK
    if journal.outcome is Outcome.ROLLBACK_FAILED:
        return ExitCode.INCONSISTENT
    if journal.outcome is Outcome.ROLLED_BACK:
        return ExitCode.ROLLED_BACK
    return exit_code_for_kind((journal.error or {}).get("kind", ""))


class Deployer:
    """Runs the steps of one model's deploys against the shared volume and the replicas."""

    def __init__(
        self,
        settings: Settings,
        registry: RegistryFactory | None = None,
        replicas: Sequence[TritonReplica] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.repo = ModelRepository(settings.repo)
        self.store = StateStore(settings.state_dir)
        self._registry_factory = registry or _default_registry_factory(settings)
        self._registry: MlflowRegistry | None = None
        self.replicas = (
            list(replicas)
            if replicas is not None
            else replicas_from_urls(
                list(settings.triton_urls), settings.triton_timeouts, settings.triton_headers
            )
        )
        self.clock = clock
        self.leases = LeaseKeeper(self.store, clock, settings.lease_s, settings.actor)

    def pin_replicas(self, journal: Journal) -> None:
        """Use the replica set the run recorded at its snapshot, not a fresh DNS expansion.

        Each Argo step starts a new process; re-expanding ``dns+http://`` there would let the
        set drift mid-run. A replica added since is not part of this run (it loads the committed
        config when it starts; ``status`` shows it, ``recover`` aligns it); a pinned replica that
        disappeared fails the step, and the run rolls back.
        """
        if journal.replicas and tuple(r.url for r in self.replicas) != tuple(journal.replicas):
            log.info(
                "run=%s uses the replicas pinned at its snapshot: %s", journal.run_id, list(journal.replicas)
            )
            for replica in self.replicas:
                replica.close()
            self.replicas = replicas_from_urls(
                list(journal.replicas), self.settings.triton_timeouts, self.settings.triton_headers
            )

    @property
    def registry(self) -> MlflowRegistry:
        if self._registry is None:
            self._registry = self._registry_factory()
        return self._registry

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # ------------------------------------------------------------------ steps
    @contextmanager
    def _step(self, journal: Journal, name: str) -> Iterator[list[Journal]]:
        """Time a step, record it in the journal and save; errors are recorded then re-raised.

        The run's lease is claimed first (another run's live lease refuses the step before it
        records or changes anything) and renewed while the step works.
        """
        box = [journal]
        with self.leases.held(journal.model, journal.run_id):
            started = self.clock()
            t0 = time.monotonic()
            log.info("step %s: model=%s run=%s", name, journal.model, journal.run_id)
            try:
                yield box
            except BaseException as exc:
                record = StepRecord(name, started, time.monotonic() - t0, False, str(exc)[:500])
                # The step may have saved progress (e.g. where it staged files) before failing.
                latest = self.store.load(journal.model, journal.run_id) or box[0]
                failed = latest.with_step(record).with_error(name, exc)
                failed = replace(failed, error={**(failed.error or {}), "kind": history_kind(exc)})
                self.store.save(failed)
                box[0] = failed
                raise
            record = StepRecord(name, started, time.monotonic() - t0, True)
            box[0] = self.store.save(box[0].with_step(record))

    def snapshot(self, model: str, alias: str, run_id: str) -> Journal:
        """Record the committed state and what every replica serves, before changing anything."""
        validate_name("model", model)
        validate_name("alias", alias)
        validate_run_id(run_id)
        configuration.operator_template(self.settings, model)  # a bad template changes nothing
        files.ensure_writable_dir(self.settings.state_dir, "state dir")
        if self.store.load(model, run_id) is not None:
            raise InputError(f"run {run_id!r} of model {model!r} already exists; use a new run id")
        previous = self.repo.read_current_raw(model)
        if previous is not None:
            Current.from_dict(previous, str(self.repo.current_path(model)))  # validate, fail early
        journal = Journal(
            run_id=run_id,
            model=model,
            alias=alias,
            replicas=tuple(r.url for r in self.replicas),
            started_at=self.clock(),
            previous=previous,
            previous_config=self.repo.read_config(model),
            actor=self.settings.actor,
        )
        with self._step(journal, "snapshot") as box:

            def observe(replica: TritonReplica) -> list[int]:
                replica.require_live()
                return replica.ready_versions(model)

            served = fleet.all_or_nothing(self.replicas, observe, "snapshot")
            serving = {r.url: versions for r, versions in zip(self.replicas, served, strict=True)}
            box[0] = box[0].at(Phase.SNAPSHOTTED, serving_before=serving)
        return box[0]

    def materialize(self, journal: Journal) -> Journal:
        """Resolve the alias once, download, verify, and move the version into the repository.

        The serving version with a configuration that changed (a new template, say) is a deploy
        too: its installed files are verified again under the new config, without a download.
        """
        self._expect(journal, steps.needs("materialize"))
        model = journal.model
        with self._step(journal, "materialize") as box:
            # Resolved once per run: a retried materialize keeps the version it pinned.
            candidate = journal.candidate or self.registry.resolve(model, journal.alias)
            box[0] = self.store.save(box[0].at(Phase.SNAPSHOTTED, candidate=candidate))
            current = self._current_from(journal)
            installed = self.repo.committed_intact(current, candidate.version)
            if current is not None and installed is not None:
                signature = current.signature
                config = configuration.compose(self.settings, model, signature, installed)
                if current.config_digest == cfg.digest(config) and self._all_serve(model, candidate.version):
                    log.info(
                        "model=%s version=%s is already committed with this config and served: nothing to do",
                        model,
                        candidate.version,
                    )
                    box[0] = box[0].finished(Outcome.NOOP, self.clock())
                else:
                    box[0] = self._verified(box[0], candidate, current, signature, config, installed)
                    box[0] = self.store.save(box[0].at(Phase.MATERIALIZED, files=dict(current.files)))
            else:
                box[0] = self._fetch(box[0], candidate, current)
        if box[0].outcome is Outcome.NOOP:
            self._finish(box[0], {})
        return box[0]

    def _fetch(self, journal: Journal, candidate: Candidate, current: Current | None) -> Journal:
        """Download into staging, verify the artefact, its config and the interface gate, then install.

        The files' sha256 is not computed here: the load step hashes the installed files while
        Triton loads them, and commit records the digests in current.json.
        """
        model = journal.model
        staging = self.store.staging_dir(model, journal.run_id)
        shutil.rmtree(staging, ignore_errors=True)
        files.ensure_writable_dir(staging.parent, "staging dir")
        journal = self.store.save(journal.at(Phase.SNAPSHOTTED, staged_dir=str(staging)))
        model_dir = self.registry.download(candidate, staging, self.settings.artifact_limits)
        configuration.adopt_artifact_config(staging, model_dir)
        journal = self.store.save(journal.at(Phase.SNAPSHOTTED, staged_dir=str(model_dir)))
        signature = inspect(model_dir)
        config = configuration.compose(self.settings, model, signature, model_dir)
        journal = self._verified(journal, candidate, current, signature, config, model_dir)
        return self._install(journal, model_dir, candidate)

    def _verified(
        self,
        journal: Journal,
        candidate: Candidate,
        current: Current | None,
        signature: Signature,
        config: ModelConfig,
        model_dir: Path,
    ) -> Journal:
        """Record the candidate's signature and config; the interface gate (tensors and batching)."""
        committed = configuration.committed_config(current, journal.previous_config)
        journal = self.store.save(
            journal.at(
                Phase.SNAPSHOTTED,
                signature=signature,
                max_batch_size=config.max_batch_size,
                config=cfg.to_dict(config),
                config_diff=cfg.diff(committed, config),
                smoke_input=self._save_smoke_input(journal, model_dir, signature),
            )
        )
        if current is not None and not self.settings.allow_interface_change:
            changes = cfg.interface_gate(current.signature, committed, signature, config)
            if changes:
                raise InterfaceChanged(
                    f"version {candidate.version} changes the interface of {journal.model} "
                    f"(committed: version {current.active_version}): {'; '.join(changes)}. "
                    "Pass --allow-interface-change if clients are ready for it."
                )
        return journal

    def _install(self, journal: Journal, model_dir: Path, candidate: Candidate) -> Journal:
        """Rename the verified version dir into the repository: Triton never sees it half-written."""
        target = self.repo.version_dir(journal.model, candidate.version)
        if target.exists():
            sums = checksums(model_dir)
            if checksums(target) == sums:
                log.info(
                    "model=%s version=%s already in the repository with the same files",
                    journal.model,
                    candidate.version,
                )
                return self.store.save(journal.at(Phase.MATERIALIZED, files=sums))
            if candidate.version == journal.previous_version:
                raise InconsistentState(
                    f"{target} is the committed version but its files differ from the registry's "
                    f"version {candidate.version}; refusing to replace what production serves"
                )
            # A stale directory nobody committed (e.g. left by a crash): keep it, out of the way.
            self.store.quarantine(
                target,
                journal.model,
                candidate.version,
                self._now(),
                {"reason": "stale version directory replaced by a new download", "run_id": journal.run_id},
            )
        journal = self.store.save(journal.at(Phase.MATERIALIZING, staged_identity=files.identity(model_dir)))
        files.move_dir(model_dir, target)
        return self.store.save(journal.at(Phase.MATERIALIZED, installed_dir=True, staged_dir=None))

    def _save_smoke_input(self, journal: Journal, model_dir: Path, signature: Signature) -> str | None:
        from tritonops.adapters.registry import load_input_example

        example = load_input_example(model_dir, signature)
        if example is None or any(a.dtype == object for a in example.values()):
            return None
        path = self.store.run_dir(journal.model, journal.run_id) / "smoke_input.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **example)
        return str(path)

    def load(self, journal: Journal) -> Journal:
        """Load the candidate on every replica under its staging name; production is untouched.

        Production clients send requests without a version, and Triton answers
        those with the highest READY version of the model they name. Loading the
        candidate into the production model would let an unverified version
        answer them. So the candidate is verified as ``_candidate.<model>`` (hard
        links to the same files: no extra disk), and production switches at commit.
        """
        self._expect(journal, steps.needs("load"))
        candidate, _ = self._candidate(journal)
        staging = self.repo.link_candidate(journal.model, candidate.version)
        config = cfg.pinned(self._config(journal), [candidate.version], name=staging)
        with self._step(journal, "load") as box:
            box[0] = self.store.save(
                box[0].at(Phase.MATERIALIZED, loaded_versions=(candidate.version,), candidate_model=staging)
            )
            body = cfg.to_load_json(config)
            # While Triton loads (seconds, for a large model), compute what later steps need
            # anyway: the files' sha256 (commit records it) and what the parity gate compares
            # against (the smoke step then only infers and compares).
            with (
                _alongside(self._installed_files, box[0]) as sums,
                _alongside(self._parity_reference, box[0]) as reference,
            ):
                fleet.all_or_nothing(self.replicas, lambda r: r.load(staging, body), "load")
            digests = sums.result if sums.result is not None else self._installed_files(box[0])
            box[0] = box[0].at(Phase.LOADED, parity_reference=reference.result, files=digests)
        return box[0]

    def _installed_files(self, journal: Journal) -> dict[str, str]:
        """sha256 of the installed version's files: exactly what Triton loads."""
        if journal.files:  # known already: a config-only change, or the same files found installed
            return dict(journal.files)
        candidate, _ = self._candidate(journal)
        return checksums(self.repo.version_dir(journal.model, candidate.version))

    def ready(self, journal: Journal) -> Journal:
        self._expect(journal, steps.needs("ready"))
        candidate, _ = self._candidate(journal)
        staging = self._staging(journal)
        with self._step(journal, "ready") as box:
            fleet.all_or_nothing(
                self.replicas, lambda r: r.wait_version_ready(staging, candidate.version), "ready"
            )
            box[0] = box[0].at(Phase.READY)
        return box[0]

    def smoke(self, journal: Journal) -> Journal:
        """Real inference on every replica, judged strictly, then the parity and latency gates."""
        self._expect(journal, steps.needs("smoke"))
        candidate, _ = self._candidate(journal)
        staging = self._staging(journal)
        config = self._config(journal)
        client = cfg.client_signature(config)  # what clients send and get: the config's dims
        inputs = self._smoke_inputs(journal, config)
        with self._step(journal, "smoke") as box:
            answers = fleet.all_or_nothing(
                self.replicas,
                lambda r: self._check_inference(r, staging, candidate.version, client, inputs),
                "smoke",
            )
            results = dict(box[0].gates)
            results.update(self._run_gates(journal, staging, candidate.version, config, inputs, answers))
            box[0] = box[0].at(Phase.SMOKED, gates=results)
        return box[0]

    def _run_gates(
        self,
        journal: Journal,
        staging: str,
        version: int,
        config: ModelConfig,
        inputs: dict[str, Array],
        answers: list[dict[str, Array]],
    ) -> dict[str, Any]:
        from tritonops.engine import gates

        settings = self.settings.gates
        signature = cfg.client_signature(config)
        out: dict[str, Any] = {}
        too_big = self._parity_skip_reason(journal)
        if settings.parity and too_big:
            out["parity"] = {"passed": True, "skipped": True, "detail": too_big}
            log.warning("model=%s parity gate skipped: %s", journal.model, too_big)
        elif settings.parity:
            reference = self._load_reference(journal)
            if reference is None:
                vdir = self.repo.version_dir(journal.model, version)
                reference = gates.reference_outputs(vdir, cfg.model_shaped(config, inputs))
            report = gates.parity(reference, answers, settings.parity_rtol, settings.parity_atol)
            out["parity"] = report.to_dict()
            self.store.save(journal.at(journal.phase, gates={**journal.gates, **out}))
            if not report.passed:
                raise GateFailed(f"golden parity: {report.detail}")
        if settings.latency_requests > 0:
            current = self._current_from(journal)
            report = gates.latency(
                self.replicas,
                candidate=(staging, version),
                production=(journal.model, current.active_version) if current else None,
                signature=signature,
                inputs=inputs,
                requests=settings.latency_requests,
                budget_ms=settings.latency_budget_ms,
                factor=settings.latency_factor,
                floor_ms=settings.latency_floor_ms,
            )
            out["latency"] = report.to_dict()
            self.store.save(journal.at(journal.phase, gates={**journal.gates, **out}))
            if not report.passed:
                raise GateFailed(f"latency: {report.detail}")
        return out

    def _parity_skip_reason(self, journal: Journal) -> str | None:
        """Why the parity gate must not run in this process (the model is too large), or None."""
        limit = self.settings.gates.parity_max_bytes
        candidate, _ = self._candidate(journal)
        vdir = self.repo.version_dir(journal.model, candidate.version)
        size = sum(p.stat().st_size for p in vdir.rglob("*") if p.is_file())
        if size <= limit:
            return None
        return (
            f"the model is {size / 2**30:.2f} GiB, over the in-process limit of {limit / 2**30:.2f} GiB "
            "(--parity-max-bytes / TRITONOPS_PARITY_MAX_BYTES)"
        )

    def _parity_reference(self, journal: Journal) -> str | None:
        """onnxruntime's answers to the smoke inputs, saved beside the journal; None to skip."""
        if not self.settings.gates.parity or self._parity_skip_reason(journal):
            return None
        from tritonops.engine import gates

        candidate, _ = self._candidate(journal)
        config = self._config(journal)
        inputs = cfg.model_shaped(config, self._smoke_inputs(journal, config))
        reference = gates.reference_outputs(self.repo.version_dir(journal.model, candidate.version), inputs)
        path = self.store.run_dir(journal.model, journal.run_id) / "parity_reference.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **reference)
        return str(path)

    def _load_reference(self, journal: Journal) -> dict[str, Array] | None:
        if not journal.parity_reference or not Path(journal.parity_reference).is_file():
            return None
        with np.load(journal.parity_reference, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def commit(self, journal: Journal) -> Journal:
        """Switch production to the verified candidate on every replica, then write current.json.

        The staging copy is unloaded first, so a replica holds at most two
        versions at any time. Reloading the production model with config.pbtxt
        pinned to the candidate makes Triton load it, then retire the previous
        version once the new one is ready: unversioned requests are answered
        throughout, by the previous version until the switch and by the
        candidate after it.
        """
        self._expect(journal, steps.needs("commit"))
        candidate, signature = self._candidate(journal)
        model = journal.model
        with self._step(journal, "commit") as box:
            box[0] = self.store.save(box[0].at(Phase.COMMITTING))
            config = self._config(journal)
            self.repo.write_config(model, cfg.render_pbtxt(cfg.pinned(config, [candidate.version])))
            client = cfg.client_signature(config)
            inputs = self._smoke_inputs(journal, config)

            def switch(replica: TritonReplica) -> None:
                self._unload_staging(replica, journal)
                replica.load(model)
                replica.wait_version_ready(model, candidate.version)
                self.wait_serving_only(replica, model, candidate.version, NotReady)
                self._check_inference(replica, model, None, client, inputs, expect_version=candidate.version)

            fleet.all_or_nothing(self.replicas, switch, "commit")
            current = Current(
                model=model,
                active_version=candidate.version,
                run_id=candidate.run_id,
                alias=candidate.alias,
                updated_at_utc=utc_stamp(self._now()),
                source=candidate.source,
                signature=signature,
                max_batch_size=config.max_batch_size,
                files=journal.files,
                deploy_run=journal.run_id,
                previous_version=journal.previous_version,
                config=cfg.to_dict(config),
                config_digest=cfg.digest(config),
            )
            self.repo.write_current(current)
            self.repo.remove_candidate(model)
            log.info("committed model=%s version=%s", model, candidate.version)
        done = box[0].finished(Outcome.COMMITTED, self.clock())
        self._finish(done, self._commit_tags(done))
        return done

    # --------------------------------------------------------------- rollback
    def rollback(self, journal: Journal) -> Journal:
        """Restore exactly the snapshotted state: files, quarantine, every replica, verified.

        Safe to run twice and after a crash at any point: each action checks
        what is there before it acts.
        """
        if journal.is_finished:
            return journal
        model = journal.model
        self.leases.claim(model, journal.run_id)  # never undo while another run owns the model
        started, t0 = self.clock(), time.monotonic()
        problems: list[str] = []
        touched_triton = journal.phase.rank >= Phase.MATERIALIZED.rank and bool(journal.loaded_versions)
        try:
            self.repo.restore_config(model, journal.previous_config)
            self.repo.restore_current(model, journal.previous)
        except OSError as exc:
            problems.append(f"could not restore config.pbtxt/current.json: {exc}")
        notes: list[str] = []
        # Serving first: nothing that follows (quarantine, clean-up) may stand in its way.
        if touched_triton or journal.phase is Phase.COMMITTING:
            # Every replica is attempted, whatever happens to the others.
            for result in fleet.each(self.replicas, lambda r: self._restore_replica(r, journal), "rollback"):
                error = result.error
                if error is None:
                    continue
                if isinstance(error, Unavailable) and journal.phase is not Phase.COMMITTING:
                    # Production on it was never touched, and a restarted Triton loads
                    # the committed config: a dead replica cannot serve the candidate.
                    notes.append(f"{result.url} unreachable ({error}); it serves current.json when back")
                elif isinstance(error, Unavailable):
                    problems.append(str(error))  # it may have switched production: unknown
                else:
                    problems.append(f"{result.url}: {type(error).__name__}: {error}")
        try:
            quarantined = self._quarantine_candidate(journal)
        except Exception as exc:  # noqa: BLE001 - production is restored; the files stay where they are
            quarantined = None
            where = journal.staged_dir or self.repo.version_dir(
                model, journal.candidate.version if journal.candidate else 0
            )
            notes.append(
                f"candidate NOT quarantined ({type(exc).__name__}: {exc}); its files stay at {where}"
            )
        if problems:
            problems.append("replicas now serve: " + self._serving_report(model))
        if not problems:
            self.repo.remove_candidate(model)
        outcome = Outcome.ROLLED_BACK if touched_triton else Outcome.REJECTED
        detail = (
            "; ".join(problems)
            if problems
            else (
                f"serving version {journal.previous_version}"
                if journal.previous_version
                else "model unloaded"
            )
        )
        if notes and not problems:
            detail += "; " + "; ".join(notes)
        if problems:
            outcome = Outcome.ROLLBACK_FAILED
        record = StepRecord("rollback", started, time.monotonic() - t0, not problems, detail[:500])
        done = journal.with_step(record).finished(
            outcome, self.clock(), quarantine=quarantined, rollback_detail=detail
        )
        if journal.error is None:
            done = replace(
                done,
                error={
                    "step": "unknown",
                    "type": "Interrupted",
                    "message": "run did not finish",
                    "kind": "inconsistent",
                },
            )
        log.warning("rollback model=%s run=%s outcome=%s: %s", model, journal.run_id, outcome.value, detail)
        status = "rolled_back" if outcome is not Outcome.ROLLBACK_FAILED else "rollback_failed"
        self._finish(done, self._status_tags(status) if journal.candidate else {})
        return done

    def _serving_report(self, model: str) -> str:
        """Best effort, for an operator reading a failed rollback: what each replica serves."""
        out = []
        for replica in self.replicas:
            try:
                out.append(f"{replica.url} {replica.ready_versions(model)}")
            except Exception as exc:  # noqa: BLE001 - a report, never a new failure
                out.append(f"{replica.url} unknown ({type(exc).__name__})")
        return ", ".join(out)

    def _quarantine_candidate(self, journal: Journal) -> str | None:
        candidate = journal.candidate
        if candidate is None:
            return None
        reason = {"run_id": journal.run_id, "error": dict(journal.error or {}), "version": candidate.version}
        target = self.repo.version_dir(journal.model, candidate.version)
        is_committed = candidate.version == journal.previous_version
        # Interrupted while renaming the staged dir into place: the target is ours when the
        # rename happened (it keeps the inode). A copy across filesystems does not; such a dir
        # stays where it is, unserved (config.pbtxt pins the committed version), nothing lost.
        ours = journal.installed_dir or (
            journal.phase is Phase.MATERIALIZING
            and target.is_dir()
            and files.identity(target) == journal.staged_identity
        )
        if ours and not is_committed and target.is_dir():
            return str(self.store.quarantine(target, journal.model, candidate.version, self._now(), reason))
        if journal.staged_dir and Path(journal.staged_dir).is_dir():
            return str(
                self.store.quarantine(
                    Path(journal.staged_dir), journal.model, candidate.version, self._now(), reason
                )
            )
        return None

    def _unload_staging(self, replica: TritonReplica, journal: Journal) -> None:
        staging = journal.candidate_model or self.repo.candidate_name(journal.model)
        replica.wait_settled(staging)
        if replica.ready_versions(staging) or replica.known(staging):
            replica.unload(staging)
            self.wait_serving_only(replica, staging, None)

    def _restore_replica(self, replica: TritonReplica, journal: Journal) -> None:
        """Make one replica serve the snapshotted version again, and prove it by inference."""
        model = journal.model
        self._unload_staging(replica, journal)
        previous = self._current_from(journal)
        # Past the config write, a replica may run the committed version under the new config.
        self.serve_committed(replica, model, previous, reload=journal.phase is Phase.COMMITTING)
        if previous is not None:
            committed = configuration.committed_config(previous, journal.previous_config)
            client = cfg.client_signature(committed) if committed else previous.signature
            inputs = self._production_inputs(previous, committed) or synthesize_inputs(client)
            self._check_inference(
                replica, model, None, client, inputs, expect_version=previous.active_version
            )

    def _production_inputs(self, current: Current, config: ModelConfig | None) -> dict[str, Array] | None:
        """The input the committed version was verified with (its own MLflow input example),
        so that proving it serves again uses data it accepts, not a random tensor."""
        if not current.deploy_run:
            return None
        path = self.store.run_dir(current.model, current.deploy_run) / "smoke_input.npz"
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        return cfg.client_shaped(config, arrays) if config is not None else arrays

    def serve_committed(
        self, replica: TritonReplica, model: str, current: Current | None, reload: bool = False
    ) -> bool:
        """Make ``replica`` serve exactly the committed version (nothing if none); True if it acted.

        A load that was in flight when a run died still completes inside
        Triton, so first wait until nothing of this model is loading. ``reload``
        loads from disk even when the versions are right: Triton re-reads
        config.pbtxt and swaps in the committed config if it differs.
        """
        replica.wait_settled(model)
        want = [current.active_version] if current else []
        if replica.ready_versions(model) == want and not (reload and current is not None):
            return False
        if current is None:
            replica.unload(model)
        else:
            replica.load(model)  # from config.pbtxt on disk: the committed version only
            replica.wait_version_ready(model, current.active_version)
        self.wait_serving_only(replica, model, current.active_version if current else None)
        return True

    # ---------------------------------------------------------------- helpers
    def _finish(self, journal: Journal, tags: dict[str, str]) -> None:
        """Persist the outcome, append history, tag the registry, push metrics. Best effort after save.

        The registry shows what production runs: the committed version is tagged
        ``tritonops.status=production`` and the one it replaced ``previous``; a
        failed candidate ``rolled_back`` (or ``rollback_failed``).
        """
        # History first: a run marked finished always has its line (a crash in between leaves
        # an unfinished run whose recovery finds the line and does not write it twice).
        if not any(r.get("run_id") == journal.run_id for r in self.store.history(journal.model)):
            self.store.append_history(journal.model, journal.history_record())
        self.store.save(journal)
        self.leases.release(journal.model, journal.run_id)
        if journal.staged_dir is None:
            shutil.rmtree(self.store.staging_dir(journal.model, journal.run_id), ignore_errors=True)
        self._prune_quarantine(journal)
        if tags and journal.candidate is not None and self._registry_configured():
            try:
                model = journal.candidate.registry_model
                self.registry.tag_version(model, journal.candidate.version, tags)
                previous = journal.previous_version
                if (
                    journal.outcome is Outcome.COMMITTED
                    and previous
                    and previous != journal.candidate.version
                ):
                    self.registry.tag_version(model, previous, self._status_tags("previous"))
            except TritonOpsError as exc:
                log.warning("registry tags not written: %s", exc)
        if self.settings.push_on_finish:
            self.report(journal)

    def _prune_quarantine(self, journal: Journal) -> None:
        """Keep the newest ``quarantine_keep`` failed versions of the model; each deletion has its
        history line. Never the only copy of a version that was ever committed. Best effort."""
        from tritonops.core.limits import to_prune

        model, keep = journal.model, self.settings.quarantine_keep
        try:
            entries = self.store.quarantined(model)
            if len(entries) <= keep:
                return
            committed = {
                int(r["version"])
                for r in self.store.history(model)
                if r.get("outcome") == Outcome.COMMITTED.value and r.get("version") is not None
            }
            current = self.repo.read_current(model)
            if current is not None:
                committed.add(current.active_version)
            installed = set(self.repo.versions(model))
            for entry in to_prune(entries, keep, committed, installed):
                path = self.store.remove_quarantined(model, entry)
                now = self.clock()
                self.store.append_history(
                    model,
                    {
                        "run_id": journal.run_id,
                        "kind": "quarantine",
                        "model": model,
                        "alias": None,
                        "version": entry.version,
                        "outcome": "pruned",
                        "started_at": now,
                        "finished_at": now,
                        "steps": {},
                        "error": None,
                        "quarantine": str(path),
                        "detail": f"deleted from quarantine: more than {keep} failed versions of {model} "
                        "were kept (--quarantine-keep)",
                        "actor": self.settings.actor,
                    },
                )
        except (OSError, TritonOpsError) as exc:
            log.warning("model=%s quarantine retention skipped: %s", model, exc)

    def _registry_configured(self) -> bool:
        if self._registry is not None:
            return True
        try:
            self.settings.registry.resolved()
        except InputError:
            return False
        return True

    def report(self, journal: Journal) -> bool:
        """Push the run's metrics to the Pushgateway (if configured). Never raises."""
        if not self.settings.pushgateway or journal.outcome is None:
            return False
        try:
            current = self.repo.read_current(journal.model)
        except CorruptState:
            current = None
        registry = pushgateway.build_registry(
            model=journal.model,
            outcome=journal.outcome,
            finished_at=journal.finished_at or self.clock(),
            duration_s=(journal.finished_at or self.clock()) - journal.started_at,
            active_version=current.active_version if current else None,
            step_durations=journal.step_durations(),
            manual_rollback=journal.kind == "rollback",
        )
        return pushgateway.push(self.settings.pushgateway, journal.model, registry)

    def step(self, name: str) -> Callable[[Journal], Journal]:
        """The engine's step ``name`` of the step table (core/steps.py), after the snapshot."""
        bound: dict[str, Callable[[Journal], Journal]] = {
            "materialize": self.materialize,
            "load": self.load,
            "ready": self.ready,
            "smoke": self.smoke,
            "commit": self.commit,
        }
        assert set(bound) == {spec.name for spec in steps.DEPLOY[1:]}, (
            "the step table and the engine disagree"
        )
        return bound[name]

    def _expect(self, journal: Journal, phase: Phase | None) -> None:
        if journal.is_finished:
            raise AlreadyFinished(journal)
        if journal.phase is not phase:
            wanted = phase.value if phase is not None else "none"
            raise InconsistentState(
                f"run {journal.run_id} is at phase {journal.phase.value}, this step needs {wanted}"
            )

    def _staging(self, journal: Journal) -> str:
        if not journal.candidate_model:
            raise InconsistentState(f"run {journal.run_id} has no loaded candidate")
        return journal.candidate_model

    def _status_tags(self, status: str) -> dict[str, str]:
        return {
            "tritonops.status": status,
            "tritonops.updated_at": utc_stamp(self._now()),
            "tritonops.by": self.settings.actor,
        }

    def _commit_tags(self, journal: Journal) -> dict[str, str]:
        return self._status_tags("production") | {"tritonops.run": journal.run_id}

    def _candidate(self, journal: Journal) -> tuple[Candidate, Signature]:
        if journal.candidate is None or journal.signature is None:
            raise InconsistentState(f"run {journal.run_id} has no materialized candidate")
        return journal.candidate, journal.signature

    def _config(self, journal: Journal) -> ModelConfig:
        """The candidate's effective config, as materialize composed it (pinned for the run)."""
        _, signature = self._candidate(journal)
        if journal.config is None:
            return cfg.derive_defaults(journal.model, signature, journal.max_batch_size)
        return cfg.from_dict(journal.config, f"journal of run {journal.run_id}")

    @staticmethod
    def _current_from(journal: Journal) -> Current | None:
        return Current.from_dict(journal.previous) if journal.previous else None

    def _all_serve(self, model: str, version: int) -> bool:
        """Every replica serves exactly ``version`` (a replica with extra versions has drifted)."""
        return all(r.ready_versions(model) == [version] for r in self.replicas)

    def _smoke_inputs(self, journal: Journal, config: ModelConfig) -> dict[str, Array]:
        """The model's input example (shaped as clients send it), else a synthesized input."""
        if journal.smoke_input and Path(journal.smoke_input).is_file():
            with np.load(journal.smoke_input, allow_pickle=False) as data:
                return cfg.client_shaped(config, {k: data[k] for k in data.files})
        batch = min(2, config.max_batch_size) if config.max_batch_size > 0 else 1
        return synthesize_inputs(cfg.client_signature(config), batch=batch)

    def _check_inference(
        self,
        replica: TritonReplica,
        model: str,
        version: int | None,
        signature: Signature,
        inputs: dict[str, Array],
        expect_version: int | None = None,
    ) -> dict[str, Array]:
        """Infer and judge; returns the outputs by name."""
        answered, outputs = replica.infer(model, version, inputs, [o.name for o in signature.outputs])
        want = expect_version if expect_version is not None else version
        problems = smoke_problems(signature, inputs, outputs)
        if want is not None and answered != want:
            problems.append(f"version {answered} answered, expected {want}")
        if problems:
            raise SmokeFailed(f"{model} on {replica.url}: " + "; ".join(problems))
        return {name: array for name, (_, array) in outputs.items()}

    def wait_serving_only(
        self,
        replica: TritonReplica,
        model: str,
        version: int | None,
        error: type[TritonOpsError] = RollbackFailed,
        timeout_s: float = 30.0,
    ) -> None:
        """Wait until ``version`` is the only READY version (None: nothing READY).

        Triton unloads a dropped version asynchronously after the load call returns.
        """
        want = [] if version is None else [version]
        deadline = time.monotonic() + timeout_s
        while True:
            ready = replica.ready_versions(model)
            if ready == want:
                return
            if time.monotonic() >= deadline:
                raise error(f"{model} on {replica.url} serves versions {ready}, expected {want}")
            time.sleep(0.05)

    # ------------------------------------------------------------ whole runs
    def run(self, model: str, alias: str, run_id: str) -> Journal:
        """The whole deploy in-process, holding the model's lock; rolls back on any failure."""
        validate_name("model", model)
        validate_name("alias", alias)
        validate_run_id(run_id)
        files.ensure_writable_dir(self.settings.state_dir, "state dir")
        with contextlib.ExitStack() as held:
            journal, _ = self.begin(held, model, run_id, "deploy", alias)
            if journal.is_finished:
                return journal
            try:
                for spec in steps.DEPLOY[1:]:  # after the snapshot, in the table's order
                    journal = self.step(spec.name)(journal)
                    if journal.is_finished:
                        return journal
            except AlreadyFinished as done:
                return done.journal
            except Exception as exc:  # noqa: BLE001 - whatever failed after the snapshot, production is restored
                log.error("model=%s run=%s failed: %s: %s", model, run_id, type(exc).__name__, exc)
                return self.rollback(self.store.load(model, run_id) or journal)
        raise AssertionError("unreachable")  # pragma: no cover

    def begin(
        self,
        held: contextlib.ExitStack,
        model: str,
        run_id: str,
        kind: str,
        alias: str | Callable[[], str],
    ) -> tuple[Journal, list[Journal]]:
        """The prologue of every run, written once: take the model's lock (kept until ``held``
        closes), undo interrupted runs, then snapshot. ``alias`` may be a function, called under
        the lock (``rollback --to`` checks its target there and names the alias it returns to).
        A refusal anywhere in it is recorded in history and re-raised; returns the snapshot's
        journal and the runs recovered."""
        with self.refusals_recorded(model, run_id, alias if isinstance(alias, str) else "", kind):
            held.enter_context(self.store.lock(model, run_id))
            recovered = self.recover_interrupted(model, run_id)
            chosen = alias if isinstance(alias, str) else alias()
            return self.snapshot_or_reject(model, chosen, run_id), recovered

    @contextmanager
    def refusals_recorded(self, model: str, run_id: str, alias: str, kind: str) -> Iterator[None]:
        """A run refused before its snapshot (busy, bad template, corrupt current.json) still
        gets its line in history, so every attempt is on record."""
        try:
            yield
        except TritonOpsError as exc:
            if self.store.load(model, run_id) is None:
                now = self.clock()
                self.store.append_history(
                    model,
                    {
                        "run_id": run_id,
                        "kind": kind,
                        "model": model,
                        "alias": alias,
                        "version": None,
                        "outcome": Outcome.REJECTED.value,
                        "started_at": now,
                        "finished_at": now,
                        "steps": {},
                        "error": {
                            "step": "precondition",
                            "type": type(exc).__name__,
                            "message": str(exc),
                            "kind": history_kind(exc),
                        },
                        "actor": self.settings.actor,
                    },
                )
            raise

    def snapshot_or_reject(self, model: str, alias: str, run_id: str) -> Journal:
        """Snapshot; a failed precondition is recorded as a rejected run and re-raised."""
        try:
            return self.snapshot(model, alias, run_id)
        except (InputError, Unavailable) as exc:
            journal = self.store.load(model, run_id)
            if journal is not None and not journal.is_finished:
                self._finish(journal.finished(Outcome.REJECTED, self.clock()), {})
            raise exc from exc.__cause__

    def recover_interrupted(self, model: str, run_id: str) -> list[Journal]:
        """Undo every run of ``model`` that never finished (killed, terminated, power loss).

        A run whose lease is live is in progress, not interrupted (an Argo workflow between
        two steps): the caller ``run_id`` is refused (Busy) rather than undoing it. The caller
        holds the model's lock.
        """
        self.leases.refuse_if_taken(model, run_id)
        recovered = []
        for journal in self.store.unfinished(model):
            log.warning(
                "recovering interrupted run=%s of model=%s at phase=%s",
                journal.run_id,
                model,
                journal.phase.value,
            )
            recovered.append(self._finish_interrupted(journal))
        return recovered

    def _finish_interrupted(self, journal: Journal) -> Journal:
        """A run that stopped mid-commit may have committed: finish it instead of undoing it."""
        if journal.phase is Phase.COMMITTING and journal.candidate is not None:
            try:
                current = self.repo.read_current(journal.model)
            except CorruptState:
                current = None
            if current is not None and current.deploy_run == journal.run_id:
                for replica in self.replicas:
                    with contextlib.suppress(TritonOpsError):
                        self._unload_staging(replica, journal)
                self.repo.remove_candidate(journal.model)
                done = journal.finished(Outcome.COMMITTED, self.clock())
                self._finish(done, self._commit_tags(done))
                return done
        return self.rollback(journal)

    def _in_progress(self, model: str) -> dict[str, Any] | None:
        """The run that holds a live lease on ``model``: in progress, not interrupted."""
        lease = self.store.live_lease(model, self.clock())
        return lease.to_dict() if lease is not None else None

    def status(self, model: str) -> dict[str, Any]:
        validate_name("model", model)
        current = self.repo.read_current(model)
        replicas = []
        for replica in self.replicas:
            entry: dict[str, Any] = {"url": replica.url}
            try:
                entry["ready_versions"] = replica.ready_versions(model)
                entry["live"] = True
            except Unavailable as exc:
                entry.update(live=False, ready_versions=None, error=str(exc))
            expected = [current.active_version] if current else []
            entry["drift"] = entry["ready_versions"] != expected
            replicas.append(entry)
        return {
            "model": model,
            "current": current.to_dict() if current else None,
            "versions_on_disk": self.repo.versions(model),
            "replicas": replicas,
            "drift": any(r["drift"] for r in replicas),
            "unfinished_runs": [j.run_id for j in self.store.unfinished(model)],
            "in_progress": self._in_progress(model),
        }


class _Alongside:
    """The result of work run in a thread next to the caller's (None if it failed: the caller's
    own path then does the work itself and reports any error where it belongs)."""

    result: Any = None


@contextmanager
def _alongside(work: Callable[[Journal], Any], journal: Journal) -> Iterator[_Alongside]:
    box = _Alongside()

    def run() -> None:
        try:
            box.result = work(journal)
        except Exception as exc:  # noqa: BLE001 - redone (and reported) by the step that needs it
            log.info("background preparation for run=%s failed (%s); redone later", journal.run_id, exc)

    thread = threading.Thread(target=run, name="alongside", daemon=True)
    thread.start()
    try:
        yield box
    finally:
        thread.join()


class AlreadyFinished(Exception):
    """A step was asked to run on a run that already ended (e.g. a no-op)."""

    def __init__(self, journal: Journal) -> None:
        super().__init__(f"run {journal.run_id} already finished: {journal.outcome}")
        self.journal = journal


__all__ = ["AlreadyFinished", "Deployer", "exit_code_for"]
