"""The "traditional search" baseline of ALGORITHMS.md §2.

A driver without guidance enters and sweeps the lanes in a fixed order,
taking the first free spot passed. Its travel time, computed with the same
edge travel time ``t_e`` as selection, is what guided selection is
measured against.

The sweep, precisely:

1. At every node the driver reaches, the spots hanging on it (out-edges
   into spots, in the order the lot lists them) are looked at; the first
   free one is taken and the search ends.
2. Otherwise the driver takes the first outgoing lane, in listing order,
   that has not been driven yet.
3. If every outgoing lane has been driven, the driver goes back: the
   fastest route (by ``t_e``; ties by node listing order) to the nearest
   node that still has an undriven outgoing lane, looking at spots on the
   way, and continues from there with step 2.
4. If no such node can be reached the sweep is exhausted and the result is
   None: the lot is full for this driver (every spot he could pass was
   taken). The search is deterministic: same lot, state and loads, same
   answer.

Decision: a lane counts as driven in both directions once driven either
way (a two-way aisle is one aisle to a searching driver). Lanes into an
exit are never taken while searching (the driver would leave), and no
route passes through a spot. Backtracking is not free: its edges count in
the path and the time, as the driver really drives them.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from fog.engine.lot_graph import LotGraph, NodeKind
from fog.engine.selection import DEFAULT_MIN_SPEED_MPS, edge_density, edge_travel_time

__all__ = ["SweepResult", "traditional_search"]


@dataclass(frozen=True, slots=True)
class SweepResult:
    """Where the sweeping driver parked, how he got there and how long it took."""

    spot_id: str
    path: tuple[str, ...]
    travel_time_s: float


def traditional_search(
    graph: LotGraph,
    entrance_id: str,
    free_spots: Collection[str],
    *,
    edge_vehicles: Mapping[tuple[str, str], float] | None = None,
    min_speed_mps: float = DEFAULT_MIN_SPEED_MPS,
) -> SweepResult | None:
    """Sweep from ``entrance_id`` and park in the first spot of ``free_spots`` passed.

    ``free_spots`` holds the spots the driver may take (free, and in a
    comparison with selection, also healthy and unheld). ``edge_vehicles``
    gives ``V`` per ``(from, to)`` edge (missing edges: 0).
    """
    entrance = graph.node(entrance_id)
    if entrance.kind is not NodeKind.ENTRANCE:
        raise ValueError(f"node {entrance_id!r} is a {entrance.kind.value}, not an entrance")
    loads = edge_vehicles or {}
    kinds = [node.kind for node in graph.nodes]
    is_spot = [k is NodeKind.SPOT for k in kinds]
    is_exit = [k is NodeKind.EXIT for k in kinds]
    free = [is_spot[node.index] and node.id in free_spots for node in graph.nodes]
    tail, head = graph.edge_tail, graph.edge_head

    times = [
        edge_travel_time(
            e.length_m,
            e.free_speed_mps,
            edge_density(loads.get((e.from_id, e.to_id), 0.0), e.capacity_vehicles),
            min_speed_mps,
        )
        for e in graph.edges
    ]
    # Sweepable lanes out of each node: not into a spot, not into an exit.
    lanes = [
        [e for e in graph.out_edge_ids[u] if not is_spot[head[e]] and not is_exit[head[e]]]
        for u in range(len(graph.nodes))
    ]
    driven: set[frozenset[int]] = set()
    path = [entrance.index]
    total = 0.0

    def lane_of(e: int) -> frozenset[int]:
        return frozenset((tail[e], head[e]))

    def free_spot_edge(u: int) -> int:
        for e in graph.out_edge_ids[u]:
            if free[head[e]]:
                return e
        return -1

    def undriven_lane(u: int) -> int:
        for e in lanes[u]:
            if lane_of(e) not in driven:
                return e
        return -1

    def drive(e: int) -> None:
        nonlocal total
        driven.add(lane_of(e))
        path.append(head[e])
        total += times[e]

    def finish(e: int) -> SweepResult:
        drive(e)
        return SweepResult(graph.nodes[head[e]].id, tuple(graph.nodes[i].id for i in path), total)

    def route_back(start: int) -> list[int] | None:
        """Fastest lane route to the nearest node with an undriven lane."""
        dist = {start: 0.0}
        parent: dict[int, int] = {}
        heap = [(0.0, start)]
        while heap:
            d, u = heapq.heappop(heap)
            if d > dist[u]:
                continue
            if u != start and undriven_lane(u) >= 0:
                route = []
                while u != start:
                    e = parent[u]
                    route.append(e)
                    u = tail[e]
                return route[::-1]
            for e in lanes[u]:
                v = head[e]
                nd = d + times[e]
                if nd < dist.get(v, float("inf")):
                    dist[v] = nd
                    parent[v] = e
                    heapq.heappush(heap, (nd, v))
        return None

    current = entrance.index
    while True:
        spot_edge = free_spot_edge(current)
        if spot_edge >= 0:
            return finish(spot_edge)
        e = undriven_lane(current)
        if e >= 0:
            drive(e)
            current = head[e]
            continue
        route = route_back(current)
        if route is None:
            return None
        for e in route:
            drive(e)
            current = head[e]
            spot_edge = free_spot_edge(current)
            if spot_edge >= 0:
                return finish(spot_edge)
