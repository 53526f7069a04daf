"""Synthetic lots: shape, parameters, determinism and scale."""

from __future__ import annotations

from collections import Counter

import pytest

from fog.engine.lot_generator import generate_lot
from fog.engine.lot_graph import LotGraph, NodeKind


@pytest.mark.parametrize(
    ("spots", "gates"), [(1, 1), (41, 1), (150, 1), (1499, 1), (1500, 2), (2500, 3), (3600, 4)]
)
def test_spot_and_gate_counts(spots: int, gates: int) -> None:
    lot = generate_lot(spots)
    graph = LotGraph.from_dicts(lot["nodes"], lot["edges"])  # validates routability too
    kinds = Counter(node.kind for node in graph.nodes)
    assert kinds[NodeKind.SPOT] == spots
    assert kinds[NodeKind.ENTRANCE] == gates
    assert kinds[NodeKind.EXIT] == gates


def test_physical_parameters() -> None:
    lot = generate_lot(200, seed=4)
    graph = LotGraph.from_dicts(lot["nodes"], lot["edges"])
    kind = {node.id: node.kind for node in graph.nodes}
    aisle = [e for e in graph.edges if e.from_id.startswith("A") and kind[e.to_id] is not NodeKind.SPOT]
    assert aisle and all(e.length_m == 2.5 and e.free_speed_mps == 2.8 for e in aisle)
    for edge in graph.edges:
        assert edge.capacity_vehicles == max(1, round(edge.length_m / 6.0))
    lanes = [e for e in graph.edges if e.from_id.startswith("J") and e.to_id.startswith("J")]
    assert lanes and all(14.4 <= e.length_m <= 17.6 for e in lanes)  # 16 m ± 10 %
    # Every aisle node carries two spots (one per side) except possibly the very last.
    per_node = Counter(e.from_id for e in graph.edges if kind[e.to_id] is NodeKind.SPOT)
    assert sorted(set(per_node.values())) in ([2], [1, 2])
    # Aisles are two-way.
    for edge in aisle:
        assert graph.edge_between(edge.to_id, edge.from_id) is not None


def test_same_seed_same_lot_other_seed_other_lot() -> None:
    assert generate_lot(500, seed=1) == generate_lot(500, seed=1)
    assert generate_lot(500, seed=1) != generate_lot(500, seed=2)


def test_spot_ids_sort_numerically() -> None:
    lot = generate_lot(1200)
    spots = [n["id"] for n in lot["nodes"] if n["kind"] == "spot"]
    assert spots == sorted(spots)
    assert spots[0] == "S0000" and spots[-1] == "S1199"


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_refuses_a_non_positive_or_non_integer_size(bad: object) -> None:
    with pytest.raises(ValueError):
        generate_lot(bad)  # type: ignore[arg-type]


def test_generates_a_city_sized_lot() -> None:
    # How long it takes is for bench/bench_cycle.py to print, not for a unit test to time.
    lot = generate_lot(45_000, seed=0)
    graph = LotGraph.from_dicts(lot["nodes"], lot["edges"])
    assert len(graph.spots) == 45_000
    assert len(graph.entrances) == 45
