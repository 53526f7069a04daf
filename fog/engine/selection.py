"""Spot selection by minimum expected arrival time (ALGORITHMS.md section 2).

Formulas (module functions): edge density ``λ_e = clamp(V_e/M_e, 0, 1)``,
Greenshields travel time ``t_e = L / max(v_f·(1 − λ_e), v_min)``, route
congestion ``C = Σλ_e / T``.

`SpotSelector` answers "which free spot does a vehicle at entrance *s* reach
first?" without a per-request Dijkstra over the lot. How:

Decision: the trees are kept over a contracted lot, not over every node,
and grown only as far as requests need. Guiding a vehicle changes ``t_e``
on its whole path, which starts at an entrance, so in steady operation
nearly every request finds its entrance tree dirty; recomputing a full-lot
tree then costs about as much as the per-request Dijkstra it is meant to
avoid. Contraction makes that recomputation a Dijkstra over hubs, and
stopping it at the answer's ETA keeps it to the hubs near the entrance.

* **Contraction.** Lane nodes with exactly two lane neighbours (aisle
  positions, bends) form *chains* between *hubs* (every other lane node:
  entrances, exits, junctions where lanes meet). Inside a chain the time to
  position *i* is a prefix sum from either end, so shortest paths are only
  computed over hubs and chains become single hub-to-hub edges. A generated
  2,500-spot lot has ~3,900 nodes but ~80 hubs.
* **Per-entrance trees, grown on demand.** For each entrance a hub-level
  shortest-path tree is kept as a *paused* Dijkstra: it settles hubs only
  until no unsettled hub can lead to a spot as good as the best one found
  (group offsets are never negative), keeps its frontier, and resumes from there
  when a later request needs more. Settled hubs, their parents and their
  settle order are those of a full Dijkstra, so a partial tree gives the
  same answers, bit for bit. Exit times (only needed for the chosen spot)
  come from an A* search over hubs towards the exits, guided by load-free
  lower bounds computed once, so loads never invalidate anything on the
  exit side.
* **Per-entrance heaps.** Spots are grouped by where they hang (a chain or
  a hub). Each group keeps its eligible spots in a heap per entry side,
  keyed by offset from the side's hub; each entrance keeps a heap of the
  groups entered from its settled hubs, keyed by their best ETA. All heaps
  use lazy invalidation (epochs and versions) and are compacted when stale
  entries dominate.
* **Dirty marking.** A change of an edge's travel time marks a tree dirty
  only when it can change its settled part or frontier: the edge leaves a
  settled hub and is either an increase on the edge that reached its head
  or a decrease that ties or beats the head's (tentative) distance. A
  dirty tree restarts from its entrance on the next request from there.

Decision: a dirty tree is regrown from its entrance, not repaired in place
(Ramalingam–Reps style). A restart costs the settled region — the hubs no
farther than the answer — not the lot: on a generated 45,000-spot lot (1,286
hubs) a request settles a median of ~21 hubs (p99 ~65) in the scenario of
bench/bench_selection.py. Measured there, the edges that invalidate a tree
lie above 34 % of its settled hubs on average at 45,000 spots (79 % at
2,500, where every route runs down the trunk of one of three entrances), and
regrowth is under half of a request's time (the exit-time search and the
route are the rest); a repair would save about a third of a request at most,
while having to reproduce the full Dijkstra's tie-break order on a paused
frontier. Also measured and dropped: deferring the check to the tree's next
request (a vehicle guided and released in between leaves it valid) avoided
only 7 % of restarts and cost more in heap pushes. The settled region, and
so the cost, grows towards a full hub Dijkstra only as free spots get scarce
near the entrances.

Complexity, with *H* hubs, *G* groups, *E* entrances, *k* chain length,
*D* the hop length of the answer's route, *R* the hubs no farther than the
answer's ETA (at most *H*) and *r* the groups entered from them:

* `select` on a clean tree: O(log G + log k + D) amortised, plus the ties,
  plus the growth to any new frontier the answer needs.
* `select` on a dirty tree: a hub-level Dijkstra over R hubs,
  O((R + their out-edges)·log R), and O(r log r) group keys. Spots are
  never in the Dijkstra.
* `route` to one spot: grows the tree until that spot's ETA is final.
* exit time of the answer: A* over hubs, O(H log H) worst case, in
  practice the hubs near the spot's way out.
* spot state change (`set_occupied`, `set_healthy`, `hold`, `clear_hold`):
  O(E·log G + log k) per group the spot hangs on.
* `guide` / `release` / `set_observed_vehicles`: O(path length + Σ k over
  touched chains + E per changed hub edge), deferring the Dijkstra as above.
  On a lot with no chains (every lane node a hub) a dirty request costs a
  Dijkstra over the lane nodes within the answer's ETA; spots are still
  excluded.

Decision: ETAs are compared as computed floats, with no tolerance (the spec
asks for exact tie-breaks). Spots on the same access node with equal spurs
tie exactly; mathematically equal times reached by different routes may
differ in the last bit, so lengths and speeds that are exactly
representable are needed for such ties to be seen.
Decision: spot ids are ordered as strings ("S10" < "S9"); generated lots
zero-pad ids so that string order is numeric order.
Decision: when a spot has several minimum-time routes, the reported route
(and so its ``C``) is fixed deterministically, not minimised over: hub
Dijkstra pops by (time, node listing index) and keeps the first strictly
better parent (hubs are numbered in node listing order); access edges are
tried in listing order, from a chain's start hub before its end hub. ``C``
then breaks ties between spots.
Decision: a vehicle counts once per edge of its guided path even if the
path repeats an edge; guiding a vehicle that is already guided replaces its
previous path.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from fog.engine.lot_graph import LotGraph, NodeKind

__all__ = [
    "DEFAULT_MIN_SPEED_MPS",
    "SelectionResult",
    "SpotSelector",
    "edge_density",
    "edge_travel_time",
    "route_congestion",
]

DEFAULT_MIN_SPEED_MPS = 0.5
"""Crawl floor ``v_min`` of the travel-time model (ALGORITHMS.md §2)."""

_INF = math.inf


def edge_density(vehicles: float, capacity: float) -> float:
    """``λ = V/M`` clamped to 0..1 (sensors can over-count, a lane cannot hold more)."""
    if capacity <= 0:
        raise ValueError(f"capacity must be positive, got {capacity!r}")
    density = vehicles / capacity
    if density <= 0.0:
        return 0.0
    return 1.0 if density >= 1.0 else density


def edge_travel_time(
    length_m: float,
    free_speed_mps: float,
    density: float,
    min_speed_mps: float = DEFAULT_MIN_SPEED_MPS,
) -> float:
    """Greenshields time ``L / max(v_f·(1 − λ), v_min)``; the floor keeps jammed lanes finite."""
    if min_speed_mps <= 0:
        raise ValueError(f"min_speed_mps must be positive, got {min_speed_mps!r}")
    return length_m / max(free_speed_mps * (1.0 - density), min_speed_mps)


def route_congestion(densities: Sequence[float]) -> float:
    """``C = Σλ/T`` over a route's edges.

    Decision: an empty route (T = 0) has congestion 0.0 rather than raising.
    """
    if not densities:
        return 0.0
    return sum(densities) / len(densities)


@dataclass(frozen=True, slots=True)
class SelectionResult:
    """The answer to one request: where to go, how, and how long it takes."""

    spot_id: str
    path: tuple[str, ...]
    eta_s: float
    congestion: float
    exit_time_s: float


# Contracted-edge kinds.
_DIRECT = 0
_CHAIN_FWD = 1
_CHAIN_BWD = 2


class _Chain:
    """A maximal run of two-neighbour lane nodes between hubs ``a`` and ``b``."""

    __slots__ = ("a", "b", "be", "bw", "ce_bwd", "ce_fwd", "fe", "fwd", "group", "nodes", "to_a", "to_b")

    def __init__(self, a: int, b: int, nodes: list[int], fe: list[int], be: list[int]) -> None:
        self.a = a
        self.b = b
        self.nodes = nodes
        self.fe = fe  # fe[0]=a->c0, fe[i]=c(i-1)->c(i), fe[k]=c(k-1)->b; -1 if absent
        self.be = be  # be[0]=c0->a, be[i]=c(i)->c(i-1), be[k]=b->c(k-1); -1 if absent
        k = len(nodes)
        self.fwd = [_INF] * k  # time a -> c(i)
        self.bw = [_INF] * k  # time b -> c(i)
        self.to_b = [_INF] * k  # time c(i) -> b
        self.to_a = [_INF] * k  # time c(i) -> a
        self.ce_fwd = -1
        self.ce_bwd = -1
        self.group = -1

    def recompute(self, weight: list[float]) -> tuple[float, float]:
        """Refresh prefix sums; return the (a->b, b->a) traversal times."""
        fe, be, k = self.fe, self.be, len(self.nodes)
        acc = 0.0
        for i in range(k):
            acc = acc + weight[fe[i]] if fe[i] >= 0 else _INF
            self.fwd[i] = acc
        a_to_b = acc + weight[fe[k]] if fe[k] >= 0 else _INF
        acc = 0.0
        for i in range(k - 1, -1, -1):
            acc = acc + weight[be[i + 1]] if be[i + 1] >= 0 else _INF
            self.bw[i] = acc
        b_to_a = acc + weight[be[0]] if be[0] >= 0 else _INF
        acc = 0.0
        for i in range(k - 1, -1, -1):
            acc = acc + weight[fe[i + 1]] if fe[i + 1] >= 0 else _INF
            self.to_b[i] = acc
        acc = 0.0
        for i in range(k):
            acc = acc + weight[be[i]] if be[i] >= 0 else _INF
            self.to_a[i] = acc
        return a_to_b, b_to_a


class _Group:
    """Spots hanging on one chain (two entry sides) or on one hub (one side)."""

    __slots__ = (
        "accesses",
        "chain",
        "entry_a",
        "entry_b",
        "hub",
        "side_a",
        "side_b",
        "top_a",
        "top_b",
        "version",
    )

    def __init__(self, chain: int, hub: int) -> None:
        self.chain = chain  # chain id, or -1 for a hub group
        self.hub = hub  # hub index for a hub group, else -1
        # Hubs a vehicle enters the group from; the sentinel hub (always at
        # infinite distance) stands for "none" and for exits, never driven through.
        self.entry_a = -1
        self.entry_b = -1
        self.accesses: list[tuple[int, int, int]] = []  # (spot, position in chain or -1, spur edge)
        self.side_a: list[tuple[float, int, int]] = []  # (offset, spot, epoch)
        self.side_b: list[tuple[float, int, int]] = []
        self.top_a = _INF  # smallest eligible offset per side, cached at each publish
        self.top_b = _INF
        self.version = 0


class _Tree:
    """Hub-level shortest-path tree from one entrance, grown only as far as requests need.

    A Dijkstra paused between requests: ``dist`` holds the settled hubs
    (final), ``tent`` the tentative distances and ``frontier`` the pending
    queue. Settled hubs, their parents and the order they settle in are
    exactly those of a full Dijkstra, so a partial tree answers as a full one.
    """

    __slots__ = ("dirty", "dist", "frontier", "heap", "parent", "root", "tent")

    def __init__(self, root: int, size: int) -> None:
        self.root = root  # entrance hub index
        self.dist = [_INF] * (size + 1)  # settled hubs only; last slot: the sentinel hub
        self.tent = [_INF] * size
        self.parent = [-1] * size  # contracted edge that reached the node
        self.frontier: list[tuple[float, int]] = []  # (tentative time, hub)
        self.heap: list[tuple[float, int, int]] = []  # (eta, group, group version); settled entries only
        self.dirty = True


class SpotSelector:
    """Live routing state of one lot: loads, spot states and the selection query.

    See the module docstring for the data structures and their costs. Not
    thread-safe: even `select` reorganises heaps, so calls must be serialised
    (one selector per lot, owned by one task).
    """

    def __init__(
        self,
        graph: LotGraph,
        *,
        min_speed_mps: float = DEFAULT_MIN_SPEED_MPS,
        occupied: Iterable[str] = (),
        unhealthy: Iterable[str] = (),
        holds: Mapping[str, str] | None = None,
    ) -> None:
        """Start with every spot free, healthy and unheld except as given."""
        if not min_speed_mps > 0:
            raise ValueError(f"min_speed_mps must be positive, got {min_speed_mps!r}")
        self.graph = graph
        self.min_speed_mps = float(min_speed_mps)
        n = len(graph.nodes)
        m = len(graph.edges)
        kinds = [node.kind for node in graph.nodes]
        self._is_spot = [k is NodeKind.SPOT for k in kinds]
        self._is_exit = [k is NodeKind.EXIT for k in kinds]
        self._tail = graph.edge_tail
        self._head = graph.edge_head
        self._length = [e.length_m for e in graph.edges]
        self._speed = [e.free_speed_mps for e in graph.edges]
        self._capacity = [e.capacity_vehicles for e in graph.edges]
        self._observed = [0] * m
        self._guided = [0] * m
        self._density = [0.0] * m
        self._weight = [self._time_of(e) for e in range(m)]
        self._guided_paths: dict[str, tuple[int, ...]] = {}

        # Spot state.
        self._spot_nodes = [node.index for node in graph.nodes if node.kind is NodeKind.SPOT]
        self._spot_index = {graph.nodes[ni].id: s for s, ni in enumerate(self._spot_nodes)}
        spot_count = len(self._spot_nodes)
        self._occupied = [False] * spot_count
        self._healthy = [True] * spot_count
        self._holder: list[str | None] = [None] * spot_count
        self._held_by: dict[str, set[int]] = {}
        self._eligible = [True] * spot_count
        self._epoch = [0] * spot_count
        for spot_id in occupied:
            self._occupied[self._spot(spot_id)] = True
        for spot_id in unhealthy:
            self._healthy[self._spot(spot_id)] = False
        for spot_id, owner in (holds or {}).items():
            s = self._spot(spot_id)
            self._holder[s] = owner
            self._held_by.setdefault(owner, set()).add(s)
        for s in range(spot_count):
            self._eligible[s] = self._general_eligible(s)

        self._contract(n)
        hubs = len(self._hub_node)
        self._trees = {
            self._hub_node[h]: _Tree(h, hubs)
            for h in range(hubs)
            if kinds[self._hub_node[h]] is NodeKind.ENTRANCE
        }
        self._exit_bound = self._static_exit_bounds()
        for chain in self._chains:
            self._refresh_chain_weights(chain)
        for gid in range(len(self._groups)):
            self._rebuild_sides(gid)
            self._refresh_tops(self._groups[gid])

    # ================================================================ set-up
    def _time_of(self, e: int) -> float:
        """Current travel time of edge ``e``; also refreshes its density.

        `edge_density` and `edge_travel_time` inlined (this runs for every
        edge of every guided path); the arithmetic is the same, bit for bit.
        """
        cap = self._capacity[e]
        density = (self._observed[e] + self._guided[e]) / cap
        density = 0.0 if density <= 0.0 else (1.0 if density >= 1.0 else density)
        self._density[e] = density
        speed = self._speed[e] * (1.0 - density)
        return self._length[e] / (speed if speed > self.min_speed_mps else self.min_speed_mps)

    def _spot(self, spot_id: str) -> int:
        try:
            return self._spot_index[spot_id]
        except KeyError:
            raise KeyError(f"unknown spot {spot_id!r}") from None

    def _contract(self, n: int) -> None:
        """Find hubs and chains, the contracted graph, and the spot groups."""
        g = self.graph
        is_spot, tail, head = self._is_spot, self._tail, self._head
        neighbours: list[set[int]] = [set() for _ in range(n)]
        lane_edge: dict[tuple[int, int], int] = {}
        for e in range(len(g.edges)):
            u, v = tail[e], head[e]
            if not is_spot[u] and not is_spot[v]:
                neighbours[u].add(v)
                neighbours[v].add(u)
                lane_edge[(u, v)] = e
        candidate = [g.nodes[i].kind is NodeKind.JUNCTION and len(neighbours[i]) == 2 for i in range(n)]
        is_hub = [not is_spot[i] and not candidate[i] for i in range(n)]
        self._hub_node = [i for i in range(n) if is_hub[i]]
        hub_of = [-1] * n
        for h, node in enumerate(self._hub_node):
            hub_of[node] = h
        self._hub_of = hub_of
        sentinel = len(self._hub_node)
        self._hub_is_exit = [self._is_exit[node] for node in self._hub_node]
        self._exit_hubs = [h for h, node in enumerate(self._hub_node) if self._is_exit[node]]
        # chain_of[node] = (chain id, position) for chain nodes.
        self._chain_pos: list[tuple[int, int]] = [(-1, -1)] * n
        chains: list[_Chain] = []
        for h in range(n):
            if not is_hub[h]:
                continue
            for start in sorted(neighbours[h]):
                if not candidate[start] or self._chain_pos[start][0] >= 0:
                    continue
                nodes = [start]
                prev, cur = h, start
                while True:
                    (nxt,) = neighbours[cur] - {prev}
                    if not candidate[nxt]:
                        break
                    nodes.append(nxt)
                    prev, cur = cur, nxt
                b = nxt
                seq = [h, *nodes, b]
                fe = [lane_edge.get((seq[i], seq[i + 1]), -1) for i in range(len(seq) - 1)]
                be = [lane_edge.get((seq[i + 1], seq[i]), -1) for i in range(len(seq) - 1)]
                cid = len(chains)
                chains.append(_Chain(hub_of[h], hub_of[b], nodes, fe, be))
                for pos, node in enumerate(nodes):
                    self._chain_pos[node] = (cid, pos)
        self._chains = chains

        # Contracted edges.
        ce_tail: list[int] = []
        ce_head: list[int] = []
        ce_kind: list[int] = []
        ce_ref: list[int] = []
        self._edge_ce = [-1] * len(g.edges)  # direct lane edge -> contracted edge
        self._edge_chain = [-1] * len(g.edges)  # chain lane edge -> chain id
        for e in range(len(g.edges)):
            u, v = tail[e], head[e]
            if is_hub[u] and is_hub[v]:
                self._edge_ce[e] = len(ce_tail)
                ce_tail.append(hub_of[u])
                ce_head.append(hub_of[v])
                ce_kind.append(_DIRECT)
                ce_ref.append(e)
        for cid, chain in enumerate(chains):
            for e in chain.fe + chain.be:
                if e >= 0:
                    self._edge_chain[e] = cid
            if chain.a == chain.b:
                continue  # a loop back to its own hub never shortens a route
            if all(e >= 0 for e in chain.fe):
                chain.ce_fwd = len(ce_tail)
                ce_tail.append(chain.a)
                ce_head.append(chain.b)
                ce_kind.append(_CHAIN_FWD)
                ce_ref.append(cid)
            if all(e >= 0 for e in chain.be):
                chain.ce_bwd = len(ce_tail)
                ce_tail.append(chain.b)
                ce_head.append(chain.a)
                ce_kind.append(_CHAIN_BWD)
                ce_ref.append(cid)
        self._ce_tail = ce_tail
        self._ce_head = ce_head
        self._ce_kind = ce_kind
        self._ce_ref = ce_ref
        self._ce_weight = [
            self._weight[ce_ref[c]] if ce_kind[c] == _DIRECT else _INF for c in range(len(ce_tail))
        ]
        hub_out: list[list[int]] = [[] for _ in self._hub_node]
        hub_in: list[list[int]] = [[] for _ in self._hub_node]
        for c in range(len(ce_tail)):
            hub_out[ce_tail[c]].append(c)
            hub_in[ce_head[c]].append(c)
        # Dijkstra adjacency as (contracted edge, other hub); the reverse one
        # leaves out exits, whose distance to an exit is 0 by definition.
        self._hub_out_pairs = [[(c, ce_head[c]) for c in out] for out in hub_out]
        self._hub_in_pairs = [
            [(c, ce_tail[c]) for c in into if not self._hub_is_exit[ce_tail[c]]] for into in hub_in
        ]  # used once, for the static exit bounds

        # Spot groups: one per chain carrying spots, one per hub carrying spots.
        groups: list[_Group] = []
        hub_group: dict[int, int] = {}
        self._spot_access: list[list[tuple[int, int, int]]] = [[] for _ in self._spot_nodes]
        self._edge_group = [-1] * len(g.edges)  # spur edge into a spot -> group
        for s, spot_node in enumerate(self._spot_nodes):
            for e in g.in_edge_ids[spot_node]:
                u = tail[e]
                if is_hub[u]:
                    gid = hub_group.get(u, -1)
                    if gid < 0:
                        gid = hub_group[u] = len(groups)
                        group = _Group(-1, hub_of[u])
                        group.entry_a = sentinel if self._is_exit[u] else hub_of[u]
                        group.entry_b = sentinel
                        groups.append(group)
                    pos = -1
                else:
                    cid, pos = self._chain_pos[u]
                    if cid < 0:
                        continue  # node on an isolated loop: unreachable
                    chain = chains[cid]
                    if chain.group < 0:
                        chain.group = len(groups)
                        group = _Group(cid, -1)
                        group.entry_a = sentinel if self._hub_is_exit[chain.a] else chain.a
                        group.entry_b = sentinel if self._hub_is_exit[chain.b] else chain.b
                        groups.append(group)
                    gid = chain.group
                groups[gid].accesses.append((s, pos, e))
                self._spot_access[s].append((gid, pos, e))
                self._edge_group[e] = gid
        self._groups = groups
        # Groups entered from each hub: pushed into a tree's heap when the hub settles.
        self._hub_groups: list[list[int]] = [[] for _ in range(sentinel + 1)]
        for gid, group in enumerate(groups):
            for entry in dict.fromkeys((group.entry_a, group.entry_b)):
                if entry != sentinel:
                    self._hub_groups[entry].append(gid)

    # ============================================================ loads
    def set_observed_vehicles(self, from_id: str, to_id: str, vehicles: int) -> None:
        """Set the sensor-observed vehicle count of one edge (guided ones add on top)."""
        e = self._edge_id(from_id, to_id)
        if isinstance(vehicles, bool) or not isinstance(vehicles, int) or vehicles < 0:
            raise ValueError(f"vehicles on {from_id!r} -> {to_id!r} must be an int >= 0, got {vehicles!r}")
        self._observed[e] = vehicles
        self._apply_weight_changes((e,))

    def guide(self, vehicle_id: str, path: Sequence[str]) -> None:
        """Count ``vehicle_id`` on every edge of ``path`` until `release`."""
        edges = tuple(dict.fromkeys(self._path_edges(path)))
        if vehicle_id in self._guided_paths:
            self.release(vehicle_id)
        self._guided_paths[vehicle_id] = edges
        for e in edges:
            self._guided[e] += 1
        self._apply_weight_changes(edges)

    def release(self, vehicle_id: str) -> bool:
        """Stop counting a guided vehicle (spot occupied or timed out); False if unknown."""
        edges = self._guided_paths.pop(vehicle_id, None)
        if edges is None:
            return False
        for e in edges:
            self._guided[e] -= 1
        self._apply_weight_changes(edges)
        return True

    def guided_vehicles(self) -> tuple[str, ...]:
        """Ids of the vehicles currently counted on their paths."""
        return tuple(self._guided_paths)

    def edge_vehicles(self, from_id: str, to_id: str) -> int:
        """``V`` of an edge: observed plus guided."""
        e = self._edge_id(from_id, to_id)
        return self._observed[e] + self._guided[e]

    def edge_time(self, from_id: str, to_id: str) -> float:
        """Current travel time ``t_e`` of an edge in seconds."""
        return self._weight[self._edge_id(from_id, to_id)]

    def _edge_id(self, from_id: str, to_id: str) -> int:
        edge = self.graph.edge_between(from_id, to_id)
        if edge is None:
            raise KeyError(f"no edge {from_id!r} -> {to_id!r}")
        return edge.index

    def _path_edges(self, path: Sequence[str]) -> list[int]:
        if isinstance(path, str) or len(path) < 2:
            raise ValueError(f"a path needs at least two node ids, got {path!r}")
        edges = []
        for u, v in zip(path, path[1:], strict=False):
            edge = self.graph.edge_between(u, v)
            if edge is None:
                raise ValueError(f"path step {u!r} -> {v!r} is not an edge of the lot")
            edges.append(edge.index)
        return edges

    def _apply_weight_changes(self, edges: Iterable[int]) -> None:
        """Recompute edge times and push the consequences to trees and heaps."""
        weight = self._weight
        touched_chains: set[int] = set()
        touched_groups: set[int] = set()
        for e in edges:
            new = self._time_of(e)
            old = weight[e]
            if new == old:
                continue
            weight[e] = new
            ce = self._edge_ce[e]
            if ce >= 0:
                self._ce_weight[ce] = new
                self._mark_affected(ce, old, new)
            elif self._edge_chain[e] >= 0:
                touched_chains.add(self._edge_chain[e])
            elif self._edge_group[e] >= 0:
                touched_groups.add(self._edge_group[e])
        for cid in sorted(touched_chains):
            chain = self._chains[cid]
            self._refresh_chain_weights(chain)
            if chain.group >= 0:
                touched_groups.add(chain.group)
        for gid in sorted(touched_groups):
            self._rebuild_sides(gid)
            self._publish_group(gid)

    def _refresh_chain_weights(self, chain: _Chain) -> None:
        a_to_b, b_to_a = chain.recompute(self._weight)
        for ce, new in ((chain.ce_fwd, a_to_b), (chain.ce_bwd, b_to_a)):
            if ce < 0:
                continue
            old = self._ce_weight[ce]
            if new != old:
                self._ce_weight[ce] = new
                self._mark_affected(ce, old, new)

    def _mark_affected(self, ce: int, old: float, new: float) -> None:
        """Mark dirty every clean tree that a contracted-edge change can alter.

        Only edges out of settled hubs have been relaxed; an edge out of an
        unsettled hub is read with its new time when its tail settles, so it
        leaves the tree (and its paused frontier) valid.
        """
        u, v = self._ce_tail[ce], self._ce_head[ce]
        if not self._hub_is_exit[u]:
            for tree in self._trees.values():
                if tree.dirty or tree.dist[u] == _INF:
                    continue
                if new > old:
                    if tree.parent[v] == ce:
                        tree.dirty = True
                elif tree.dist[u] + new <= tree.tent[v]:
                    tree.dirty = True

    # ============================================================ spot state
    def set_occupied(self, spot_id: str, occupied: bool = True) -> None:
        """Record a spot's occupancy as its sensor reports it."""
        s = self._spot(spot_id)
        self._occupied[s] = bool(occupied)
        self._state_changed(s)

    def set_healthy(self, spot_id: str, healthy: bool = True) -> None:
        """Record whether a spot's sensor can be trusted."""
        s = self._spot(spot_id)
        self._healthy[s] = bool(healthy)
        self._state_changed(s)

    def hold(self, spot_id: str, owner: str) -> None:
        """Hold a spot for ``owner`` (reservation or subscriber); replaces any holder."""
        s = self._spot(spot_id)
        previous = self._holder[s]
        if previous is not None:
            self._held_by[previous].discard(s)
        self._holder[s] = owner
        self._held_by.setdefault(owner, set()).add(s)
        self._state_changed(s)

    def clear_hold(self, spot_id: str) -> None:
        """Remove any hold on a spot."""
        s = self._spot(spot_id)
        previous = self._holder[s]
        if previous is not None:
            holders = self._held_by[previous]
            holders.discard(s)
            if not holders:
                del self._held_by[previous]
        self._holder[s] = None
        self._state_changed(s)

    def is_eligible(self, spot_id: str, hold_owner: str | None = None) -> bool:
        """Free, healthy and not held, or held by ``hold_owner``."""
        s = self._spot(spot_id)
        return self._eligible_for(s, hold_owner)

    def _general_eligible(self, s: int) -> bool:
        return not self._occupied[s] and self._healthy[s] and self._holder[s] is None

    def _eligible_for(self, s: int, owner: str | None) -> bool:
        if self._occupied[s] or not self._healthy[s]:
            return False
        holder = self._holder[s]
        return holder is None or (owner is not None and holder == owner)

    def _state_changed(self, s: int) -> None:
        now = self._general_eligible(s)
        if now == self._eligible[s]:
            return
        self._eligible[s] = now
        if now:
            self._epoch[s] += 1
            epoch = self._epoch[s]
            for gid, pos, spur in self._spot_access[s]:
                group = self._groups[gid]
                off_a, off_b = self._offsets(group, pos, spur)
                if off_a < _INF:
                    heapq.heappush(group.side_a, (off_a, s, epoch))
                if off_b < _INF:
                    heapq.heappush(group.side_b, (off_b, s, epoch))
        for gid in {gid for gid, _, _ in self._spot_access[s]}:
            group = self._groups[gid]
            if len(group.side_a) + len(group.side_b) > 4 * len(group.accesses) + 16:
                self._rebuild_sides(gid)
            self._publish_group(gid)

    # ============================================================ heaps
    def _offsets(self, group: _Group, pos: int, spur: int) -> tuple[float, float]:
        """Time from each entry hub of the group to the spot behind ``spur``."""
        w = self._weight[spur]
        if group.chain < 0:
            return w, _INF
        chain = self._chains[group.chain]
        return chain.fwd[pos] + w, chain.bw[pos] + w

    def _rebuild_sides(self, gid: int) -> None:
        group = self._groups[gid]
        side_a: list[tuple[float, int, int]] = []
        side_b: list[tuple[float, int, int]] = []
        eligible, epoch = self._eligible, self._epoch
        for s, pos, spur in group.accesses:
            if not eligible[s]:
                continue
            off_a, off_b = self._offsets(group, pos, spur)
            if off_a < _INF:
                side_a.append((off_a, s, epoch[s]))
            if off_b < _INF:
                side_b.append((off_b, s, epoch[s]))
        heapq.heapify(side_a)
        heapq.heapify(side_b)
        group.side_a = side_a
        group.side_b = side_b

    def _side_top(self, side: list[tuple[float, int, int]]) -> float:
        eligible, epoch = self._eligible, self._epoch
        while side:
            off, s, ep = side[0]
            if eligible[s] and ep == epoch[s]:
                return off
            heapq.heappop(side)
        return _INF

    def _entries(self, group: _Group, dist: list[float]) -> tuple[float, float]:
        """Distance to the group's entry hubs; exits are never driven through."""
        return dist[group.entry_a], dist[group.entry_b]

    def _refresh_tops(self, group: _Group) -> None:
        group.top_a = self._side_top(group.side_a)
        group.top_b = self._side_top(group.side_b)

    @staticmethod
    def _group_key(group: _Group, dist: list[float]) -> float:
        """Best ETA of the group's eligible spots (uses the cached side tops)."""
        key_a = dist[group.entry_a] + group.top_a
        key_b = dist[group.entry_b] + group.top_b
        return key_a if key_a <= key_b else key_b

    def _publish_group(self, gid: int) -> None:
        """Invalidate the group's old heap entries and push its current key."""
        group = self._groups[gid]
        self._refresh_tops(group)
        group.version += 1
        limit = 4 * len(self._groups) + 64
        for tree in self._trees.values():
            if tree.dirty:
                continue
            key = self._group_key(group, tree.dist)
            if key < _INF:
                heapq.heappush(tree.heap, (key, gid, group.version))
            if len(tree.heap) > limit:
                self._rebuild_heap(tree)

    def _rebuild_heap(self, tree: _Tree) -> None:
        dist = tree.dist
        heap = []
        for gid, group in enumerate(self._groups):
            key_a = dist[group.entry_a] + group.top_a
            key_b = dist[group.entry_b] + group.top_b
            key = key_a if key_a <= key_b else key_b
            if key < _INF:
                heap.append((key, gid, group.version))
        heapq.heapify(heap)
        tree.heap = heap

    # ============================================================ trees
    def _restart_tree(self, tree: _Tree) -> None:
        """Forget a tree whose settled part a load change invalidated; it regrows on demand."""
        size = len(tree.tent)
        tree.dist = [_INF] * (size + 1)
        tree.tent = [_INF] * size
        tree.parent = [-1] * size
        tree.tent[tree.root] = 0.0
        tree.frontier = [(0.0, tree.root)]
        tree.heap = []
        tree.dirty = False

    def _settle(self, tree: _Tree, limit: float, targets: frozenset[int] | None = None) -> None:
        """Resume the tree's Dijkstra while its next hub is no farther than ``limit``.

        Each settled hub pushes the keys of the groups entered from it. With
        no ``targets`` (a selection), ``limit`` drops to every key pushed, so
        the search stops once no unsettled hub can lead to a better spot.
        With ``targets`` (one spot's entry hubs), ``limit`` is fixed and the
        search also stops as soon as one target settles.
        Pop order is (time, hub index), as in a full Dijkstra.
        """
        dist, tent, parent, frontier, heap = tree.dist, tree.tent, tree.parent, tree.frontier, tree.heap
        hub_out, ce_weight, is_exit = self._hub_out_pairs, self._ce_weight, self._hub_is_exit
        hub_groups, groups = self._hub_groups, self._groups
        pop, push = heapq.heappop, heapq.heappush
        while frontier and frontier[0][0] <= limit:
            d, u = pop(frontier)
            if d > tent[u]:
                continue  # superseded entry
            dist[u] = d
            if is_exit[u]:
                continue  # exits end routes, never lead through
            for ce, v in hub_out[u]:
                nd = d + ce_weight[ce]
                if nd < tent[v]:
                    tent[v] = nd
                    parent[v] = ce
                    push(frontier, (nd, v))
            for gid in hub_groups[u]:
                group = groups[gid]
                key_a = dist[group.entry_a] + group.top_a
                key_b = dist[group.entry_b] + group.top_b
                key = key_a if key_a <= key_b else key_b
                if key < _INF:
                    push(heap, (key, gid, group.version))
                    if targets is None and key < limit:
                        limit = key
            if targets is not None and u in targets:
                return

    def _grow_to_best(self, tree: _Tree) -> float:
        """Settle until no unsettled hub can beat the heap's best group; return that ETA.

        Every hub no farther than that ETA is settled and group offsets are
        never negative, so a group entered from an unsettled hub cannot reach
        or tie it.
        """
        heap, groups, frontier = tree.heap, self._groups, tree.frontier
        while True:
            while heap and heap[0][2] != groups[heap[0][1]].version:
                heapq.heappop(heap)
            best = heap[0][0] if heap else _INF
            if not frontier or frontier[0][0] > best:
                return best
            self._settle(tree, best)

    def _grow_to_spot(self, tree: _Tree, s: int) -> tuple[float, int]:
        """Settle until spot ``s``'s ETA is final; return `_spot_eta`."""
        targets = frozenset(
            entry
            for gid, _, _ in self._spot_access[s]
            for entry in (self._groups[gid].entry_a, self._groups[gid].entry_b)
        )
        frontier = tree.frontier
        while True:
            found = self._spot_eta(tree, s)
            if not frontier or frontier[0][0] > found[0]:
                return found
            self._settle(tree, found[0], targets)

    def _static_exit_bounds(self) -> list[float]:
        """Per hub, the time to the nearest exit at the fastest any edge can be driven.

        Loads only slow an edge down to ``L / max(v_f·(1 − λ), v_min)``, never
        below ``L / max(v_f, v_min)``, so these are lower bounds for every load:
        a consistent A* heuristic for `_exit_time`.
        """
        fastest = [
            length / max(speed, self.min_speed_mps)
            for length, speed in zip(self._length, self._speed, strict=True)
        ]
        ce_fastest = []
        for ce in range(len(self._ce_tail)):
            kind, ref = self._ce_kind[ce], self._ce_ref[ce]
            if kind == _DIRECT:
                ce_fastest.append(fastest[ref])
            else:
                chain = self._chains[ref]
                ce_fastest.append(sum(fastest[e] for e in (chain.fe if kind == _CHAIN_FWD else chain.be)))
        bound = [_INF] * (len(self._hub_node) + 1)
        heap = []
        for hub in self._exit_hubs:
            bound[hub] = 0.0
            heap.append((0.0, hub))
        while heap:
            d, v = heapq.heappop(heap)
            if d > bound[v]:
                continue
            for ce, u in self._hub_in_pairs[v]:
                nd = d + ce_fastest[ce]
                if nd < bound[u]:
                    bound[u] = nd
                    heapq.heappush(heap, (nd, u))
        return bound

    def _clean_tree(self, entrance_id: str) -> _Tree:
        try:
            node = self.graph.node(entrance_id)
        except KeyError:
            raise KeyError(f"unknown entrance {entrance_id!r}") from None
        tree = self._trees.get(node.index)
        if tree is None:
            raise ValueError(f"node {entrance_id!r} is a {node.kind.value}, not an entrance")
        if tree.dirty:
            self._restart_tree(tree)
        return tree

    # ============================================================ queries
    def select(self, entrance_id: str, hold_owner: str | None = None) -> SelectionResult | None:
        """Best eligible spot from ``entrance_id``; None when no spot is eligible.

        ``hold_owner`` makes spots held for that owner eligible too (the
        vehicle's own reservation or subscription).
        """
        tree = self._clean_tree(entrance_id)
        self._grow_to_best(tree)
        best = _INF
        candidates: list[int] = []

        heap = tree.heap
        groups = self._groups
        ties: list[tuple[float, int, int]] = []
        while heap:
            key, gid, version = heap[0]
            if version != groups[gid].version:
                heapq.heappop(heap)
                continue
            if ties and key != ties[0][0]:
                break
            ties.append(heapq.heappop(heap))
        for entry in ties:
            heapq.heappush(heap, entry)
        if ties:
            best = ties[0][0]
            for gid in dict.fromkeys(gid for _, gid, _ in ties):  # a group may sit once per side
                self._collect_ties(groups[gid], tree.dist, best, candidates)

        # The owner's held spots: an ETA read from settled hubs only is exact
        # whenever it is <= best, which is all that is compared below.
        if hold_owner is not None:
            for s in sorted(self._held_by.get(hold_owner, ())):
                if not self._eligible_for(s, hold_owner):
                    continue
                eta = self._spot_eta(tree, s)[0]
                if eta < best:
                    best = eta
                    candidates = [s]
                elif eta == best and eta < _INF:
                    candidates.append(s)

        if not candidates:
            return None
        chosen: tuple[float, str, list[int], int] | None = None
        for s in dict.fromkeys(candidates):
            edges = self._route_edges(tree, s)
            congestion = route_congestion([self._density[e] for e in edges])
            spot_id = self.graph.nodes[self._spot_nodes[s]].id
            if chosen is None or (congestion, spot_id) < (chosen[0], chosen[1]):
                chosen = (congestion, spot_id, edges, s)
        assert chosen is not None
        congestion, spot_id, edges, s = chosen
        return SelectionResult(
            spot_id=spot_id,
            path=self._edges_to_path(self._hub_node[tree.root], edges),
            eta_s=best,
            congestion=congestion,
            exit_time_s=self._exit_time(s),
        )

    def route(self, entrance_id: str, spot_id: str) -> SelectionResult | None:
        """Fastest route to one given spot regardless of its state; None if unreachable."""
        tree = self._clean_tree(entrance_id)
        s = self._spot(spot_id)
        eta = self._grow_to_spot(tree, s)[0]
        if eta == _INF:
            return None
        edges = self._route_edges(tree, s)
        return SelectionResult(
            spot_id=spot_id,
            path=self._edges_to_path(self._hub_node[tree.root], edges),
            eta_s=eta,
            congestion=route_congestion([self._density[e] for e in edges]),
            exit_time_s=self._exit_time(s),
        )

    def _collect_ties(self, group: _Group, dist: list[float], best: float, out: list[int]) -> None:
        """Append the group's eligible spots whose ETA equals ``best``."""
        entry_a, entry_b = self._entries(group, dist)
        for entry, side in ((entry_a, group.side_a), (entry_b, group.side_b)):
            if entry == _INF:
                continue
            taken = []
            while side and self._side_top(side) < _INF:
                item = side[0]
                if entry + item[0] != best:
                    break
                taken.append(heapq.heappop(side))
                out.append(item[1])
            for item in taken:
                heapq.heappush(side, item)

    def _spot_eta(self, tree: _Tree, s: int) -> tuple[float, int]:
        """(ETA, index into the spot's accesses × 2 + side) of the fastest access."""
        best = _INF
        choice = -1
        for i, (gid, pos, spur) in enumerate(self._spot_access[s]):
            group = self._groups[gid]
            entry_a, entry_b = self._entries(group, tree.dist)
            off_a, off_b = self._offsets(group, pos, spur)
            eta = entry_a + off_a
            if eta < best:
                best, choice = eta, 2 * i
            eta = entry_b + off_b
            if eta < best:
                best, choice = eta, 2 * i + 1
        return best, choice

    def _hub_edges(self, tree: _Tree, hub: int) -> list[int]:
        """Lot edges of the tree route from the root to ``hub``."""
        contracted = []
        while hub != tree.root:
            ce = tree.parent[hub]
            contracted.append(ce)
            hub = self._ce_tail[ce]
        edges: list[int] = []
        for ce in reversed(contracted):
            kind = self._ce_kind[ce]
            if kind == _DIRECT:
                edges.append(self._ce_ref[ce])
            elif kind == _CHAIN_FWD:
                edges.extend(self._chains[self._ce_ref[ce]].fe)
            else:
                edges.extend(reversed(self._chains[self._ce_ref[ce]].be))
        return edges

    def _route_edges(self, tree: _Tree, s: int) -> list[int]:
        _, choice = self._spot_eta(tree, s)
        gid, pos, spur = self._spot_access[s][choice // 2]
        group = self._groups[gid]
        if group.chain < 0:
            return [*self._hub_edges(tree, group.hub), spur]
        chain = self._chains[group.chain]
        if choice % 2 == 0:
            return [*self._hub_edges(tree, chain.a), *chain.fe[: pos + 1], spur]
        return [*self._hub_edges(tree, chain.b), *reversed(chain.be[pos + 1 :]), spur]

    def _edges_to_path(self, root: int, edges: list[int]) -> tuple[str, ...]:
        nodes = self.graph.nodes
        return (nodes[root].id, *(nodes[self._head[e]].id for e in edges))

    def _exit_time(self, s: int) -> float:
        """Time from spot ``s`` to the nearest exit under current loads.

        A* over hubs from the spot's way out, guided by `_static_exit_bounds`;
        the first exit settled is the nearest (the bound is consistent).
        """
        bound, ce_weight, is_exit, hub_out = (
            self._exit_bound,
            self._ce_weight,
            self._hub_is_exit,
            self._hub_out_pairs,
        )
        best = [_INF] * len(hub_out)
        heap: list[tuple[float, float, int]] = []  # (time + bound, time, hub)

        def reach(hub: int, time: float) -> None:
            if time < best[hub]:
                best[hub] = time
                heapq.heappush(heap, (time + bound[hub], time, hub))

        for e in self.graph.out_edge_ids[self._spot_nodes[s]]:
            u, w = self._head[e], self._weight[e]
            hub = self._hub_of[u]
            if hub >= 0:
                reach(hub, w)
                continue
            cid, pos = self._chain_pos[u]
            if cid < 0:
                continue
            chain = self._chains[cid]
            if chain.to_b[pos] < _INF:
                reach(chain.b, w + chain.to_b[pos])
            if chain.to_a[pos] < _INF:
                reach(chain.a, w + chain.to_a[pos])
        while heap:
            _, time, hub = heapq.heappop(heap)
            if time > best[hub]:
                continue
            if is_exit[hub]:
                return time
            for ce, v in hub_out[hub]:
                reach(v, time + ce_weight[ce])
        return _INF
