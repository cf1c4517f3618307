"""How much an artefact may put on the shared volume, and how much quarantine keeps: pure rules.

The shared volume holds every model and all state: one artefact that fills it stops every
deploy and every replica restart. Its size and file count are checked from the registry's
listing before a byte is downloaded (and the volume's free space against that size), then again
while the files land; quarantine keeps the newest ``keep`` failed versions of each model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Set
from dataclasses import dataclass

GIB = 1 << 30


@dataclass(frozen=True)
class ArtifactLimits:
    max_bytes: int = 32 * GIB
    max_files: int = 10_000
    # Left free on the volume after the download: state files, journals, Triton's own writes.
    free_margin_bytes: int = 1 * GIB

    def exceeded(self, total_bytes: int, files: int) -> str | None:
        """Why ``total_bytes`` in ``files`` files is more than allowed, or None."""
        if files > self.max_files:
            return f"{files} files, over the limit of {self.max_files} (--max-artifact-files / TRITONOPS_MAX_ARTIFACT_FILES)"
        if total_bytes > self.max_bytes:
            return (
                f"{_size(total_bytes)}, over the limit of {_size(self.max_bytes)} "
                "(--max-artifact-bytes / TRITONOPS_MAX_ARTIFACT_BYTES)"
            )
        return None

    def no_room(self, total_bytes: int, free_bytes: int) -> str | None:
        """Why the volume cannot take ``total_bytes`` more and keep its margin, or None."""
        if free_bytes >= total_bytes + self.free_margin_bytes:
            return None
        return (
            f"the volume has {_size(free_bytes)} free; the artefact needs {_size(total_bytes)} "
            f"plus a margin of {_size(self.free_margin_bytes)}"
        )


def _size(n: int) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / (1 << 20):.1f} MiB"


DEFAULT_QUARANTINE_KEEP = 10

# The webhook receiver (tritonops.webhook.server): connections at once, and how long one request
# (headers and body) may take to arrive before its client is disconnected.
WEBHOOK_MAX_CONNECTIONS = 256
WEBHOOK_REQUEST_DEADLINE_S = 10.0
_QUARANTINED = re.compile(r"^(\d+)\.failed_(\d{8}T\d{6})(?:-(\d+))?$")


@dataclass(frozen=True, order=True)
class Quarantined:
    """One entry of ``quarantine/<model>/``: ``<version>.failed_<UTC stamp>[-n]``."""

    stamp: str
    n: int
    version: int
    name: str

    @classmethod
    def parse(cls, name: str) -> Quarantined | None:
        match = _QUARANTINED.match(name)
        if match is None:
            return None  # not ours: never touched
        return cls(match[2], int(match[3] or 0), int(match[1]), name)


def to_prune(
    entries: Iterable[Quarantined], keep: int, committed: Set[int], installed: Set[int]
) -> list[Quarantined]:
    """The entries beyond the newest ``keep``, oldest first, that may go.

    Never the only copy of a version that was ever committed (``committed``): such a version
    stays unless the repository still holds it (``installed``) or a newer entry of it is kept.
    """
    ordered = sorted(entries, reverse=True)  # newest first
    kept, prune = ordered[:keep], []
    kept_versions = {e.version for e in kept}
    for entry in ordered[keep:]:
        if (
            entry.version in committed
            and entry.version not in installed
            and entry.version not in kept_versions
        ):
            kept_versions.add(entry.version)  # the newest copy of a committed version stays
            continue
        prune.append(entry)
    return sorted(prune)


__all__ = [
    "DEFAULT_QUARANTINE_KEEP",
    "WEBHOOK_MAX_CONNECTIONS",
    "WEBHOOK_REQUEST_DEADLINE_S",
    "ArtifactLimits",
    "Quarantined",
    "to_prune",
]
