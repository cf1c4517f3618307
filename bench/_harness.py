"""What every benchmark needs: real local processes, the real CLI, medians."""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.helpers import Registry  # noqa: E402

from tritonops.local.processes import Process, start_triton  # noqa: E402


@dataclass
class Stack:
    tmp: Path
    repo: Path
    state: Path
    registry: Registry
    tritons: list[Process] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [t.url for t in self.tritons if t.url]

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            MLFLOW_TRACKING_URI=self.registry.tracking_uri,
            TRITONOPS_REPO=str(self.repo),
            TRITONOPS_STATE_DIR=str(self.state),
            TRITONOPS_TRITON_URL=",".join(self.urls),
        )
        env.update(extra)
        return env

    def cli(self, *args: str, **extra: str) -> tuple[subprocess.CompletedProcess[str], float]:
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "tritonops.cli", *args],
            env=self.env(**extra),
            capture_output=True,
            text=True,
            check=False,
        )
        return result, time.perf_counter() - started


@contextlib.contextmanager
def stack(replicas: int = 1) -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp_s:
        tmp = Path(tmp_s)
        repo = tmp / "pvc" / "models"
        repo.mkdir(parents=True)
        s = Stack(
            tmp, repo, tmp / "pvc" / "state", Registry(f"sqlite:///{tmp / 'mlflow.db'}", tmp / "artifacts")
        )
        try:
            for i in range(replicas):
                s.tritons.append(start_triton(repo, tmp / f"triton-{i}.log")[0])
            yield s
        finally:
            for t in s.tritons:
                t.stop()


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def fmt(xs: Sequence[float], unit: str = "s") -> str:
    return f"median {median(xs):.3f}{unit}  runs {[round(x, 3) for x in xs]}"


def child_peak_rss_mib() -> float:
    """Peak RSS of the largest child process waited for so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def quiet_mlflow() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
