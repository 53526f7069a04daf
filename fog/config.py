"""Fog configuration: the daemon file, the lot file and the node registry.

All three are TOML (``tomllib``), validated at load. A wrong file raises
:class:`ConfigError` naming the file, the key path (``spots[3].kind``) and the
problem, and the daemon does not start. Formats are documented in
``fog/examples/README.md``; the embedded demo lives beside it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fog.engine.lot_graph import LotGraph

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
class LotPolicy:
    """How the lot runs: hours, reservations, alerts, statistics (``[lot]``, ``[reservations]``,
    ``[alerts]``, ``[stats]``; documented in fog/examples/README.md). Defaults are ALGORITHMS.md's."""

    timezone: str = "UTC"
    open_minutes: tuple[tuple[int, int], ...] = ((0, 1440),)  # parsed [lot].opening_hours, local minutes
    holidays: tuple[date, ...] = ()
    lead_s: float = 3 * 3600.0  # §3 rule (a)
    theta: float = 0.9  # §3 rule (b)
    grace_s: float = 3600.0  # §4.3 late-arrival grace
    waiting_window_s: float = 3 * 3600.0  # §5 no-show window
    hold_before_s: float = 900.0
    max_hours: int = 72
    max_advance_s: float = 7 * 86400.0
    default_entrance: str = ""  # "" = the first entrance the lot lists
    guidance_timeout_s: float = 600.0
    heartbeat_s: float = 10800.0  # the nodes' heartbeat_s (device default 3 h); silent after 2x
    checkin_grace_s: float = 300.0  # §8: a held spot occupied this long without check-in raises an alert
    stats_window_s: float = 900.0  # §1 window

    @property
    def always_open(self) -> bool:
        return self.open_minutes == ((0, 1440),)


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
    policy: LotPolicy = field(default_factory=LotPolicy)

    @property
    def capacity(self) -> int:
        return len(self.spots)

    @cached_property
    def lane_graph(self) -> LotGraph | None:
        """The engine's routing graph (spots first, then lane nodes, in file order); None without lanes."""
        from fog.engine.lot_graph import Edge, LotGraph, NodeKind

        if not self.edges:
            return None
        return LotGraph(
            ((nid, NodeKind(kind)) for nid, kind in self.graph_nodes.items()),
            (Edge(i, e.src, e.dst, e.length_m, e.speed_mps, float(e.capacity)) for i, e in enumerate(self.edges)),
        )

    @property
    def entrances(self) -> tuple[str, ...]:
        return tuple(n for n, kind in self.graph_nodes.items() if kind == "entrance")

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
class MqttIngest:
    """``[ingest.mqtt]``: Wi-Fi nodes through a broker (topics in fog/ingest/MQTT.md)."""

    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)  # never in a log line or a traceback
    client_id: str
    lot_topic_prefix: str  # "fogpark/<lot>" unless set
    protocol: str = "5"  # "5" or "3.1.1"
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 86400  # MQTT 5: how long the broker keeps the fog's queue while it is away
    reconnect_min_s: int = 1
    reconnect_max_s: int = 30
    gateway: str = "mqtt"


@dataclass(frozen=True)
class SpiIngest:
    """``[ingest.spi]``: an SX127x on the Pi's SPI bus, driven through pyLoRa."""

    bus: int
    device: int
    freq_hz: int
    sf: int
    bw_hz: int
    cr: int  # 5..8 for coding rate 4/5..4/8
    sync_word: int
    dio0_pin: int  # BCM numbering
    reset_pin: int  # BCM numbering
    gateway: str = "spi0"


@dataclass(frozen=True)
class CloudTarget:
    targets: tuple[str, ...]
    token: str
    tls_ca: Path | None
    batch_max: int
    summary_period_s: float


@dataclass(frozen=True)
class DiskPolicy:
    """How the fog keeps its store within the disk ([disk] table)."""

    min_free_mb: float = 64.0  # below this free space on the data filesystem: pressure
    max_db_mb: float = 0.0  # a quota on the store's size (0 = none); 90 % of it is pressure
    events_retention_days: float = 30.0  # spot-level events older than this are compacted first
    check_s: float = 10.0
    ballast_mb: float = 16.0  # reserve file, deleted under pressure so compaction has room


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
    disk: DiskPolicy = field(default_factory=lambda: DiskPolicy())
    # SQLite synchronous mode: FULL survives power loss at one fsync per committed cycle;
    # NORMAL (WAL) survives a crashed or killed process, and may lose the last commits on power loss.
    durability: str = "FULL"
    nodes_file: Path | None = None  # the registry file, rewritten by the node API
    mqtt: MqttIngest | None = None
    spi: SpiIngest | None = None
    # Where the running lot configuration came from ("lot file", "cloud lot v5 + cloud tariff v7"), and why
    # stored cloud files were ignored at start, if they were (fog/cloud_config.py).
    lot_origin: str = "lot file"
    lot_problem: str = ""


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
    from fog.tariffs import parse_tariff  # fog.tariffs imports this module

    parse_tariff(path, tariff, spots)  # refused at load time, naming the key
    policy = _lot_policy(r, data, lot, nodes)
    lot_cfg = LotConfig(
        id=lot_id,
        name=r.string(lot, "name", "lot", default=lot_id),
        spots=tuple(spots),
        graph_nodes=nodes,
        edges=tuple(edges),
        tariff=dict(tariff),
        opening_hours=r.string(lot, "opening_hours", "lot", default="00:00-24:00"),
        source=path,
        policy=policy,
    )
    if lot_cfg.edges:
        from fog.engine.lot_graph import LotGraphError

        try:
            lot_cfg.lane_graph  # noqa: B018 - built once here so a lot that cannot be routed is refused at load
        except LotGraphError as err:
            raise r.fail("graph", str(err)) from None
    return lot_cfg


def parse_hours(text: str) -> tuple[tuple[int, int], ...]:
    """``"07:00-22:00"`` or ``"00:00-06:00, 18:00-24:00"`` (local time) as minute ranges; a range may
    wrap midnight (``"22:00-06:00"``). Raises ValueError saying what is wrong."""
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        start_s, sep, end_s = part.strip().partition("-")
        if not sep:
            raise ValueError(f"{part.strip()!r} is not a range HH:MM-HH:MM")
        start, end = _minute_of_day(start_s), _minute_of_day(end_s)
        if start == end:
            raise ValueError(f"{part.strip()!r} is an empty range")
        if start < end:
            ranges.append((start, end))
        else:  # wraps midnight
            ranges += [(start, 1440), (0, end)] if end else [(start, 1440)]
    ranges.sort()
    for (_, end1), (start2, _) in zip(ranges, ranges[1:], strict=False):
        if start2 < end1:
            raise ValueError(f"ranges overlap in {text!r}")
    return tuple(ranges)


def _minute_of_day(text: str) -> int:
    hh, sep, mm = text.strip().partition(":")
    if not (sep and hh.isdigit() and mm.isdigit() and len(mm) == 2):
        raise ValueError(f"{text.strip()!r} is not a time HH:MM")
    minute = int(hh) * 60 + int(mm)
    if int(mm) > 59 or minute > 1440:
        raise ValueError(f"{text.strip()!r} is not a time of day (00:00..24:00)")
    return minute


_RESERVATION_KEYS = ("lead_s", "theta", "grace_s", "waiting_window_s", "hold_before_s", "max_hours",
                     "max_advance_s", "default_entrance", "guidance_timeout_s")
_ALERT_KEYS = ("heartbeat_s", "checkin_grace_s")
_STATS_KEYS = ("window_s",)


def _lot_policy(r: _Reader, data: dict[str, Any], lot: dict[str, Any], nodes: dict[str, str]) -> LotPolicy:
    """``[lot]`` hours/zone/holidays, ``[reservations]``, ``[alerts]`` and ``[stats]``."""
    import zoneinfo

    tz = r.string(lot, "timezone", "lot", default="UTC")
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise r.fail("lot.timezone", f"{tz!r} is not an IANA time zone (e.g. \"Europe/Berlin\")") from None
    try:
        open_minutes = parse_hours(r.string(lot, "opening_hours", "lot", default="00:00-24:00"))
    except ValueError as err:
        raise r.fail("lot.opening_hours", str(err)) from None
    holidays: list[date] = []
    for i, raw in enumerate(r.array(lot, "holidays", "lot", required=False)):
        try:
            holidays.append(raw if isinstance(raw, date) else date.fromisoformat(str(raw)))
        except ValueError:
            raise r.fail(f"lot.holidays[{i}]", f"{raw!r} is not a date YYYY-MM-DD") from None
    res = r.table(data, "reservations", "", required=False)
    alerts = r.table(data, "alerts", "", required=False)
    stats = r.table(data, "stats", "", required=False)
    for table, where, known in ((res, "reservations", _RESERVATION_KEYS), (alerts, "alerts", _ALERT_KEYS),
                                (stats, "stats", _STATS_KEYS)):
        for key in table:
            if key not in known:
                raise r.fail(f"{where}.{key}", f"unknown key (expected one of {', '.join(known)})")
    d = LotPolicy()
    entrance = str(res.get("default_entrance", ""))
    if entrance and nodes.get(entrance) != "entrance":
        raise r.fail("reservations.default_entrance", f"{entrance!r} is not a graph node of kind entrance")
    grace = r.number(res, "grace_s", "reservations", default=d.grace_s, minimum=0, unit="s")
    waiting = r.number(res, "waiting_window_s", "reservations", default=d.waiting_window_s, minimum=0, unit="s")
    if waiting < grace:
        raise r.fail("reservations.waiting_window_s", f"{waiting} s is shorter than grace_s ({grace} s): "
                     "a late vehicle must still hold its spot until the window ends")
    return LotPolicy(
        timezone=tz,
        open_minutes=open_minutes,
        holidays=tuple(holidays),
        lead_s=r.number(res, "lead_s", "reservations", default=d.lead_s, minimum=0, unit="s"),
        theta=r.number(res, "theta", "reservations", default=d.theta, minimum=0, maximum=1),
        grace_s=grace,
        waiting_window_s=waiting,
        hold_before_s=r.number(res, "hold_before_s", "reservations", default=d.hold_before_s, minimum=0, unit="s"),
        max_hours=r.integer(res, "max_hours", "reservations", default=d.max_hours, minimum=1, maximum=24 * 366),
        max_advance_s=r.number(res, "max_advance_s", "reservations", default=d.max_advance_s, minimum=0,
                               maximum=366 * 86400, unit="s"),
        default_entrance=entrance,
        guidance_timeout_s=r.number(res, "guidance_timeout_s", "reservations", default=d.guidance_timeout_s,
                                    minimum=1, unit="s"),
        heartbeat_s=r.number(alerts, "heartbeat_s", "alerts", default=d.heartbeat_s, minimum=10, unit="s"),
        checkin_grace_s=r.number(alerts, "checkin_grace_s", "alerts", default=d.checkin_grace_s, minimum=0,
                                 unit="s"),
        stats_window_s=r.number(stats, "window_s", "stats", default=d.stats_window_s, minimum=60,
                                maximum=86400, unit="s"),
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


def _known_keys(r: _Reader, raw: dict[str, Any], where: str, known: tuple[str, ...]) -> None:
    """A misspelt key (``pasword_file``) is refused, not silently ignored."""
    for key in raw:
        if key not in known:
            raise r.fail(_join(where, key), f"unknown key (expected one of {', '.join(known)})")


_MQTT_KEYS = ("host", "port", "username", "password", "password_file", "client_id", "lot_topic_prefix", "protocol",
              "keepalive_s", "session_expiry_s", "reconnect_min_s", "reconnect_max_s", "gateway")


def _mqtt_ingest(r: _Reader, ingest: dict[str, Any], base: Path, fog_id: str, lot_id: str) -> MqttIngest | None:
    """``[ingest.mqtt]``; the password may live in a file readable only by the fog's user."""
    where = "ingest.mqtt"
    raw = r.table(ingest, "mqtt", "ingest", required=False)
    if not raw:
        return None
    _known_keys(r, raw, where, _MQTT_KEYS)
    password: str | None = None
    if "password" in raw and "password_file" in raw:
        raise r.fail(f"{where}.password_file", "give password or password_file, not both")
    if "password" in raw:
        password = r.string(raw, "password", where)
    elif "password_file" in raw:
        pw_path = base / r.string(raw, "password_file", where)
        try:
            password = pw_path.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as err:
            raise r.fail(f"{where}.password_file", f"cannot read {pw_path}: {err}") from None
        if not password:
            raise r.fail(f"{where}.password_file", f"{pw_path} is empty")
    username = r.string(raw, "username", where) if "username" in raw else None
    if password is not None and username is None:
        raise r.fail(f"{where}.username", "a password needs a username")
    prefix = r.string(raw, "lot_topic_prefix", where, default=f"fogpark/{lot_id}")
    if any(c in prefix for c in "+#\x00") or prefix.startswith(("/", "$")) or prefix.endswith("/") or "//" in prefix:
        raise r.fail(f"{where}.lot_topic_prefix",
                     f"{prefix!r} is not a topic prefix (no wildcards, no leading '$' or '/', no empty levels)")
    reconnect_min = r.integer(raw, "reconnect_min_s", where, default=1, minimum=1, maximum=3600)
    return MqttIngest(
        host=r.string(raw, "host", where, default="127.0.0.1"),
        port=r.integer(raw, "port", where, default=1883, minimum=1, maximum=65535),
        username=username,
        password=password,
        client_id=r.string(raw, "client_id", where, default=f"fogpark-fog-{fog_id}"),
        lot_topic_prefix=prefix,
        protocol=r.choice(raw, "protocol", where, ("5", "3.1.1"), default="5"),
        keepalive_s=r.integer(raw, "keepalive_s", where, default=30, minimum=5, maximum=65535),
        session_expiry_s=r.integer(raw, "session_expiry_s", where, default=7 * 86400, minimum=0,
                                   maximum=0xFFFFFFFF),
        reconnect_min_s=reconnect_min,
        reconnect_max_s=r.integer(raw, "reconnect_max_s", where, default=max(30, reconnect_min),
                                  minimum=reconnect_min, maximum=3600),
        gateway=r.string(raw, "gateway", where, default="mqtt"),
    )


_SPI_KEYS = ("bus", "device", "freq_hz", "sf", "bw_hz", "cr", "sync_word", "dio0_pin", "reset_pin", "gateway")
_SPI_BUS_PINS = {0: (7, 8, 9, 10, 11), 1: (16, 17, 18, 19, 20, 21)}  # BCM pins each SPI bus itself uses


def _spi_ingest(r: _Reader, ingest: dict[str, Any]) -> SpiIngest | None:
    """``[ingest.spi]``: radio settings must match the nodes', pins use BCM numbering."""
    from proto.airtime import BANDWIDTHS_HZ

    where = "ingest.spi"
    raw = r.table(ingest, "spi", "ingest", required=False)
    if not raw:
        return None
    _known_keys(r, raw, where, _SPI_KEYS)
    bus = r.integer(raw, "bus", where, default=0, minimum=0, maximum=6)
    sf = r.integer(raw, "sf", where, default=7, minimum=6, maximum=12)
    if sf == 6:
        raise r.fail(f"{where}.sf", "SF6 needs implicit-header mode, which FogPark frames do not use (7..12)")
    bw_hz = r.integer(raw, "bw_hz", where, default=125000)
    if bw_hz not in BANDWIDTHS_HZ:
        raise r.fail(f"{where}.bw_hz", f"{bw_hz} Hz is not an SX127x bandwidth ({', '.join(map(str, BANDWIDTHS_HZ))})")
    pins: dict[str, int] = {}
    for key in ("dio0_pin", "reset_pin"):
        pin = r.integer(raw, key, where, minimum=0, maximum=27)
        if pin in _SPI_BUS_PINS.get(bus, ()):
            raise r.fail(f"{where}.{key}", f"GPIO {pin} is a pin of SPI bus {bus} itself")
        pins[key] = pin
    if pins["dio0_pin"] == pins["reset_pin"]:
        raise r.fail(f"{where}.reset_pin", "must differ from dio0_pin")
    return SpiIngest(
        bus=bus,
        device=r.integer(raw, "device", where, default=0, minimum=0, maximum=2),
        freq_hz=r.integer(raw, "freq_hz", where, minimum=137_000_000, maximum=1_020_000_000),
        sf=sf,
        bw_hz=bw_hz,
        cr=r.integer(raw, "cr", where, default=5, minimum=5, maximum=8),
        sync_word=r.integer(raw, "sync_word", where, default=0x12, minimum=0, maximum=0xFF),
        dio0_pin=pins["dio0_pin"],
        reset_pin=pins["reset_pin"],
        gateway=r.string(raw, "gateway", where, default="spi0"),
    )


def load_fog_config(path: Path | None = None, data_dir: Path | None = None) -> FogConfig:
    """The daemon file; relative paths in it are relative to the file itself.

    ``data_dir`` overrides ``[fog].data_dir``. Lot and tariff files the cloud sent and the fog applied
    (kept in the data directory) are laid over the local lot file before the node registry is checked
    against the lot's spots (fog/cloud_config.py).
    """
    from fog import cloud_config  # it imports this module

    path = Path(path or DEMO_FOG_CONFIG).resolve()
    data = read_toml(path)
    r = _Reader(path)
    fog = r.table(data, "fog", "")
    base = path.parent
    if data_dir is None:
        data_dir = Path(r.string(fog, "data_dir", "fog", default="var/fog"))
        if not data_dir.is_absolute():
            data_dir = (base / data_dir) if fog.get("data_dir_relative_to_file") else Path.cwd() / data_dir
    lot, lot_origin, lot_problem = cloud_config.overlay(load_lot(base / r.string(fog, "lot", "fog")), data_dir)
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
        durability=r.choice(fog, "durability", "fog", ("FULL", "NORMAL"), default="FULL"),
        nodes_file=(base / nodes_file) if nodes_file else None,
        source=path,
        disk=_disk_policy(r, r.table(data, "disk", "", required=False)),
        mqtt=_mqtt_ingest(r, ingest, base, r.string(fog, "id", "fog"), lot.id),
        spi=_spi_ingest(r, ingest),
        lot_origin=lot_origin,
        lot_problem=lot_problem,
    )


def _disk_policy(r: _Reader, d: dict[str, Any]) -> DiskPolicy:
    return DiskPolicy(
        min_free_mb=r.number(d, "min_free_mb", "disk", default=64, minimum=0, unit="MB"),
        max_db_mb=r.number(d, "max_db_mb", "disk", default=0, minimum=0, unit="MB"),
        events_retention_days=r.number(d, "events_retention_days", "disk", default=30, minimum=0.01, unit="days"),
        check_s=r.number(d, "check_s", "disk", default=10, minimum=0.1, unit="s"),
        ballast_mb=r.number(d, "ballast_mb", "disk", default=16, minimum=0, unit="MB"),
    )
