"""The lot document: the fog's lot file as plain data, and the engine graph built from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from fog.config import load_lot
from fog.engine.lot_generator import generate_lot
from fog.engine.lot_graph import LotGraph
from fog.evaluation.lot_document import (
    document_from_file,
    document_from_generated,
    document_text,
    lot_graph,
    write_document,
)

DEMO_LOT = Path(__file__).resolve().parents[3] / "fog" / "examples" / "demo-lot.toml"


def _same_graph(a: LotGraph, b: LotGraph) -> None:
    assert [(n.id, n.kind) for n in a.nodes] == [(n.id, n.kind) for n in b.nodes]
    assert [(e.from_id, e.to_id, e.length_m, e.free_speed_mps, e.capacity_vehicles) for e in a.edges] == [
        (e.from_id, e.to_id, e.length_m, e.free_speed_mps, e.capacity_vehicles) for e in b.edges
    ]


def test_the_engine_sees_the_graph_the_daemon_builds_from_the_same_file() -> None:
    cfg = load_lot(DEMO_LOT)
    daemon_graph = getattr(cfg, "lane_graph", None)
    if daemon_graph is None:
        pytest.skip("this fog.config has no LotConfig.lane_graph yet")
    _same_graph(lot_graph(document_from_file(DEMO_LOT)), daemon_graph)


def test_generated_lot_written_and_loaded_by_the_fog(tmp_path: Path) -> None:
    lot = generate_lot(60, seed=2)
    doc = document_from_generated(lot, lot_id="gen-60", name='quoted "name"')
    path = write_document(doc, tmp_path / "gen.toml", header="two\nlines")
    assert path.read_text().startswith("# two\n# lines\n")
    cfg = load_lot(path)
    assert cfg.name == 'quoted "name"' and cfg.capacity == 60
    generated = LotGraph.from_dicts(lot["nodes"], lot["edges"])
    from_file = lot_graph(document_from_file(path))
    # Same lanes and spots; the file lists spots first, as the daemon's graph does.
    assert sorted(from_file.spots) == sorted(generated.spots)
    assert [(e.from_id, e.to_id, e.length_m) for e in from_file.edges] == [
        (e.from_id, e.to_id, e.length_m) for e in generated.edges
    ]


def test_demo_lot_survives_a_rewrite_with_its_tariff(tmp_path: Path) -> None:
    doc = document_from_file(DEMO_LOT)
    assert doc["tariff"]["plan"] == "hybrid"
    path = write_document(doc, tmp_path / "demo.toml")
    again = document_from_file(path)
    assert again == doc
    assert "[tariff]" in document_text(doc)
