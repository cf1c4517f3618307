"""Holding a run's lease on a model (see :mod:`tritonops.core.lease`) while its steps work.

The model's ``flock`` makes one check-and-write of the lease atomic; the lease itself spans
the gaps between steps, when no process holds anything. While a step works, a background
thread keeps renewing the lease, so a long download never lets it lapse; once the process
is gone (killed, node lost), renewals stop and the lease expires ``ttl_s`` later.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tritonops.adapters.storage import StateStore
from tritonops.core.lease import Lease
from tritonops.errors import Busy

log = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(self, store: StateStore, clock: Callable[[], float], ttl_s: float, holder: str) -> None:
        self.store, self.clock, self.ttl_s, self.holder = store, clock, ttl_s, holder
        self._mutex = threading.Lock()
        self._released: set[tuple[str, str]] = set()

    def live_other(self, model: str, run_id: str) -> Lease | None:
        """The live lease of another run on ``model``, if any."""
        return self.store.live_lease(model, self.clock(), other_than=run_id)

    def refuse_if_taken(self, model: str, run_id: str) -> None:
        lease = self.live_other(model, run_id)
        if lease is not None:
            raise Busy(
                f"model {model!r} is being changed: {lease.describe()}. Wait for it to finish; "
                "if it was killed, `tritonops recover` repairs it once the lease has ended"
            )

    def claim(self, model: str, run_id: str) -> Lease:
        """Take or renew ``run_id``'s lease; refuse (Busy, exit 2) if another run's is live."""
        with self._mutex:
            self.refuse_if_taken(model, run_id)
            now = self.clock()
            current = self.store.read_lease(model)
            if current is not None and current.run_id == run_id:
                lease = current.renewed(now, self.ttl_s)
            else:
                lease = Lease(run_id, self.holder, now, now + self.ttl_s)
            self.store.write_lease(model, lease)
            self._released.discard((model, run_id))
            return lease

    def release(self, model: str, run_id: str) -> None:
        with self._mutex:
            self._released.add((model, run_id))
            self.store.release_lease(model, run_id)

    def _renew(self, model: str, run_id: str) -> None:
        with self._mutex:
            if (model, run_id) in self._released:
                return
            current = self.store.read_lease(model)
            if current is not None and current.run_id == run_id:
                self.store.write_lease(model, current.renewed(self.clock(), self.ttl_s))

    @contextmanager
    def held(self, model: str, run_id: str) -> Iterator[Lease]:
        """Claim the lease, keep renewing it until the block ends (or the run releases it)."""
        lease = self.claim(model, run_id)
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(max(self.ttl_s / 3, 0.05)):
                try:
                    self._renew(model, run_id)
                except OSError as exc:  # the next beat may work; the lease still has time
                    log.warning("could not renew the lease of run=%s model=%s: %s", run_id, model, exc)

        thread = threading.Thread(target=beat, name=f"lease-{model}", daemon=True)
        thread.start()
        try:
            yield lease
        finally:
            stop.set()
            thread.join()
