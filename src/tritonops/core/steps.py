"""The step table: every step of a deploy, in order, once.

What each step needs and leaves (the journal's phase), its deadline per attempt, whether it is
safe to repeat, and how much memory it holds. Everything that runs or describes a deploy reads
it: the engine's in-process run (``tritonops deploy``), ``tritonops step NAME`` (each Argo
container), ``rollback --to`` (the steps after materialize), the CLI's list of step names, and
the Argo WorkflowTemplate, whose DAG is generated from it (workflows/deploy_template.py; a test
holds the committed YAML to this table).

A new step (say, one that watches live metrics after commit) is a row here and a method of the
same name on the engine (:meth:`tritonops.engine.deployer.Deployer.step`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tritonops.core.state import Phase


class Memory(StrEnum):
    """How much a step's process holds (sized in workflows/common.py from bench/step_memory.py)."""

    REGISTRY = "registry"  # the MLflow client: flat, whatever the model's size
    SMALL = "small"  # HTTP calls to the replicas
    MODEL = "model"  # runs the model in-process (the golden-parity gate): grows with its size


@dataclass(frozen=True)
class StepSpec:
    name: str
    needs: Phase | None  # the journal's phase before the step (None: the run starts here)
    leaves: Phase  # the phase after it (FINISHED when it can end the run: a no-op, commit)
    deadline_s: int  # per attempt: an Argo pod's activeDeadlineSeconds
    retries: int = 0  # repeated on a temporary failure (exit 75) only when safe
    memory: Memory = Memory.REGISTRY
    doc: str = ""


DEPLOY: tuple[StepSpec, ...] = (
    StepSpec("snapshot", None, Phase.SNAPSHOTTED, 120,
             doc="record current.json and what every replica serves, before anything changes"),
    StepSpec("materialize", Phase.SNAPSHOTTED, Phase.MATERIALIZED, 3600, retries=3,
             doc="resolve the alias once, download, check, install the version dir atomically"),
    StepSpec("load", Phase.MATERIALIZED, Phase.LOADED, 1800, memory=Memory.MODEL,
             doc="load the candidate on every replica under its staging name"),
    StepSpec("ready", Phase.LOADED, Phase.READY, 600, retries=3, memory=Memory.SMALL,
             doc="wait until every replica reports the staging copy ready"),
    StepSpec("smoke", Phase.READY, Phase.SMOKED, 600, retries=3, memory=Memory.MODEL,
             doc="real inference on every replica, then the parity and latency gates"),
    StepSpec("commit", Phase.SMOKED, Phase.FINISHED, 900,
             doc="switch production on every replica, then write current.json"),
)  # fmt: skip
BY_NAME = {spec.name: spec for spec in DEPLOY}
# `rollback --to` returns to a version already installed: the steps after materialize.
ROLLBACK_TO: tuple[StepSpec, ...] = DEPLOY[DEPLOY.index(BY_NAME["load"]) :]
# Steps that end a run whatever happened before (an Argo exit handler's).
FINISHING = ("rollback", "report")
NAMES: tuple[str, ...] = (*(spec.name for spec in DEPLOY), *FINISHING)


def needs(name: str) -> Phase | None:
    """The phase step ``name`` requires of the journal."""
    return BY_NAME[name].needs


__all__ = ["BY_NAME", "DEPLOY", "FINISHING", "NAMES", "ROLLBACK_TO", "Memory", "StepSpec", "needs"]
