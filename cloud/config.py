"""The cloud's configuration file: fogs, operators, lots, history backend, calendar, models, MCPR.

One TOML file, validated whole before anything starts; every refusal is a
ConfigError naming the file, the key path and the problem (the fog registry
part lives in ``cloud.auth`` and is reused here). Secrets (fog and operator
tokens, the InfluxDB token) live in this file or, for InfluxDB, in an
environment variable it names, so the file can be world-unreadable and the
manifests need not embed it.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cloud.auth import MIN_TOKEN_LEN, ConfigError, FogRegistry, parse_registry
from cloud.timeparse import TimeParseError, parse_duration_s

Role = Literal["read", "admin"]
ROLES: tuple[Role, ...] = ("read", "admin")
TOP_KEYS = ("fogs", "operators", "http", "lots", "history", "calendar", "models", "mcpr", "nodes")
_LOT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CALENDARS = ("gregorian", "hijri")


@dataclass(frozen=True)
class Operator:
    """A person or tool using the operator API: a name (for logs), a secret and a role."""

    name: str
    token: str
    role: Role


@dataclass(frozen=True)
class LotPlace:
    """Where a lot is and what it is called; exactly one of (lat, lon) or (x_m, y_m) is set."""

    lot_id: str
    name: str
    lat: float | None = None
    lon: float | None = None
    x_m: float | None = None
    y_m: float | None = None
    currency: str = "EUR"
    timezone: str | None = None  # overrides [calendar].timezone for this lot


@dataclass(frozen=True)
class InfluxSettings:
    """Where the InfluxDB 2.x history lives; the token is read from ``token_env`` when ``token`` is empty."""

    url: str
    org: str
    bucket: str
    token: str
    batch_size: int = 5000
    timeout_s: float = 10.0


@dataclass(frozen=True)
class HistorySettings:
    """Which backend answers the history queries (summaries over time, spot history)."""

    backend: Literal["sqlite", "influxdb"] = "sqlite"
    influxdb: InfluxSettings | None = None


@dataclass(frozen=True)
class CalendarSettings:
    """The season calendar that turns a time into a Markov season key (ALGORITHMS.md §3)."""

    kind: Literal["gregorian", "hijri"] = "gregorian"
    timezone: str = "UTC"
    weekend_days: tuple[int, ...] = (5, 6)  # date.weekday(): Monday 0
    holidays: frozenset[date] = frozenset()
    hijri_adjust_days: int = 0  # shifts the tabular Hijri date to match local sighting (±1 typically)


@dataclass(frozen=True)
class ModelSettings:
    """Markov training: minimum row observations, held-out days, history used, forecast horizon scored."""

    min_obs: int = 10
    held_out_days: int = 7
    history_s: int = 56 * 86400
    horizon_s: int = 3600


@dataclass(frozen=True)
class McprSettings:
    """City-level recommendation: a lot whose newest summary is older than this is not offered."""

    max_summary_age_s: int = 600


@dataclass(frozen=True)
class NodeSettings:
    """When a node counts as silent or low on battery in the city-wide health view."""

    silent_after_s: int = 1800
    battery_low_mv: int = 3300


@dataclass(frozen=True)
class CloudConfig:
    """The whole validated cloud configuration."""

    source: str
    registry: FogRegistry
    operators: dict[str, Operator] = field(default_factory=dict)
    anonymous_read: bool = False
    lots: dict[str, LotPlace] = field(default_factory=dict)
    history: HistorySettings = HistorySettings()
    calendar: CalendarSettings = CalendarSettings()
    models: ModelSettings = ModelSettings()
    mcpr: McprSettings = McprSettings()
    nodes: NodeSettings = NodeSettings()

    def operator_for(self, token: str) -> Operator | None:
        """The operator holding ``token`` (constant-time per comparison), or None."""
        import hmac

        found = None
        for operator in self.operators.values():
            if hmac.compare_digest(operator.token.encode(), token.encode()):
                found = operator
        return found

    def fogs_for_lot(self, lot_id: str) -> list[str]:
        """Fog ids registered for ``lot_id`` (normally one: the fog is the lot's authority)."""
        return sorted(f.fog_id for f in self.registry.fogs.values() if lot_id in f.lots)

    def known_lots(self) -> set[str]:
        """Lots named in [lots] or served by a registered fog."""
        served = {lot for fog in self.registry.fogs.values() for lot in fog.lots}
        return served | set(self.lots)


class _Reader:
    """Typed access to one table of the TOML, refusing unknown keys and wrong types with the key path."""

    def __init__(self, source: str, where: str, table: Any, known: tuple[str, ...]) -> None:
        if not isinstance(table, dict):
            raise ConfigError(source, where, f"must be a table, got {type(table).__name__}")
        for key in table:
            if key not in known:
                raise ConfigError(source, f"{where}.{key}", f"unknown key; known: {', '.join(known)}")
        self.source, self.where, self.table = source, where, table

    def _fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.source, f"{self.where}.{key}", problem)

    def string(self, key: str, default: str | None = None, *, choices: tuple[str, ...] = ()) -> str:
        value = self.table.get(key, default)
        if not isinstance(value, str) or (value == "" and default != ""):
            raise self._fail(key, "must be a non-empty string" if default is None else "must be a string")
        if choices and value not in choices:
            raise self._fail(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def number(self, key: str, *, low: float | None = None, high: float | None = None, unit: str = "") -> float | None:
        value = self.table.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self._fail(key, f"must be a number{f' in {unit}' if unit else ''}, got {value!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise self._fail(key, f"must be within {low}..{high}{f' {unit}' if unit else ''}, got {value!r}")
        return float(value)

    def integer(self, key: str, default: int, *, low: int, high: int) -> int:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self._fail(key, f"must be a whole number from {low} to {high}, got {value!r}")
        return value

    def duration_s(self, key: str, default: int) -> int:
        value = self.table.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self._fail(key, f"must be a duration string such as \"10m\" or \"7d\", got {value!r}")
        try:
            return parse_duration_s(value)
        except TimeParseError as exc:
            raise self._fail(key, str(exc)) from None

    def boolean(self, key: str, default: bool) -> bool:
        value = self.table.get(key, default)
        if not isinstance(value, bool):
            raise self._fail(key, f"must be true or false, got {value!r}")
        return value


def _timezone(source: str, where: str, name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(source, where, f"unknown time zone {name!r}; use an IANA name such as Asia/Riyadh") from None
    return name


def _operators(source: str, table: Any, fog_tokens: set[str]) -> dict[str, Operator]:
    if not isinstance(table, dict):
        raise ConfigError(source, "operators", "must be a table of [operators.<name>] with token and role")
    operators: dict[str, Operator] = {}
    seen: set[str] = set()
    for name, entry in table.items():
        r = _Reader(source, f"operators.{name}", entry, ("token", "role"))
        token = r.string("token")
        if len(token) < MIN_TOKEN_LEN or token != token.strip():
            raise r._fail("token", f"must be at least {MIN_TOKEN_LEN} characters without surrounding spaces")
        if token in seen or token in fog_tokens:
            raise r._fail("token", "is already used by another operator or a fog; every token must be unique")
        seen.add(token)
        role = r.string("role", choices=ROLES)
        operators[name] = Operator(name, token, "admin" if role == "admin" else "read")
    return operators


def _lots(source: str, table: Any) -> dict[str, LotPlace]:
    if not isinstance(table, dict):
        raise ConfigError(source, "lots", "must be a table of [lots.<lot_id>]")
    lots: dict[str, LotPlace] = {}
    for lot_id, entry in table.items():
        where = f"lots.{lot_id}"
        if not _LOT_ID.fullmatch(lot_id):
            raise ConfigError(source, where, "lot id must be 1-64 of A-Z a-z 0-9 . _ - (starting alphanumeric)")
        r = _Reader(source, where, entry, ("name", "lat", "lon", "x_m", "y_m", "currency", "timezone"))
        lat, lon = r.number("lat", low=-90, high=90, unit="degrees"), r.number("lon", low=-180, high=180,
                                                                               unit="degrees")
        x_m, y_m = r.number("x_m", unit="m"), r.number("y_m", unit="m")
        geo, local = (lat is not None, lon is not None), (x_m is not None, y_m is not None)
        if geo not in ((True, True), (False, False)) or local not in ((True, True), (False, False)):
            raise ConfigError(source, where, "give both lat and lon, or both x_m and y_m")
        if geo[0] == local[0]:
            raise ConfigError(source, where, "needs a position: lat/lon (degrees) or x_m/y_m (metres), not both")
        timezone = entry.get("timezone")
        lots[lot_id] = LotPlace(
            lot_id=lot_id, name=r.string("name", lot_id), lat=lat, lon=lon, x_m=x_m, y_m=y_m,
            currency=r.string("currency", "EUR"),
            timezone=_timezone(source, f"{where}.timezone", r.string("timezone")) if timezone is not None else None,
        )
    return lots


def _history(source: str, table: Any, environ: dict[str, str]) -> HistorySettings:
    r = _Reader(source, "history", table, ("backend", "influxdb"))
    backend = r.string("backend", "sqlite", choices=("sqlite", "influxdb"))
    if backend == "sqlite":
        return HistorySettings()
    if "influxdb" not in table:
        raise ConfigError(source, "history.influxdb", "backend = \"influxdb\" needs a [history.influxdb] table "
                          "with url, org, bucket and token_env (or token)")
    i = _Reader(source, "history.influxdb", table["influxdb"],
                ("url", "org", "bucket", "token", "token_env", "batch_size", "timeout_s"))
    url = i.string("url")
    if not re.fullmatch(r"https?://[^\s/]+(/.*)?", url):
        raise i._fail("url", f"must be an http:// or https:// URL, got {url!r}")
    token = i.string("token", "")
    env_name = i.string("token_env", "")
    if not token and env_name:
        token = environ.get(env_name, "")
        if not token:
            raise i._fail("token_env", f"environment variable {env_name} is not set or empty")
    if not token:
        raise ConfigError(source, "history.influxdb", "needs token_env (preferred) or token")
    timeout = i.number("timeout_s", low=0.1, high=600, unit="s")
    return HistorySettings("influxdb", InfluxSettings(
        url=url.rstrip("/"), org=i.string("org"), bucket=i.string("bucket"), token=token,
        batch_size=i.integer("batch_size", 5000, low=1, high=100_000), timeout_s=timeout or 10.0,
    ))


def _calendar(source: str, table: Any) -> CalendarSettings:
    r = _Reader(source, "calendar", table, ("kind", "timezone", "weekend_days", "holidays", "hijri_adjust_days"))
    kind = r.string("kind", "gregorian", choices=CALENDARS)
    default_weekend = ["fri"] if kind == "hijri" else ["sat", "sun"]
    weekend = table.get("weekend_days", default_weekend)
    if not isinstance(weekend, list) or not all(isinstance(d, str) and d.lower() in _DAY_NAMES for d in weekend):
        raise r._fail("weekend_days", f"must be a list of day names from {', '.join(_DAY_NAMES)}")
    holidays_raw = table.get("holidays", [])
    holidays: set[date] = set()
    if not isinstance(holidays_raw, list):
        raise r._fail("holidays", "must be a list of dates such as 2024-12-25")
    for index, item in enumerate(holidays_raw):
        if isinstance(item, date):
            holidays.add(item)
            continue
        try:
            holidays.add(date.fromisoformat(str(item)))
        except ValueError:
            raise r._fail(f"holidays[{index}]", f"must be a date such as 2024-12-25, got {item!r}") from None
    return CalendarSettings(
        kind="hijri" if kind == "hijri" else "gregorian",
        timezone=_timezone(source, "calendar.timezone", r.string("timezone", "UTC")),
        weekend_days=tuple(sorted(_DAY_NAMES.index(d.lower()) for d in weekend)),
        holidays=frozenset(holidays),
        hijri_adjust_days=r.integer("hijri_adjust_days", 0, low=-2, high=2),
    )


def parse_config(data: dict[str, Any], source: str, environ: dict[str, str] | None = None) -> CloudConfig:
    """Build the configuration from parsed TOML, refusing anything unexpected with ConfigError."""
    env = dict(os.environ) if environ is None else environ
    for key in data:
        if key not in TOP_KEYS:
            raise ConfigError(source, key, f"unknown key; known: {', '.join(TOP_KEYS)}")
    registry = parse_registry({"fogs": data.get("fogs")}, source)
    fog_tokens = {fog.token for fog in registry.fogs.values()}
    operators = _operators(source, data.get("operators", {}), fog_tokens)
    http = _Reader(source, "http", data.get("http", {}), ("anonymous_read",))
    models = _Reader(source, "models", data.get("models", {}), ("min_obs", "held_out_days", "history", "horizon"))
    mcpr = _Reader(source, "mcpr", data.get("mcpr", {}), ("max_summary_age",))
    nodes = _Reader(source, "nodes", data.get("nodes", {}), ("silent_after", "battery_low_mv"))
    model_settings = ModelSettings(
        min_obs=models.integer("min_obs", 10, low=0, high=100_000),
        held_out_days=models.integer("held_out_days", 7, low=1, high=366),
        history_s=models.duration_s("history", 56 * 86400),
        horizon_s=models.duration_s("horizon", 3600),
    )
    if model_settings.horizon_s % 300:
        raise ConfigError(source, "models.horizon", "must be a whole number of 5-minute slots, e.g. 30m or 1h")
    return CloudConfig(
        source=source, registry=registry, operators=operators,
        anonymous_read=http.boolean("anonymous_read", False),
        lots=_lots(source, data.get("lots", {})),
        history=_history(source, data.get("history", {}), env),
        calendar=_calendar(source, data.get("calendar", {})),
        models=model_settings,
        mcpr=McprSettings(max_summary_age_s=mcpr.duration_s("max_summary_age", 600)),
        nodes=NodeSettings(silent_after_s=nodes.duration_s("silent_after", 1800),
                           battery_low_mv=nodes.integer("battery_low_mv", 3300, low=0, high=10_000)),
    )


def load_config(path: Path | str | None = None, environ: dict[str, str] | None = None) -> CloudConfig:
    """Read and validate the cloud config at ``path``, or the embedded demo config when None."""
    if path is None:
        example = resources.files("cloud").joinpath("cloud.example.toml")
        source, text = str(example), example.read_text(encoding="utf-8")
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(source, "(file)", f"cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "(syntax)", f"not valid TOML: {exc}") from None
    return parse_config(data, source, environ)
