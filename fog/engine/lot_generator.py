"""Synthetic lots for tests, simulations and benchmarks.

The layout is the common surface-lot pattern: rows of parallel two-way
aisles with a spot on each side of every slot, junctions at both ends of
each aisle, and two-way connecting lanes along every junction row. The
output is the plain-dict form that `LotGraph.from_dicts` accepts, so a
generated lot goes through the same validation as a configured one.

Decision: the seed varies only the connecting-lane lengths (±``lane_jitter``)
and which columns carry the gates; aisle slots stay exactly
``slot_length_m`` apart so facing spots tie, as they do in a real lot.
Decision: entrances feed the top junction row and exits leave from the
bottom row, so a route crosses the lot as traffic does in a through-lot.
Decision: out-edges of a junction are listed aisle-down, aisle-up, lane
right, lane left, which makes the traditional sweep a boustrophedon walk.
"""

from __future__ import annotations

import math
import random
from typing import TypedDict

__all__ = ["EdgeDict", "LotDicts", "NodeDict", "generate_lot"]


class NodeDict(TypedDict):
    """A node as `LotGraph.from_dicts` expects it."""

    id: str
    kind: str


EdgeDict = TypedDict(
    "EdgeDict",
    {"from": str, "to": str, "length_m": float, "speed_mps": float, "capacity": int},
)
"""An edge as `LotGraph.from_dicts` expects it."""


class LotDicts(TypedDict):
    """A whole lot in plain-dict form."""

    nodes: list[NodeDict]
    edges: list[EdgeDict]


def generate_lot(
    spots: int,
    seed: int = 0,
    *,
    slots_per_side: int = 20,
    slot_length_m: float = 2.5,
    aisle_speed_mps: float = 2.8,
    lane_speed_mps: float = 4.2,
    aisle_pitch_m: float = 16.0,
    lane_jitter: float = 0.1,
    spot_depth_m: float = 5.0,
    spot_speed_mps: float = 1.0,
    vehicle_spacing_m: float = 6.0,
    spots_per_gate: int = 1000,
    gate_lane_m: float = 12.0,
) -> LotDicts:
    """A lot with ``spots`` spots; same arguments, same lot.

    ``slots_per_side`` slots make one aisle (two spots per slot); the last
    aisle takes the remainder. There is one entrance and one exit per
    ``spots_per_gate`` spots, rounded half-up, at least one of each. Capacity of a
    lane is one vehicle per ``vehicle_spacing_m``, at least one.
    Decision: ``lane_speed_mps`` (connecting lanes and gates) defaults to
    1.5× the aisle speed, and spot manoeuvres to ``spot_speed_mps`` over
    ``spot_depth_m``; the spec gives only the aisle figures.
    """
    if isinstance(spots, bool) or not isinstance(spots, int) or spots < 1:
        raise ValueError(f"spots must be an int >= 1, got {spots!r}")
    if slots_per_side < 1:
        raise ValueError(f"slots_per_side must be >= 1, got {slots_per_side!r}")
    if spots_per_gate < 1:
        raise ValueError(f"spots_per_gate must be >= 1, got {spots_per_gate!r}")
    if not 0.0 <= lane_jitter < 1.0:
        raise ValueError(f"lane_jitter must be in [0, 1), got {lane_jitter!r}")
    rng = random.Random(seed)

    aisles = math.ceil(spots / (2 * slots_per_side))
    aisle_length = (slots_per_side + 1) * slot_length_m
    rows = max(1, round(math.sqrt(aisles * aisle_pitch_m / aisle_length)))
    rows = min(rows, aisles)
    cols = math.ceil(aisles / rows)
    rows = math.ceil(aisles / cols)  # no empty bottom row of aisles
    gates = max(1, math.floor(spots / spots_per_gate + 0.5))  # half-up: 2,500 spots get 3
    width = len(str(spots))

    def capacity(length: float) -> int:
        return max(1, round(length / vehicle_spacing_m))

    nodes: list[NodeDict] = []
    edges: list[EdgeDict] = []

    def edge(u: str, v: str, length: float, speed: float) -> None:
        edges.append(
            {"from": u, "to": v, "length_m": length, "speed_mps": speed, "capacity": capacity(length)}
        )

    def junction(r: int, c: int) -> str:
        return f"J{r}-{c}"

    def gate_columns() -> list[int]:
        if gates <= cols:
            return sorted(rng.sample(range(cols), gates))
        return [i % cols for i in range(gates)]

    entrance_cols = gate_columns()
    exit_cols = gate_columns()
    lane_length = {
        (r, c): aisle_pitch_m * (1.0 + rng.uniform(-lane_jitter, lane_jitter))
        for r in range(rows + 1)
        for c in range(cols - 1)
    }

    # Aisle a sits in row a // cols, column a % cols; slots per aisle.
    slots_of: list[int] = []
    remaining = spots
    for _ in range(aisles):
        take = min(remaining, 2 * slots_per_side)
        slots_of.append(math.ceil(take / 2))
        remaining -= take

    for i in range(gates):
        nodes.append({"id": f"E{i}", "kind": "entrance"})
    for i in range(gates):
        nodes.append({"id": f"X{i}", "kind": "exit"})
    for r in range(rows + 1):
        for c in range(cols):
            nodes.append({"id": junction(r, c), "kind": "junction"})
    for a, slots in enumerate(slots_of):
        r, c = divmod(a, cols)
        for j in range(slots):
            nodes.append({"id": f"A{r}-{c}-{j}", "kind": "junction"})

    for i, c in enumerate(entrance_cols):
        edge(f"E{i}", junction(0, c), gate_lane_m, lane_speed_mps)
    exits_at: dict[int, list[int]] = {}
    for i, c in enumerate(exit_cols):
        exits_at.setdefault(c, []).append(i)

    for r in range(rows + 1):
        for c in range(cols):
            here = junction(r, c)
            below = r * cols + c
            above = (r - 1) * cols + c
            if r < rows and below < aisles:
                edge(here, f"A{r}-{c}-0", slot_length_m, aisle_speed_mps)
            if r > 0 and above < aisles:
                edge(here, f"A{r - 1}-{c}-{slots_of[above] - 1}", slot_length_m, aisle_speed_mps)
            if c + 1 < cols:
                edge(here, junction(r, c + 1), lane_length[(r, c)], lane_speed_mps)
            if c > 0:
                edge(here, junction(r, c - 1), lane_length[(r, c - 1)], lane_speed_mps)
            if r == rows:
                for i in exits_at.get(c, ()):
                    edge(here, f"X{i}", gate_lane_m, lane_speed_mps)

    spot_no = 0
    spot_edges: list[tuple[str, str]] = []
    for a, slots in enumerate(slots_of):
        r, c = divmod(a, cols)
        for j in range(slots):
            here = f"A{r}-{c}-{j}"
            down = f"A{r}-{c}-{j + 1}" if j + 1 < slots else junction(r + 1, c)
            up = f"A{r}-{c}-{j - 1}" if j > 0 else junction(r, c)
            edge(here, down, slot_length_m, aisle_speed_mps)
            edge(here, up, slot_length_m, aisle_speed_mps)
            for _side in range(2):
                if spot_no == spots:
                    break
                spot_id = f"S{spot_no:0{width}d}"
                spot_no += 1
                nodes.append({"id": spot_id, "kind": "spot"})
                edge(here, spot_id, spot_depth_m, spot_speed_mps)
                spot_edges.append((spot_id, here))
    for spot_id, here in spot_edges:
        edge(spot_id, here, spot_depth_m, spot_speed_mps)
    return {"nodes": nodes, "edges": edges}
