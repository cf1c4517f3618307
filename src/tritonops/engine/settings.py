"""Settings: read once at the CLI edge, validated, then passed explicitly."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tritonops.adapters.registry import RegistrySettings
from tritonops.adapters.triton import TritonTimeouts
from tritonops.core.config import DEFAULT_MAX_BATCH_SIZE


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
    allow_interface_change: bool = False

    @staticmethod
    def default_state_dir(repo: Path) -> Path:
        """``<pvc>/state`` beside ``<pvc>/models``: outside what Triton reads."""
        return repo.resolve().parent / "state"
