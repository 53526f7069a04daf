"""Independent reference for selection tests: plain networkx Dijkstra.

Nothing here imports the selector; travel times are recomputed from the
formula in ALGORITHMS.md §2 so that a shared bug cannot hide.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import networkx as nx

from fog.engine.lot_graph import LotGraph, NodeKind


def travel_time(length: float, speed: float, vehicles: float, capacity: float, v_min: float = 0.5) -> float:
    """ALGORITHMS.md §2, written out again."""
    density = min(max(vehicles / capacity, 0.0), 1.0)
    return length / max(speed * (1.0 - density), v_min)


def density(vehicles: float, capacity: float) -> float:
    return min(max(vehicles / capacity, 0.0), 1.0)


class Reference:
    """Loads tracked independently of the selector, answers via networkx."""

    def __init__(self, graph: LotGraph, v_min: float = 0.5) -> None:
        self.graph = graph
        self.v_min = v_min
        self.vehicles: dict[tuple[str, str], int] = {(e.from_id, e.to_id): 0 for e in graph.edges}
        self.kind = {node.id: node.kind for node in graph.nodes}

    def add_path(self, path: tuple[str, ...] | list[str], sign: int) -> None:
        for pair in dict.fromkeys(zip(path, path[1:], strict=False)):
            self.vehicles[pair] += sign

    def weight(self, u: str, v: str) -> float:
        e = self.graph.edge_between(u, v)
        assert e is not None
        return travel_time(
            e.length_m, e.free_speed_mps, self.vehicles[(u, v)], e.capacity_vehicles, self.v_min
        )

    def density(self, u: str, v: str) -> float:
        e = self.graph.edge_between(u, v)
        assert e is not None
        return density(self.vehicles[(u, v)], e.capacity_vehicles)

    def forward_graph(self) -> nx.DiGraph:
        """Edges a route may use: none leaves a spot or an exit."""
        g = nx.DiGraph()
        for e in self.graph.edges:
            if self.kind[e.from_id] in (NodeKind.SPOT, NodeKind.EXIT):
                continue
            g.add_edge(e.from_id, e.to_id, weight=self.weight(e.from_id, e.to_id))
        return g

    def distances(self, entrance: str) -> Mapping[str, float]:
        return nx.single_source_dijkstra_path_length(self.forward_graph(), entrance, weight="weight")

    def exit_times(self) -> dict[str, float]:
        """Time from every spot to its nearest exit (routes through lane nodes only)."""
        g = nx.DiGraph()
        for e in self.graph.edges:
            if self.kind[e.from_id] in (NodeKind.SPOT, NodeKind.EXIT) or self.kind[e.to_id] is NodeKind.SPOT:
                continue
            g.add_edge(e.to_id, e.from_id, weight=self.weight(e.from_id, e.to_id))
        exits = [n for n in self.graph.exits if n in g]
        back = dict(nx.multi_source_dijkstra_path_length(g, exits, weight="weight")) if exits else {}
        for x in self.graph.exits:
            back[x] = 0.0
        times = {}
        for spot in self.graph.spots:
            times[spot] = min(
                (
                    self.weight(spot, e.to_id) + back.get(e.to_id, float("inf"))
                    for e in self.graph.out_edges(spot)
                ),
                default=float("inf"),
            )
        return times

    def exit_time(self, spot: str) -> float:
        return self.exit_times()[spot]


def random_lot(rng: random.Random, *, dyadic: bool = False) -> dict[str, list[dict[str, Any]]]:
    """A random but routable lot: a backbone of junctions plus random extras.

    With ``dyadic`` every free-flow time is a multiple of 1/4 s, so sums are
    exact and ties can be checked without tolerance.
    """
    n_j = rng.randint(2, 14)
    n_s = rng.randint(1, 25)
    n_e = rng.randint(1, 3)
    n_x = rng.randint(1, 3)
    nodes = (
        [{"id": f"E{i}", "kind": "entrance"} for i in range(n_e)]
        + [{"id": f"X{i}", "kind": "exit"} for i in range(n_x)]
        + [{"id": f"J{i:02d}", "kind": "junction"} for i in range(n_j)]
        + [{"id": f"S{i:02d}", "kind": "spot"} for i in range(n_s)]
    )
    pairs: dict[tuple[str, str], None] = {}

    def add(u: str, v: str) -> None:
        if u != v:
            pairs[(u, v)] = None

    add("E0", "J00")
    for i in range(1, n_e):
        add(f"E{i}", f"J{rng.randrange(n_j):02d}")
    for i in range(n_j - 1):
        add(f"J{i:02d}", f"J{i + 1:02d}")
        if rng.random() < 0.6:
            add(f"J{i + 1:02d}", f"J{i:02d}")
    add(f"J{n_j - 1:02d}", "X0")
    for i in range(1, n_x):
        add(f"J{rng.randrange(n_j):02d}", f"X{i}")
    for _ in range(rng.randint(0, n_j)):
        a, b = rng.randrange(n_j), rng.randrange(n_j)
        add(f"J{a:02d}", f"J{b:02d}")
        if rng.random() < 0.5:
            add(f"J{b:02d}", f"J{a:02d}")
    if rng.random() < 0.3:
        add("X0", f"J{rng.randrange(n_j):02d}")  # an exit that leads on: must not be driven through
    for s in range(n_s):
        spot = f"S{s:02d}"
        sources = [f"J{rng.randrange(n_j):02d}"]
        if rng.random() < 0.15:
            sources = [f"E{rng.randrange(n_e)}"]
        if rng.random() < 0.25:
            sources.append(f"J{rng.randrange(n_j):02d}")
        for u in sources:
            add(u, spot)
        add(spot, f"J{rng.randrange(n_j):02d}" if rng.random() < 0.9 else f"X{rng.randrange(n_x)}")
    edges = []
    for u, v in pairs:
        if dyadic:
            length = float(rng.choice([1, 2, 3, 4, 6, 8]))
            speed = float(rng.choice([1, 2, 4]))
        else:
            length = rng.uniform(1.0, 30.0)
            speed = rng.uniform(0.8, 5.0)
        edges.append(
            {"from": u, "to": v, "length_m": length, "speed_mps": speed, "capacity": rng.choice([1, 2, 3, 4])}
        )
    # Listing order must not matter to the answer: shuffle it so that spot
    # indices disagree with spot-id order.
    rng.shuffle(nodes)
    rng.shuffle(edges)
    return {"nodes": nodes, "edges": edges}
