"""Every replica at once: the one place where a step fans out over the Triton replicas.

A step's work on one replica (load, wait until ready, infer, reload production...) runs on every
replica concurrently, one thread per replica (each replica has its own client), at most
``limit`` at a time. Two ways to fan out:

* :func:`all_or_nothing` — a deploy step: the first failure stops the replicas that have not
  started yet (work already running finishes: a Triton load cannot be interrupted) and is raised;
  the rollback then covers every replica.
* :func:`each` — a rollback or a repair: every replica is attempted whatever happens to the others,
  and each one's outcome is returned.

Logs say per replica what happened; the order of results is the order of the replicas.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from tritonops.adapters.triton import TritonReplica

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_LIMIT = 16


class Cancelled(Exception):
    """Work on a replica that was not started because another replica failed first."""


@dataclass(frozen=True)
class ReplicaResult(Generic[T]):
    """What happened on one replica: a value, an error, or not attempted (cancelled)."""

    url: str
    value: T | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _run(
    replicas: Sequence[TritonReplica],
    work: Callable[[TritonReplica], T],
    what: str,
    stop_on_failure: bool,
    limit: int,
) -> list[ReplicaResult[T]]:
    if not replicas:
        return []
    stop = threading.Event()

    def one(replica: TritonReplica) -> ReplicaResult[T]:
        if stop.is_set():
            log.info("%s replica=%s: not started, another replica failed", what, replica.url)
            return ReplicaResult(replica.url, error=Cancelled(f"{what} on {replica.url} not started"))
        try:
            return ReplicaResult(replica.url, value=work(replica))
        except Exception as exc:  # noqa: BLE001 - the caller decides; nothing is swallowed
            if stop_on_failure:
                stop.set()
            log.warning("%s replica=%s failed: %s", what, replica.url, exc)
            return ReplicaResult(replica.url, error=exc)

    if len(replicas) == 1:  # no thread for the common single-replica case
        return [one(replicas[0])]
    with ThreadPoolExecutor(max_workers=min(limit, len(replicas)), thread_name_prefix=what) as pool:
        return list(pool.map(one, replicas))


def all_or_nothing(
    replicas: Sequence[TritonReplica],
    work: Callable[[TritonReplica], T],
    what: str,
    limit: int = DEFAULT_LIMIT,
) -> list[T]:
    """``work`` on every replica concurrently; the first failure cancels what has not started
    and is raised once every started piece of work has finished."""
    outcomes = _run(replicas, work, what, stop_on_failure=True, limit=limit)
    errors = [o.error for o in outcomes if o.error is not None and not isinstance(o.error, Cancelled)]
    if errors:
        raise errors[0]
    return [o.value for o in outcomes]  # type: ignore[misc]


def each(
    replicas: Sequence[TritonReplica],
    work: Callable[[TritonReplica], T],
    what: str,
    limit: int = DEFAULT_LIMIT,
) -> list[ReplicaResult[T]]:
    """``work`` on every replica concurrently, every one attempted; one outcome per replica."""
    return _run(replicas, work, what, stop_on_failure=False, limit=limit)
