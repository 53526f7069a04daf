"""SUMO with the fog engine in the loop, through TraCI.

Two kinds of run, both on the SUMO network written by `sumo_net` from the
same lot document the fog loads:

* `run_probe_trial` — the lot frozen in a given state (``k`` free spots,
  background traffic at a given congestion); one probe vehicle arrives at
  the entrance and is either guided by the engine (`SpotSelector.select`,
  fed with the vehicle counts SUMO has on every lane at that moment) or
  follows the traditional search (`traditional_search`, given the same
  counts). Sweeps (a) and (b) are made of these.
* `run_published_setting` — the lot live: initial occupancy uniform in
  [0, 90 %], arrivals and departures as Poisson processes (10 and 5 per
  minute), the lot "full" above 80 %. Every arrival is guided by the engine
  (FogPark run) or searches (baseline run, `SweepDriver` deciding at each
  node with what the driver sees then); parked vehicles leave through the
  lot, so the traffic is the lot's own. "Full above 80 %": an arrival is
  turned away while occupied spots plus vehicles already inbound exceed
  80 % of the capacity (without it arrivals at twice the departure rate
  fill the lot and searchers circle forever). A departure is a uniformly
  drawn parked vehicle that drives the fastest way out; its spot is free
  when SUMO reports it has left the parking area. A driver not parked 15
  minutes after entering gives up (counted, never averaged in).

What is measured comes from SUMO's outputs: the ``tripinfo`` file gives the
time a vehicle was due at the entrance (``depart − departDelay``, so a queue
at the gate counts), the ``stopinfo`` file the time it was parked
(``started`` of its parking stop); the arrival time is their difference.
Driven distance is SUMO's odometer when parking starts. The engine's own
ETA is recorded beside it, never used as the measurement.

Background traffic ("congestion" c): drivers still cruising for a spot
circulate on every lane chain of the lot (an aisle down one side and back
up the other; a one-way chain closes through the shortest way back). Each
chain's density, as a fraction of jam density (one vehicle per
`JAM_SPACING_M`), is drawn from Beta(κc, κ(1−c)) with mean c (κ = 4 by
default, ``None`` for every chain at exactly c): congestion in a lot is
uneven, and an uneven lot is what the fog can see and a driver cannot.
Cruisers drive slower than the lane speed (`CRUISER_SPEED_FACTOR`, drivers
looking for a spot creep), are placed front-at-segment-end at the start and
get a 30 s warm-up; those SUMO cannot insert in that time are removed, and
the density actually reached is reported.

Decision: vehicles are 2.4 m long with a 3.6 m minimum gap, the 6 m jam
spacing of the lot model (`generate_lot`'s ``vehicle_spacing_m``), so that a
vehicle fits on one 2.5 m aisle segment; SUMO misplaces the rear of a
vehicle inserted on a lane shorter than itself.
Decision: drivers ignore junction foes that stand still (SUMO ``jmIgnoreFoeSpeed``
0.1 m/s). Without it a vehicle waiting to turn into its spot across a queue
in the other lane of the same aisle blocks that queue's own loop, and SUMO
deadlocks until it teleports someone; real drivers wave each other through.
Decision: a guided vehicle's spot is *held* for it (`SpotSelector.hold`)
until it parks, besides being counted on its path (`guide`). Without the
hold two vehicles arriving seconds apart can be sent to the same spot, and
the engine cannot re-route a vehicle already inside the lot (`select`
starts at an entrance).
"""

from __future__ import annotations

import contextlib
import heapq
import io
import math
import random
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fog.engine.lot_graph import LotGraph, NodeKind
from fog.engine.selection import SpotSelector, edge_density, edge_travel_time, route_congestion
from fog.engine.traditional_search import traditional_search
from fog.evaluation.lot_document import LotDocument, lot_graph
from fog.evaluation.sumo_net import SumoNetwork, sumo_binary
from fog.evaluation.sweep_driver import SweepDriver

__all__ = [
    "CRUISER_SPEED_FACTOR",
    "JAM_SPACING_M",
    "FOGPARK",
    "BASELINE",
    "LotModel",
    "lot_model",
    "ProbeResult",
    "ProbeTrial",
    "PublishedSetting",
    "PublishedResult",
    "SimSetup",
    "VehicleRecord",
    "run_probe_trial",
    "run_published_setting",
    "write_vehicle_types",
]

FOGPARK = "fogpark"
BASELINE = "baseline"
JAM_SPACING_M = 6.0
"""Jam spacing of the lot model: vehicle length + minimum gap."""
VEHICLE_LENGTH_M = 2.4
CRUISER_SPEED_FACTOR = 0.6
"""Cruisers' desired speed as a fraction of the lane speed (deviation 0.1)."""
STEP_S = 0.5
WARM_UP_S = 30.0
PROBE_TIMEOUT_S = 900.0
PARKED_FOREVER_S = 10_000_000.0


# ---------------------------------------------------------------- set-up
@dataclass(frozen=True)
class SimSetup:
    """Everything a worker process needs to run SUMO for one lot."""

    doc: LotDocument
    network: SumoNetwork
    vtypes_file: Path
    step_s: float = STEP_S


def write_vehicle_types(path: Path, cruiser_speed_factor: float = CRUISER_SPEED_FACTOR) -> Path:
    """SUMO vehicle types: arriving/parked drivers and cruisers (see the module docstring)."""
    root = ET.Element("additional")
    common = {
        "length": str(VEHICLE_LENGTH_M),
        "minGap": str(JAM_SPACING_M - VEHICLE_LENGTH_M),
        "accel": "2.6",
        "decel": "4.5",
        "sigma": "0.5",
        "vClass": "passenger",
        # Drivers turn across oncoming traffic that is standing still (see the module docstring).
        "jmIgnoreFoeSpeed": "0.1",
        "jmIgnoreFoeProb": "1",
    }
    ET.SubElement(root, "vType", {"id": "driver", "speedFactor": "1.0", "speedDev": "0.1", "color": "0,0,1", **common})
    ET.SubElement(
        root,
        "vType",
        {"id": "cruiser", "speedFactor": str(cruiser_speed_factor), "speedDev": "0.1", "color": "0.6,0.6,0.6", **common},
    )
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)
    return path


class LotModel:
    """Per-lot facts the runs need, computed once per process: graph, rings, ways out, reference times."""

    def __init__(self, doc: LotDocument) -> None:
        self.graph: LotGraph = lot_graph(doc)
        g = self.graph
        kinds = [n.kind for n in g.nodes]
        self.is_spot = [k is NodeKind.SPOT for k in kinds]
        self.spot_ids = g.spots
        self.capacity = len(self.spot_ids)
        self.lane_edges = [
            e.index for e in g.edges if not self.is_spot[g.edge_tail[e.index]] and not self.is_spot[g.edge_head[e.index]]
        ]
        self.free_flow = [e.length_m / e.free_speed_mps for e in g.edges]
        self.rings = self._rings()
        self.ring_length_m = sum(g.edges[e].length_m for ring in self.rings for e in ring)
        # Spot -> (in-edge used to park, edges of the way out); reference time per (entrance, spot).
        self._exit_cache: dict[str, list[int]] = {}
        free = SpotSelector(g)
        self.reference_s: dict[tuple[str, str], float] = {}
        for entrance in g.entrances:
            for spot in self.spot_ids:
                result = free.route(entrance, spot)
                self.reference_s[(entrance, spot)] = result.eta_s if result else math.inf

    def _rings(self) -> list[list[int]]:
        """Closed cruising loops: one per lane chain between hubs (gates excluded)."""
        g = self.graph
        lane_pairs = {(g.edge_tail[e], g.edge_head[e]): e for e in self.lane_edges}
        neighbours: dict[int, set[int]] = defaultdict(set)
        for u, v in lane_pairs:
            neighbours[u].add(v)
            neighbours[v].add(u)
        kinds = [n.kind for n in g.nodes]
        gate = {i for i, k in enumerate(kinds) if k in (NodeKind.ENTRANCE, NodeKind.EXIT)}
        chain_node = {u: kinds[u] is NodeKind.JUNCTION and len(neighbours[u]) == 2 for u in neighbours}
        seen: set[frozenset[tuple[int, int]]] = set()
        rings: list[list[int]] = []
        for hub in sorted(neighbours):
            if chain_node[hub]:
                continue
            for start in sorted(neighbours[hub]):
                seq = [hub, start]
                while chain_node.get(seq[-1], False) and seq[-1] != hub:
                    (nxt,) = neighbours[seq[-1]] - {seq[-2]}
                    seq.append(nxt)
                    if len(seq) > len(g.nodes) + 1:
                        break
                pairs = list(zip(seq, seq[1:], strict=False))
                key = frozenset(pairs) | frozenset((b, a) for a, b in pairs)
                if key in seen or gate & set(seq):
                    continue
                seen.add(key)
                fwd = [lane_pairs.get(p, -1) for p in pairs]
                bwd = [lane_pairs.get((b, a), -1) for a, b in reversed(pairs)]
                for one_way in (fwd, bwd):
                    if all(e >= 0 for e in one_way):
                        break
                else:
                    continue
                if all(e >= 0 for e in fwd) and all(e >= 0 for e in bwd):
                    rings.append(fwd + bwd)
                    continue
                back = self._lane_path(g.edge_head[one_way[-1]], g.edge_tail[one_way[0]], gate)
                if back is not None:
                    rings.append(one_way + back)
        return rings

    def _lane_path(self, source: int, target: int, avoid: set[int]) -> list[int] | None:
        """Shortest free-flow lane path (edge indices) avoiding gates; [] when source == target."""
        g = self.graph
        dist = {source: 0.0}
        parent: dict[int, int] = {}
        heap = [(0.0, source)]
        lanes = set(self.lane_edges)
        while heap:
            d, u = heapq.heappop(heap)
            if u == target:
                path = []
                while u != source:
                    e = parent[u]
                    path.append(e)
                    u = g.edge_tail[e]
                return path[::-1]
            if d > dist[u]:
                continue
            for e in g.out_edge_ids[u]:
                v = g.edge_head[e]
                if e not in lanes or v in avoid:
                    continue
                nd = d + self.free_flow[e]
                if nd < dist.get(v, math.inf):
                    dist[v] = nd
                    parent[v] = e
                    heapq.heappush(heap, (nd, v))
        return None

    def way_out(self, spot_id: str) -> list[int]:
        """Fastest free-flow edges from a spot to the nearest exit (drivers know the way out)."""
        cached = self._exit_cache.get(spot_id)
        if cached is not None:
            return cached
        g = self.graph
        source = g.node(spot_id).index
        dist = {source: 0.0}
        parent: dict[int, int] = {}
        heap = [(0.0, source)]
        found = -1
        while heap:
            d, u = heapq.heappop(heap)
            if d > dist[u]:
                continue
            if g.nodes[u].kind is NodeKind.EXIT:
                found = u
                break
            if u != source and self.is_spot[u]:
                continue
            for e in g.out_edge_ids[u]:
                v = g.edge_head[e]
                nd = d + self.free_flow[e]
                if nd < dist.get(v, math.inf):
                    dist[v] = nd
                    parent[v] = e
                    heapq.heappush(heap, (nd, v))
        if found < 0:
            raise ValueError(f"spot {spot_id!r} has no way out")
        path = []
        u = found
        while u != source:
            e = parent[u]
            path.append(e)
            u = g.edge_tail[e]
        self._exit_cache[spot_id] = path[::-1]
        return self._exit_cache[spot_id]


_MODELS: dict[tuple[str, str], LotModel] = {}


def lot_model(setup: SimSetup) -> LotModel:
    """The `LotModel` of a set-up, built once per process."""
    key = (str(setup.network.net_file), str(setup.doc["lot"]["id"]))
    model = _MODELS.get(key)
    if model is None:
        model = _MODELS[key] = LotModel(setup.doc)
    return model


# ---------------------------------------------------------------- SUMO session
@contextlib.contextmanager
def sumo_session(setup: SimSetup, seed: int, outputs: Path, extra: Sequence[str] = ()) -> Iterator[Any]:
    """A headless SUMO with a TraCI connection; the process never outlives the block."""
    import traci
    from sumolib.miscutils import getFreeSocketPort

    cmd = [
        sumo_binary("sumo"),
        "--net-file", str(setup.network.net_file),
        "--additional-files", f"{setup.vtypes_file},{setup.network.parking_file}",
        "--step-length", str(setup.step_s),
        "--seed", str(seed % 2_147_483_647),
        "--no-step-log", "true",
        "--no-warnings", "true",
        "--duration-log.disable", "true",
        "--time-to-teleport", "300",
        "--stop-output", str(outputs / "stops.xml"),
        "--stop-output.write-unfinished", "true",
        "--tripinfo-output", str(outputs / "tripinfo.xml"),
        "--tripinfo-output.write-unfinished", "true",
        "--error-log", str(outputs / "sumo.log"),
        *extra,
    ]
    proc: subprocess.Popen[bytes] | None = None
    conn: Any = None
    try:
        # Picking a free port and binding it are two steps: two workers can pick the same port and one
        # would then drive the other's SUMO. Starting SUMO under a machine-wide lock closes that race.
        with _port_lock():
            for _attempt in range(5):
                port = getFreeSocketPort()
                proc = subprocess.Popen(
                    [*cmd, "--remote-port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                try:
                    with contextlib.redirect_stdout(io.StringIO()):
                        conn = traci.connect(port, numRetries=400, proc=proc, waitBetweenRetries=0.025)
                    break
                except (traci.exceptions.TraCIException, traci.exceptions.FatalTraCIError):
                    proc.kill()
                    proc.wait()
                    proc = None
        if conn is None:
            log = outputs / "sumo.log"
            raise RuntimeError(f"SUMO did not start: {log.read_text()[-1000:] if log.exists() else 'no log'}")
        ours = str(outputs / "tripinfo.xml")
        if conn.simulation.getOption("tripinfo-output") != ours:
            conn = None  # someone else's SUMO: do not close it, it is not ours
            raise RuntimeError("connected to a SUMO that is not this run's (port taken by another process)")
        yield conn
    finally:
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
        if proc is not None:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def _port_lock() -> Iterator[None]:
    """Serialise SUMO start-ups of every FogPark evaluation on this machine (``fcntl`` lock)."""
    import fcntl

    path = Path(tempfile.gettempdir()) / "fogpark-sumo-start.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _outputs(outputs: Path) -> tuple[dict[str, float], dict[str, tuple[float, str]]]:
    """From SUMO's files: vehicle -> time due at its start; vehicle -> (parking start, parking area)."""
    due: dict[str, float] = {}
    for el in ET.parse(outputs / "tripinfo.xml").getroot().iter("tripinfo"):
        depart = float(el.get("depart", "nan"))
        delay = float(el.get("departDelay", "0"))
        due[el.get("id", "")] = depart - delay
    parked: dict[str, tuple[float, str]] = {}
    for el in ET.parse(outputs / "stops.xml").getroot().iter("stopinfo"):
        vid = el.get("id", "")
        area = el.get("parkingArea")
        if area and vid not in parked:
            parked[vid] = (float(el.get("started", "nan")), area)
    return due, parked


def _lot_counts(conn: Any, network: SumoNetwork, vehicles: Sequence[str], model: LotModel) -> dict[int, int]:
    """Vehicles per lot edge index, from SUMO's positions of ``vehicles``."""
    g = model.graph
    counts: Counter[int] = Counter()
    for vid in vehicles:
        road = conn.vehicle.getRoadID(vid)
        pair = network.lot_edge_of.get(road)
        if pair is not None:
            edge = g.edge_between(*pair)
            if edge is not None:
                counts[edge.index] += 1
    return dict(counts)


def _times(model: LotModel, counts: Mapping[int, int]) -> list[float]:
    g = model.graph
    return [
        edge_travel_time(e.length_m, e.free_speed_mps, edge_density(counts.get(e.index, 0), e.capacity_vehicles))
        for e in g.edges
    ]


# ---------------------------------------------------------------- background cruisers
def _place_cruisers(
    conn: Any, setup: SimSetup, model: LotModel, congestion: float, concentration: float | None, rng: random.Random, horizon_s: float
) -> int:
    """Put circulating cruisers on every ring; returns how many were asked for."""
    g = model.graph
    network = setup.network
    asked = 0
    for r, ring in enumerate(model.rings):
        length = sum(g.edges[e].length_m for e in ring)
        if concentration is None or congestion <= 0.0 or congestion >= 1.0:
            density = congestion
        else:
            density = rng.betavariate(concentration * congestion, concentration * (1.0 - congestion))
        wanted = round(density * length / JAM_SPACING_M)
        if wanted <= 0:
            continue
        spacing = max(JAM_SPACING_M, length / wanted)
        ends: list[tuple[float, int]] = []
        acc = 0.0
        for j, e in enumerate(ring):
            acc += g.edges[e].length_m
            ends.append((acc, j))
        start = rng.randrange(len(ring))
        order = ends[start:] + [(a + length, j) for a, j in ends[:start]]
        placed: list[tuple[float, int]] = []
        for at, j in order:
            if placed and at - placed[-1][0] < spacing - 1e-9:
                continue
            if placed and placed[0][0] + length - at < JAM_SPACING_M - 1e-9:
                break
            placed.append((at, j))
            if len(placed) >= wanted:
                break
        repeats = int(horizon_s * 6.0 / length) + 2
        ids = [network.edge_ids[(g.edges[e].from_id, g.edges[e].to_id)] for e in ring]
        for k, (_, j) in enumerate(placed):
            route_id = f"ring{r}_{k}"
            conn.route.add(route_id, (ids[j:] + ids[:j]) * repeats)
            conn.vehicle.add(
                f"bg{r}_{k}", route_id, typeID="cruiser", depart="now",
                departPos=str(g.edges[ring[j]].length_m), departSpeed="0",
            )
        asked += len(placed)
    return asked


# ---------------------------------------------------------------- sweeps (a) and (b)
@dataclass(frozen=True)
class ProbeTrial:
    """One frozen-lot trial: which sweep point, which seed, which method."""

    sweep: str
    point: float
    seed: int
    method: str
    free_spots: int
    congestion: float
    concentration: float | None = 4.0
    free: tuple[str, ...] | None = None
    """The free spots, when given (tests); otherwise ``free_spots`` drawn by the seed."""


@dataclass(frozen=True)
class ProbeResult:
    """What one probe vehicle did, measured by SUMO."""

    trial: ProbeTrial
    spot_id: str | None
    path: tuple[str, ...]
    parked: bool
    arrival_time_s: float
    searching_time_s: float
    driven_m: float
    engine_eta_s: float
    route_congestion: float
    lane_density: float
    cruisers: int
    teleported: bool
    wall_s: float
    observed: tuple[tuple[str, str, int], ...] = ()
    """Vehicles SUMO had on each lane when the probe arrived (what the engine was fed)."""
    collisions: int = 0
    """Vehicles SUMO reported in a collision during the run (any vehicle)."""
    cruiser_density: float = math.nan
    """Cruisers × jam spacing / total loop length: the congestion actually reached."""


def _trial_rng(trial: ProbeTrial) -> random.Random:
    """Same state for both methods of a sweep point and seed (paired comparison)."""
    return random.Random(f"{trial.sweep}|{trial.point!r}|{trial.seed}")


def run_probe_trial(setup: SimSetup, trial: ProbeTrial) -> ProbeResult:
    """One probe vehicle into a frozen lot; see the module docstring."""
    import time

    import traci.constants as tc

    started = time.perf_counter()
    model = lot_model(setup)
    g = model.graph
    rng = _trial_rng(trial)
    drawn = rng.sample(list(model.spot_ids), min(trial.free_spots, model.capacity))
    free = set(trial.free) if trial.free is not None else set(drawn)
    entrance = rng.choice(g.entrances)
    sumo_seed = rng.randrange(1, 2**31 - 1)
    with tempfile.TemporaryDirectory(prefix="fogpark-sumo-") as tmp:
        outputs = Path(tmp)
        teleported = False
        collisions = 0
        driven = math.nan
        with sumo_session(setup, sumo_seed, outputs) as conn:
            _place_cruisers(conn, setup, model, trial.congestion, trial.concentration, rng, PROBE_TIMEOUT_S + WARM_UP_S)
            conn.simulation.subscribe(
                [tc.VAR_PARKING_STARTING_VEHICLES_IDS, tc.VAR_TELEPORT_STARTING_VEHICLES_IDS, tc.VAR_COLLIDING_VEHICLES_IDS]
            )
            while conn.simulation.getTime() < WARM_UP_S - 1e-9:
                conn.simulationStep()
                collisions += len(conn.simulation.getSubscriptionResults().get(tc.VAR_COLLIDING_VEHICLES_IDS, ()))
            for vid in conn.simulation.getPendingVehicles():
                conn.vehicle.remove(vid)
            cruisers = [v for v in conn.vehicle.getIDList() if v.startswith("bg")]
            counts = _lot_counts(conn, setup.network, cruisers, model)
            densities = {e: edge_density(counts.get(e, 0), g.edges[e].capacity_vehicles) for e in model.lane_edges}
            lane_density = sum(densities.values()) / max(1, len(densities))
            if trial.method == FOGPARK:
                selector = SpotSelector(g, occupied=[s for s in model.spot_ids if s not in free])
                for e in model.lane_edges:
                    edge = g.edges[e]
                    selector.set_observed_vehicles(edge.from_id, edge.to_id, counts.get(e, 0))
                answer = selector.select(entrance)
                path = answer.path if answer else ()
                eta = answer.eta_s if answer else math.nan
            else:
                loads = {(g.edges[e].from_id, g.edges[e].to_id): float(n) for e, n in counts.items()}
                sweep = traditional_search(g, entrance, free, edge_vehicles=loads)
                path = sweep.path if sweep else ()
                eta = sweep.travel_time_s if sweep else math.nan
            congestion = math.nan
            if path:
                edges = [g.edge_between(u, v) for u, v in zip(path, path[1:], strict=False)]
                congestion = route_congestion(
                    [edge_density(counts.get(e.index, 0), e.capacity_vehicles) for e in edges if e is not None]
                )
                conn.route.add("probe_route", setup.network.route(path))
                conn.vehicle.add("probe", "probe_route", typeID="driver", depart="now", departPos="base", departSpeed="max")
                conn.vehicle.setParkingAreaStop("probe", setup.network.parking_areas[(path[-2], path[-1])], duration=PARKED_FOREVER_S)
                limit = conn.simulation.getTime() + PROBE_TIMEOUT_S
                while conn.simulation.getTime() < limit:
                    conn.simulationStep()
                    events = conn.simulation.getSubscriptionResults()
                    collisions += len(events.get(tc.VAR_COLLIDING_VEHICLES_IDS, ()))
                    if "probe" in events.get(tc.VAR_TELEPORT_STARTING_VEHICLES_IDS, ()):
                        teleported = True
                    if "probe" in events.get(tc.VAR_PARKING_STARTING_VEHICLES_IDS, ()):
                        driven = conn.vehicle.getDistance("probe")
                        break
        due, parked_at = _outputs(outputs)
    spot = path[-1] if path else None
    parked = "probe" in parked_at
    arrival = parked_at["probe"][0] - due["probe"] if parked else math.nan
    reference = model.reference_s.get((entrance, spot), math.nan) if spot else math.nan
    return ProbeResult(
        trial=trial,
        spot_id=spot,
        path=tuple(path),
        parked=parked,
        arrival_time_s=arrival,
        searching_time_s=arrival - reference,
        driven_m=driven,
        engine_eta_s=eta,
        route_congestion=congestion,
        lane_density=lane_density,
        cruisers=len(cruisers),
        teleported=teleported,
        wall_s=time.perf_counter() - started,
        observed=tuple(
            (g.edges[e].from_id, g.edges[e].to_id, n) for e, n in sorted(counts.items()) if n
        ),
        collisions=collisions,
        cruiser_density=len(cruisers) * JAM_SPACING_M / model.ring_length_m if model.ring_length_m else math.nan,
    )


# ---------------------------------------------------------------- the published setting
@dataclass(frozen=True)
class PublishedSetting:
    """The published SUMO scenario; every number is the publication's except where noted."""

    method: str
    seed: int
    duration_s: float = 1800.0
    arrivals_per_min: float = 10.0
    departures_per_min: float = 5.0
    max_initial_occupancy: float = 0.9
    full_above: float = 0.8
    give_up_s: float = 900.0
    drain_s: float = 900.0


@dataclass(frozen=True)
class VehicleRecord:
    """One arriving vehicle of the published setting."""

    vehicle_id: str
    due_s: float
    parked: bool
    arrival_time_s: float
    searching_time_s: float
    driven_m: float
    spot_id: str | None
    gave_up: bool
    teleported: bool


@dataclass(frozen=True)
class PublishedResult:
    """A whole run: every admitted vehicle, plus what the lot went through."""

    setting: PublishedSetting
    vehicles: tuple[VehicleRecord, ...]
    arrivals: int
    turned_away: int
    departures: int
    initial_occupancy: float
    mean_occupancy: float
    wall_s: float
    sim_s: float
    notes: tuple[str, ...] = field(default=())
    collisions: int = 0


def _poisson_times(rng: random.Random, per_min: float, until_s: float) -> list[float]:
    times, t = [], 0.0
    while per_min > 0:
        t += rng.expovariate(per_min / 60.0)
        if t >= until_s:
            break
        times.append(t)
    return times


class _PublishedRun:
    """State of one live run; `run_published_setting` drives it step by step."""

    def __init__(self, setup: SimSetup, setting: PublishedSetting, conn: Any) -> None:
        self.setup = setup
        self.setting = setting
        self.conn = conn
        self.model = model = lot_model(setup)
        self.g = model.graph
        self.network = setup.network
        rng = random.Random(f"published|{setting.seed}")
        self.initial_fraction = rng.uniform(0.0, setting.max_initial_occupancy)
        self.initial = sorted(rng.sample(list(model.spot_ids), round(self.initial_fraction * model.capacity)))
        self.horizon = setting.duration_s + setting.drain_s
        self.arrival_times = _poisson_times(rng, setting.arrivals_per_min, setting.duration_s)
        self.arrival_entrances = [rng.choice(self.g.entrances) for _ in self.arrival_times]
        self.departure_times = _poisson_times(rng, setting.departures_per_min, self.horizon)
        self.departure_draws = [rng.random() for _ in self.departure_times]
        self.selector = SpotSelector(self.g, occupied=self.initial) if setting.method == FOGPARK else None
        self.occupied: set[str] = set(self.initial)  # a vehicle is in the spot (maybe about to leave)
        self.claimed: dict[str, str] = {}  # spot -> inbound vehicle heading for it
        self.target: dict[str, str] = {}  # inbound vehicle -> spot it heads for
        self.spot_of: dict[str, str] = {}  # vehicle in a spot -> spot
        self.parked_now: set[str] = set()  # SUMO says parked and not yet asked to leave
        self.inbound: dict[str, str] = {}  # admitted vehicle -> its entrance, until parked or gave up
        self.drivers: dict[str, SweepDriver] = {}
        self.entered: dict[str, float] = {}
        self.driven: dict[str, float] = {}
        self.leaving: set[str] = set()
        self.gave_up: set[str] = set()
        self.teleported: set[str] = set()
        self.admitted: list[str] = []
        self.road_of: dict[str, str] = {}
        self.observed: dict[int, int] = {}
        self.turned_away = 0
        self.collisions = 0
        self.departures = 0
        self.occupancy_samples: list[float] = []
        self.notes: list[str] = []

    # -------------------------------------------------------------- helpers
    def _sumo_edge(self, e: int) -> str:
        edge = self.g.edges[e]
        return self.network.edge_ids[(edge.from_id, edge.to_id)]

    def _counts(self, vehicles: Sequence[str]) -> dict[int, int]:
        counts: Counter[int] = Counter()
        for vid in vehicles:
            pair = self.network.lot_edge_of.get(self.road_of.get(vid, ""))
            if pair is not None:
                edge = self.g.edge_between(*pair)
                if edge is not None:
                    counts[edge.index] += 1
        return dict(counts)

    def _add(self, vid: str, edges: Sequence[str], parking_area: str | None) -> None:
        self.conn.route.add(f"r_{vid}", list(edges))
        self.conn.vehicle.add(vid, f"r_{vid}", typeID="driver", depart="now", departPos="base", departSpeed="max")
        if parking_area is not None:
            self.conn.vehicle.setParkingAreaStop(vid, parking_area, duration=PARKED_FOREVER_S)

    # -------------------------------------------------------------- events
    def place_initial(self) -> None:
        """Vehicles already parked at t = 0 (inserted on their spot's lane, parking at once)."""
        for spot in self.initial:
            vid = f"parked_{spot}"
            edge = self.g.in_edges(spot)[0]
            pair = (edge.from_id, edge.to_id)
            self.conn.route.add(f"r_{vid}", [self.network.edge_ids[pair]])
            self.conn.vehicle.add(vid, f"r_{vid}", typeID="driver", depart="0", departPos="stop", departSpeed="0")
            self.conn.vehicle.setParkingAreaStop(vid, self.network.parking_areas[pair], duration=PARKED_FOREVER_S)
            self.spot_of[vid] = spot

    def arrive(self, index: int, now: float) -> None:
        """A vehicle at the entrance: turned away when the lot is full, else guided or searching."""
        vid = f"car{index}"
        entrance = self.arrival_entrances[index]
        if len(self.occupied) + len(self.inbound) > self.setting.full_above * self.model.capacity:
            self.turned_away += 1
            return
        if self.selector is not None:
            fresh = self._counts([v for v in self.road_of if v in self.leaving])
            for e in set(self.observed) | set(fresh):
                if self.observed.get(e, 0) != fresh.get(e, 0):
                    edge = self.g.edges[e]
                    self.selector.set_observed_vehicles(edge.from_id, edge.to_id, fresh.get(e, 0))
            self.observed = fresh
            answer = self.selector.select(entrance)
            if answer is None:
                self.notes.append(f"{vid}: no eligible spot at t={now:.1f}; turned away")
                self.turned_away += 1
                return
            self.selector.guide(vid, answer.path)
            self.selector.hold(answer.spot_id, vid)
            self.claimed[answer.spot_id] = vid
            self.target[vid] = answer.spot_id
            pair = (answer.path[-2], answer.path[-1])
            self._add(vid, self.network.route(answer.path), self.network.parking_areas[pair])
        else:
            driver = SweepDriver(self.g, entrance)
            self.drivers[vid] = driver
            first = driver.decide(lambda _spot: False, self.model.free_flow)  # no spots hang on an entrance
            if first.parks:
                raise RuntimeError("an entrance leads straight into a spot")
            self._add(vid, [self._sumo_edge(first.edge)], None)
        self.inbound[vid] = entrance
        self.admitted.append(vid)

    def depart(self, draw: float) -> None:
        """A uniformly chosen parked vehicle drives to the nearest exit."""
        ready = sorted(self.parked_now)
        if not ready:
            return
        vid = ready[int(draw * len(ready))]
        spot = self.spot_of[vid]
        current = self.conn.vehicle.getRoadID(vid)
        self.conn.vehicle.setRoute(vid, [current, *(self._sumo_edge(e) for e in self.model.way_out(spot))])
        self.conn.vehicle.resume(vid)
        self.parked_now.discard(vid)
        self.leaving.add(vid)
        self.conn.vehicle.subscribe(vid, [_ROAD])
        self.departures += 1

    def parked(self, vid: str) -> None:
        self.parked_now.add(vid)
        if vid not in self.inbound:
            return  # one of the initially parked vehicles
        spot = self.target.pop(vid)
        del self.inbound[vid]
        self.claimed.pop(spot, None)
        self.occupied.add(spot)
        self.spot_of[vid] = spot
        self.driven[vid] = self.conn.vehicle.getDistance(vid)
        self.drivers.pop(vid, None)
        if vid in self.road_of:
            self.conn.vehicle.unsubscribe(vid)
            del self.road_of[vid]
        if self.selector is not None:
            self.selector.release(vid)
            self.selector.clear_hold(spot)
            self.selector.set_occupied(spot, True)

    def left_spot(self, vid: str) -> None:
        spot = self.spot_of.pop(vid, None)
        if spot is None:
            return
        self.occupied.discard(spot)
        if self.selector is not None:
            self.selector.set_occupied(spot, False)

    def searcher_moved(self, vid: str, road: str) -> None:
        """A searching driver entered a lane: he decides what to do at its end."""
        driver = self.drivers.get(vid)
        pair = self.network.lot_edge_of.get(road)
        if driver is None or pair is None or self.g.node(pair[1]).index != driver.node:
            return
        if self.model.is_spot[driver.node]:
            return  # turning into his spot
        loads = self._counts([v for v in self.road_of if v != vid])
        decision = driver.decide(lambda s: s not in self.occupied and s not in self.claimed, _times(self.model, loads))
        edge = self.g.edges[decision.edge]
        self.conn.vehicle.setRoute(vid, [road, self._sumo_edge(decision.edge)])
        if decision.parks:
            self.claimed[edge.to_id] = vid
            self.target[vid] = edge.to_id
            self.conn.vehicle.setParkingAreaStop(
                vid, self.network.parking_areas[(edge.from_id, edge.to_id)], duration=PARKED_FOREVER_S
            )

    def give_up_overdue(self, now: float) -> None:
        """Drivers not parked after ``give_up_s`` in the lot leave the simulation (and the statistics say so)."""
        for vid in list(self.inbound):
            if vid not in self.entered or now - self.entered[vid] <= self.setting.give_up_s:
                continue
            self.gave_up.add(vid)
            del self.inbound[vid]
            spot = self.target.pop(vid, None)
            if spot is not None:
                self.claimed.pop(spot, None)
                if self.selector is not None:
                    self.selector.release(vid)
                    self.selector.clear_hold(spot)
            self.drivers.pop(vid, None)
            self.road_of.pop(vid, None)
            self.conn.vehicle.remove(vid)

    # -------------------------------------------------------------- loop
    def run(self) -> int:
        """Step SUMO until the arrivals are over and every admitted vehicle parked or gave up."""
        import traci.constants as tc

        conn = self.conn
        conn.simulation.subscribe(
            [
                tc.VAR_DEPARTED_VEHICLES_IDS,
                tc.VAR_ARRIVED_VEHICLES_IDS,
                tc.VAR_PARKING_STARTING_VEHICLES_IDS,
                tc.VAR_PARKING_ENDING_VEHICLES_IDS,
                tc.VAR_TELEPORT_STARTING_VEHICLES_IDS,
                tc.VAR_COLLIDING_VEHICLES_IDS,
            ]
        )
        self.place_initial()
        ai = di = steps = 0
        sample_every = max(1, round(60.0 / self.setup.step_s))
        searching = self.selector is None
        while True:
            now = conn.simulation.getTime()
            if now >= self.horizon or (now >= self.setting.duration_s and not self.inbound):
                break
            while ai < len(self.arrival_times) and self.arrival_times[ai] <= now:
                self.arrive(ai, now)
                ai += 1
            while di < len(self.departure_times) and self.departure_times[di] <= now:
                self.depart(self.departure_draws[di])
                di += 1
            conn.simulationStep()
            steps += 1
            now = conn.simulation.getTime()
            events = conn.simulation.getSubscriptionResults()
            for vid in events.get(tc.VAR_DEPARTED_VEHICLES_IDS, ()):
                if vid in self.inbound:
                    self.entered[vid] = now
                    if searching:
                        conn.vehicle.subscribe(vid, [_ROAD])
            self.teleported.update(events.get(tc.VAR_TELEPORT_STARTING_VEHICLES_IDS, ()))
            self.collisions += len(events.get(tc.VAR_COLLIDING_VEHICLES_IDS, ()))
            for vid in events.get(tc.VAR_PARKING_STARTING_VEHICLES_IDS, ()):
                self.parked(vid)
            for vid in events.get(tc.VAR_PARKING_ENDING_VEHICLES_IDS, ()):
                self.left_spot(vid)
            for vid in events.get(tc.VAR_ARRIVED_VEHICLES_IDS, ()):
                self.leaving.discard(vid)
                self.road_of.pop(vid, None)
            for vid, values in conn.vehicle.getAllSubscriptionResults().items():
                road = values.get(_ROAD, "")
                if self.road_of.get(vid) != road:
                    self.road_of[vid] = road
                    if vid in self.drivers and vid in self.inbound:
                        self.searcher_moved(vid, road)
            self.give_up_overdue(now)
            if steps % sample_every == 0:
                self.occupancy_samples.append(len(self.occupied) / self.model.capacity)
        return steps


_ROAD = 0x50  # traci.constants.VAR_ROAD_ID


def run_published_setting(setup: SimSetup, setting: PublishedSetting) -> PublishedResult:
    """One live run of the published scenario with every arrival guided (FogPark) or searching (baseline)."""
    import time

    started = time.perf_counter()
    model = lot_model(setup)
    area_spot = {area: pair[1] for pair, area in setup.network.parking_areas.items()}
    seed = random.Random(f"published|{setting.seed}|sumo").randrange(1, 2**31 - 1)
    with tempfile.TemporaryDirectory(prefix="fogpark-sumo-") as tmp:
        outputs = Path(tmp)
        with sumo_session(setup, seed, outputs) as conn:
            run = _PublishedRun(setup, setting, conn)
            steps = run.run()
        due, parked_at = _outputs(outputs)
    records = []
    for vid in run.admitted:
        parked = vid in parked_at and vid not in run.gave_up
        spot = area_spot.get(parked_at[vid][1]) if parked else None
        arrival = parked_at[vid][0] - due[vid] if parked and vid in due else math.nan
        entrance = run.inbound.get(vid) or run.arrival_entrances[int(vid[3:])]
        reference = model.reference_s.get((entrance, spot), math.nan) if spot else math.nan
        records.append(
            VehicleRecord(
                vehicle_id=vid,
                due_s=due.get(vid, math.nan),
                parked=parked,
                arrival_time_s=arrival,
                searching_time_s=arrival - reference,
                driven_m=run.driven.get(vid, math.nan),
                spot_id=spot,
                gave_up=vid in run.gave_up,
                teleported=vid in run.teleported,
            )
        )
    return PublishedResult(
        setting=setting,
        vehicles=tuple(records),
        arrivals=len(run.arrival_times),
        turned_away=run.turned_away,
        departures=run.departures,
        initial_occupancy=len(run.initial) / model.capacity,
        mean_occupancy=(
            sum(run.occupancy_samples) / len(run.occupancy_samples) if run.occupancy_samples else math.nan
        ),
        wall_s=time.perf_counter() - started,
        sim_s=steps * setup.step_s,
        notes=tuple(run.notes),
        collisions=run.collisions,
    )
