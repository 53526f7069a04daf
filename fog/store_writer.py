"""The cycle's write path: commits off the cycle, acknowledgements only after them.

A cycle applies its frames in memory and hands what it changed (a
``CycleWrite``) to a writer; the writer commits it to SQLite and reports the
outcome. Only then does the cycle acknowledge anything (transport acks, ACK
downlinks, API answers to write requests, WebSocket and MQTT pushes). So the
cycle's 10 ms budget does not pay for ``fsync`` and nothing acknowledged is
ever lost.

``ThreadWriter`` commits on a thread of its own (its own SQLite connection;
``sqlite3`` releases the GIL while it writes and syncs), and takes every
batch waiting at once into one transaction: a group commit, so a slow disk
costs fewer syncs, not a longer queue. ``InlineWriter`` commits at once on
the caller's thread: the same protocol for tools and tests that step the
cycle by hand.

Ordering and failure: batches commit in submission order. A failed commit
fails every batch of the same epoch still waiting (each was applied on top of
the failed one); the cycle then puts all their frames back, rebuilds its
state from the store and starts a new epoch.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fog.store import CycleWrite, FogStore


@dataclass
class Batch:
    """One cycle's changes and everything that waits on their commit."""

    write: CycleWrite
    epoch: int
    taken: list[Any] = field(default_factory=list)  # ingest receptions, in order
    acks: list[Any] = field(default_factory=list)  # (Accepted, downlink counter)
    changes: list[dict[str, Any]] = field(default_factory=list)  # state changes for listeners
    requests: list[Any] = field(default_factory=list)  # the lot engine's requests this cycle took
    answers: list[Any] = field(default_factory=list)  # and their outcomes
    saved: Any = None  # the cycle's bookkeeping before this batch (restored on failure)
    applied_at: float = 0.0  # monotonic time the cycle handed it over
    committed_at: float = 0.0
    error: BaseException | None = None


class InlineWriter:
    """Commits on submit, on the caller's thread."""

    def __init__(self, store: FogStore) -> None:
        self.store = store
        self._done: deque[Batch] = deque()

    def submit(self, batch: Batch) -> None:
        try:
            self.store.commit_cycles([batch.write])
        except Exception as err:  # noqa: BLE001 - reported to the cycle, which rolls back
            batch.error = err
        batch.committed_at = time.monotonic()
        self._done.append(batch)

    def completed(self) -> list[Batch]:
        out = list(self._done)
        self._done.clear()
        return out

    def wait_idle(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        pass


class ThreadWriter:
    """Commits on its own thread, in order, grouping what waits into one transaction."""

    def __init__(self, store: FogStore, wake: Callable[[], object] | None = None,
                 observe: Callable[[float], None] | None = None) -> None:
        self.store = store
        self.wake = wake  # called (from the writer thread) after each group: e.g. loop.call_soon_threadsafe
        self.observe = observe  # called with each successful group commit's seconds
        self._todo: deque[Batch] = deque()
        self._done: deque[Batch] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._failed_epoch = -1
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="fog-store-writer", daemon=True)
        self._thread.start()

    def submit(self, batch: Batch) -> None:
        with self._cond:
            if self._stop:
                raise RuntimeError("store writer is closed")
            self._todo.append(batch)
            self._cond.notify_all()

    def completed(self) -> list[Batch]:
        out: list[Batch] = []
        while self._done:
            out.append(self._done.popleft())  # deque.popleft is atomic against the writer's append
        return out

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Until everything submitted has an outcome (True), or the timeout (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._todo and not self._busy, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Commit what waits, then stop the thread."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._todo or self._stop)
                if not self._todo:
                    return
                group = list(self._todo)
                self._todo.clear()
                self._busy = True
            self._commit(group)
            with self._cond:
                self._busy = False
                self._cond.notify_all()
            if self.wake is not None:
                try:
                    self.wake()
                except RuntimeError:  # the loop has closed: the owner collects outcomes itself
                    pass

    def _commit(self, group: list[Batch]) -> None:
        # A failed epoch's later batches were built on the failed one: they fail too, unwritten.
        live = [b for b in group if b.epoch != self._failed_epoch]
        error: BaseException | None = None
        t0 = time.monotonic()
        if live:
            try:
                self.store.commit_cycles([b.write for b in live])
            except Exception as err:  # noqa: BLE001 - reported to the cycle, which rolls back
                error = err
                self._failed_epoch = live[0].epoch
        t1 = time.monotonic()
        if live and error is None and self.observe is not None:
            self.observe(t1 - t0)
        for b in group:
            if b.epoch == self._failed_epoch:
                b.error = error or RuntimeError("an earlier commit of this epoch failed")
            b.committed_at = t1
            self._done.append(b)
