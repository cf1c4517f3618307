"""The deployment state: what production serves, and where a run stands.

Two records, both plain data with explicit to/from-storage:

* :class:`Current` is ``current.json`` — the single source of truth for what
  production serves. tritonops writes it only at commit and at rollback.
* :class:`Journal` is one run's record, persisted after every step on the
  shared volume. Argo runs each step in its own container, so the journal is
  how one step hands over to the next, and how a run that was killed is found
  and undone by the next one.

Transitions return new objects (``with_*``); nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from tritonops.core.signature import Signature
from tritonops.errors import CorruptState

JOURNAL_FORMAT = 1


class Phase(StrEnum):
    """How far a run got. Ordered: each phase implies the ones before it."""

    SNAPSHOTTED = "snapshotted"
    MATERIALIZING = "materializing"  # a version dir may be moving into the repository
    MATERIALIZED = "materialized"
    LOADED = "loaded"
    READY = "ready"
    SMOKED = "smoked"
    COMMITTING = "committing"  # config.pbtxt / current.json may already be new
    FINISHED = "finished"

    @property
    def rank(self) -> int:
        return list(Phase).index(self)


class Outcome(StrEnum):
    """How a run ended (the ``outcome`` label of the metrics contract, plus noop)."""

    COMMITTED = "committed"
    NOOP = "noop"  # the alias already points at the serving version
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    REJECTED = "rejected"  # stopped before production was touched


@dataclass(frozen=True)
class Candidate:
    """The model version the alias pointed at when the run resolved it (pinned)."""

    version: int
    run_id: str | None
    source: str
    alias: str
    registry_model: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "run_id": self.run_id,
            "source": self.source,
            "alias": self.alias,
            "registry_model": self.registry_model,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Candidate:
        return cls(
            version=int(data["version"]),
            run_id=data.get("run_id"),
            source=str(data["source"]),
            alias=str(data["alias"]),
            registry_model=str(data["registry_model"]),
        )


@dataclass(frozen=True)
class Current:
    """``current.json``: the committed production state of one model."""

    model: str
    active_version: int
    run_id: str | None
    alias: str
    updated_at_utc: str
    source: str
    signature: Signature
    max_batch_size: int
    files: Mapping[str, str]  # relative path -> sha256
    deploy_run: str
    previous_version: int | None = None
    # The effective Triton config (proto field names, unpinned) and its digest; None in a
    # current.json written before tritonops owned the config.
    config: Mapping[str, Any] | None = None
    config_digest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "active_version": self.active_version,
            "run_id": self.run_id,
            "alias": self.alias,
            "updated_at_utc": self.updated_at_utc,
            "source": self.source,
            "signature": self.signature.to_dict(),
            "max_batch_size": self.max_batch_size,
            "files": dict(sorted(self.files.items())),
            "deploy_run": self.deploy_run,
            "previous_version": self.previous_version,
            "config": dict(self.config) if self.config is not None else None,
            "config_digest": self.config_digest,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "current.json") -> Current:
        try:
            return cls(
                model=str(data["model"]),
                active_version=int(data["active_version"]),
                run_id=data.get("run_id"),
                alias=str(data.get("alias", "")),
                updated_at_utc=str(data["updated_at_utc"]),
                source=str(data.get("source", "")),
                signature=Signature.from_dict(data["signature"]),
                max_batch_size=int(data.get("max_batch_size", 0)),
                files=dict(data.get("files", {})),
                deploy_run=str(data.get("deploy_run", "")),
                previous_version=(
                    int(data["previous_version"]) if data.get("previous_version") is not None else None
                ),
                config=data.get("config"),
                config_digest=data.get("config_digest"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptState(
                f"{where} is missing or has a malformed field ({exc}); expected the keys "
                "tritonops writes (active_version, signature, ...). Nothing was changed: "
                "restore it from `tritonops history` or fix it by hand."
            ) from exc


@dataclass(frozen=True)
class StepRecord:
    name: str
    started_at: float
    duration_s: float
    ok: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 4),
            "ok": self.ok,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepRecord:
        return cls(
            str(data["name"]),
            float(data["started_at"]),
            float(data["duration_s"]),
            bool(data["ok"]),
            str(data.get("detail", "")),
        )


@dataclass(frozen=True)
class Journal:
    """One run, from snapshot to its outcome."""

    run_id: str
    model: str
    alias: str
    replicas: tuple[str, ...]
    started_at: float
    phase: Phase = Phase.SNAPSHOTTED
    kind: str = "deploy"  # or "rollback": a manual `tritonops rollback --to`
    previous: Mapping[str, Any] | None = None  # current.json as it was, verbatim
    previous_config: str | None = None  # config.pbtxt as it was, verbatim
    serving_before: Mapping[str, list[int]] = field(default_factory=dict)  # replica -> ready versions
    candidate: Candidate | None = None
    signature: Signature | None = None
    max_batch_size: int = 0
    config: Mapping[str, Any] | None = None  # the candidate's effective Triton config (unpinned)
    config_diff: Mapping[str, list[str]] | None = None  # vs. the committed config: added/changed/removed
    files: Mapping[str, str] = field(default_factory=dict)
    installed_dir: bool = False  # this run put <model>/<version>/ into the repository
    staged_dir: str | None = None
    # "<st_dev>:<st_ino>" of the staged version dir, recorded before it is renamed into the
    # repository: a rename keeps it, so after a crash it tells whether the rename happened.
    staged_identity: str | None = None
    smoke_input: str | None = None
    parity_reference: str | None = None  # onnxruntime's answers, computed while Triton loaded
    loaded_versions: tuple[int, ...] = ()
    candidate_model: str | None = None  # the staging name the candidate is verified under
    gates: Mapping[str, Any] = field(default_factory=dict)  # gate name -> measured results
    actor: str = ""  # who or what started the run
    steps: tuple[StepRecord, ...] = ()
    error: Mapping[str, str] | None = None
    outcome: Outcome | None = None
    finished_at: float | None = None
    quarantine: str | None = None
    rollback_detail: str | None = None

    # --- transitions -------------------------------------------------------
    def at(self, phase: Phase, **changes: Any) -> Journal:
        return replace(self, phase=phase, **changes)

    def with_step(self, record: StepRecord) -> Journal:
        return replace(self, steps=(*self.steps, record))

    def with_error(self, step: str, exc: BaseException) -> Journal:
        error: dict[str, Any] = {"step": step, "type": type(exc).__name__, "message": str(exc)}
        if getattr(exc, "version_unfit", False):
            error["unfit"] = True  # the version itself: the follower does not retry it
        return replace(self, error=error)

    def finished(self, outcome: Outcome, at: float, **changes: Any) -> Journal:
        return replace(self, phase=Phase.FINISHED, outcome=outcome, finished_at=at, **changes)

    # --- questions ---------------------------------------------------------
    @property
    def previous_version(self) -> int | None:
        return int(self.previous["active_version"]) if self.previous else None

    @property
    def is_finished(self) -> bool:
        return self.phase is Phase.FINISHED

    def step_durations(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for s in self.steps:
            out[s.name] = out.get(s.name, 0.0) + s.duration_s
        return out

    # --- storage -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": JOURNAL_FORMAT,
            "run_id": self.run_id,
            "model": self.model,
            "alias": self.alias,
            "replicas": list(self.replicas),
            "started_at": self.started_at,
            "phase": self.phase.value,
            "kind": self.kind,
            "previous": dict(self.previous) if self.previous is not None else None,
            "previous_config": self.previous_config,
            "serving_before": {k: list(v) for k, v in self.serving_before.items()},
            "candidate": self.candidate.to_dict() if self.candidate else None,
            "signature": self.signature.to_dict() if self.signature else None,
            "max_batch_size": self.max_batch_size,
            "config": dict(self.config) if self.config is not None else None,
            "config_diff": dict(self.config_diff) if self.config_diff is not None else None,
            "files": dict(self.files),
            "installed_dir": self.installed_dir,
            "staged_dir": self.staged_dir,
            "staged_identity": self.staged_identity,
            "smoke_input": self.smoke_input,
            "parity_reference": self.parity_reference,
            "loaded_versions": list(self.loaded_versions),
            "candidate_model": self.candidate_model,
            "gates": dict(self.gates),
            "actor": self.actor,
            "steps": [s.to_dict() for s in self.steps],
            "error": dict(self.error) if self.error else None,
            "outcome": self.outcome.value if self.outcome else None,
            "finished_at": self.finished_at,
            "quarantine": self.quarantine,
            "rollback_detail": self.rollback_detail,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "journal") -> Journal:
        try:
            if int(data.get("format", 0)) != JOURNAL_FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {JOURNAL_FORMAT}")
            return cls(
                run_id=str(data["run_id"]),
                model=str(data["model"]),
                alias=str(data["alias"]),
                replicas=tuple(data["replicas"]),
                started_at=float(data["started_at"]),
                phase=Phase(data["phase"]),
                kind=str(data.get("kind", "deploy")),
                previous=data.get("previous"),
                previous_config=data.get("previous_config"),
                serving_before={k: [int(v) for v in vs] for k, vs in data.get("serving_before", {}).items()},
                candidate=Candidate.from_dict(data["candidate"]) if data.get("candidate") else None,
                signature=Signature.from_dict(data["signature"]) if data.get("signature") else None,
                max_batch_size=int(data.get("max_batch_size", 0)),
                config=data.get("config"),
                config_diff=data.get("config_diff"),
                files=dict(data.get("files", {})),
                installed_dir=bool(data.get("installed_dir", False)),
                staged_dir=data.get("staged_dir"),
                staged_identity=data.get("staged_identity"),
                smoke_input=data.get("smoke_input"),
                parity_reference=data.get("parity_reference"),
                loaded_versions=tuple(int(v) for v in data.get("loaded_versions", [])),
                candidate_model=data.get("candidate_model"),
                gates=dict(data.get("gates") or {}),
                actor=str(data.get("actor", "")),
                steps=tuple(StepRecord.from_dict(s) for s in data.get("steps", [])),
                error=data.get("error"),
                outcome=Outcome(data["outcome"]) if data.get("outcome") else None,
                finished_at=data.get("finished_at"),
                quarantine=data.get("quarantine"),
                rollback_detail=data.get("rollback_detail"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptState(f"{where} cannot be read: {exc}") from exc

    def history_record(self) -> dict[str, Any]:
        """The append-only history line for this run."""
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "model": self.model,
            "alias": self.alias,
            "version": self.candidate.version if self.candidate else None,
            "model_run_id": self.candidate.run_id if self.candidate else None,
            "source": self.candidate.source if self.candidate else None,
            "previous_version": self.previous_version,
            "outcome": self.outcome.value if self.outcome else None,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "steps": {k: round(v, 4) for k, v in self.step_durations().items()},
            "error": dict(self.error) if self.error else None,
            "quarantine": self.quarantine,
            "rollback_detail": self.rollback_detail,
            "gates": dict(self.gates),
            "config_diff": dict(self.config_diff) if self.config_diff is not None else None,
            "config": dict(self.config) if self.config is not None else None,
            "actor": self.actor,
        }
