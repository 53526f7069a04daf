"""Lot statistics of ALGORITHMS.md §1: concentration index and inter-arrival time.

Both are reported per lot per window (default 15 min). The fog keeps one
`ArrivalWindow` per lot and appends gate arrivals as they come; the pure
functions serve reports over stored history.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "DEFAULT_WINDOW_S",
    "ArrivalWindow",
    "LotWindowStats",
    "concentration_index",
    "mean_inter_arrival",
]

DEFAULT_WINDOW_S = 900.0
"""Reporting window of §1 (15 min)."""


def concentration_index(occupied: int, capacity: int) -> float:
    """``δ = N/C``: the share of the lot in use, 0..1.

    Decision: ``occupied`` above ``capacity`` or below 0 is refused rather
    than clamped; it means a miscounting sensor, which must be seen.
    """
    if capacity <= 0:
        raise ValueError(f"capacity must be positive, got {capacity!r}")
    if not 0 <= occupied <= capacity:
        raise ValueError(f"occupied must be within 0..{capacity}, got {occupied!r}")
    return occupied / capacity


def mean_inter_arrival(arrivals: Iterable[float]) -> float | None:
    """``λ = (A_n − A_1)/(n − 1)``; None (not 0) when fewer than two arrivals.

    Decision: the arrival times need not be sorted; the telescoped form only
    needs the first and last, so max − min is used.
    """
    count = 0
    first = math.inf
    last = -math.inf
    for t in arrivals:
        count += 1
        first = min(first, t)
        last = max(last, t)
    if count < 2:
        return None
    return (last - first) / (count - 1)


@dataclass(frozen=True, slots=True)
class LotWindowStats:
    """One lot's §1 figures for one window."""

    window_end: float
    concentration: float
    arrivals: int
    mean_inter_arrival_s: float | None


class ArrivalWindow:
    """Arrival times inside a sliding window; append and expire are O(1) amortised.

    Decision: the window ending at ``now`` is ``(now − window_s, now]``, so an
    arrival exactly ``window_s`` old has just left. Arrivals must come in
    non-decreasing time order (gates stamp them as they happen); an earlier
    one is refused, because silently reordering would hide a clock fault.
    """

    __slots__ = ("_times", "window_s")

    def __init__(self, window_s: float = DEFAULT_WINDOW_S) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be positive, got {window_s!r}")
        self.window_s = float(window_s)
        self._times: deque[float] = deque()

    def append(self, t: float) -> None:
        """Record an arrival at ``t`` (seconds) and expire what fell out of the window."""
        if not math.isfinite(t):
            raise ValueError(f"arrival time must be finite, got {t!r}")
        if self._times and t < self._times[-1]:
            raise ValueError(f"arrival at {t} is earlier than the previous one at {self._times[-1]}")
        self._times.append(t)
        self.expire(t)

    def expire(self, now: float) -> None:
        """Drop arrivals at or before ``now − window_s``."""
        cutoff = now - self.window_s
        times = self._times
        while times and times[0] <= cutoff:
            times.popleft()

    def __len__(self) -> int:
        return len(self._times)

    def mean_inter_arrival(self) -> float | None:
        """λ over the arrivals currently in the window; None when fewer than two."""
        times = self._times
        if len(times) < 2:
            return None
        return (times[-1] - times[0]) / (len(times) - 1)

    def stats(self, now: float, occupied: int, capacity: int) -> LotWindowStats:
        """Expire to ``now`` and report δ and λ for the window ending there."""
        self.expire(now)
        return LotWindowStats(
            window_end=now,
            concentration=concentration_index(occupied, capacity),
            arrivals=len(self._times),
            mean_inter_arrival_s=self.mean_inter_arrival(),
        )
