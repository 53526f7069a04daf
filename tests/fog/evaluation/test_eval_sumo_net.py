"""Lot file ⇄ SUMO network, through the real netconvert and sumolib."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sumolib")
pytest.importorskip("traci")

from fog.config import load_lot  # noqa: E402
from fog.engine.lot_generator import generate_lot  # noqa: E402
from fog.evaluation.cli import main as evaluate_main  # noqa: E402
from fog.evaluation.lot_document import (  # noqa: E402
    document_from_file,
    document_from_generated,
    lot_graph,
    write_document,
)
from fog.evaluation.sumo_net import (  # noqa: E402
    SumoNetError,
    read_sumo_network,
    sumo_binary,
    write_sumo_network,
)

DEMO_LOT = Path(__file__).resolve().parents[3] / "fog" / "examples" / "demo-lot.toml"
NETCONVERT_ROUNDING_M = 0.005 + 1e-9


def _edges(doc: dict[str, Any]) -> dict[tuple[str, str], tuple[float, float, int]]:
    return {
        (e["from"], e["to"]): (float(e["length_m"]), float(e["speed_mps"]), int(e["capacity"]))
        for e in doc["graph"]["edges"]
    }


def _assert_same_lot(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert [s["id"] for s in after["spots"]] == [s["id"] for s in before["spots"]]
    assert [(n["id"], n["kind"]) for n in after["graph"]["nodes"]] == [
        (n["id"], n["kind"]) for n in before["graph"]["nodes"]
    ]
    a, b = _edges(before), _edges(after)
    assert list(b) == list(a)  # same lanes, in the same listing order (the sweep depends on it)
    for key, (length, speed, capacity) in a.items():
        assert abs(b[key][0] - length) <= NETCONVERT_ROUNDING_M, key
        assert b[key][1:] == (speed, capacity), key


def test_generated_lot_round_trips_through_netconvert(tmp_path: Path) -> None:
    doc = document_from_generated(generate_lot(150, seed=0), lot_id="gen")
    network = write_sumo_network(doc, tmp_path, "gen")
    assert network.net_file.exists() and network.parking_file.exists()
    assert len(network.parking_areas) == 150
    back, notes = read_sumo_network(network.net_file, [network.parking_file], lot_id="gen")
    assert notes == []
    _assert_same_lot(doc, back)
    # The written lot file is one the fog accepts, with the same graph.
    path = write_document(back, tmp_path / "back.toml")
    cfg = load_lot(path)
    assert cfg.capacity == 150
    assert len(cfg.edges) == len(doc["graph"]["edges"])
    assert lot_graph(document_from_file(path)).spots == lot_graph(doc).spots


def test_demo_lot_keeps_zones_and_kinds(tmp_path: Path) -> None:
    doc = document_from_file(DEMO_LOT)
    network = write_sumo_network(doc, tmp_path, "demo")
    back, _ = read_sumo_network(network.net_file, [network.parking_file], lot_id="demo")
    _assert_same_lot(doc, back)
    assert [(s["zone"], s["kind"]) for s in back["spots"]] == [(s["zone"], s["kind"]) for s in doc["spots"]]


def test_every_engine_path_is_a_drivable_sumo_route(tmp_path: Path) -> None:
    import sumolib

    doc = document_from_generated(generate_lot(40, seed=3))
    network = write_sumo_network(doc, tmp_path, "small")
    net = sumolib.net.readNet(str(network.net_file))
    graph = lot_graph(doc)
    for node in graph.nodes:
        for e_in in graph.in_edges(node.id):
            for e_out in graph.out_edges(node.id):
                if node.kind.value == "exit":
                    continue
                a = net.getEdge(network.edge_ids[(e_in.from_id, e_in.to_id)])
                b = net.getEdge(network.edge_ids[(e_out.from_id, e_out.to_id)])
                assert b in a.getOutgoing(), (e_in, e_out)


def _netconvert(tmp: Path, nodes: str, edges: str) -> Path:
    (tmp / "n.nod.xml").write_text(f"<nodes>{nodes}</nodes>")
    (tmp / "e.edg.xml").write_text(f"<edges>{edges}</edges>")
    net = tmp / "drawn.net.xml"
    subprocess.run(
        [sumo_binary("netconvert"), "-n", str(tmp / "n.nod.xml"), "-e", str(tmp / "e.edg.xml"), "-o", str(net),
         "--no-warnings"],
        check=True, capture_output=True,
    )
    return net


def test_a_lot_drawn_without_fogpark_parameters_is_split_at_its_parking_areas(tmp_path: Path) -> None:
    # As netedit would save it: a through lane gate -> aisle -> gate with a 2-space parking area on the aisle.
    net = _netconvert(
        tmp_path,
        '<node id="in" x="0" y="0"/><node id="a" x="20" y="0"/><node id="b" x="60" y="0"/><node id="out" x="80" y="0"/>',
        '<edge id="gate_in" from="in" to="a" speed="4"/><edge id="aisle#0" from="a" to="b" speed="2.5"/>'
        '<edge id="gate_out" from="b" to="out" speed="4"/>',
    )
    (tmp_path / "drawn.parking.add.xml").write_text(
        '<additional><parkingArea id="P" lane="aisle#0_0" startPos="10" endPos="30" roadsideCapacity="2"/>'
        '<parkingArea id="Q x" lane="aisle#0_0" startPos="32" endPos="40"/></additional>'
    )
    doc, notes = read_sumo_network(net, [tmp_path / "drawn.parking.add.xml"])
    assert [s["id"] for s in doc["spots"]] == ["P.0", "P.1", "Q_x"]  # OSM-style ids made usable
    kinds = {n["id"]: n["kind"] for n in doc["graph"]["nodes"]}
    assert kinds["in"] == "entrance" and kinds["out"] == "exit"
    edges = _edges(doc)
    # P's spaces at 20 and 30 m, Q at its end (40 m): the 40 m aisle becomes 20 + 10 + 10 m.
    assert edges[("a", "aisle#0@20.00")][0] == 20.0
    assert edges[("aisle#0@20.00", "aisle#0@30.00")][0] == 10.0
    assert edges[("aisle#0@30.00", "b")][0] == pytest.approx(10.0)
    assert edges[("aisle#0@20.00", "P.0")] == (5.0, 1.0, 1)
    assert edges[("b", "Q_x")] == (5.0, 1.0, 1)
    assert any("split" in note for note in notes) and any("renamed 1" in note for note in notes)
    path = write_document(doc, tmp_path / "drawn.toml")
    assert load_lot(path).capacity == 3
    # and the CLI does the same conversion (--convert-only), finding the parking file beside the net
    out = tmp_path / "eval"
    assert evaluate_main(["--sumo-net", str(net), "--convert-only", "--out", str(out)]) == 0
    assert load_lot(out / "lot-from-sumo.toml").capacity == 3
    assert (out / "sumo" / "lot.net.xml").exists()


def test_gates_can_be_marked_in_netedit_and_fringe_dead_ends_become_gates(tmp_path: Path) -> None:
    # A two-way street with a dead end at each side: no source or sink junction.
    net = _netconvert(
        tmp_path,
        '<node id="w" x="0" y="0"/><node id="m" x="30" y="0"/><node id="e" x="60" y="0"/>',
        '<edge id="wm" from="w" to="m"/><edge id="mw" from="m" to="w"/>'
        '<edge id="me" from="m" to="e"/><edge id="em" from="e" to="m"/>',
    )
    (tmp_path / "p.add.xml").write_text('<additional><parkingArea id="S" lane="wm_0" startPos="5" endPos="15"/></additional>')
    doc, notes = read_sumo_network(net, [tmp_path / "p.add.xml"])
    kinds = {n["id"]: n["kind"] for n in doc["graph"]["nodes"]}
    assert kinds["w"] == kinds["e"] == "entrance"
    assert kinds["w.exit"] == kinds["e.exit"] == "exit"
    assert any("fringe" in note for note in notes)
    lot_graph(doc)  # routable


def test_unusable_networks_are_refused_with_a_reason(tmp_path: Path) -> None:
    ring = _netconvert(
        tmp_path,
        '<node id="a" x="0" y="0"/><node id="b" x="30" y="0"/><node id="c" x="15" y="20"/>',
        '<edge id="ab" from="a" to="b"/><edge id="bc" from="b" to="c"/><edge id="ca" from="c" to="a"/>',
    )
    (tmp_path / "p.add.xml").write_text('<additional><parkingArea id="S" lane="ab_0" startPos="5" endPos="15"/></additional>')
    with pytest.raises(SumoNetError, match="fogpark.kind"):
        read_sumo_network(ring, [tmp_path / "p.add.xml"])
    with pytest.raises(SumoNetError, match="no parking areas"):
        read_sumo_network(ring, [])
    bad = document_from_generated(generate_lot(4, seed=0))
    bad["spots"][0]["id"] = "spot one"
    for edge in bad["graph"]["edges"]:
        for key in ("from", "to"):
            if edge[key] == "S0":
                edge[key] = "spot one"
    with pytest.raises(SumoNetError, match="spot one"):
        write_sumo_network(bad, tmp_path / "bad")
