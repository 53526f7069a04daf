"""The parking lot as a directed graph (ALGORITHMS.md section 2).

Nodes are entrances, exits, junctions and spots; edges are lane segments
with a length, a free-flow speed and a vehicle capacity. The graph is
immutable once built: live state (vehicles on an edge, which spots are
free) belongs to the selector, so one validated graph can be shared by the
selector, the traditional-search baseline and the benchmarks.

Routing semantics shared by every algorithm in this package: a route may
not pass *through* a spot (a spot is a destination, not a lane) nor through
an exit (reaching an exit means leaving the lot). Validation uses the same
rule, so a lot that validates can route every spot.

Decision: the plain-dict form is strict. An unknown key is refused (a typo
such as ``lenght_m`` would otherwise silently drop a value), a duplicate
``(from, to)`` pair is refused (a route given as node ids must name its
edges unambiguously), and so are self-loops and spot-to-spot edges.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "Edge",
    "LotGraph",
    "LotGraphError",
    "Node",
    "NodeKind",
]


class LotGraphError(ValueError):
    """A lot description that cannot be routed; the message names the culprit."""


class NodeKind(StrEnum):
    """What a node is in the lot."""

    ENTRANCE = "entrance"
    EXIT = "exit"
    JUNCTION = "junction"
    SPOT = "spot"


@dataclass(frozen=True, slots=True)
class Node:
    """One node; ``index`` is its position in the listing order."""

    id: str
    kind: NodeKind
    index: int


@dataclass(frozen=True, slots=True)
class Edge:
    """One directed lane segment; ``index`` is its position in the listing order."""

    index: int
    from_id: str
    to_id: str
    length_m: float
    free_speed_mps: float
    capacity_vehicles: float


_NODE_KEYS = frozenset({"id", "kind"})
_EDGE_KEYS = frozenset({"from", "to", "length_m", "speed_mps", "capacity"})


def _number_problem(value: Any) -> str | None:
    """Why ``value`` is not a finite number > 0, or None if it is one."""
    if type(value) is float or (type(value) is int):
        if 0 < value < math.inf:
            return None
        return f"must be a positive finite number, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a number, got {value!r}"
    return None if 0 < value < math.inf else f"must be a positive finite number, got {value!r}"


def _as_float(value: Any) -> Any:
    """Ints become floats; anything else is left for validation to judge."""
    return float(value) if type(value) is int else value


def _edge_problem(
    position: int, edge: Edge, by_id: Mapping[str, Node], by_pair: Mapping[tuple[str, str], Edge]
) -> str | None:
    """Why an edge cannot be part of the lot, or None."""
    if edge.index != position:
        return f"index {edge.index} does not match its position"
    for endpoint in (edge.from_id, edge.to_id):
        if endpoint not in by_id:
            return f"unknown endpoint {endpoint!r}"
    if edge.from_id == edge.to_id:
        return "self-loop"
    if (edge.from_id, edge.to_id) in by_pair:
        return "duplicate edge between the same two nodes"
    if by_id[edge.from_id].kind is NodeKind.SPOT and by_id[edge.to_id].kind is NodeKind.SPOT:
        return "spots may only connect to lane nodes, not to another spot"
    for name, value in (
        ("length_m", edge.length_m),
        ("speed_mps", edge.free_speed_mps),
        ("capacity", edge.capacity_vehicles),
    ):
        problem = _number_problem(value)
        if problem is not None:
            return f"{name} {problem}"
    return None


class LotGraph:
    """A validated, immutable lot graph.

    Besides the readable accessors, integer views (``edge_tail``,
    ``edge_head``, ``out_edge_ids``, ``in_edge_ids``) are exposed for the
    routing code, which works on indices to stay fast.
    """

    __slots__ = (
        "_by_id",
        "_edge_by_pair",
        "edge_head",
        "edge_tail",
        "edges",
        "in_edge_ids",
        "nodes",
        "out_edge_ids",
    )

    def __init__(self, nodes: Iterable[tuple[str, NodeKind]], edges: Iterable[Edge]) -> None:
        """Build and validate; raise `LotGraphError` naming the first problem found."""
        node_list: list[Node] = []
        by_id: dict[str, Node] = {}
        for position, (node_id, kind) in enumerate(nodes):
            if not isinstance(node_id, str) or not node_id:
                raise LotGraphError(f"node #{position}: id must be a non-empty string, got {node_id!r}")
            if node_id in by_id:
                raise LotGraphError(f"node {node_id!r}: duplicate id")
            try:
                node_kind = NodeKind(kind)
            except ValueError:
                raise LotGraphError(f"node {node_id!r}: unknown kind {kind!r}") from None
            node = Node(node_id, node_kind, position)
            node_list.append(node)
            by_id[node_id] = node
        self.nodes: tuple[Node, ...] = tuple(node_list)
        self._by_id = by_id

        edge_list: list[Edge] = []
        by_pair: dict[tuple[str, str], Edge] = {}
        for position, edge in enumerate(edges):
            problem = _edge_problem(position, edge, by_id, by_pair)
            if problem is not None:
                raise LotGraphError(f"edge #{position} ({edge.from_id!r} -> {edge.to_id!r}): {problem}")
            edge_list.append(edge)
            by_pair[(edge.from_id, edge.to_id)] = edge
        self.edges: tuple[Edge, ...] = tuple(edge_list)
        self._edge_by_pair = by_pair

        out_ids: list[list[int]] = [[] for _ in node_list]
        in_ids: list[list[int]] = [[] for _ in node_list]
        for edge in edge_list:
            out_ids[by_id[edge.from_id].index].append(edge.index)
            in_ids[by_id[edge.to_id].index].append(edge.index)
        self.edge_tail: tuple[int, ...] = tuple(by_id[e.from_id].index for e in edge_list)
        self.edge_head: tuple[int, ...] = tuple(by_id[e.to_id].index for e in edge_list)
        self.out_edge_ids: tuple[tuple[int, ...], ...] = tuple(tuple(ids) for ids in out_ids)
        self.in_edge_ids: tuple[tuple[int, ...], ...] = tuple(tuple(ids) for ids in in_ids)
        self._check_routable()

    # ------------------------------------------------------------ building
    @classmethod
    def from_dicts(
        cls,
        nodes: Iterable[Mapping[str, Any]],
        edges: Iterable[Mapping[str, Any]],
    ) -> LotGraph:
        """Build from plain data, as a config loader produces it.

        ``nodes``: ``{"id": str, "kind": "entrance"|"exit"|"junction"|"spot"}``;
        ``edges``: ``{"from", "to", "length_m", "speed_mps", "capacity"}``.
        """
        node_pairs: list[tuple[str, NodeKind]] = []
        for position, raw in enumerate(nodes):
            label = f"node #{position}"
            if not isinstance(raw, Mapping):
                raise LotGraphError(f"{label}: expected a mapping, got {type(raw).__name__}")
            unknown = set(raw) - _NODE_KEYS
            if unknown:
                raise LotGraphError(f"{label}: unknown key(s) {sorted(map(str, unknown))}")
            for key in ("id", "kind"):
                if key not in raw:
                    raise LotGraphError(f"{label}: missing key {key!r}")
            label = f"node {raw['id']!r}"
            try:
                kind = NodeKind(raw["kind"])
            except ValueError:
                allowed = ", ".join(k.value for k in NodeKind)
                raise LotGraphError(f"{label}: kind must be one of {allowed}, got {raw['kind']!r}") from None
            node_pairs.append((raw["id"], kind))

        edge_objs: list[Edge] = []
        for position, raw in enumerate(edges):
            if not (isinstance(raw, Mapping) and raw.keys() == _EDGE_KEYS):
                label = f"edge #{position}"
                if not isinstance(raw, Mapping):
                    raise LotGraphError(f"{label}: expected a mapping, got {type(raw).__name__}")
                unknown = set(raw) - _EDGE_KEYS
                if unknown:
                    raise LotGraphError(f"{label}: unknown key(s) {sorted(map(str, unknown))}")
                missing = sorted(_EDGE_KEYS - set(raw))
                raise LotGraphError(f"{label}: missing key {missing[0]!r}")
            edge_objs.append(
                Edge(
                    position,
                    raw["from"],
                    raw["to"],
                    _as_float(raw["length_m"]),
                    _as_float(raw["speed_mps"]),
                    _as_float(raw["capacity"]),
                )
            )
        return cls(node_pairs, edge_objs)

    def _check_routable(self) -> None:
        """Refuse lots with a spot that cannot be reached or cannot be left."""
        kinds = [node.kind for node in self.nodes]
        for kind, word in ((NodeKind.ENTRANCE, "entrance"), (NodeKind.EXIT, "exit"), (NodeKind.SPOT, "spot")):
            if kind not in kinds:
                raise LotGraphError(f"lot has no {word}")
        terminal = [k is NodeKind.SPOT or k is NodeKind.EXIT for k in kinds]

        reached = [k is NodeKind.ENTRANCE for k in kinds]
        queue = deque(i for i, k in enumerate(kinds) if k is NodeKind.ENTRANCE)
        while queue:
            u = queue.popleft()
            for e in self.out_edge_ids[u]:
                v = self.edge_head[e]
                if not reached[v]:
                    reached[v] = True
                    if not terminal[v]:
                        queue.append(v)

        leaves = [k is NodeKind.EXIT for k in kinds]
        queue = deque(i for i, k in enumerate(kinds) if k is NodeKind.EXIT)
        while queue:
            v = queue.popleft()
            for e in self.in_edge_ids[v]:
                u = self.edge_tail[e]
                if not leaves[u] and kinds[u] is not NodeKind.EXIT:
                    leaves[u] = True
                    if kinds[u] is not NodeKind.SPOT:
                        queue.append(u)

        for node in self.nodes:
            if node.kind is not NodeKind.SPOT:
                continue
            if not reached[node.index]:
                raise LotGraphError(
                    f"node {node.id!r} (spot): not reachable from any entrance "
                    "(routes may not pass through spots or exits)"
                )
            if not leaves[node.index]:
                raise LotGraphError(
                    f"node {node.id!r} (spot): no exit reachable from it "
                    "(routes may not pass through spots or exits)"
                )

    # ------------------------------------------------------------ queries
    def node(self, node_id: str) -> Node:
        """The node called ``node_id``; `KeyError` if there is none."""
        return self._by_id[node_id]

    def has_node(self, node_id: str) -> bool:
        """Whether the lot has a node called ``node_id``."""
        return node_id in self._by_id

    def edge_between(self, from_id: str, to_id: str) -> Edge | None:
        """The edge ``from_id -> to_id`` or None."""
        return self._edge_by_pair.get((from_id, to_id))

    def out_edges(self, node_id: str) -> tuple[Edge, ...]:
        """Outgoing edges of a node, in the order the lot lists them."""
        return tuple(self.edges[e] for e in self.out_edge_ids[self._by_id[node_id].index])

    def in_edges(self, node_id: str) -> tuple[Edge, ...]:
        """Incoming edges of a node, in the order the lot lists them."""
        return tuple(self.edges[e] for e in self.in_edge_ids[self._by_id[node_id].index])

    def ids_of_kind(self, kind: NodeKind) -> tuple[str, ...]:
        """Node ids of one kind, in listing order."""
        return tuple(node.id for node in self.nodes if node.kind is kind)

    @property
    def entrances(self) -> tuple[str, ...]:
        """Entrance ids in listing order."""
        return self.ids_of_kind(NodeKind.ENTRANCE)

    @property
    def exits(self) -> tuple[str, ...]:
        """Exit ids in listing order."""
        return self.ids_of_kind(NodeKind.EXIT)

    @property
    def spots(self) -> tuple[str, ...]:
        """Spot ids in listing order."""
        return self.ids_of_kind(NodeKind.SPOT)

    def is_terminal(self, node_id: str) -> bool:
        """True for spots and exits: routes end there and never pass through."""
        return self._by_id[node_id].kind in (NodeKind.SPOT, NodeKind.EXIT)

    def __repr__(self) -> str:
        return f"LotGraph(nodes={len(self.nodes)}, edges={len(self.edges)}, spots={len(self.spots)})"
