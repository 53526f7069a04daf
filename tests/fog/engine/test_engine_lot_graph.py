"""The lot graph: building from plain data and refusing lots that cannot be routed."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from fog.engine.lot_graph import LotGraph, LotGraphError, NodeKind


def _lot() -> dict[str, list[dict[str, Any]]]:
    """E -> J -> S1/S2 -> J -> X, plus a second lane J -> K."""
    lane = {"length_m": 10.0, "speed_mps": 2.0, "capacity": 2}
    return {
        "nodes": [
            {"id": "E", "kind": "entrance"},
            {"id": "J", "kind": "junction"},
            {"id": "K", "kind": "junction"},
            {"id": "X", "kind": "exit"},
            {"id": "S1", "kind": "spot"},
            {"id": "S2", "kind": "spot"},
        ],
        "edges": [
            {"from": "E", "to": "J", **lane},
            {"from": "J", "to": "S2", **lane},
            {"from": "J", "to": "K", **lane},
            {"from": "J", "to": "S1", **lane},
            {"from": "K", "to": "X", **lane},
            {"from": "S1", "to": "J", **lane},
            {"from": "S2", "to": "K", **lane},
        ],
    }


def _build(lot: dict[str, list[dict[str, Any]]]) -> LotGraph:
    return LotGraph.from_dicts(lot["nodes"], lot["edges"])


def test_builds_and_keeps_listing_order() -> None:
    graph = _build(_lot())
    assert graph.entrances == ("E",)
    assert graph.exits == ("X",)
    assert graph.spots == ("S1", "S2")
    assert [e.to_id for e in graph.out_edges("J")] == ["S2", "K", "S1"]
    assert [e.from_id for e in graph.in_edges("J")] == ["E", "S1"]
    assert graph.node("K").kind is NodeKind.JUNCTION
    edge = graph.edge_between("E", "J")
    assert edge is not None and edge.length_m == 10.0 and edge.free_speed_mps == 2.0
    assert edge.capacity_vehicles == 2.0
    assert graph.edge_between("J", "E") is None
    assert graph.is_terminal("S1") and graph.is_terminal("X") and not graph.is_terminal("J")


def _mutate(change: str) -> dict[str, list[dict[str, Any]]]:
    lot = copy.deepcopy(_lot())
    nodes, edges = lot["nodes"], lot["edges"]
    if change == "unknown endpoint":
        edges[2]["to"] = "Q"
    elif change == "zero length":
        edges[2]["length_m"] = 0
    elif change == "negative speed":
        edges[2]["speed_mps"] = -1.5
    elif change == "zero capacity":
        edges[2]["capacity"] = 0
    elif change == "nan length":
        edges[2]["length_m"] = math.nan
    elif change == "bool capacity":
        edges[2]["capacity"] = True
    elif change == "duplicate id":
        nodes.append({"id": "K", "kind": "junction"})
    elif change == "spot unreachable":
        del edges[1]  # J -> S2 was the only way in
    elif change == "no exit from spot":
        nodes.append({"id": "D", "kind": "junction"})  # a dead end
        edges[5]["to"] = "D"  # S1 -> D instead of S1 -> J
    elif change == "unknown key":
        edges[0]["lenght_m"] = 3.0
    elif change == "missing key":
        del edges[0]["capacity"]
    elif change == "bad kind":
        nodes[1]["kind"] = "roundabout"
    elif change == "duplicate edge":
        edges.append(dict(edges[0]))
    elif change == "self loop":
        edges.append({"from": "J", "to": "J", "length_m": 1.0, "speed_mps": 1.0, "capacity": 1})
    elif change == "spot to spot":
        edges.append({"from": "S1", "to": "S2", "length_m": 1.0, "speed_mps": 1.0, "capacity": 1})
    elif change == "no entrance":
        nodes[0]["kind"] = "junction"
    else:
        raise AssertionError(change)
    return lot


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ("unknown endpoint", r"edge #2 \('J' -> 'Q'\): unknown endpoint 'Q'"),
        ("zero length", r"'J' -> 'K'.*length_m must be a positive finite number, got 0"),
        ("negative speed", r"'J' -> 'K'.*speed_mps must be a positive finite number, got -1.5"),
        ("zero capacity", r"'J' -> 'K'.*capacity must be a positive finite number, got 0"),
        ("nan length", r"length_m must be a positive finite number, got nan"),
        ("bool capacity", r"capacity must be a number, got True"),
        ("duplicate id", r"node 'K': duplicate id"),
        ("spot unreachable", r"node 'S2' \(spot\): not reachable from any entrance"),
        ("no exit from spot", r"node 'S1' \(spot\): no exit reachable"),
        ("unknown key", r"edge #0: unknown key\(s\) \['lenght_m'\]"),
        ("missing key", r"edge #0: missing key 'capacity'"),
        ("bad kind", r"node 'J': kind must be one of .*roundabout"),
        ("duplicate edge", r"duplicate edge"),
        ("self loop", r"self-loop"),
        ("spot to spot", r"spots may only connect to lane nodes"),
        ("no entrance", r"lot has no entrance"),
    ],
)
def test_refuses_with_a_message_naming_the_culprit(change: str, pattern: str) -> None:
    with pytest.raises(LotGraphError, match=pattern):
        _build(_mutate(change))


def test_lot_graph_error_is_a_value_error() -> None:
    assert issubclass(LotGraphError, ValueError)


def test_routes_may_not_pass_through_a_spot_or_an_exit() -> None:
    lane = {"length_m": 1.0, "speed_mps": 1.0, "capacity": 1}
    nodes = [
        {"id": "E", "kind": "entrance"},
        {"id": "X", "kind": "exit"},
        {"id": "J", "kind": "junction"},
        {"id": "S1", "kind": "spot"},
        {"id": "S2", "kind": "spot"},
    ]
    # S2 hangs only behind exit X: E -> X -> J -> S2 would drive through the exit.
    edges = [
        {"from": "E", "to": "S1", **lane},
        {"from": "S1", "to": "X", **lane},
        {"from": "E", "to": "X", **lane},
        {"from": "X", "to": "J", **lane},
        {"from": "J", "to": "S2", **lane},
        {"from": "S2", "to": "J", **lane},
        {"from": "J", "to": "X", **lane},
    ]
    with pytest.raises(LotGraphError, match="'S2' \\(spot\\): not reachable"):
        LotGraph.from_dicts(nodes, edges)
    edges.append({"from": "E", "to": "J", **lane})
    assert LotGraph.from_dicts(nodes, edges).spots == ("S1", "S2")
