"""Selection latency: `SpotSelector` against a per-request networkx Dijkstra.

Usage: ``python bench/bench_selection.py [--spots 2500] [--requests 2000] [--seed 0]``

Scenario (one process, one core): a generated lot starts with a random
occupancy (each spot occupied with a probability drawn uniformly in
0..0.9). Each request comes from a random entrance; the answer's vehicle is
guided along its path and its spot held for it (so the spot is not given
twice); 3 to 12 requests later it arrives (release, hold cleared, spot
occupied). Between requests a random occupied spot departs with
probability 0.5 (the published 10 arrivals : 5 departures per minute), or
for sure while occupancy is above ``--hold-occupancy`` (default 0.85), so
the lot stays in its hard, nearly-full regime instead of filling up; a
random spot's sensor flips health with probability 0.02. Every request is timed on the selector; every ``--baseline-every``-th
request is also answered by the baseline on the same state, and both ETAs
are checked to agree within 1e-9 s.

Baseline: ``networkx.single_source_dijkstra`` from the entrance over the
lot (out-edges of spots and exits removed, weights kept current outside
the timed region), then the minimum eligible spot with the same tie-break.
It does not compute the exit time, which the selector's figure includes,
so the reported ratio is conservative.
"""

from __future__ import annotations

import argparse
import bisect
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import networkx as nx  # noqa: E402

from fog.engine.lot_generator import generate_lot  # noqa: E402
from fog.engine.lot_graph import LotGraph, NodeKind  # noqa: E402
from fog.engine.selection import SpotSelector  # noqa: E402

_TIME_BUDGET_S = 50.0


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _baseline(
    forward: nx.DiGraph,
    entrance: str,
    eligible: set[str],
    density: dict[tuple[str, str], float],
) -> tuple[str, float] | None:
    """What a straightforward implementation does on every request."""
    dist, paths = nx.single_source_dijkstra(forward, entrance, weight="weight")
    best = min((dist[s] for s in eligible if s in dist), default=None)
    if best is None:
        return None
    ties = [s for s in eligible if s in dist and dist[s] == best]

    def key(spot: str) -> tuple[float, str]:
        path = paths[spot]
        return sum(density[p] for p in zip(path, path[1:], strict=False)) / (len(path) - 1), spot

    return min(ties, key=key), best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spots", type=int, default=2500)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--baseline-every", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hold-occupancy", type=float, default=0.85)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    started = time.perf_counter()

    lot = generate_lot(args.spots, seed=args.seed)
    graph = LotGraph.from_dicts(lot["nodes"], lot["edges"])
    spots, entrances = graph.spots, graph.entrances
    fill = rng.uniform(0.0, 0.9)
    occupied = {s for s in spots if rng.random() < fill}
    unhealthy: set[str] = set()
    held: set[str] = set()
    occupied_order = sorted(occupied)  # kept sorted: the departure draw is rng.choice over sorted ids
    selector = SpotSelector(graph, occupied=occupied)
    built = time.perf_counter()

    kind = {node.id: node.kind for node in graph.nodes}
    forward = nx.DiGraph()
    for edge in graph.edges:
        if kind[edge.from_id] not in (NodeKind.SPOT, NodeKind.EXIT):
            forward.add_edge(edge.from_id, edge.to_id, weight=selector.edge_time(edge.from_id, edge.to_id))
    density = {(e.from_id, e.to_id): 0.0 for e in graph.edges}

    def sync(path: tuple[str, ...]) -> None:
        for u, v in zip(path, path[1:], strict=False):
            if forward.has_edge(u, v):
                forward[u][v]["weight"] = selector.edge_time(u, v)
            edge = graph.edge_between(u, v)
            assert edge is not None
            density[(u, v)] = min(1.0, selector.edge_vehicles(u, v) / edge.capacity_vehicles)

    select_us: list[float] = []
    baseline_us: list[float] = []
    update_us: list[float] = []
    arrivals: dict[int, list[tuple[str, str, tuple[str, ...]]]] = {}
    answered = 0
    for request in range(args.requests):
        if time.perf_counter() - started > _TIME_BUDGET_S:
            print(f"stopped after {request} requests (time budget)")
            break
        for vehicle, spot, path in arrivals.pop(request, []):
            t0 = time.perf_counter()
            selector.release(vehicle)
            selector.clear_hold(spot)
            selector.set_occupied(spot, True)
            update_us.append((time.perf_counter() - t0) * 1e6)
            held.discard(spot)
            if spot not in occupied:
                occupied.add(spot)
                bisect.insort(occupied_order, spot)
            sync(path)
        if occupied and (len(occupied) > args.hold_occupancy * len(spots) or rng.random() < 0.5):
            spot = rng.choice(occupied_order)
            t0 = time.perf_counter()
            selector.set_occupied(spot, False)
            update_us.append((time.perf_counter() - t0) * 1e6)
            occupied.discard(spot)
            del occupied_order[bisect.bisect_left(occupied_order, spot)]
        if rng.random() < 0.02:
            spot = rng.choice(spots)
            healthy = spot in unhealthy
            selector.set_healthy(spot, healthy)
            (unhealthy.discard if healthy else unhealthy.add)(spot)

        entrance = rng.choice(entrances)
        t0 = time.perf_counter()
        result = selector.select(entrance)
        select_us.append((time.perf_counter() - t0) * 1e6)

        if request % args.baseline_every == 0:
            eligible = set(spots) - occupied - unhealthy - held
            t0 = time.perf_counter()
            expected = _baseline(forward, entrance, eligible, density)
            baseline_us.append((time.perf_counter() - t0) * 1e6)
            if (expected is None) != (result is None) or (
                result is not None and expected is not None and abs(expected[1] - result.eta_s) > 1e-9
            ):
                print(f"MISMATCH at request {request}: selector {result}, baseline {expected}")
                return 1

        if result is None:
            continue
        answered += 1
        vehicle = f"v{request}"
        t0 = time.perf_counter()
        selector.guide(vehicle, result.path)
        selector.hold(result.spot_id, vehicle)
        update_us.append((time.perf_counter() - t0) * 1e6)
        held.add(result.spot_id)
        sync(result.path)
        arrivals.setdefault(request + rng.randint(3, 12), []).append((vehicle, result.spot_id, result.path))

    p50, p99 = _percentile(select_us, 0.5), _percentile(select_us, 0.99)
    b50, b99 = _percentile(baseline_us, 0.5), _percentile(baseline_us, 0.99)
    print(
        f"lot: {len(graph.spots)} spots, {len(graph.nodes)} nodes, {len(graph.edges)} edges, "
        f"{len(graph.entrances)} entrances; initial fill {fill:.0%}; build {(built - started) * 1e3:.0f} ms"
    )
    print(
        f"requests: {len(select_us)} ({answered} answered), final occupancy {len(occupied) / len(spots):.0%}"
    )
    print(
        f"selector select   p50 {p50:9.1f} us  p99 {p99:9.1f} us  mean {statistics.fmean(select_us):9.1f} us"
    )
    print(f"networkx dijkstra p50 {b50:9.1f} us  p99 {b99:9.1f} us  (n={len(baseline_us)})")
    print(
        f"selector updates  p50 {_percentile(update_us, 0.5):9.1f} us  p99 {_percentile(update_us, 0.99):9.1f} us"
    )
    print(f"speed-up: p50 {b50 / p50:.0f}x  p99 {b99 / p99:.0f}x  (target >= 50x)")
    print(f"total {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
