"""Lot summaries in time buckets: an hourly rollup kept at ingest, and the query that uses it.

Why a rollup: a year of per-minute summaries is 525,600 rows per lot; aggregating
them on every request costs 150-250 ms even from a covering index. The rollup
holds additive sums per (lot, zone, hour), so hour-multiple buckets read 8,760
rows per lot-year instead. It stays exact because the store adds each record
exactly once (duplicates never reach it) and every aggregate is a sum, a count
or a max. Window edges that cut through an hour, and buckets that are not whole
hours, are aggregated from the raw minutes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from proto import parking_pb2

HOUR_MS = 3_600_000

_HOURS_UPSERT = """
INSERT INTO summary_hours (lot_id, zone, hour_ms, samples, occupied_sum, free_sum, arrivals_sum,
                           departures_sum, capacity_max, concentration_sum, price_sum)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (lot_id, zone, hour_ms) DO UPDATE SET
  samples = samples + excluded.samples,
  occupied_sum = occupied_sum + excluded.occupied_sum,
  free_sum = free_sum + excluded.free_sum,
  arrivals_sum = arrivals_sum + excluded.arrivals_sum,
  departures_sum = departures_sum + excluded.departures_sum,
  capacity_max = max(capacity_max, excluded.capacity_max),
  concentration_sum = concentration_sum + excluded.concentration_sum,
  price_sum = price_sum + excluded.price_sum
"""
# Both queries give (bucket_start_ms, samples, occupied, free, arrivals, departures, capacity, concentration,
# price)
# with sums, so parts of one bucket from either source add up.
_RAW_BUCKETS = """
SELECT window_start_ms / :bucket_ms * :bucket_ms, COUNT(*), TOTAL(occupied), TOTAL(free), TOTAL(arrivals),
       TOTAL(departures), MAX(capacity), TOTAL(concentration), TOTAL(price_per_hour)
FROM summaries
WHERE lot_id = :lot_id AND zone = :zone AND window_start_ms >= :since_ms AND window_start_ms < :until_ms
GROUP BY 1
"""
_HOURLY_BUCKETS = """
SELECT hour_ms / :bucket_ms * :bucket_ms, SUM(samples), SUM(occupied_sum), SUM(free_sum), SUM(arrivals_sum),
       SUM(departures_sum), MAX(capacity_max), SUM(concentration_sum), SUM(price_sum)
FROM summary_hours
WHERE lot_id = :lot_id AND zone = :zone AND hour_ms >= :since_ms AND hour_ms < :until_ms
GROUP BY 1
"""


def add_to_hours(conn: sqlite3.Connection, summaries: Iterable[parking_pb2.LotSummary]) -> None:
    """Fold newly stored summaries into the hourly rollup (inside the caller's transaction)."""
    hours: dict[tuple[str, str, int], list[Any]] = {}
    for s in summaries:
        key = (s.lot_id, s.zone, s.window_start_ms // HOUR_MS * HOUR_MS)
        acc = hours.setdefault(key, [0, 0, 0, 0, 0, s.capacity, 0.0, 0.0])
        acc[0] += 1
        acc[1] += s.occupied
        acc[2] += s.free
        acc[3] += s.arrivals
        acc[4] += s.departures
        acc[5] = max(acc[5], s.capacity)
        if s.concentration == s.concentration:  # NaN is stored as NULL in summaries and TOTAL() skips it
            acc[6] += s.concentration
        if s.price_per_hour == s.price_per_hour:
            acc[7] += s.price_per_hour
    if hours:
        conn.executemany(_HOURS_UPSERT, [(*key, *acc) for key, acc in hours.items()])


def bucketed(
    conn: sqlite3.Connection, lot_id: str, zone: str, since_ms: int, until_ms: int, bucket_s: int
) -> list[dict[str, Any]]:
    """Summaries with since_ms <= window_start_ms < until_ms in UTC-aligned buckets, oldest first."""
    bucket_ms = bucket_s * 1000
    params = {"lot_id": lot_id, "zone": zone, "bucket_ms": bucket_ms}
    # Whole hours inside the window come from the rollup when buckets are whole hours.
    first_hour = -(-since_ms // HOUR_MS) * HOUR_MS
    end_hour = until_ms // HOUR_MS * HOUR_MS
    if bucket_ms % HOUR_MS == 0 and first_hour < end_hour:
        parts = [(_RAW_BUCKETS, since_ms, first_hour), (_HOURLY_BUCKETS, first_hour, end_hour),
                 (_RAW_BUCKETS, end_hour, until_ms)]
    else:
        parts = [(_RAW_BUCKETS, since_ms, until_ms)]
    sums: dict[int, list[Any]] = {}
    for sql, lo, hi in parts:
        if lo >= hi:
            continue
        for start_ms, *values in conn.execute(sql, {**params, "since_ms": lo, "until_ms": hi}):
            acc = sums.get(start_ms)
            if acc is None:
                sums[start_ms] = values
            else:
                for i in (0, 1, 2, 3, 4, 6, 7):
                    acc[i] += values[i]
                acc[5] = max(acc[5], values[5])
    return [bucket_row(start_ms, bucket_s, *values) for start_ms, values in sorted(sums.items())]


def bucket_row(
    start_ms: int, bucket_s: int, samples: int, occupied: float, free: float, arrivals: float, departures: float,
    capacity: int, concentration: float, price: float,
) -> dict[str, Any]:
    """One bucket as every history backend reports it (the shape is the cross-backend contract)."""
    return {
        "bucket_start_ms": int(start_ms), "bucket_s": bucket_s, "samples": int(samples),
        "mean_occupied": occupied / samples, "mean_free": free / samples, "arrivals": int(arrivals),
        "departures": int(departures), "capacity": int(capacity), "mean_concentration": concentration / samples,
        "mean_price_per_hour": price / samples,
    }
