"""The lot as the fog currently believes it: spot states and sensor health.

Updated only by the cycle, after (or as part of) the commit that makes each
change durable; read by the API. Aggregates are kept incrementally so a read
is O(1), not a scan of the lot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fog.config import LotConfig
from fog.store import SPOT_COLUMNS
from proto import frame as fr


@dataclass
class SpotState:
    spot_id: str
    zone: str
    kind: str
    state: str = "unknown"  # empty | occupied | unknown
    since_ms: int = 0
    node_id: int | None = None
    last_seen_ms: int | None = None
    battery_mv: int | None = None
    temp_c: float | None = None
    tamper: int = 0
    rssi_dbm: int | None = None
    snr_db: float | None = None

    def row(self) -> dict[str, Any]:
        """The stored columns (a plain dict: asdict's deep copies cost a lot per frame)."""
        return {c: getattr(self, c) for c in SPOT_COLUMNS}


class LotState:
    """Spot states plus running counts, restored from the store at start."""

    def __init__(self, lot: LotConfig, node_spots: dict[int, str]) -> None:
        self.lot = lot
        self.spots = {s.id: SpotState(s.id, s.zone, s.kind) for s in lot.spots}
        for node_id, spot in node_spots.items():
            self.spots[spot].node_id = node_id
        self.counts = {"empty": 0, "occupied": 0, "unknown": len(self.spots)}
        self.arrivals = 0
        self.departures = 0

    def restore(self, rows: dict[str, dict[str, Any]]) -> None:
        for spot_id, row in rows.items():
            spot = self.spots.get(spot_id)
            if spot is None:
                continue  # a spot removed from the lot file since
            self._count(spot.state, -1)
            for key, value in row.items():
                if key != "spot_id" and hasattr(spot, key):
                    setattr(spot, key, value)
            self._count(spot.state, +1)

    def _count(self, state: str, delta: int) -> None:
        self.counts[state] = self.counts.get(state, 0) + delta

    def apply_occupancy(self, spot_id: str, state_code: int, at_ms: int) -> tuple[SpotState, bool]:
        """Set a spot's state from a sensor; returns (spot, changed)."""
        spot = self.spots[spot_id]
        state = fr.STATE_NAMES.get(state_code, "unknown")
        spot.last_seen_ms = at_ms
        if state == spot.state:
            return spot, False
        if state == "occupied":
            self.arrivals += 1
        elif spot.state == "occupied":
            self.departures += 1
        self._count(spot.state, -1)
        self._count(state, +1)
        spot.state = state
        spot.since_ms = at_ms
        return spot, True

    @property
    def capacity(self) -> int:
        return len(self.spots)

    @property
    def occupied(self) -> int:
        return self.counts.get("occupied", 0)

    @property
    def free(self) -> int:
        return self.counts.get("empty", 0)

    def summary(self) -> dict[str, Any]:
        return {
            "lot": self.lot.id,
            "name": self.lot.name,
            "capacity": self.capacity,
            "occupied": self.occupied,
            "free": self.free,
            "unknown": self.counts.get("unknown", 0),
            "concentration": self.occupied / self.capacity if self.capacity else 0.0,
        }
