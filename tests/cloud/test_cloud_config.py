"""The cloud config file: operators, lots, history backend, calendar, models; errors name the key."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from cloud.auth import ConfigError
from cloud.config import load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]
FOGS = {"a": {"token": "fog-token-a1", "lots": ["x"]}}


def test_embedded_example_is_the_demo() -> None:
    config = load_config(None)
    assert config.operators["demo-admin"].role == "admin"
    assert config.operator_for("demo-read-token") is config.operators["demo-viewer"]
    assert config.operator_for("demo-token") is None  # the fog's token is not an operator token
    assert config.anonymous_read and config.lots["demo"].lat is not None
    assert config.history.backend == "sqlite" and config.calendar.kind == "gregorian"
    assert config.fogs_for_lot("demo") == ["demo-fog"]


def test_deployment_example_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    path = ROOT / "deploy" / "cloud" / "cloud.toml"
    config = load_config(path, environ={"FOGPARK_INFLUX_TOKEN": "secret-token"})
    assert config.history.influxdb is not None and config.history.influxdb.token == "secret-token"
    assert (config.calendar.kind, config.calendar.weekend_days) == ("hijri", (4, 5))
    assert config.lots["north"].timezone == "Asia/Riyadh"
    with pytest.raises(ConfigError, match="FOGPARK_INFLUX_TOKEN is not set"):
        load_config(path, environ={})


@pytest.mark.parametrize(
    ("extra", "key", "problem"),
    [
        ({"operators": {"o": {"token": "short", "role": "read"}}}, "operators.o.token", "at least 8"),
        ({"operators": {"o": {"token": "fog-token-a1", "role": "read"}}}, "operators.o.token", "unique"),
        ({"operators": {"o": {"token": "operator-1", "role": "root"}}}, "operators.o.role", "read, admin"),
        ({"operators": {"o": {"token": "operator-1", "role": "read", "lots": []}}}, "operators.o.lots",
         "unknown key"),
        ({"lots": {"x": {"lat": 10.0}}}, "lots.x", "both lat and lon"),
        ({"lots": {"x": {"lat": 10.0, "lon": 1.0, "x_m": 1.0, "y_m": 2.0}}}, "lots.x", "not both"),
        ({"lots": {"x": {}}}, "lots.x", "needs a position"),
        ({"lots": {"x": {"lat": 100.0, "lon": 1.0}}}, "lots.x.lat", "-90"),
        ({"lots": {"x": {"lat": "north", "lon": 1.0}}}, "lots.x.lat", "must be a number in degrees"),
        ({"lots": {"x": {"x_m": 1, "y_m": 2, "timezone": "Mars/Olympus"}}}, "lots.x.timezone", "unknown time zone"),
        ({"history": {"backend": "mongodb"}}, "history.backend", "sqlite, influxdb"),
        ({"history": {"backend": "influxdb"}}, "history.influxdb", "needs a [history.influxdb]"),
        ({"history": {"backend": "influxdb", "influxdb": {"url": "localhost:8086", "org": "o", "bucket": "b",
                                                          "token": "t"}}}, "history.influxdb.url", "http://"),
        ({"history": {"backend": "influxdb", "influxdb": {"url": "http://i:8086", "org": "o", "bucket": "b"}}},
         "history.influxdb", "token_env"),
        ({"calendar": {"kind": "julian"}}, "calendar.kind", "gregorian, hijri"),
        ({"calendar": {"weekend_days": ["fri", "someday"]}}, "calendar.weekend_days", "day names"),
        ({"calendar": {"holidays": ["2024-13-01"]}}, "calendar.holidays[0]", "a date"),
        ({"calendar": {"hijri_adjust_days": 5}}, "calendar.hijri_adjust_days", "-2 to 2"),
        ({"models": {"horizon": "7m"}}, "models.horizon", "5-minute"),
        ({"models": {"history": "a while"}}, "models.history", "bad duration"),
        ({"models": {"held_out_days": 0}}, "models.held_out_days", "1 to 366"),
        ({"http": {"anonymous_read": "yes"}}, "http.anonymous_read", "true or false"),
        ({"mcpr": {"max_age": "5m"}}, "mcpr.max_age", "unknown key"),
        ({"server": {}}, "server", "unknown key"),
    ],
)
def test_bad_values_name_the_key(extra: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"fogs": FOGS, **extra}, "cloud.toml", environ={})
    assert (caught.value.key, caught.value.path) == (key, "cloud.toml")
    assert problem in caught.value.problem


def test_toml_dates_and_strings_both_work_as_holidays() -> None:
    data = tomllib.loads('holidays = [2024-12-25, "2025-01-01"]')
    config = parse_config({"fogs": FOGS, "calendar": data}, "t", environ={})
    assert {d.isoformat() for d in config.calendar.holidays} == {"2024-12-25", "2025-01-01"}
