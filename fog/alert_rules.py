"""Security alerts of ALGORITHMS.md §8 that no single frame shows (the cycle raises the frame-level ones).

* ``node_silent`` — no authenticated frame from a node for more than 2 × its
  heartbeat interval;
* ``unverified_occupancy`` — a spot held for a reservation or for
  subscribers occupied without a matching check-in (RFID card or plate)
  within a grace;
* ``closed_occupancy`` — a spot occupied while the lot is closed, with no
  guided or expected vehicle;
* ``config_refused`` — a lot or tariff file from the cloud was refused
  (fog/cloud_config.py); cleared when a later file of that kind applies.

Each alert is raised once (not per frame or per cycle), kept in the store's
``alerts`` table and synced as an ``Alert`` record; clearing it is stored and
synced too (``cleared_ms``). The watches below cost O(1) amortised per event
and per cycle: none of them scans the lot.

Decision: a node's silence is measured from the later of its last frame and
the fog's start — the fog cannot blame a node for what it was not running
to hear.
Decision: ``unverified_occupancy`` clears when the matching check-in comes
late or the spot empties; ``closed_occupancy`` clears when the spot empties;
``node_silent`` clears at the node's next authenticated frame.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from datetime import datetime, tzinfo
from typing import Any, Generic, TypeVar

from fog import records
from fog.store import CycleWrite

__all__ = ["AlertBook", "Deadlines", "OpeningHours", "SilenceWatch"]

K = TypeVar("K", bound=Hashable)


class AlertBook:
    """Raise-once / clear over the cycle's alert table (shared with `fog.cycle.CycleEngine`)."""

    def __init__(self, lot_id: str, alerts: dict[str, dict[str, Any]]) -> None:
        self.lot_id = lot_id
        self.alerts = alerts
        self.raised = 0
        self.cleared = 0

    def active(self, alert_id: str) -> bool:
        row = self.alerts.get(alert_id)
        return row is not None and not row["cleared_ms"]

    def raise_alert(self, w: CycleWrite, alert_id: str, kind: str, at_ms: int, *, node_id: int | None = None,
                    spot: str | None = None, detail: str = "") -> bool:
        """Raise (or, if active, only touch ``last_seen``); True when newly raised."""
        row = self.alerts.get(alert_id)
        new = row is None or bool(row["cleared_ms"])
        if new or row is None:
            row = {"alert_id": alert_id, "kind": kind, "node_id": node_id, "spot_id": spot,
                   "first_seen_ms": at_ms, "cleared_ms": 0, "count": 0}
        row = dict(row, last_seen_ms=at_ms, count=row["count"] + 1, detail=detail)
        self.alerts[alert_id] = row
        w.alerts[alert_id] = row
        if new:
            w.outbox.append((*records.alert(self.lot_id, row), at_ms))
            self.raised += 1
        return new

    def clear(self, w: CycleWrite, alert_id: str, at_ms: int, detail: str = "") -> bool:
        """Clear an active alert; True if there was one."""
        if not self.active(alert_id):
            return False
        row = dict(self.alerts[alert_id], cleared_ms=max(at_ms, 1), last_seen_ms=at_ms)
        if detail:
            row["detail"] = f"{row.get('detail') or ''}; cleared: {detail}".lstrip("; ")
        self.alerts[alert_id] = row
        w.alerts[alert_id] = row
        w.outbox.append((*records.alert(self.lot_id, row), at_ms))
        self.cleared += 1
        return True


class SilenceWatch:
    """Nodes ordered by when they were last heard; each cycle looks only at the oldest.

    ``heard`` moves a node to the young end (O(1)); ``due`` pops nodes from
    the old end while they are past the limit. A silent node leaves the
    order until it is heard again.
    """

    def __init__(self, limit_ms: int, last_heard: Iterable[tuple[int, int]], silent: Iterable[int] = ()) -> None:
        self.limit_ms = limit_ms
        self.silent: set[int] = set(silent)
        self._order: OrderedDict[int, int] = OrderedDict(
            sorted(((n, t) for n, t in last_heard if n not in self.silent), key=lambda item: item[1]))

    def heard(self, node_id: int, at_ms: int) -> bool:
        """Record a frame; True when the node had been silent."""
        order = self._order
        was_silent = node_id in self.silent
        if was_silent:
            self.silent.discard(node_id)
        previous = order.get(node_id)
        order[node_id] = at_ms if previous is None else max(previous, at_ms)
        order.move_to_end(node_id)
        return was_silent

    def forget(self, node_id: int) -> None:
        self._order.pop(node_id, None)
        self.silent.discard(node_id)

    def due(self, now_ms: int, limit: int) -> list[tuple[int, int]]:
        """Nodes that just went silent, as (node, last heard), at most ``limit`` per call."""
        order = self._order
        out: list[tuple[int, int]] = []
        while order and len(out) < limit:
            node_id, last = next(iter(order.items()))
            if now_ms - last <= self.limit_ms:
                break
            order.popitem(last=False)
            self.silent.add(node_id)
            out.append((node_id, last))
        return out


class Deadlines(Generic[K]):
    """One pending deadline per key (setting it again replaces it); a heap with lazy invalidation."""

    def __init__(self) -> None:
        self._at: dict[K, int] = {}
        self._heap: list[tuple[int, int, K]] = []
        self._seq = 0

    def __contains__(self, key: K) -> bool:
        return key in self._at

    def __len__(self) -> int:
        return len(self._at)

    def set(self, key: K, at_ms: int) -> None:
        self._at[key] = at_ms
        self._seq += 1
        heapq.heappush(self._heap, (at_ms, self._seq, key))
        if len(self._heap) > 4 * len(self._at) + 64:  # stale entries dominate: rebuild
            self._heap = [(t, i, k) for t, i, k in self._heap if self._at.get(k) == t]
            heapq.heapify(self._heap)

    def cancel(self, key: K) -> bool:
        return self._at.pop(key, None) is not None

    def due(self, now_ms: int, limit: int) -> list[K]:
        out: list[K] = []
        heap = self._heap
        while heap and heap[0][0] <= now_ms and len(out) < limit:
            at, _, key = heapq.heappop(heap)
            if self._at.get(key) == at:
                del self._at[key]
                out.append(key)
        return out


class OpeningHours:
    """Daily opening ranges in the lot's local time (``[lot].opening_hours``)."""

    def __init__(self, minutes: tuple[tuple[int, int], ...], tz: tzinfo) -> None:
        self.minutes = minutes
        self.tz = tz
        self.always = minutes == ((0, 1440),)

    def is_open(self, at_ms: int) -> bool:
        if self.always:
            return True
        local = datetime.fromtimestamp(at_ms / 1000, self.tz)
        minute = local.hour * 60 + local.minute
        return any(lo <= minute < hi for lo, hi in self.minutes)
