"""Spot events as CSV: one layout for the HTTP API and the CLI."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, TextIO

from cloud.timeparse import format_ms

CSV_COLUMNS = ("at", "at_ms", "spot_id", "state", "node_id", "fcnt", "rssi_dbm", "snr_db", "gateway_id",
               "prev_duration_s", "fog_id", "seq")


def write_events_csv(rows: Iterable[dict[str, Any]], out: TextIO) -> None:
    """Header plus one line per event; ``at`` is the readable twin of ``at_ms``."""
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "at": format_ms(row["at_ms"])})
