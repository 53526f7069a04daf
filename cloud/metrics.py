"""Counters for what the cloud accepted and refused, rendered as Prometheus text.

Refusals are counted per reason so an operator sees *why* fogs are being
turned away without reading logs. Labels are short fixed codes, never
free text, to keep the number of series bounded.
"""

from __future__ import annotations

import threading
from collections import defaultdict

# name -> help text; a counter not listed here cannot be incremented (catches typos).
COUNTERS: dict[str, str] = {
    "fogpark_cloud_batches_total": "Batches stored (each may hold duplicates).",
    "fogpark_cloud_records_stored_total": "Records newly stored.",
    "fogpark_cloud_records_duplicate_total": "Records received again and ignored.",
    "fogpark_cloud_rejected_total": "Requests refused, by surface and reason.",
}

Labels = tuple[tuple[str, str], ...]


class Counters:
    """Thread-safe monotonically increasing counters with labels."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: defaultdict[tuple[str, Labels], int] = defaultdict(int)

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        """Add ``amount`` to the counter ``name`` with these labels."""
        if name not in COUNTERS:
            raise KeyError(f"unknown counter {name!r}")
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] += amount

    def value(self, name: str, **labels: str) -> int:
        """Current value (0 if never incremented)."""
        with self._lock:
            return self._values.get((name, tuple(sorted(labels.items()))), 0)

    def reject(self, surface: str, reason: str) -> None:
        """Count one refused request: ``surface`` is where (``grpc.PushBatch``), ``reason`` why."""
        self.inc("fogpark_cloud_rejected_total", surface=surface, reason=reason)

    def render(self) -> str:
        """Prometheus text exposition format, version 0.0.4."""
        with self._lock:
            snapshot = sorted(self._values.items())
        lines: list[str] = []
        for name, help_text in COUNTERS.items():
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} counter")
            series = [(labels, value) for (n, labels), value in snapshot if n == name]
            if not series and not name.endswith("rejected_total"):
                lines.append(f"{name} 0")
            for labels, value in series:
                rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                lines.append(f"{name}{{{rendered}}} {value}" if rendered else f"{name} {value}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
