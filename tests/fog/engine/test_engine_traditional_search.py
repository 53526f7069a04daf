"""ALGORITHMS.md §2 baseline: the fixed sweep of a driver without guidance."""

from __future__ import annotations

import random
from typing import Any

import pytest

from fog.engine.lot_generator import generate_lot
from fog.engine.lot_graph import LotGraph
from fog.engine.selection import SpotSelector
from fog.engine.traditional_search import SweepResult, traditional_search


def _edge(u: str, v: str, length: float, speed: float, capacity: int = 2) -> dict[str, Any]:
    return {"from": u, "to": v, "length_m": length, "speed_mps": speed, "capacity": capacity}


def _sweep_lot() -> LotGraph:
    """E -2s-> J1; J1 lists J2 (4 s, a dead end) before J3 (2 s); one spot at each junction."""
    nodes = [{"id": n, "kind": "junction"} for n in ("J1", "J2", "J3")]
    nodes += [{"id": "E", "kind": "entrance"}, {"id": "X", "kind": "exit"}]
    nodes += [{"id": s, "kind": "spot"} for s in ("S1", "S2", "S3")]
    edges = [
        _edge("E", "J1", 4, 2),
        _edge("J1", "J2", 8, 2),
        _edge("J1", "J3", 4, 2),
        _edge("J1", "S1", 1, 1),
        _edge("J2", "S2", 1, 1),
        _edge("J2", "J1", 8, 2),
        _edge("J3", "S3", 1, 1),
        _edge("J3", "X", 1, 1),
        _edge("S1", "J1", 1, 1),
        _edge("S2", "J2", 1, 1),
        _edge("S3", "J3", 1, 1),
    ]
    return LotGraph.from_dicts(nodes, edges)


def test_takes_the_first_free_spot_passed() -> None:
    graph = _sweep_lot()
    assert traditional_search(graph, "E", {"S1", "S2", "S3"}) == SweepResult("S1", ("E", "J1", "S1"), 3.0)


def test_follows_the_first_listed_lane_then_backtracks() -> None:
    graph = _sweep_lot()
    assert traditional_search(graph, "E", {"S2", "S3"}) == SweepResult("S2", ("E", "J1", "J2", "S2"), 7.0)
    # J2 is a dead end: the driver drives back to J1 (4 s, counted) and sweeps on to J3.
    assert traditional_search(graph, "E", {"S3"}) == SweepResult(
        "S3", ("E", "J1", "J2", "J1", "J3", "S3"), 2 + 4 + 4 + 2 + 1
    )


def test_full_lot_exhausts_the_sweep_and_returns_none() -> None:
    assert traditional_search(_sweep_lot(), "E", set()) is None
    assert traditional_search(_sweep_lot(), "E", {"J1"}) is None  # not a spot: never "taken"


def test_uses_the_same_travel_time_as_selection() -> None:
    # One vehicle on E -> J1 (capacity 2): λ = 0.5, 4 m at 1 m/s = 4 s instead of 2 s.
    result = traditional_search(_sweep_lot(), "E", {"S1"}, edge_vehicles={("E", "J1"): 1})
    assert result is not None and result.travel_time_s == 5.0


def test_refuses_a_start_that_is_not_an_entrance() -> None:
    with pytest.raises(ValueError, match="not an entrance"):
        traditional_search(_sweep_lot(), "J1", {"S1"})


@pytest.mark.parametrize("seed", range(12))
def test_on_generated_lots_sweep_is_valid_deterministic_and_never_beats_selection(seed: int) -> None:
    rng = random.Random(seed)
    lot = generate_lot(rng.randint(20, 400), seed=seed, slots_per_side=rng.randint(2, 10))
    graph = LotGraph.from_dicts(lot["nodes"], lot["edges"])
    occupied = {s for s in graph.spots if rng.random() < rng.uniform(0.3, 1.0)}
    free = set(graph.spots) - occupied
    selector = SpotSelector(graph, occupied=occupied)
    for entrance in graph.entrances:
        sweep = traditional_search(graph, entrance, free)
        assert sweep == traditional_search(graph, entrance, free)
        best = selector.select(entrance)
        if not free:
            assert sweep is None and best is None
            continue
        # In a generated lot every spot is on the sweep, so a free one is found.
        assert sweep is not None and best is not None
        assert sweep.spot_id in free
        assert sweep.path[0] == entrance and sweep.path[-1] == sweep.spot_id
        total = 0.0
        for u, v in zip(sweep.path, sweep.path[1:], strict=False):
            total += selector.edge_time(u, v)  # raises if a step is not an edge
        assert total == pytest.approx(sweep.travel_time_s, abs=1e-9)
        assert best.eta_s <= sweep.travel_time_s + 1e-9
