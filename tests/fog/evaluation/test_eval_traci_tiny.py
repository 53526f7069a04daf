"""SUMO with the engine in the loop on a lot small enough to check by hand.

    E --10 m, 5 m/s--> J1 --10 m, 2.5 m/s-- J2 (dead end, spot S1)
                        |
                        +--10 m, 2.5 m/s-- J3 (spot S2) --10 m, 5 m/s--> X

J1 lists J2 before J3, so the traditional search looks down the dead end
first. Spots are 5 m manoeuvres at 1 m/s.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("traci")
pytest.importorskip("sumolib")

from fog.engine.selection import SpotSelector  # noqa: E402
from fog.evaluation.lot_document import lot_graph  # noqa: E402
from fog.evaluation.sumo_net import write_sumo_network  # noqa: E402
from fog.evaluation.traci_runner import (  # noqa: E402
    BASELINE,
    FOGPARK,
    VEHICLE_LENGTH_M,
    ProbeTrial,
    PublishedSetting,
    SimSetup,
    run_probe_trial,
    run_published_setting,
    write_vehicle_types,
)


def _edge(u: str, v: str, length: float, speed: float, capacity: int = 2) -> dict[str, Any]:
    return {"from": u, "to": v, "length_m": length, "speed_mps": speed, "capacity": capacity}


def _tiny_lot() -> dict[str, Any]:
    return {
        "lot": {"id": "tiny", "name": "tiny"},
        "spots": [{"id": "S1", "zone": "a", "kind": "normal"}, {"id": "S2", "zone": "a", "kind": "normal"}],
        "graph": {
            "nodes": [
                {"id": "E", "kind": "entrance"},
                {"id": "J1", "kind": "junction"},
                {"id": "J2", "kind": "junction"},
                {"id": "J3", "kind": "junction"},
                {"id": "X", "kind": "exit"},
            ],
            "edges": [
                _edge("E", "J1", 10, 5),
                _edge("J1", "J2", 10, 2.5),
                _edge("J1", "J3", 10, 2.5),
                _edge("J2", "J1", 10, 2.5),
                _edge("J3", "J1", 10, 2.5),
                _edge("J2", "S1", 5, 1, 1),
                _edge("S1", "J2", 5, 1, 1),
                _edge("J3", "S2", 5, 1, 1),
                _edge("S2", "J3", 5, 1, 1),
                _edge("J3", "X", 10, 5),
            ],
        },
    }


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> SimSetup:
    out: Path = tmp_path_factory.mktemp("tiny")
    doc = _tiny_lot()
    return SimSetup(doc, write_sumo_network(doc, out, "tiny"), write_vehicle_types(out / "vtypes.add.xml"))


def _trial(method: str, free: tuple[str, ...], congestion: float = 0.0) -> ProbeTrial:
    return ProbeTrial("t", congestion, 0, method, len(free), congestion, concentration=None, free=free)


def test_engine_drives_straight_and_the_sweep_looks_down_the_dead_end_first(setup: SimSetup) -> None:
    fog = run_probe_trial(setup, _trial(FOGPARK, ("S2",)))
    base = run_probe_trial(setup, _trial(BASELINE, ("S2",)))
    assert fog.path == ("E", "J1", "J3", "S2")
    assert base.path == ("E", "J1", "J2", "J1", "J3", "S2")
    assert fog.parked and base.parked and not fog.teleported and not base.teleported
    # Engine ETA: 10/5 + 10/2.5 + 5/1 = 11 s; SUMO adds braking for the slower lanes and the stop,
    # and saves the first 2.4 m (the vehicle enters with its rear on the lane start).
    assert fog.engine_eta_s == pytest.approx(11.0)
    assert 9.0 <= fog.arrival_time_s <= 16.0
    # The odometer when parking starts: the route's lengths minus where the vehicle was inserted.
    assert fog.driven_m == pytest.approx(25.0 - VEHICLE_LENGTH_M, abs=0.6)
    assert base.driven_m == pytest.approx(45.0 - VEHICLE_LENGTH_M, abs=0.6)
    # The dead-end detour is 2 × 10 m at 2.5 m/s plus a U-turn from standstill.
    assert 8.0 <= base.arrival_time_s - fog.arrival_time_s <= 16.0
    # Searching time: arrival minus the free-flow 11 s to the spot finally taken.
    assert fog.searching_time_s == pytest.approx(fog.arrival_time_s - 11.0)
    assert base.searching_time_s == pytest.approx(base.arrival_time_s - 11.0)


def test_with_both_spots_free_the_sweep_takes_the_first_it_passes(setup: SimSetup) -> None:
    base = run_probe_trial(setup, _trial(BASELINE, ("S1", "S2")))
    fog = run_probe_trial(setup, _trial(FOGPARK, ("S1", "S2")))
    assert base.path == ("E", "J1", "J2", "S1")
    # Both spots are 11 s away on empty lanes; the tie goes to lower congestion, then the lower id.
    assert fog.path == ("E", "J1", "J2", "S1")
    assert math.isclose(fog.arrival_time_s, base.arrival_time_s, abs_tol=1.0)


def test_engine_is_fed_sumo_counts_and_routes_around_cruisers(setup: SimSetup) -> None:
    # Congestion 0.5 puts two cruisers on the J1-J2 loop (20 m / 6 m · 0.5); the J1-J3 lane leads to the
    # exit and carries none. Whatever SUMO counts when the probe arrives is what the engine was given.
    fog = run_probe_trial(setup, _trial(FOGPARK, ("S1", "S2"), congestion=0.5))
    observed = {(u, v): n for u, v, n in fog.observed}
    assert fog.cruisers == 2
    assert set(observed) <= {("J1", "J2"), ("J2", "J1")}
    assert sum(observed.values()) <= 2
    graph = lot_graph(setup.doc)
    selector = SpotSelector(graph)
    for (u, v), n in observed.items():
        selector.set_observed_vehicles(u, v, n)
    expected = selector.select("E")
    assert expected is not None
    assert fog.path == expected.path
    # Hand check: a cruiser on J1->J2 slows that lane, so S2 wins; otherwise the tie goes to S1.
    assert fog.spot_id == ("S2" if observed.get(("J1", "J2"), 0) > 0 else "S1")
    assert fog.parked


def test_published_setting_runs_on_the_tiny_lot(setup: SimSetup) -> None:
    # Two spots, arrivals every 6 s on average: most are turned away at the "full above 80 %" gate.
    for method in (FOGPARK, BASELINE):
        result = run_published_setting(setup, PublishedSetting(method, seed=1, duration_s=120.0, drain_s=300.0))
        assert result.arrivals == len(result.vehicles) + result.turned_away
        assert result.turned_away > 0
        parked = [v for v in result.vehicles if v.parked]
        assert parked, method
        for v in parked:
            assert v.spot_id in ("S1", "S2")
            assert v.arrival_time_s >= 8.0
        assert not any(v.teleported for v in result.vehicles)


def test_sumo_never_outlives_a_failing_run(setup: SimSetup, tmp_path: Path) -> None:
    from fog.evaluation.traci_runner import sumo_session

    with pytest.raises(RuntimeError, match="boom"), sumo_session(setup, 1, tmp_path) as conn:
        process = conn._process
        assert process.poll() is None  # SUMO is running
        raise RuntimeError("boom")
    assert process.poll() is not None
