"""The shared volume: the Triton model repository and tritonops' own state dir.

    <repo>/<model>/config.pbtxt, current.json, <version>/model.onnx   (Triton reads this)
    <state>/runs/<model>/<run-id>/journal.json                        (one per run)
    <state>/history/<model>.jsonl                                     (append-only)
    <state>/quarantine/<model>/<version>.failed_<stamp>/              (kept: see --quarantine-keep)
    <state>/staging/<model>/<run-id>/                                 (downloads land here)
    <state>/locks/<model>.lock
    <state>/leases/<model>.json                                       (the run that owns the model)

The state dir lives outside the repository because Triton reads every
top-level directory of the repository as a model (hidden ones included) and
parses version directories by their leading digits: ``13.failed_x`` inside a
model directory is read as version 13, and the model then fails to load.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import socket
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from tritonops.adapters import files
from tritonops.adapters.onnx_artifact import checksums
from tritonops.core.lease import Lease
from tritonops.core.limits import Quarantined
from tritonops.core.naming import quarantine_dirname
from tritonops.core.state import Current, Journal
from tritonops.errors import Busy, CorruptState

log = logging.getLogger(__name__)


def _read_json(path: Path) -> Any | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CorruptState(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); nothing was changed. "
            "Restore it from `tritonops history` or fix it by hand."
        ) from exc


class ModelRepository:
    """The Triton model repository (``--model-repository``) on the shared volume."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def model_dir(self, model: str) -> Path:
        return self.root / model

    def version_dir(self, model: str, version: int) -> Path:
        return self.root / model / str(version)

    def current_path(self, model: str) -> Path:
        return self.root / model / "current.json"

    def config_path(self, model: str) -> Path:
        return self.root / model / "config.pbtxt"

    def read_current_raw(self, model: str) -> dict[str, Any] | None:
        data = _read_json(self.current_path(model))
        if data is not None and not isinstance(data, dict):
            raise CorruptState(f"{self.current_path(model)} does not hold a JSON object")
        return data

    def read_current(self, model: str) -> Current | None:
        raw = self.read_current_raw(model)
        return Current.from_dict(raw, str(self.current_path(model))) if raw is not None else None

    def read_config(self, model: str) -> str | None:
        try:
            return self.config_path(model).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def write_current(self, current: Current) -> None:
        files.atomic_write_json(self.current_path(current.model), current.to_dict())

    def restore_current(self, model: str, raw: Mapping[str, Any] | None) -> None:
        """Put current.json back exactly as it was (absent included)."""
        if raw is None:
            files.remove_file(self.current_path(model))
        elif self.read_current_raw_safe(model) != raw:
            files.atomic_write_json(self.current_path(model), raw)

    def read_current_raw_safe(self, model: str) -> dict[str, Any] | None:
        try:
            return self.read_current_raw(model)
        except CorruptState:
            return None

    def write_config(self, model: str, text: str) -> None:
        files.atomic_write_text(self.config_path(model), text)

    def restore_config(self, model: str, text: str | None) -> None:
        if text is None:
            files.remove_file(self.config_path(model))
        elif self.read_config(model) != text:
            files.atomic_write_text(self.config_path(model), text)

    # --- the candidate's staging model --------------------------------------------------
    @staticmethod
    def candidate_name(model: str) -> str:
        """``_candidate.<model>``: cannot collide with a model name (those start alphanumeric)."""
        return f"_candidate.{model}"

    def link_candidate(self, model: str, version: int) -> str:
        """Expose ``<model>/<version>/`` as ``_candidate.<model>/<version>/`` for verification.

        Hard links: no extra disk and no copy time, even for a large model. Falls
        back to a copy where the filesystem refuses links. Built under a temporary
        name and renamed, so Triton never reads a partial directory.
        """
        name = self.candidate_name(model)
        target = self.root / name
        tmp = self.root / f"{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
        src = self.version_dir(model, version)
        for path in sorted(src.rglob("*")):
            dst = tmp / str(version) / path.relative_to(src)
            if path.is_dir():
                dst.mkdir(parents=True, exist_ok=True)
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, dst)
            except OSError:
                shutil.copy2(path, dst)
        tmp.rename(target)
        files.fsync_dir(self.root)
        return name

    def remove_candidate(self, model: str) -> None:
        """Drop the staging copy (only links; the version's files stay where they are)."""
        shutil.rmtree(self.root / self.candidate_name(model), ignore_errors=True)
        shutil.rmtree(self.root / f"{self.candidate_name(model)}.tmp", ignore_errors=True)

    def committed_intact(self, current: Current | None, version: int) -> Path | None:
        """The committed version's directory when ``version`` is the committed one and every file
        is still the one committed (sha256 as in current.json); else None. Materialize and plan
        ask it: a version found intact is not downloaded again."""
        if current is None or current.active_version != version:
            return None
        vdir = self.version_dir(current.model, version)
        if not vdir.is_dir() or checksums(vdir) != dict(current.files):
            return None
        return vdir

    def versions(self, model: str) -> list[int]:
        d = self.model_dir(model)
        if not d.is_dir():
            return []
        return sorted(int(p.name) for p in d.iterdir() if p.is_dir() and p.name.isdigit())


class StateStore:
    """tritonops' own records on the shared volume, outside the model repository."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # --- runs --------------------------------------------------------------
    def run_dir(self, model: str, run_id: str) -> Path:
        return self.root / "runs" / model / run_id

    def journal_path(self, model: str, run_id: str) -> Path:
        return self.run_dir(model, run_id) / "journal.json"

    def save(self, journal: Journal) -> Journal:
        files.atomic_write_json(self.journal_path(journal.model, journal.run_id), journal.to_dict())
        return journal

    def load(self, model: str, run_id: str) -> Journal | None:
        path = self.journal_path(model, run_id)
        data = _read_json(path)
        return Journal.from_dict(data, str(path)) if data is not None else None

    def unfinished(self, model: str) -> list[Journal]:
        """Runs of ``model`` that never reached an outcome (killed, or still running)."""
        base = self.root / "runs" / model
        if not base.is_dir():
            return []
        out = []
        for path in sorted(base.glob("*/journal.json")):
            data = _read_json(path)
            if data is None:
                continue
            journal = Journal.from_dict(data, str(path))
            if not journal.is_finished:
                out.append(journal)
        return sorted(out, key=lambda j: j.started_at)

    # --- history -----------------------------------------------------------
    def history_path(self, model: str) -> Path:
        return self.root / "history" / f"{model}.jsonl"

    def append_history(self, model: str, record: dict[str, Any]) -> None:
        files.append_line(self.history_path(model), json.dumps(record, sort_keys=True))

    def history(self, model: str) -> list[dict[str, Any]]:
        path = self.history_path(model)
        if not path.is_file():
            return []
        records = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("skipping unreadable line %d of %s", n, path)
        return records

    # --- staging and quarantine ----------------------------------------------
    def staging_dir(self, model: str, run_id: str) -> Path:
        return self.root / "staging" / model / run_id

    def quarantine_root(self, model: str) -> Path:
        return self.root / "quarantine" / model

    def quarantine(
        self, src: Path, model: str, version: int, moment: datetime, reason: dict[str, Any]
    ) -> Path:
        """Move ``src`` into quarantine with a ``reason.json`` beside its files (kept until retention,
        ``--quarantine-keep``, prunes it: see ``engine.deployer.Deployer._prune_quarantine``)."""
        base = self.quarantine_root(model)
        dst = base / quarantine_dirname(version, moment)
        n = 1
        while dst.exists():  # two failures of one version within a second
            dst = base / f"{quarantine_dirname(version, moment)}-{n}"
            n += 1
        # The reason travels with the files: a crash between the two steps cannot leave a
        # quarantined version that does not say why it is there.
        files.atomic_write_json(src / "tritonops-reason.json", reason)
        files.move_dir(src, dst)
        log.warning("quarantined model=%s version=%s at %s", model, version, dst)
        return dst

    def quarantined(self, model: str) -> list[Quarantined]:
        """What ``quarantine/<model>/`` holds, by the names tritonops gives (anything else is left alone)."""
        root = self.quarantine_root(model)
        if not root.is_dir():
            return []
        return sorted(
            e for p in root.iterdir() if p.is_dir() and (e := Quarantined.parse(p.name)) is not None
        )

    def remove_quarantined(self, model: str, entry: Quarantined) -> Path:
        path = self.quarantine_root(model) / entry.name
        shutil.rmtree(path)
        log.warning("deleted quarantined model=%s version=%s at %s (retention)", model, entry.version, path)
        return path

    # --- leases --------------------------------------------------------------
    def lease_path(self, model: str) -> Path:
        return self.root / "leases" / f"{model}.json"

    def read_lease(self, model: str) -> Lease | None:
        path = self.lease_path(model)
        data = _read_json(path)
        return Lease.from_dict(data, str(path)) if data is not None else None

    def live_lease(self, model: str, now: float, other_than: str | None = None) -> Lease | None:
        """The lease a run holds on ``model`` right now (its run in progress), if any; with
        ``other_than``, only another run's. The one place "is someone changing this model" is read."""
        lease = self.read_lease(model)
        if lease is None or not lease.is_live(now) or lease.run_id == other_than:
            return None
        return lease

    def write_lease(self, model: str, lease: Lease) -> None:
        files.atomic_write_json(self.lease_path(model), lease.to_dict())

    def release_lease(self, model: str, run_id: str) -> None:
        """Drop the lease if ``run_id`` holds it (never another run's)."""
        lease = self.read_lease(model)
        if lease is not None and lease.run_id == run_id:
            files.remove_file(self.lease_path(model))

    # --- locking -------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, model: str, run_id: str) -> Iterator[None]:
        """Hold the model's deploy lock; refuse (Busy, exit 2) if another process holds it.

        ``flock`` on a shared RWX volume: NFSv4 clients map it to byte-range
        locks that the server enforces across nodes. Deploys of different
        models use different files and never block each other.
        """
        path = self.root / "locks" / f"{model}.lock"
        with files.open_lock(path) as fd:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = path.read_text(encoding="utf-8", errors="replace").strip() or "unknown"
                raise Busy(
                    f"another tritonops run holds the lock for model {model!r} ({holder}); "
                    "wait for it to finish, then retry"
                ) from None
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"run {run_id}, pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
                yield
            finally:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
