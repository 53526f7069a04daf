"""Durations and instants as operators type them."""

from __future__ import annotations

import pytest

from cloud.timeparse import TimeParseError, format_ms, parse_duration_s, parse_instant_ms

NOW = 1_714_550_400_000  # 2024-05-01T08:00:00Z


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("10m", 600), ("2h", 7200), ("1d", 86400), ("1w", 604800), ("1h30m", 5400), (" 5M ", 300)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "m", "10x", "1.5h", "-5m", "10 m", "0s", "0h0m", "h1"])
def test_bad_durations_say_what_was_expected(text: str) -> None:
    with pytest.raises(TimeParseError) as caught:
        parse_duration_s(text)
    message = str(caught.value)
    assert repr(text) in message
    assert "e.g. 90s, 10m" in message


def test_instants() -> None:
    assert parse_instant_ms("now", NOW) == NOW
    assert parse_instant_ms("10m", NOW) == NOW - 600_000
    assert parse_instant_ms("2024-05-01T07:00:00Z", NOW) == NOW - 3_600_000
    assert parse_instant_ms("2024-05-01T09:00:00+02:00", NOW) == NOW - 3_600_000
    assert parse_instant_ms("2024-05-01T08:00:00.250", NOW) == NOW + 250  # naive means UTC


@pytest.mark.parametrize("text", ["yesterday", "10x", "2024-13-01", "0m"])
def test_bad_instants(text: str) -> None:
    with pytest.raises(TimeParseError, match="bad (time|duration)"):
        parse_instant_ms(text, NOW)


def test_format_ms_round_trips() -> None:
    assert format_ms(NOW + 7) == "2024-05-01T08:00:00.007Z"
    assert parse_instant_ms(format_ms(NOW + 7), 0) == NOW + 7
