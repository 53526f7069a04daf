"""Vehicles arriving and leaving: the ground truth the bench drives the nodes with."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class PoissonTraffic:
    """Arrivals as a Poisson process; each vehicle stays an exponential time.

    A vehicle that finds the lot full leaves (counted as ``turned_away``).
    """

    spots: list[str]
    arrivals_per_min: float
    mean_stay_s: float
    seed: int = 0
    occupied: dict[str, float] = field(default_factory=dict)  # spot -> departure time
    turned_away: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.next_arrival_s = self._gap()

    def _gap(self) -> float:
        return self.rng.expovariate(self.arrivals_per_min / 60.0) if self.arrivals_per_min > 0 else float("inf")

    def step(self, now_s: float) -> tuple[list[str], list[str]]:
        """Advance to ``now_s``; returns (spots that became occupied, spots that became free)."""
        arrived: list[str] = []
        left = [s for s, t in self.occupied.items() if t <= now_s]
        for s in left:
            del self.occupied[s]
        while self.next_arrival_s <= now_s:
            free = [s for s in self.spots if s not in self.occupied and s not in arrived]
            if free:
                spot = self.rng.choice(free)
                self.occupied[spot] = self.next_arrival_s + self.rng.expovariate(1.0 / self.mean_stay_s)
                arrived.append(spot)
            else:
                self.turned_away += 1
            self.next_arrival_s += self._gap()
        return arrived, left
