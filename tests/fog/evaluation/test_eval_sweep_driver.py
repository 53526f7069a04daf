"""The online traditional search drives exactly the path of `traditional_search` in a frozen lot."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fog.engine.lot_generator import generate_lot
from fog.engine.lot_graph import LotGraph
from fog.engine.selection import edge_density, edge_travel_time
from fog.engine.traditional_search import traditional_search
from fog.evaluation.sweep_driver import SweepDriver


def _drive(graph: LotGraph, entrance: str, free: set[str], loads: dict[tuple[str, str], float]) -> tuple[str, ...]:
    times = [
        edge_travel_time(e.length_m, e.free_speed_mps, edge_density(loads.get((e.from_id, e.to_id), 0.0), e.capacity_vehicles))
        for e in graph.edges
    ]
    driver = SweepDriver(graph, entrance)
    for _ in range(10 * len(graph.edges)):
        decision = driver.decide(lambda s: s in free, times)
        if decision.parks:
            return driver.path_ids()
    raise AssertionError("the driver never parked")


@settings(max_examples=60, deadline=None)
@given(
    spots=st.integers(1, 260),
    lot_seed=st.integers(0, 50),
    state_seed=st.integers(0, 10_000),
    free_count=st.integers(1, 12),
    loaded=st.booleans(),
)
def test_same_path_as_traditional_search(spots: int, lot_seed: int, state_seed: int, free_count: int, loaded: bool) -> None:
    lot = generate_lot(spots, seed=lot_seed, slots_per_side=6)
    graph = LotGraph.from_dicts(lot["nodes"], lot["edges"])
    rng = random.Random(state_seed)
    free = set(rng.sample(list(graph.spots), min(free_count, len(graph.spots))))
    loads = {(e.from_id, e.to_id): float(rng.randint(0, 3)) for e in graph.edges if loaded and rng.random() < 0.3}
    entrance = rng.choice(graph.entrances)
    expected = traditional_search(graph, entrance, free, edge_vehicles=loads)
    assert expected is not None
    assert _drive(graph, entrance, free, loads) == expected.path


def test_a_spot_freed_behind_the_driver_is_not_seen_and_one_ahead_is() -> None:
    lot = generate_lot(40, seed=1, slots_per_side=5)
    graph = LotGraph.from_dicts(lot["nodes"], lot["edges"])
    free_flow = [e.length_m / e.free_speed_mps for e in graph.edges]
    entrance = graph.entrances[0]
    full = traditional_search(graph, entrance, {graph.spots[-1]})
    assert full is not None
    driver = SweepDriver(graph, entrance)
    free: set[str] = set()
    seen_nodes = 0
    while True:
        decision = driver.decide(lambda s: s in free, free_flow)
        seen_nodes += 1
        if seen_nodes == 4:
            # Free one spot on a node he has passed and the one the static sweep would find last.
            passed = [n for n in driver.path_ids()[:-1] if any(e.to_id in graph.spots for e in graph.out_edges(n))]
            free.add(next(e.to_id for e in graph.out_edges(passed[-1]) if e.to_id in graph.spots))
            free.add(full.spot_id)
        if decision.parks:
            break
    assert driver.path_ids() == full.path  # the one behind him was never seen again


def test_an_exhausted_sweep_starts_again() -> None:
    lot = generate_lot(8, seed=0, slots_per_side=2)
    graph = LotGraph.from_dicts(lot["nodes"], lot["edges"])
    free_flow = [e.length_m / e.free_speed_mps for e in graph.edges]
    driver = SweepDriver(graph, graph.entrances[0])
    assert traditional_search(graph, graph.entrances[0], set()) is None
    for _ in range(200):
        driver.decide(lambda _s: False, free_flow)
        if driver.sweeps > 1:
            break
    assert driver.sweeps == 2
    decision = driver.decide(lambda _s: True, free_flow)
    assert decision.parks


def test_only_entrances_start_a_sweep() -> None:
    lot = generate_lot(8, seed=0)
    graph = LotGraph.from_dicts(lot["nodes"], lot["edges"])
    with pytest.raises(ValueError, match="not an entrance"):
        SweepDriver(graph, graph.exits[0])
