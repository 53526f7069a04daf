"""Lot document ⇄ SUMO network.

Forward (`write_sumo_network`): every lot node becomes a SUMO junction and
every lot edge a one-lane SUMO edge with the lot's exact length (the
``length`` attribute overrides the drawn geometry, so netconvert's only
change is its 0.01 m rounding) and free-flow speed. A spot is a junction at
the end of its manoeuvre edge, and each edge into a spot carries a SUMO
``parkingArea`` of capacity 1 over its whole length. Every pair of edges the
lot allows to follow each other gets an explicit connection, so any route
the engine or the baseline produces is drivable in SUMO.

Decision: one SUMO edge per lot edge (rather than one per aisle with the
spots as positions along it). Then an engine path *is* a SUMO route, the
baseline's U-turns at any node exist in SUMO, and the observed vehicle
count of a lot edge is simply SUMO's count on that edge. Vehicles longer
than a 2.5 m aisle segment are handled by SUMO as on any short OSM edge.
Decision: ``--no-internal-links``: a lot node has no extent in the lot
model, so junction crossings take no time; right-of-way at junctions is
still simulated (spot exits yield to aisle traffic: priority 1 < 2).

Reverse (`read_sumo_network`): junctions become lane nodes, edges that
allow passenger cars become lot edges (length and speed from the network,
capacity from a ``fogpark.capacity`` parameter or one vehicle per 6 m per
lane), and parking areas become spots:

* a parking area on an edge whose end junction carries the parameter
  ``fogpark.kind = spot`` marks that junction as the spot (this is what the
  forward direction writes, so the round trip is exact);
* any other parking area (drawn in netedit, or from OSM via netconvert
  ``--parking-output``) sits on a through lane: the lane is split at the
  parking position into a new lane node, and each of the area's
  ``roadsideCapacity`` spaces (or ``<space>`` children) becomes a spot
  hanging off it with a 5 m manoeuvre edge at 1 m/s each way (the generated
  lots' defaults).

Node kinds come from a ``fogpark.kind`` junction parameter when present
(set it in netedit); otherwise a junction with no incoming edge is an
entrance, one with no outgoing edge an exit, and if that yields none, a
two-way dead end at the fringe is split into an entrance and an exit.
Listing order is kept through ``fogpark.order`` parameters; a foreign
network is listed in its file order.
"""

from __future__ import annotations

import math
import re
import subprocess
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fog.evaluation.lot_document import LotDocument, lot_graph

__all__ = [
    "DEFAULT_SPOT_DEPTH_M",
    "DEFAULT_SPOT_SPEED_MPS",
    "DEFAULT_VEHICLE_SPACING_M",
    "SumoNetError",
    "SumoNetwork",
    "layout_positions",
    "read_sumo_network",
    "sumo_binary",
    "write_sumo_network",
]

DEFAULT_SPOT_DEPTH_M = 5.0
"""Manoeuvre length given to spots made from foreign parking areas (as `generate_lot`)."""
DEFAULT_SPOT_SPEED_MPS = 1.0
"""Manoeuvre speed given to spots made from foreign parking areas (as `generate_lot`)."""
DEFAULT_VEHICLE_SPACING_M = 6.0
"""Jam spacing used for the capacity of foreign lanes (as `generate_lot`)."""

_BAD_ID = re.compile(r"[\s|\\;,'\"<>&]")
_PARAM_KIND = "fogpark.kind"
_PARAM_ORDER = "fogpark.order"
_PARAM_CAPACITY = "fogpark.capacity"
_PARAM_SPOT = "fogpark.spot"


class SumoNetError(ValueError):
    """A lot that cannot be drawn in SUMO, or a SUMO network that is not a lot."""


@dataclass(frozen=True)
class SumoNetwork:
    """A written SUMO network and how lot edges and spots map onto it."""

    net_file: Path
    parking_file: Path
    edge_ids: dict[tuple[str, str], str]
    """Lot edge ``(from, to)`` -> SUMO edge id."""
    parking_areas: dict[tuple[str, str], str]
    """Lot edge into a spot -> the parking area on it."""
    lot_edge_of: dict[str, tuple[str, str]] = field(default_factory=dict)
    """SUMO edge id -> lot edge."""

    def route(self, path: Sequence[str]) -> list[str]:
        """SUMO edge ids of a lot path given as node ids."""
        return [self.edge_ids[(u, v)] for u, v in zip(path, path[1:], strict=False)]


def sumo_binary(name: str) -> str:
    """Path of a SUMO program from the ``eclipse-sumo`` wheel (or SUMO_HOME / PATH)."""
    try:
        import sumo  # type: ignore[import-not-found]

        candidate = Path(sumo.SUMO_HOME) / "bin" / name
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    try:
        import sumolib  # type: ignore[import-not-found]

        found: str = sumolib.checkBinary(name)
        return found
    except ImportError:
        raise SumoNetError(
            f"SUMO is not installed: install the 'sim' extra (pip install -e '.[sim]') to get {name!r}"
        ) from None


# ---------------------------------------------------------------- layout
def _mds(ids: list[str], adjacency: Mapping[str, Mapping[str, float]]) -> dict[str, tuple[float, float]]:
    """Classical multidimensional scaling of the lane graph's undirected shortest-path metric."""
    import numpy as np

    n = len(ids)
    if n == 1:
        return {ids[0]: (0.0, 0.0)}
    index = {node: i for i, node in enumerate(ids)}
    dist = np.full((n, n), np.inf)
    np.fill_diagonal(dist, 0.0)
    for u, row in adjacency.items():
        for v, w in row.items():
            i, j = index[u], index[v]
            dist[i, j] = min(dist[i, j], w)
            dist[j, i] = min(dist[j, i], w)
    for k in range(n):
        dist = np.minimum(dist, dist[:, k : k + 1] + dist[k : k + 1, :])
    finite = dist[np.isfinite(dist)]
    dist[~np.isfinite(dist)] = 1.5 * float(finite.max()) if finite.size else 1.0
    sq = dist**2
    centre = np.eye(n) - np.ones((n, n)) / n
    gram = -0.5 * centre @ sq @ centre
    values, vectors = np.linalg.eigh(gram)
    order = np.argsort(values)[::-1][:2]
    coords = vectors[:, order] * np.sqrt(np.maximum(values[order], 0.0))
    # Stress majorisation with weights 1/d² (local distances matter most): MDS of
    # a lane grid bends the aisles; a few dozen sweeps straighten them.
    weight = np.zeros_like(dist)
    off = dist > 0
    weight[off] = dist[off] ** -2
    total = weight.sum(axis=1, keepdims=True)
    for _ in range(60):
        delta = coords[:, None, :] - coords[None, :, :]
        norm = np.sqrt((delta**2).sum(axis=2))
        norm[norm == 0] = 1e-9
        pull = coords[None, :, :] + (dist / norm)[:, :, None] * delta
        coords = (weight[:, :, None] * pull).sum(axis=1) / np.maximum(total, 1e-12)
    out: dict[str, tuple[float, float]] = {}
    taken: set[tuple[int, int]] = set()
    for i, node in enumerate(ids):
        x, y = float(coords[i, 0]), float(coords[i, 1]) if coords.shape[1] > 1 else 0.0
        while (round(x * 10), round(y * 10)) in taken:  # coincident nodes: nudge apart
            x, y = x + 0.7, y + 0.4
        taken.add((round(x * 10), round(y * 10)))
        out[node] = (x, y)
    return out


def layout_positions(doc: LotDocument) -> dict[str, tuple[float, float]]:
    """Coordinates for every node, for drawing only (lengths come from the lot).

    Lane nodes keep the coordinates the document gives when all of them have
    some; otherwise the lane graph is laid out by classical MDS of its
    shortest-path distances. Spots are put beside their access lane node
    (alternating sides of the aisle) or along the lane they sit on.
    """
    spots = {s["id"] for s in doc["spots"]}
    lane_nodes = [n["id"] for n in doc["graph"]["nodes"]]
    edges = doc["graph"]["edges"]
    given = {n["id"]: (float(n["x_m"]), float(n["y_m"])) for n in doc["graph"]["nodes"] if "x_m" in n and "y_m" in n}
    if len(given) == len(lane_nodes):
        pos = dict(given)
    else:
        adjacency: dict[str, dict[str, float]] = defaultdict(dict)
        for e in edges:
            if e["from"] in spots or e["to"] in spots:
                continue
            adjacency[e["from"]][e["to"]] = float(e["length_m"])
        pos = _mds(lane_nodes, adjacency)
    lane_neighbours: dict[str, list[str]] = defaultdict(list)
    for e in edges:
        if e["from"] not in spots and e["to"] not in spots:
            lane_neighbours[e["from"]].append(e["to"])
            lane_neighbours[e["to"]].append(e["from"])
    ins: dict[str, list[tuple[str, float]]] = defaultdict(list)
    outs: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for e in edges:
        if e["to"] in spots and e["from"] not in spots:
            ins[e["to"]].append((e["from"], float(e["length_m"])))
        if e["from"] in spots and e["to"] not in spots:
            outs[e["from"]].append((e["to"], float(e["length_m"])))
    side_count: dict[str, int] = defaultdict(int)
    for spot in doc["spots"]:
        sid = spot["id"]
        into = ins.get(sid) or outs.get(sid) or []
        if not into:
            pos[sid] = (0.0, 0.0)
            continue
        anchor, depth = into[0]
        ax, ay = pos[anchor]
        other = [n for n, _ in outs.get(sid, []) if n != anchor]
        if other:  # the spot sits along a lane anchor -> other
            bx, by = pos[other[0]]
            out_len = dict(outs[sid])[other[0]]
            frac = depth / (depth + out_len) if depth + out_len > 0 else 0.5
            tx, ty = bx - ax, by - ay
            base = (ax + frac * tx, ay + frac * ty)
            depth = 3.0
        else:
            neigh = lane_neighbours.get(anchor, [])
            if len(neigh) >= 2:
                (px, py), (qx, qy) = pos[neigh[0]], pos[neigh[-1]]
                tx, ty = qx - px, qy - py
            elif neigh:
                tx, ty = pos[neigh[0]][0] - ax, pos[neigh[0]][1] - ay
            else:
                tx, ty = 1.0, 0.0
            base = (ax, ay)
        norm = math.hypot(tx, ty) or 1.0
        nx, ny = -ty / norm, tx / norm
        k = side_count[anchor]
        side_count[anchor] += 1
        sign = 1.0 if k % 2 == 0 else -1.0
        reach = depth * (1 + k // 2)
        pos[sid] = (base[0] + sign * reach * nx, base[1] + sign * reach * ny)
    return pos


# ---------------------------------------------------------------- forward
def _check_id(kind: str, value: str) -> None:
    if not value or _BAD_ID.search(value):
        raise SumoNetError(f"{kind} id {value!r} cannot be a SUMO id (no whitespace or any of | \\ ; , ' \" < > &)")


def _safe_id(value: str) -> str:
    """A foreign id made usable as a node or spot id everywhere (SUMO, TOML, URLs of the fog's API)."""
    return _BAD_ID.sub("_", value) or "_"


def _param(parent: ET.Element, key: str, value: Any) -> None:
    ET.SubElement(parent, "param", key=key, value=str(value))


def _write_xml(root: ET.Element, path: Path) -> None:
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)


def write_sumo_network(doc: LotDocument, out_dir: Path, name: str = "lot", *, netconvert_log: bool = True) -> SumoNetwork:
    """Write plain XML for the lot, run netconvert, and write the parking areas.

    Produces ``<name>.net.xml`` and ``<name>.parking.add.xml`` in ``out_dir``
    (plus the plain ``.nod/.edg/.con.xml`` inputs, kept for inspection).
    The lot is validated with the engine's own graph first.
    """
    graph = lot_graph(doc)  # refuses unroutable lots with the engine's message
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spots = {s["id"]: s for s in doc["spots"]}
    kinds = {s: "spot" for s in spots} | {n["id"]: n["kind"] for n in doc["graph"]["nodes"]}
    for node_id in kinds:
        _check_id("node", node_id)
    pos = layout_positions(doc)

    nodes = ET.Element("nodes")
    order = 0
    for node_id in [*(n["id"] for n in doc["graph"]["nodes"]), *spots]:
        x, y = pos[node_id]
        node = ET.SubElement(nodes, "node", id=node_id, x=f"{x:.3f}", y=f"{y:.3f}", type="priority")
        _param(node, _PARAM_KIND, kinds[node_id])
        _param(node, _PARAM_ORDER, order if kinds[node_id] != "spot" else list(spots).index(node_id))
        order += kinds[node_id] != "spot"

    edge_ids: dict[tuple[str, str], str] = {}
    used_ids: set[str] = set()
    edges = ET.Element("edges")
    for index, e in enumerate(doc["graph"]["edges"]):
        u, v = e["from"], e["to"]
        edge_id = f"{u}~{v}"
        if edge_id in used_ids:  # ids containing "~" can collide
            edge_id = f"{u}~{v}~{index}"
        used_ids.add(edge_id)
        edge_ids[(u, v)] = edge_id
        spot_edge = u in spots or v in spots
        el = ET.SubElement(
            edges,
            "edge",
            id=edge_id,
            attrib={"from": u, "to": v},
            numLanes="1",
            speed=repr(float(e["speed_mps"])),
            length=repr(float(e["length_m"])),
            priority="1" if spot_edge else "2",
        )
        _param(el, _PARAM_CAPACITY, int(e["capacity"]))
        _param(el, _PARAM_ORDER, index)

    connections = ET.Element("connections")
    into: dict[str, list[str]] = defaultdict(list)
    out_of: dict[str, list[str]] = defaultdict(list)
    for (u, v), edge_id in edge_ids.items():
        out_of[u].append(edge_id)
        into[v].append(edge_id)
    for node_id, kind in kinds.items():
        if kind == "exit":
            continue  # routes never pass through an exit
        for a in into[node_id]:
            for b in out_of[node_id]:
                ET.SubElement(connections, "connection", attrib={"from": a, "to": b, "fromLane": "0", "toLane": "0"})

    base = out_dir / name
    nod, edg, con = (Path(f"{base}.nod.xml"), Path(f"{base}.edg.xml"), Path(f"{base}.con.xml"))
    _write_xml(nodes, nod)
    _write_xml(edges, edg)
    _write_xml(connections, con)
    net_file = Path(f"{base}.net.xml")
    cmd = [
        sumo_binary("netconvert"),
        "--node-files", str(nod),
        "--edge-files", str(edg),
        "--connection-files", str(con),
        "--output-file", str(net_file),
        "--no-internal-links", "true",
        "--no-turnarounds", "true",
        "--offset.disable-normalization", "true",
        "--junctions.corner-detail", "0",
        "--junctions.limit-turn-speed", "-1",
        "--default.lanewidth", "2.5",
        "--geometry.remove", "false",
        "--no-warnings", "true",
        "--default.junctions.keep-clear", "false",
    ]
    log = Path(f"{base}.netconvert.log")
    with log.open("w") as out:
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        raise SumoNetError(f"netconvert failed ({result.returncode}); see {log}: {log.read_text()[-2000:]}")
    if not netconvert_log:
        log.unlink()

    parking = ET.Element("additional")
    parking_areas: dict[tuple[str, str], str] = {}
    per_spot: dict[str, int] = defaultdict(int)
    for graph_edge in graph.edges:
        u, v = graph_edge.from_id, graph_edge.to_id
        if v not in spots:
            continue
        k = per_spot[v]
        per_spot[v] += 1
        pa_id = v if k == 0 else f"{v}.{k}"
        parking_areas[(u, v)] = pa_id
        spot = spots[v]
        el = ET.SubElement(
            parking,
            "parkingArea",
            id=pa_id,
            lane=f"{edge_ids[(u, v)]}_0",
            startPos="0",
            endPos=repr(float(graph_edge.length_m)),
            roadsideCapacity="1",
            friendlyPos="true",
            name=v,
        )
        _param(el, _PARAM_SPOT, v)
        _param(el, "fogpark.zone", spot.get("zone", "default"))
        _param(el, "fogpark.spot_kind", spot.get("kind", "normal"))
    parking_file = Path(f"{base}.parking.add.xml")
    _write_xml(parking, parking_file)
    return SumoNetwork(
        net_file=net_file,
        parking_file=parking_file,
        edge_ids=edge_ids,
        parking_areas=parking_areas,
        lot_edge_of={edge_id: pair for pair, edge_id in edge_ids.items()},
    )


# ---------------------------------------------------------------- reverse
@dataclass
class _Area:
    id: str
    lane: str
    start: float
    end: float
    capacity: int
    params: dict[str, str]


def _read_parking_areas(paths: Sequence[Path]) -> list[_Area]:
    areas: list[_Area] = []
    for path in paths:
        for el in ET.parse(path).getroot().iter("parkingArea"):
            params = {p.get("key", ""): p.get("value", "") for p in el.findall("param")}
            spaces = len(el.findall("space"))
            capacity = max(int(float(el.get("roadsideCapacity", "0"))), spaces, 1)
            areas.append(
                _Area(
                    id=el.get("id", ""),
                    lane=el.get("lane", ""),
                    start=float(el.get("startPos", "0")),
                    end=float(el.get("endPos", "nan")),
                    capacity=capacity,
                    params=params,
                )
            )
    return areas


def read_sumo_network(
    net_file: Path,
    parking_files: Sequence[Path] = (),
    *,
    lot_id: str | None = None,
    vehicle_spacing_m: float = DEFAULT_VEHICLE_SPACING_M,
) -> tuple[LotDocument, list[str]]:
    """A lot document from a SUMO network and its parking areas, plus notes on what was changed.

    Raises `SumoNetError` when the result is not a routable lot (the engine's
    own message says which spot cannot be reached or left).
    """
    import sumolib

    net = sumolib.net.readNet(str(net_file), withInternal=False)
    notes: list[str] = []
    net_edges = [e for e in net.getEdges() if e.getFunction() != "internal"]
    usable = [e for e in net_edges if e.allows("passenger")]
    if len(usable) < len(net_edges):
        notes.append(f"skipped {len(net_edges) - len(usable)} edges closed to passenger cars")

    def order_key(obj: Any, fallback: int) -> tuple[int, int]:
        raw = obj.getParam(_PARAM_ORDER)
        return (0, int(raw)) if raw is not None and raw.lstrip("-").isdigit() else (1, fallback)

    junctions = {n.getID(): n for n in net.getNodes()}
    kinds: dict[str, str] = {}
    for jid, node in junctions.items():
        kind = node.getParam(_PARAM_KIND)
        if kind is not None:
            if kind not in ("entrance", "exit", "junction", "spot"):
                raise SumoNetError(f"junction {jid!r}: parameter {_PARAM_KIND} must be entrance, exit, junction or spot, got {kind!r}")
            kinds[jid] = kind

    # Lane edges in listing order; parallel duplicates keep the shortest.
    edges: dict[tuple[str, str], dict[str, Any]] = {}
    edge_of_id: dict[str, tuple[str, str]] = {}
    edge_rank: dict[tuple[str, str], tuple[int, int]] = {}
    for fallback, e in enumerate(usable):
        u, v = e.getFromNode().getID(), e.getToNode().getID()
        if u == v:
            notes.append(f"skipped self-loop edge {e.getID()!r}")
            continue
        length = round(float(e.getLength()), 2)
        capacity_raw = e.getParam(_PARAM_CAPACITY)
        capacity = (
            int(capacity_raw)
            if capacity_raw is not None and capacity_raw.isdigit()
            else max(1, round(length * e.getLaneNumber() / vehicle_spacing_m))
        )
        item = {"from": u, "to": v, "length_m": max(length, 0.1), "speed_mps": min(float(e.getSpeed()), 40.0), "capacity": capacity}
        if (u, v) in edges:
            if length < edges[(u, v)]["length_m"]:
                edges[(u, v)] = item
            notes.append(f"parallel edges {u!r} -> {v!r}: kept the shortest")
        else:
            edges[(u, v)] = item
            edge_rank[(u, v)] = order_key(e, fallback)
        edge_of_id[e.getID()] = (u, v)
    ordered = sorted(edges, key=lambda pair: edge_rank[pair])
    edge_list = [edges[pair] for pair in ordered]

    # Spots.
    spots: list[dict[str, Any]] = []
    spot_rank: dict[str, tuple[int, int]] = {}
    foreign: dict[tuple[str, str], list[tuple[float, str, _Area]]] = defaultdict(list)
    seen_spots: set[str] = set()
    for fallback, area in enumerate(_read_parking_areas(parking_files)):
        edge_id = area.lane.rsplit("_", 1)[0]
        pair = edge_of_id.get(edge_id)
        if pair is None:
            notes.append(f"skipped parking area {area.id!r}: its lane {area.lane!r} is not a usable edge")
            continue
        end_junction = pair[1]
        if kinds.get(end_junction) == "spot":
            sid = area.params.get(_PARAM_SPOT, end_junction)
            if sid != end_junction:
                raise SumoNetError(f"parking area {area.id!r} marks spot {sid!r} but ends at junction {end_junction!r}")
            if sid not in seen_spots:
                seen_spots.add(sid)
                x, y = junctions[sid].getCoord()[:2]
                spots.append(
                    {
                        "id": sid,
                        "zone": area.params.get("fogpark.zone", "default"),
                        "kind": area.params.get("fogpark.spot_kind", "normal"),
                        "x_m": round(float(x), 3),
                        "y_m": round(float(y), 3),
                    }
                )
                spot_rank[sid] = order_key(junctions[sid], fallback)
            continue
        length = edges[pair]["length_m"]
        end = length if math.isnan(area.end) else min(max(area.end, 0.0), length)
        start = min(max(area.start, 0.0), end)
        for k in range(area.capacity):
            sid = area.id if area.capacity == 1 else f"{area.id}.{k}"
            position = end if area.capacity == 1 else start + (k + 1) * (end - start) / area.capacity
            foreign[pair].append((round(position, 2), sid, area))
    for sid, kind in kinds.items():
        if kind == "spot" and sid not in seen_spots:
            raise SumoNetError(f"junction {sid!r} is marked as a spot but no parking area leads into it")

    if not spots and not foreign:
        raise SumoNetError(f"{net_file}: no parking areas found (give the additional file with the parking areas)")
    net_neighbours: dict[str, set[str]] = defaultdict(set)
    for u, v in edges:
        net_neighbours[u].add(v)
        net_neighbours[v].add(u)
    spots.sort(key=lambda s: spot_rank[s["id"]])
    lane_nodes = [j for j in junctions if kinds.get(j) != "spot"]
    positions = {j: junctions[j].getCoord()[:2] for j in junctions}

    # Split through lanes at foreign parking positions.
    if foreign:
        id_of_pair = {pair: edge_id for edge_id, pair in edge_of_id.items()}
        new_edges: list[dict[str, Any]] = []
        for item in edge_list:
            pair = (item["from"], item["to"])
            places = sorted(foreign.get(pair, []), key=lambda t: (t[0], t[1]))
            if not places:
                new_edges.append(item)
                continue
            edge_id = id_of_pair[pair]
            shape = net.getEdge(edge_id).getLanes()[0].getShape()
            drawn = sumolib.geomhelper.polyLength(shape) or 1.0
            length = float(item["length_m"])
            access: dict[float, str] = {}
            for position, _, _ in places:
                if position <= 0.05:
                    access[position] = item["from"]
                elif position >= length - 0.05:
                    access[position] = item["to"]
                else:
                    node_id = f"{edge_id}@{position:.2f}"
                    access[position] = node_id
                    if node_id not in kinds:
                        kinds[node_id] = "junction"
                        lane_nodes.append(node_id)
                        positions[node_id] = sumolib.geomhelper.positionAtShapeOffset(
                            shape, position / length * drawn
                        )
            previous, offset = item["from"], 0.0
            for position in sorted(p for p, n in access.items() if n not in pair):
                seg = position - offset
                new_edges.append(
                    {**item, "to": access[position], "from": previous, "length_m": round(seg, 2),
                     "capacity": max(1, round(seg / vehicle_spacing_m))}
                )
                previous, offset = access[position], position
            seg = max(length - offset, 0.1)
            new_edges.append(
                {**item, "from": previous, "length_m": round(seg, 2),
                 "capacity": item["capacity"] if offset == 0.0 else max(1, round(seg / vehicle_spacing_m))}
            )
            for position, sid, area in places:
                node_id = access[position]
                x, y = positions[node_id][:2]
                spots.append(
                    {
                        "id": sid,
                        "zone": area.params.get("fogpark.zone", "default"),
                        "kind": area.params.get("fogpark.spot_kind", "normal"),
                        "x_m": round(float(x), 3),
                        "y_m": round(float(y), 3),
                    }
                )
                for u, v in ((node_id, sid), (sid, node_id)):
                    new_edges.append(
                        {"from": u, "to": v, "length_m": DEFAULT_SPOT_DEPTH_M,
                         "speed_mps": DEFAULT_SPOT_SPEED_MPS, "capacity": 1}
                    )
        edge_list = new_edges
        notes.append(
            f"split {len(foreign)} lanes at the positions of {sum(map(len, foreign.values()))} parking spaces"
        )

    # Node kinds where the network does not say.
    ins: dict[str, int] = defaultdict(int)
    outs: dict[str, int] = defaultdict(int)
    for item in edge_list:
        outs[item["from"]] += 1
        ins[item["to"]] += 1
    lane_nodes = [j for j in lane_nodes if ins[j] or outs[j]]
    for j in lane_nodes:
        if j not in kinds:
            kinds[j] = "entrance" if not ins[j] else "exit" if not outs[j] else "junction"
    if not any(kinds[j] == "entrance" for j in lane_nodes) or not any(kinds[j] == "exit" for j in lane_nodes):
        gates = [
            j for j in lane_nodes
            if kinds[j] == "junction" and junctions.get(j) is not None and junctions[j].getParam(_PARAM_KIND) is None
            and len(net_neighbours.get(j, set())) == 1 and ins[j] and outs[j]
        ]
        if not gates:
            raise SumoNetError(
                "cannot tell the lot's entrances and exits: mark junctions with the parameter "
                f"{_PARAM_KIND}=entrance / exit (netedit: junction > parameters)"
            )
        for j in gates:
            exit_id = f"{j}.exit"
            kinds[j] = "entrance"
            kinds[exit_id] = "exit"
            lane_nodes.append(exit_id)
            positions[exit_id] = positions[j]
            edge_list = [{**x, "to": exit_id} if x["to"] == j else x for x in edge_list]
        notes.append(f"split {len(gates)} fringe dead ends into an entrance and an exit each: {', '.join(gates)}")

    nodes = []
    for j in lane_nodes:
        x, y = positions[j][:2]
        nodes.append({"id": j, "kind": kinds[j], "x_m": round(float(x), 3), "y_m": round(float(y), 3)})
    node_rank = {j: order_key(junctions[j], i) if j in junctions else (2, i) for i, j in enumerate(lane_nodes)}
    nodes.sort(key=lambda n: node_rank[n["id"]])
    spots, nodes, edge_list = _sanitised(spots, nodes, edge_list, notes)
    name = lot_id or Path(net_file).name.split(".")[0]
    safe_id = re.sub(r"[^A-Za-z0-9_-]", "-", name) or "lot"
    doc: LotDocument = {
        "lot": {"id": safe_id, "name": name},
        "spots": spots,
        "graph": {"nodes": nodes, "edges": edge_list},
    }
    try:
        lot_graph(doc)
    except ValueError as err:
        raise SumoNetError(f"{net_file}: not a routable lot: {err}") from None
    return doc, notes


def _sanitised(
    spots: list[dict[str, Any]], nodes: list[dict[str, Any]], edges: list[dict[str, Any]], notes: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Rename ids a SUMO network allows but a lot file or a SUMO id list does not (OSM: spaces, commas)."""
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for item in [*spots, *nodes]:
        old = item["id"]
        new = _safe_id(old)
        while new in taken:
            new += "_"
        taken.add(new)
        mapping[old] = new
    renamed = sum(1 for k, v in mapping.items() if k != v)
    if not renamed:
        return spots, nodes, edges
    notes.append(f"renamed {renamed} ids with characters a lot file cannot use")
    return (
        [{**item, "id": mapping[item["id"]]} for item in spots],
        [{**item, "id": mapping[item["id"]]} for item in nodes],
        [{**e, "from": mapping[e["from"]], "to": mapping[e["to"]]} for e in edges],
    )
