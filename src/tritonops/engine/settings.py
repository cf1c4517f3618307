"""Settings: read once at the CLI edge, validated, then passed explicitly."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tritonops.adapters.registry import RegistrySettings
from tritonops.adapters.triton import TritonTimeouts
from tritonops.core.config import DEFAULT_MAX_BATCH_SIZE, ArtifactFields
from tritonops.core.lease import DEFAULT_LEASE_S
from tritonops.core.limits import DEFAULT_QUARANTINE_KEEP, ArtifactLimits


@dataclass(frozen=True)
class GateSettings:
    """Verification beyond the smoke test. Results are recorded in the journal and history."""

    parity: bool = True  # Triton's answer vs. onnxruntime on the same artefact, in this process
    parity_rtol: float = 1e-4
    parity_atol: float = 1e-5
    # The parity gate runs the model in the step's own process: above this size it is skipped
    # (and recorded as skipped) rather than risk an out-of-memory kill of the step's pod.
    parity_max_bytes: int = 2 * 1024**3
    latency_requests: int = 30  # timed requests per replica; 0 turns the latency gate off
    latency_budget_ms: float = 1000.0  # absolute p95 budget for the candidate
    latency_factor: float = 3.0  # candidate p95 may be at most this times production's...
    latency_floor_ms: float = 5.0  # ...unless it is under this floor (sub-ms timings are noise)


@dataclass(frozen=True)
class Settings:
    repo: Path
    state_dir: Path
    triton_urls: tuple[str, ...] = ("http://localhost:8000",)
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    pushgateway: str | None = None
    triton_timeouts: TritonTimeouts = field(default_factory=TritonTimeouts)
    # Headers sent with every Triton request (the restricted-API key). Never logged.
    triton_headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    # The operator's Triton config template: one file (--model-config), or a directory of
    # per-model templates `<model>.pbtxt` (TRITONOPS_MODEL_CONFIG_DIR; a ConfigMap in Kubernetes).
    model_config: Path | None = None
    model_config_dir: Path | None = None
    # What the artefact's own config.pbtxt may set (--artifact-config-fields widens the default).
    artifact_fields: ArtifactFields = field(default_factory=ArtifactFields)
    # How much one artefact may put on the shared volume (checked before and while downloading).
    artifact_limits: ArtifactLimits = field(default_factory=ArtifactLimits)
    # Failed versions kept in quarantine per model (the oldest pruned; see core/limits.py).
    quarantine_keep: int = DEFAULT_QUARANTINE_KEEP
    allow_interface_change: bool = False
    gates: GateSettings = field(default_factory=GateSettings)
    actor: str = "unknown"  # who or what runs tritonops, for history and registry tags
    # Push the run's metrics when it finishes. An Argo workflow's steps do not: its exit handler's
    # `report` step pushes once, whichever step ended the run.
    push_on_finish: bool = True
    # A run's lease on its model lasts this long past its last renewal (see core/lease.py).
    lease_s: float = DEFAULT_LEASE_S

    @staticmethod
    def default_state_dir(repo: Path) -> Path:
        """``<pvc>/state`` beside ``<pvc>/models``: outside what Triton reads."""
        return repo.resolve().parent / "state"
