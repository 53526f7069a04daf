"""The traditional search of ALGORITHMS.md §2, one decision at a time.

`fog.engine.traditional_search.traditional_search` answers for a frozen lot:
given the free spots now, where will the sweeping driver park? In a running
simulation spots free up and fill while he drives, so the driver has to
decide at each node with what he sees *then*. `SweepDriver` applies exactly
the same rules (look at the spots hanging on the node in listing order; else
take the first undriven outgoing lane in listing order; else drive the
fastest route back to the nearest node with an undriven lane, looking at
spots on the way) but keeps the driver's memory between calls. In a frozen
lot it produces the same path as `traditional_search`; the tests check that.

Decision: when the sweep is exhausted (every lane driven and no spot
found), the driver forgets what he drove and sweeps again from where he is,
as a real driver circles; the simulation gives up on him after a time limit.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fog.engine.lot_graph import LotGraph, NodeKind

__all__ = ["SweepDecision", "SweepDriver"]


@dataclass(frozen=True, slots=True)
class SweepDecision:
    """What the driver does at a node: drive ``edge`` (an edge index); ``parks`` when it leads into a spot."""

    edge: int
    parks: bool


class SweepDriver:
    """One searching driver's memory and rules; call `decide` at each node he reaches."""

    def __init__(self, graph: LotGraph, entrance_id: str) -> None:
        self.graph = graph
        entrance = graph.node(entrance_id)
        if entrance.kind is not NodeKind.ENTRANCE:
            raise ValueError(f"node {entrance_id!r} is a {entrance.kind.value}, not an entrance")
        kinds = [node.kind for node in graph.nodes]
        self._is_spot = [k is NodeKind.SPOT for k in kinds]
        is_exit = [k is NodeKind.EXIT for k in kinds]
        head = graph.edge_head
        self._lanes = [
            [e for e in graph.out_edge_ids[u] if not self._is_spot[head[e]] and not is_exit[head[e]]]
            for u in range(len(graph.nodes))
        ]
        self._driven: set[frozenset[int]] = set()
        self._plan: list[int] = []
        self.node = entrance.index
        self.path: list[int] = [entrance.index]
        self.sweeps = 1

    def _lane(self, e: int) -> frozenset[int]:
        return frozenset((self.graph.edge_tail[e], self.graph.edge_head[e]))

    def _undriven(self, u: int) -> int:
        for e in self._lanes[u]:
            if self._lane(e) not in self._driven:
                return e
        return -1

    def _route_back(self, start: int, times: Sequence[float]) -> list[int] | None:
        """Fastest lane route to the nearest node with an undriven lane (as `traditional_search`)."""
        head, tail = self.graph.edge_head, self.graph.edge_tail
        dist = {start: 0.0}
        parent: dict[int, int] = {}
        heap = [(0.0, start)]
        while heap:
            d, u = heapq.heappop(heap)
            if d > dist[u]:
                continue
            if u != start and self._undriven(u) >= 0:
                route = []
                while u != start:
                    e = parent[u]
                    route.append(e)
                    u = tail[e]
                return route[::-1]
            for e in self._lanes[u]:
                v = head[e]
                nd = d + times[e]
                if nd < dist.get(v, float("inf")):
                    dist[v] = nd
                    parent[v] = e
                    heapq.heappush(heap, (nd, v))
        return None

    def decide(self, is_free: Callable[[str], bool], times: Sequence[float]) -> SweepDecision:
        """The driver's move at his current node; he is then on that edge's head.

        ``is_free(spot_id)`` says whether he may take a spot he sees;
        ``times[e]`` is the travel time he expects on edge ``e`` (used only to
        choose the way back, as in `traditional_search`).
        """
        graph = self.graph
        u = self.node
        for e in graph.out_edge_ids[u]:
            v = graph.edge_head[e]
            if self._is_spot[v] and is_free(graph.nodes[v].id):
                return self._drive(e, parks=True)
        if self._plan:
            return self._drive(self._plan.pop(0), parks=False)
        e = self._undriven(u)
        if e >= 0:
            return self._drive(e, parks=False)
        route = self._route_back(u, times)
        if route is None:
            self._driven.clear()  # exhausted: circle again
            self.sweeps += 1
            e = self._undriven(u)
            if e < 0:
                raise RuntimeError(f"node {graph.nodes[u].id!r} has no lane to sweep")
            return self._drive(e, parks=False)
        self._plan = route
        return self._drive(self._plan.pop(0), parks=False)

    def _drive(self, e: int, parks: bool) -> SweepDecision:
        if not parks:
            self._driven.add(self._lane(e))
        self.node = self.graph.edge_head[e]
        self.path.append(self.node)
        return SweepDecision(e, parks)

    def path_ids(self) -> tuple[str, ...]:
        """Node ids driven so far, entrance first."""
        return tuple(self.graph.nodes[i].id for i in self.path)
