"""Fog configuration: the daemon file, the lot file and the node registry.

All three are TOML (``tomllib``), validated at load. A wrong file raises
:class:`ConfigError` naming the file, the key path (``spots[3].kind``) and the
problem, and the daemon does not start. Formats are documented in
``fog/examples/README.md``; the embedded demo lives beside it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent / "examples"
DEMO_FOG_CONFIG = EXAMPLES / "demo-fog.toml"

SPOT_KINDS = ("normal", "accessible", "ev", "subscriber")
GRAPH_NODE_KINDS = ("entrance", "exit", "junction")


class ConfigError(ValueError):
    """A configuration file that cannot be used, with where and why."""

    def __init__(self, path: Path | str, where: str, problem: str) -> None:
        self.path = str(path)
        self.where = where
        self.problem = problem
        super().__init__(f"{path}: {where}: {problem}" if where else f"{path}: {problem}")


@dataclass(frozen=True)
class Spot:
    id: str
    zone: str
    kind: str
    x_m: float
    y_m: float


@dataclass(frozen=True)
class LaneEdge:
    src: str
    dst: str
    length_m: float
    speed_mps: float
    capacity: int


@dataclass(frozen=True)
class LotConfig:
    id: str
    name: str
    spots: tuple[Spot, ...]
    graph_nodes: dict[str, str]  # id -> kind (spots are nodes too, kind "spot")
    edges: tuple[LaneEdge, ...]
    tariff: dict[str, Any]
    opening_hours: str
    source: Path

    @property
    def capacity(self) -> int:
        return len(self.spots)

    def spot_ids(self) -> list[str]:
        return [s.id for s in self.spots]


@dataclass(frozen=True)
class NodeEntry:
    node_id: int
    spot: str
    key: bytes


@dataclass(frozen=True)
class SerialIngest:
    port: str
    baud: int
    gateway: str


@dataclass(frozen=True)
class CloudTarget:
    targets: tuple[str, ...]
    token: str
    tls_ca: Path | None
    batch_max: int
    summary_period_s: float


@dataclass(frozen=True)
class FogConfig:
    fog_id: str
    lot: LotConfig
    nodes: dict[int, NodeEntry]
    data_dir: Path
    cycle_ms: float
    api_host: str
    api_port: int
    admin_token: str
    serial: tuple[SerialIngest, ...]
    cloud: CloudTarget | None
    dedup_window_s: float
    source: Path
    extra: dict[str, Any] = field(default_factory=dict)


# --- small typed readers: each names the key it is reading ----------------


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> ConfigError:
        return ConfigError(self.path, where, problem)

    def table(self, data: dict[str, Any], key: str, where: str, required: bool = True) -> dict[str, Any]:
        value = data.get(key)
        if value is None:
            if required:
                raise self.fail(_join(where, key), "missing table")
            return {}
        if not isinstance(value, dict):
            raise self.fail(_join(where, key), f"expected a table, got {type(value).__name__}")
        return value

    def array(self, data: dict[str, Any], key: str, where: str, required: bool = True) -> list[Any]:
        value = data.get(key)
        if value is None:
            if required:
                raise self.fail(_join(where, key), "missing array")
            return []
        if not isinstance(value, list):
            raise self.fail(_join(where, key), f"expected an array, got {type(value).__name__}")
        return value

    def string(self, data: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
        value = data.get(key, default)
        if value is None:
            raise self.fail(_join(where, key), "missing (a string is required)")
        if not isinstance(value, str) or not value.strip():
            raise self.fail(_join(where, key), f"expected a non-empty string, got {value!r}")
        return value

    def number(
        self,
        data: dict[str, Any],
        key: str,
        where: str,
        default: float | None = None,
        minimum: float | None = None,
        maximum: float | None = None,
        unit: str = "",
    ) -> float:
        value = data.get(key, default)
        if value is None:
            raise self.fail(_join(where, key), f"missing (a number{_unit(unit)} is required)")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(_join(where, key), f"expected a number{_unit(unit)}, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.fail(_join(where, key), f"{value} is below the minimum {minimum}{_unit(unit)}")
        if maximum is not None and value > maximum:
            raise self.fail(_join(where, key), f"{value} is above the maximum {maximum}{_unit(unit)}")
        return float(value)

    def integer(self, data: dict[str, Any], key: str, where: str, default: int | None = None,
                minimum: int | None = None, maximum: int | None = None) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(_join(where, key), f"expected an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.fail(_join(where, key), f"{value} is below the minimum {minimum}")
        if maximum is not None and value > maximum:
            raise self.fail(_join(where, key), f"{value} is above the maximum {maximum}")
        return value

    def choice(self, data: dict[str, Any], key: str, where: str, choices: tuple[str, ...],
               default: str | None = None) -> str:
        value = self.string(data, key, where, default)
        if value not in choices:
            raise self.fail(_join(where, key), f"{value!r} is not one of {', '.join(choices)}")
        return value


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _unit(unit: str) -> str:
    return f" ({unit})" if unit else ""


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; syntax errors keep tomllib's line and column."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(path, "", f"not valid TOML: {err}") from None


# --- lot file ---------------------------------------------------------------


def load_lot(path: Path) -> LotConfig:
    """Load and validate a lot file (spots, lane graph, tariff, hours)."""
    path = Path(path)
    data = read_toml(path)
    r = _Reader(path)
    lot = r.table(data, "lot", "")
    lot_id = r.string(lot, "id", "lot")
    if not lot_id.replace("-", "").replace("_", "").isalnum():
        raise r.fail("lot.id", f"{lot_id!r} may hold only letters, digits, '-' and '_'")
    spots: list[Spot] = []
    seen: set[str] = set()
    for i, raw in enumerate(r.array(data, "spots", "")):
        where = f"spots[{i}]"
        if not isinstance(raw, dict):
            raise r.fail(where, "expected a table")
        sid = r.string(raw, "id", where)
        if sid in seen:
            raise r.fail(f"{where}.id", f"duplicate spot id {sid!r}")
        seen.add(sid)
        spots.append(
            Spot(
                id=sid,
                zone=r.string(raw, "zone", where, default="default"),
                kind=r.choice(raw, "kind", where, SPOT_KINDS, default="normal"),
                x_m=r.number(raw, "x_m", where, default=0.0, unit="m"),
                y_m=r.number(raw, "y_m", where, default=0.0, unit="m"),
            )
        )
    if not spots:
        raise r.fail("spots", "a lot needs at least one spot")
    graph = r.table(data, "graph", "", required=False)
    nodes: dict[str, str] = {s.id: "spot" for s in spots}
    for i, raw in enumerate(r.array(graph, "nodes", "graph", required=False)):
        where = f"graph.nodes[{i}]"
        if not isinstance(raw, dict):
            raise r.fail(where, "expected a table")
        nid = r.string(raw, "id", where)
        if nid in nodes:
            raise r.fail(f"{where}.id", f"duplicate node id {nid!r} (spots are graph nodes too)")
        nodes[nid] = r.choice(raw, "kind", where, GRAPH_NODE_KINDS)
    edges: list[LaneEdge] = []
    for i, raw in enumerate(r.array(graph, "edges", "graph", required=False)):
        where = f"graph.edges[{i}]"
        if not isinstance(raw, dict):
            raise r.fail(where, "expected a table")
        src = r.string(raw, "from", where)
        dst = r.string(raw, "to", where)
        for key, node in (("from", src), ("to", dst)):
            if node not in nodes:
                raise r.fail(f"{where}.{key}", f"unknown node {node!r}")
        edges.append(
            LaneEdge(
                src=src,
                dst=dst,
                length_m=r.number(raw, "length_m", where, minimum=0.1, unit="m"),
                speed_mps=r.number(raw, "speed_mps", where, default=2.8, minimum=0.1, maximum=40, unit="m/s"),
                capacity=r.integer(raw, "capacity", where, default=1, minimum=1),
            )
        )
    if edges and not any(k == "entrance" for k in nodes.values()):
        raise r.fail("graph.nodes", "a lane graph needs at least one entrance")
    tariff = r.table(data, "tariff", "", required=False)
    return LotConfig(
        id=lot_id,
        name=r.string(lot, "name", "lot", default=lot_id),
        spots=tuple(spots),
        graph_nodes=nodes,
        edges=tuple(edges),
        tariff=dict(tariff),
        opening_hours=r.string(lot, "opening_hours", "lot", default="00:00-24:00"),
        source=path,
    )


# --- node registry ------------------------------------------------------------


def load_nodes(path: Path, lot: LotConfig | None = None) -> dict[int, NodeEntry]:
    """Node registry: ``[[nodes]] node_id, spot, key`` (key = 32 hex chars)."""
    path = Path(path)
    data = read_toml(path)
    r = _Reader(path)
    out: dict[int, NodeEntry] = {}
    spots = set(lot.spot_ids()) if lot else None
    for i, raw in enumerate(r.array(data, "nodes", "", required=False)):
        where = f"nodes[{i}]"
        if not isinstance(raw, dict):
            raise r.fail(where, "expected a table")
        nid = r.integer(raw, "node_id", where, minimum=1, maximum=0xFFFFFFFF)
        if nid in out:
            raise r.fail(f"{where}.node_id", f"duplicate node id {nid:#010x}")
        spot = r.string(raw, "spot", where)
        if spots is not None and spot not in spots:
            raise r.fail(f"{where}.spot", f"spot {spot!r} is not in lot {lot.id if lot else ''!r}")
        key_hex = r.string(raw, "key", where)
        try:
            key = bytes.fromhex(key_hex)
        except ValueError:
            raise r.fail(f"{where}.key", "not hexadecimal") from None
        if len(key) != 16:
            raise r.fail(f"{where}.key", f"a 128-bit key is 32 hex characters, got {len(key_hex)}")
        out[nid] = NodeEntry(nid, spot, key)
    return out


# --- daemon file ---------------------------------------------------------------


def _host_port(r: _Reader, value: str, where: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise r.fail(where, f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def load_fog_config(path: Path | None = None) -> FogConfig:
    """The daemon file; relative paths in it are relative to the file itself."""
    path = Path(path or DEMO_FOG_CONFIG).resolve()
    data = read_toml(path)
    r = _Reader(path)
    fog = r.table(data, "fog", "")
    base = path.parent
    lot = load_lot(base / r.string(fog, "lot", "fog"))
    nodes_file = fog.get("nodes")
    nodes = load_nodes(base / r.string(fog, "nodes", "fog"), lot) if nodes_file else {}
    api = r.table(data, "api", "", required=False)
    host, port = _host_port(r, r.string(api, "listen", "api", default="127.0.0.1:8080"), "api.listen")
    serial: list[SerialIngest] = []
    ingest = r.table(data, "ingest", "", required=False)
    for i, raw in enumerate(r.array(ingest, "serial", "ingest", required=False)):
        where = f"ingest.serial[{i}]"
        serial.append(
            SerialIngest(
                port=r.string(raw, "port", where),
                baud=r.integer(raw, "baud", where, default=115200, minimum=1200),
                gateway=r.string(raw, "gateway", where, default=f"serial{i}"),
            )
        )
    cloud_raw = r.table(data, "cloud", "", required=False)
    cloud = None
    if cloud_raw:
        targets = r.array(cloud_raw, "targets", "cloud")
        for i, t in enumerate(targets):
            if not isinstance(t, str):
                raise r.fail(f"cloud.targets[{i}]", "expected HOST:PORT")
            _host_port(r, t, f"cloud.targets[{i}]")
        if not targets:
            raise r.fail("cloud.targets", "at least one cloud address is required")
        ca = cloud_raw.get("tls_ca")
        cloud = CloudTarget(
            targets=tuple(targets),
            token=r.string(cloud_raw, "token", "cloud"),
            tls_ca=(base / r.string(cloud_raw, "tls_ca", "cloud")) if ca else None,
            batch_max=r.integer(cloud_raw, "batch_max", "cloud", default=500, minimum=1, maximum=5000),
            summary_period_s=r.number(cloud_raw, "summary_period_s", "cloud", default=60, minimum=1, unit="s"),
        )
    data_dir = Path(r.string(fog, "data_dir", "fog", default="var/fog"))
    if not data_dir.is_absolute():
        data_dir = (base / data_dir) if fog.get("data_dir_relative_to_file") else Path.cwd() / data_dir
    return FogConfig(
        fog_id=r.string(fog, "id", "fog"),
        lot=lot,
        nodes=nodes,
        data_dir=data_dir,
        cycle_ms=r.number(fog, "cycle_ms", "fog", default=10, minimum=1, maximum=1000, unit="ms"),
        api_host=host,
        api_port=port,
        admin_token=r.string(api, "admin_token", "api", default="change-me"),
        serial=tuple(serial),
        cloud=cloud,
        dedup_window_s=r.number(fog, "dedup_window_s", "fog", default=10, minimum=0, unit="s"),
        source=path,
    )
