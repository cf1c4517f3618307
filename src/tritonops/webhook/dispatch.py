"""Deploys of the events that ask for one: one worker per model, later events collapsed into one follow-up, busy models retried; ``--mode local`` runs the engine here."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tritonops.core.naming import new_run_id
from tritonops.errors import Reaction, TritonOpsError, reaction_of
from tritonops.webhook.metrics import Metrics

if TYPE_CHECKING:
    from tritonops.engine.settings import Settings

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """The deploy could not start now; try again after a backoff.

    ``limited``: give up after a few attempts (a dependency that does not answer); a busy model
    is retried until it is free (its lease always ends).
    """

    def __init__(self, reason: str, message: str, limited: bool) -> None:
        super().__init__(message)
        self.reason, self.limited = reason, limited


DeployFn = Callable[[str, str], str]  # (model, alias) -> outcome label; may raise RetryLater


@dataclass(frozen=True)
class Backoff:
    first_s: float = 2.0
    factor: float = 2.0
    max_s: float = 60.0
    limited_attempts: int = 5

    def delay(self, attempt: int) -> float:
        return float(min(self.max_s, self.first_s * self.factor ** max(attempt - 1, 0)))


class Dispatcher:
    """One worker thread per model with work; at most one deploy per model; later events of a
    model collapse into one follow-up deploy."""

    def __init__(
        self,
        deploy: DeployFn,
        metrics: Metrics | None = None,
        backoff: Backoff | None = None,
        max_parallel: int = 4,
    ) -> None:
        self._deploy = deploy
        self.metrics = metrics or Metrics()
        self.backoff = backoff or Backoff()
        self._lock = threading.Lock()
        self._pending: dict[str, str] = {}  # model -> the alias named last
        self._workers: dict[str, threading.Thread] = {}
        self._running: set[str] = set()
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(max(1, max_parallel))
        self.metrics.with_work.set_function(lambda: len(self._workers))

    def submit(self, model: str, alias: str) -> str:
        """Ask for a deploy: ``started`` (a worker starts), ``queued`` (a follow-up after the
        running deploy), ``merged`` (into the follow-up already queued), ``stopping``."""
        with self._lock:
            if self._stop.is_set():
                return "stopping"
            merged = model in self._pending
            self._pending[model] = alias
            if model in self._workers:
                return "merged" if merged else "queued"
            worker = threading.Thread(target=self._work, args=(model,), name=f"deploy-{model}", daemon=True)
            self._workers[model] = worker
            worker.start()
            return "started"

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def busy(self) -> dict[str, Any]:
        with self._lock:
            return {"running": sorted(self._running), "pending": dict(sorted(self._pending.items()))}

    def idle(self) -> bool:
        with self._lock:
            return not self._workers

    def _next(self, model: str) -> str | None:
        with self._lock:
            alias = self._pending.pop(model, None)
            if alias is None or self._stop.is_set():
                self._workers.pop(model, None)
                return None
            return alias

    def _work(self, model: str) -> None:
        while (alias := self._next(model)) is not None:
            self._until_done(model, alias)

    def _until_done(self, model: str, alias: str) -> None:
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            try:
                outcome = self._one(model, alias)
            except RetryLater as exc:
                if exc.limited and attempt >= self.backoff.limited_attempts:
                    log.error(
                        "model=%s alias=%s: giving up after %d attempts: %s", model, alias, attempt, exc
                    )
                    self.metrics.deploys.labels("gave_up").inc()
                    return
                delay = self.backoff.delay(attempt)
                log.warning(
                    "model=%s alias=%s: %s; retrying in %.0fs (attempt %d)", model, alias, exc, delay, attempt
                )
                self.metrics.retries.labels(exc.reason).inc()
                if self._stop.wait(delay):
                    return
                with self._lock:  # events during the wait: the retry deploys the alias named last
                    alias = self._pending.pop(model, alias)
                continue
            except Exception as exc:  # noqa: BLE001 - a worker must survive any one deploy
                log.exception("model=%s alias=%s: deploy failed unexpectedly: %s", model, alias, exc)
                outcome = "error"
            self.metrics.deploys.labels(outcome).inc()
            return

    def _one(self, model: str, alias: str) -> str:
        with self._slots:
            with self._lock:
                self._running.add(model)
            self.metrics.in_progress.inc()
            try:
                return self._deploy(model, alias)
            finally:
                self.metrics.in_progress.dec()
                with self._lock:
                    self._running.discard(model)

    def stop(self, timeout_s: float = 30.0) -> dict[str, str]:
        """Take no more work; wait for running deploys; return the follow-ups that were dropped."""
        with self._lock:
            self._stop.set()
            dropped = dict(self._pending)
            self._pending.clear()
            workers = list(self._workers.values())
        for model, alias in dropped.items():
            log.warning("stopping: the follow-up deploy of model=%s alias=%s will not run", model, alias)
        deadline = time.monotonic() + timeout_s
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        return dropped


class LocalDeploys:
    """``--mode local``: the engine in this process, exactly what ``tritonops deploy`` runs.

    The engine records every refused attempt in history. The first refusal of a busy model is
    recorded; retries then only look at the lease, and call the engine again once it ended, so
    waiting out a killed run's lease does not fill the history with refusals.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._waiting: set[str] = set()  # models whose last attempt was refused: busy
        self._lock = threading.Lock()

    def _held_by(self, model: str) -> str | None:
        from tritonops.adapters.storage import StateStore

        try:
            lease = StateStore(self.settings.state_dir).live_lease(model, time.time())
        except (TritonOpsError, OSError):
            return None  # the engine decides, and says why
        return lease.describe() if lease is not None else None

    def __call__(self, model: str, alias: str) -> str:
        from tritonops.engine.deployer import Deployer

        with self._lock:
            waiting = model in self._waiting
        held = self._held_by(model) if waiting else None
        if held is not None:
            raise RetryLater("busy", f"model {model!r} is still being changed: {held}", limited=False)
        with self._lock:
            self._waiting.discard(model)
        run_id = new_run_id(model, datetime.now(UTC), secrets.token_hex(3))
        deployer: Deployer | None = None
        try:
            deployer = Deployer(self.settings)
            journal = deployer.run(model, alias, run_id)
        except TritonOpsError as exc:
            reaction = reaction_of(exc)
            if reaction is Reaction.BUSY:
                with self._lock:
                    self._waiting.add(model)
                raise RetryLater("busy", str(exc), limited=False) from exc
            if reaction is Reaction.UNAVAILABLE:
                raise RetryLater("unavailable", str(exc), limited=True) from exc
            if reaction is Reaction.BAD_INPUT:
                log.error("deploy model=%s alias=%s run=%s refused: %s", model, alias, run_id, exc)
                return "refused"
            log.error(
                "deploy model=%s alias=%s run=%s: %s: %s", model, alias, run_id, type(exc).__name__, exc
            )
            return "inconsistent"
        finally:
            for replica in deployer.replicas if deployer else []:
                replica.close()
        outcome = journal.outcome.value if journal.outcome else "unknown"
        version = journal.candidate.version if journal.candidate else None
        log.info("deploy model=%s alias=%s run=%s: %s (version %s)", model, alias, run_id, outcome, version)
        return outcome
