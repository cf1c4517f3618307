"""File primitives for a volume other processes read while we write.

Every file another process reads (current.json, config.pbtxt, journals) is
written to a temporary file in the same directory, fsynced, then renamed over
the target: a reader sees the old bytes or the new bytes, never a mix, and a
crash leaves at worst a stray ``.tmp-*`` file that Triton and tritonops ignore.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tritonops.errors import InconsistentState, InputError


def fsync_dir(path: Path) -> None:
    """Persist a rename or create in ``path`` (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def append_line(path: Path, line: str) -> None:
    """Append one line durably (history). Callers hold the model's lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line.rstrip("\n") + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def remove_file(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fsync_dir(path.parent)


def move_dir(src: Path, dst: Path) -> None:
    """Move a directory, atomically when both sides share a filesystem.

    Across filesystems the tree is copied next to ``dst`` under a temporary
    name first, then renamed, so ``dst`` never exists half-written.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        raise InconsistentState(f"refusing to overwrite {dst}: it already exists")
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        tmp = dst.with_name(f".tmp-{dst.name}")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        os.rename(tmp, dst)
        shutil.rmtree(src)
    fsync_dir(dst.parent)
    fsync_dir(src.parent)


def identity(path: Path) -> str:
    """``<st_dev>:<st_ino>`` of ``path``: the same after a rename within one filesystem."""
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


def ensure_writable_dir(path: Path, what: str) -> Path:
    """Create ``path`` if needed and prove we can write there, before changing anything."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".tmp-probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"{what} {path} is not writable: {exc.strerror or exc}") from exc
    return path


@contextlib.contextmanager
def open_lock(path: Path) -> Iterator[int]:
    """Yield a file descriptor suitable for ``fcntl.flock``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        yield fd
    finally:
        os.close(fd)
