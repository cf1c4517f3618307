"""The fan-out over replicas: concurrency, first failure cancels the rest, rollback attempts all."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from tritonops.engine import fleet


@dataclass
class FakeReplica:
    url: str


def replicas(n: int) -> list[FakeReplica]:
    return [FakeReplica(f"http://r{i}:8000") for i in range(n)]


def test_runs_every_replica_concurrently_and_keeps_order() -> None:
    barrier = threading.Barrier(4, timeout=5)  # deadlocks (BrokenBarrierError) unless all 4 run at once

    def work(r: FakeReplica) -> str:
        barrier.wait()
        return r.url

    assert fleet.all_or_nothing(replicas(4), work, "load") == [r.url for r in replicas(4)]  # type: ignore[arg-type]


def test_first_failure_cancels_what_has_not_started_and_is_raised() -> None:
    started: list[str] = []

    def work(r: FakeReplica) -> None:
        started.append(r.url)
        if r.url.startswith("http://r0"):
            raise RuntimeError("load failed on r0")
        time.sleep(0.2)

    # limit=1: one replica at a time, so r0's failure must stop r1..r3 from starting.
    with pytest.raises(RuntimeError, match="r0"):
        fleet.all_or_nothing(replicas(4), work, "load", limit=1)  # type: ignore[arg-type]
    assert started == ["http://r0:8000"]


def test_running_work_finishes_before_the_failure_is_raised() -> None:
    finished: list[str] = []
    all_started = threading.Barrier(3, timeout=5)

    def work(r: FakeReplica) -> None:
        all_started.wait()
        if r.url.startswith("http://r1"):
            raise ValueError("smoke failed on r1")
        time.sleep(0.3)
        finished.append(r.url)

    with pytest.raises(ValueError, match="r1"):
        fleet.all_or_nothing(replicas(3), work, "smoke")  # type: ignore[arg-type]
    assert sorted(finished) == ["http://r0:8000", "http://r2:8000"]  # a Triton load cannot be interrupted


def test_each_attempts_every_replica_and_reports_each_outcome() -> None:
    def work(r: FakeReplica) -> bool:
        if r.url.startswith("http://r1"):
            raise OSError("r1 unreachable")
        return True

    results = fleet.each(replicas(3), work, "rollback", limit=1)  # type: ignore[arg-type]
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, OSError) and results[2].value is True


def test_single_replica_runs_in_the_calling_thread() -> None:
    caller = threading.get_ident()
    assert fleet.all_or_nothing(replicas(1), lambda r: threading.get_ident(), "ready") == [caller]  # type: ignore[arg-type]
