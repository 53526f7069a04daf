"""Durations (``90s``, ``10m``, ``2h``, ``1d``) and instants for operator commands and URLs.

One parser so the CLI and the HTTP API accept exactly the same spellings and
refuse bad ones with the same message.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+)([smhdw])")
_WHOLE = re.compile(r"(?:\d+[smhdw])+")
_EXAMPLES = "e.g. 90s, 10m, 2h, 1d, 1h30m"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TimeParseError(ValueError):
    """A duration or instant that cannot be read; the message says what was expected."""


def parse_duration_s(text: str) -> int:
    """Seconds in ``text``: one or more ``<number><unit>`` parts, unit s/m/h/d/w; must be > 0."""
    cleaned = text.strip().lower()
    if not _WHOLE.fullmatch(cleaned):
        raise TimeParseError(
            f"bad duration {text!r}: expected a whole number followed by a unit s, m, h, d or w ({_EXAMPLES})"
        )
    seconds = sum(int(n) * _UNIT_S[unit] for n, unit in _PART.findall(cleaned))
    if seconds <= 0:
        raise TimeParseError(f"bad duration {text!r}: must be longer than zero ({_EXAMPLES})")
    return seconds


def parse_instant_ms(text: str, now_ms: int) -> int:
    """Unix ms for ``now``, a duration meaning "that long ago", or an ISO-8601 time (naive = UTC)."""
    cleaned = text.strip()
    if cleaned.lower() == "now":
        return now_ms
    if cleaned[:1].isdigit() and cleaned[-1:].lower() in _UNIT_S:
        return now_ms - parse_duration_s(cleaned) * 1000
    try:
        when = datetime.fromisoformat(cleaned)
    except ValueError:
        raise TimeParseError(
            f"bad time {text!r}: expected 'now', a duration ago ({_EXAMPLES}) "
            "or an ISO-8601 time such as 2024-05-01T08:00:00Z"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // timedelta(milliseconds=1)


def format_ms(at_ms: int) -> str:
    """ISO-8601 UTC with milliseconds, the one way times are shown to operators."""
    when = datetime.fromtimestamp(at_ms / 1000, tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at_ms % 1000:03d}Z"
