"""A lot in the plain-dict form of the fog's lot file, and the engine graph built from it.

The evaluation moves lots between three places: the fog's TOML lot file
(`fog.config.load_lot`), SUMO networks (`fog.evaluation.sumo_net`) and the
engine (`fog.engine.lot_graph.LotGraph`). One dict form — exactly the
parsed TOML, ``{"lot", "spots", "graph": {"nodes", "edges"}}`` — sits in the
middle, so every conversion is "to or from a document" and a document can
always be written as a file the fog loads.

Decision: node coordinates are optional (``x_m``/``y_m`` on graph nodes are
extra keys `load_lot` ignores; on spots they are the file's own keys). They
only matter for drawing a SUMO network, never for routing.
Decision: the engine graph lists spots first and then the lane nodes, in
file order, exactly as `LotConfig.graph_nodes` does, so the engine sees a
lot here the way the daemon sees the same file (tie-breaks use listing
order).
"""

from __future__ import annotations

import copy
import datetime
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fog.config import LotConfig, load_lot, read_toml
from fog.engine.lot_generator import LotDicts
from fog.engine.lot_graph import LotGraph

__all__ = [
    "LotDocument",
    "document_from_config",
    "document_from_file",
    "document_from_generated",
    "document_text",
    "lot_graph",
    "spot_kinds",
    "write_document",
]

LotDocument = dict[str, Any]
"""``{"lot": {...}, "spots": [...], "graph": {"nodes": [...], "edges": [...]}, "tariff": {...}}``."""

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def document_from_generated(lot: LotDicts, lot_id: str = "generated", name: str | None = None) -> LotDocument:
    """A generated lot (`generate_lot`) as a lot-file document; spots get zone "default"."""
    spots = [{"id": n["id"], "zone": "default", "kind": "normal"} for n in lot["nodes"] if n["kind"] == "spot"]
    nodes = [{"id": n["id"], "kind": n["kind"]} for n in lot["nodes"] if n["kind"] != "spot"]
    edges = [
        {
            "from": e["from"],
            "to": e["to"],
            "length_m": float(e["length_m"]),
            "speed_mps": float(e["speed_mps"]),
            "capacity": int(e["capacity"]),
        }
        for e in lot["edges"]
    ]
    return {
        "lot": {"id": lot_id, "name": name or lot_id},
        "spots": spots,
        "graph": {"nodes": nodes, "edges": edges},
    }


def document_from_config(cfg: LotConfig, positions: Mapping[str, tuple[float, float]] | None = None) -> LotDocument:
    """A loaded lot file as a document; ``positions`` adds lane-node coordinates."""
    positions = positions or {}
    spots = [{"id": s.id, "zone": s.zone, "kind": s.kind, "x_m": s.x_m, "y_m": s.y_m} for s in cfg.spots]
    nodes: list[dict[str, Any]] = []
    for node_id, kind in cfg.graph_nodes.items():
        if kind == "spot":
            continue
        node: dict[str, Any] = {"id": node_id, "kind": kind}
        if node_id in positions:
            node["x_m"], node["y_m"] = positions[node_id]
        nodes.append(node)
    edges = [
        {"from": e.src, "to": e.dst, "length_m": e.length_m, "speed_mps": e.speed_mps, "capacity": e.capacity}
        for e in cfg.edges
    ]
    doc: LotDocument = {
        "lot": {"id": cfg.id, "name": cfg.name, "opening_hours": cfg.opening_hours},
        "spots": spots,
        "graph": {"nodes": nodes, "edges": edges},
    }
    if cfg.tariff:
        doc["tariff"] = copy.deepcopy(cfg.tariff)
    return doc


def document_from_file(path: Path) -> LotDocument:
    """Load a lot file with the fog's own loader, keeping optional lane-node coordinates.

    `load_lot` validates (and raises `fog.config.ConfigError` naming the
    key); the raw file is read again only for the ``x_m``/``y_m`` of graph
    nodes, which the fog itself does not need.
    """
    cfg = load_lot(Path(path))
    raw = read_toml(Path(path)).get("graph", {}).get("nodes", [])
    positions: dict[str, tuple[float, float]] = {}
    for node in raw if isinstance(raw, list) else []:
        if not isinstance(node, dict):
            continue
        x, y = node.get("x_m"), node.get("y_m")
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and isinstance(node.get("id"), str):
            positions[node["id"]] = (float(x), float(y))
    return document_from_config(cfg, positions)


def lot_graph(doc: LotDocument) -> LotGraph:
    """The engine's graph of a document: spots first, then lane nodes, edges in file order."""
    nodes = [{"id": s["id"], "kind": "spot"} for s in doc["spots"]]
    nodes += [{"id": n["id"], "kind": n["kind"]} for n in doc["graph"]["nodes"]]
    edges = [
        {
            "from": e["from"],
            "to": e["to"],
            "length_m": float(e["length_m"]),
            "speed_mps": float(e["speed_mps"]),
            "capacity": int(e["capacity"]),
        }
        for e in doc["graph"]["edges"]
    ]
    return LotGraph.from_dicts(nodes, edges)


def spot_kinds(doc: LotDocument) -> dict[str, str]:
    """Spot id -> kind ("normal", "subscriber", ...)."""
    return {s["id"]: s.get("kind", "normal") for s in doc["spots"]}


# ---------------------------------------------------------------- TOML writing
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write the non-finite number {value!r} to a lot file")
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    raise TypeError(f"cannot write a {type(value).__name__} to a lot file")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_value(key)


def _table_body(table: Mapping[str, Any]) -> list[str]:
    return [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]


def _tables(name: str, table: Mapping[str, Any]) -> list[str]:
    """``[name]`` with its plain keys, then its sub-tables, recursively."""
    lines = [f"[{name}]", *_table_body(table), ""]
    for key, value in table.items():
        if isinstance(value, dict):
            lines += _tables(f"{name}.{_toml_key(str(key))}", value)
    return lines


def document_text(doc: LotDocument, header: str = "") -> str:
    """The document as TOML text that `fog.config.load_lot` accepts."""
    lines: list[str] = []
    if header:
        lines += [f"# {line}" if line else "#" for line in header.splitlines()] + [""]
    lines += ["[lot]", *_table_body(doc["lot"]), ""]
    tariff = doc.get("tariff")
    if tariff:
        lines += _tables("tariff", tariff)
    for spot in doc["spots"]:
        lines += ["[[spots]]", *_table_body(spot), ""]
    for node in doc["graph"]["nodes"]:
        lines += ["[[graph.nodes]]", *_table_body(node), ""]
    for edge in doc["graph"]["edges"]:
        lines += ["[[graph.edges]]", *_table_body(edge), ""]
    return "\n".join(lines)


def write_document(doc: LotDocument, path: Path, header: str = "") -> Path:
    """Write the document as a lot file and check it with the fog's loader."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document_text(doc, header), encoding="utf-8")
    load_lot(path)
    return path
