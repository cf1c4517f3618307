"""A run's claim on a model: a lease held from snapshot to finish.

Argo runs each step of a deploy in its own container, so no process lives for the whole run
and a lock held by a process cannot protect it between steps. The lease is a record on the
shared volume naming the run that owns the model until ``expires_at``. Every step renews it
(and keeps renewing it while it works); finishing the run releases it. Another run, a CLI
``deploy``/``rollback`` or ``recover`` is refused while it is live; a run whose lease expired
was killed (``argo terminate``, a lost node) and may be recovered.

Pure data: reading and writing it is the state store's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tritonops.errors import CorruptState

DEFAULT_LEASE_S = 600.0  # covers the gap between two Argo steps; a working step keeps renewing


@dataclass(frozen=True)
class Lease:
    run_id: str
    holder: str  # who runs it (actor), for messages
    acquired_at: float
    expires_at: float

    def is_live(self, now: float) -> bool:
        return now < self.expires_at

    def renewed(self, now: float, ttl_s: float) -> Lease:
        return Lease(self.run_id, self.holder, self.acquired_at, max(self.expires_at, now + ttl_s))

    def describe(self) -> str:
        ends = datetime.fromtimestamp(self.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"run {self.run_id} ({self.holder}) holds its lease until {ends}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "holder": self.holder,
            "acquired_at": self.acquired_at,
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "lease") -> Lease:
        try:
            return cls(
                str(data["run_id"]),
                str(data.get("holder", "")),
                float(data["acquired_at"]),
                float(data["expires_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptState(f"{where} cannot be read: {exc}") from exc
