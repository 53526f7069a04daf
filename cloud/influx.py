"""History in InfluxDB 2.x: line protocol out, Flux in, the same rows as the SQLite backend.

Schema (InfluxDB's guidance: tags are indexed metadata with bounded values,
fields hold the data; never an unbounded id as a tag):

* ``lot_summary`` — tags ``fog``, ``lot``, ``zone`` (absent for the whole lot:
  InfluxDB has no empty tag values); integer fields ``capacity occupied free
  arrivals departures unhealthy_sensors window_s seq``, float fields
  ``concentration price_per_hour mean_interarrival_s`` (a NaN is left out: line
  protocol has no NaN, and SQLite stores it as NULL).
* ``spot_event`` — tags ``fog``, ``lot``; fields ``spot_id state`` (strings),
  ``prev_duration_s node_id fcnt rssi_dbm gateway_id seq`` (integers), ``snr_db``.
  Spot ids are fields: they are many per lot and queries filter by lot.
  No plates, card ids, reservation or session ids are ever written here.

Timestamps are nanoseconds: the record's own time in ms × 10⁶ plus
``seq mod 10⁶``. A point's key (measurement, tags, time) is therefore unique
per record and the same on every resend, so writes are idempotent — a repeated
batch overwrites its own points — and two records of one fog in the same
millisecond never overwrite each other.

Writes are batched: one HTTP request per ``batch_size`` lines, synchronous, so
the fog is acknowledged only after InfluxDB accepted the points.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from cloud.config import InfluxSettings
from cloud.summaries import bucket_row
from proto import parking_pb2

NS_PER_MS = 1_000_000
SUMMARY = "lot_summary"
SPOT_EVENT = "spot_event"
_SUMMARY_INTS = ("capacity", "occupied", "free", "arrivals", "departures", "unhealthy_sensors", "window_s")
_SUMMARY_FLOATS = ("concentration", "price_per_hour", "mean_interarrival_s")
_EVENT_INTS = ("prev_duration_s", "node_id", "fcnt", "rssi_dbm", "gateway_id")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ---- line protocol ---------------------------------------------------------------------------


def _tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _string_field(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _float_field(value: float) -> str | None:
    return repr(float(value)) if math.isfinite(value) else None


def point_time_ns(at_ms: int, seq: int) -> int:
    """The point's timestamp: unique per (fog, seq) within a millisecond, identical on every resend."""
    return at_ms * NS_PER_MS + seq % NS_PER_MS


def record_line(fog_id: str, record: parking_pb2.Record) -> str | None:
    """The line protocol of one record, or None for kinds kept only in SQLite (alerts, reservations, health)."""
    kind = record.WhichOneof("body")
    if kind == "summary":
        s = record.summary
        tags = f"{SUMMARY},fog={_tag(fog_id)},lot={_tag(s.lot_id)}" + (f",zone={_tag(s.zone)}" if s.zone else "")
        fields = [f"{name}={getattr(s, name)}i" for name in _SUMMARY_INTS]
        fields += [f"{name}={text}" for name in _SUMMARY_FLOATS
                   if (text := _float_field(getattr(s, name))) is not None]
        fields.append(f"seq={record.seq}i")
        return f"{tags} {','.join(fields)} {point_time_ns(s.window_start_ms, record.seq)}"
    if kind == "spot_event":
        e = record.spot_event
        fields = [f"spot_id={_string_field(e.spot_id)}", f"state={_string_field(e.state)}"]
        fields += [f"{name}={getattr(e, name)}i" for name in _EVENT_INTS]
        if (snr := _float_field(e.snr_db)) is not None:
            fields.append(f"snr_db={snr}")
        fields.append(f"seq={record.seq}i")
        return f"{SPOT_EVENT},fog={_tag(fog_id)},lot={_tag(e.lot_id)} {','.join(fields)} " \
               f"{point_time_ns(e.at_ms, record.seq)}"
    return None


def batch_lines(batch: parking_pb2.Batch) -> list[str]:
    """Line protocol for every summary and spot event of the batch, in seq order."""
    return [line for record in batch.records if (line := record_line(batch.fog_id, record)) is not None]


# ---- Flux --------------------------------------------------------------------------------------


def flux_string(value: str) -> str:
    """A Flux string literal: quotes, backslashes and ``${`` interpolation escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def flux_time(at_ms: int) -> str:
    """RFC 3339 UTC with milliseconds, as Flux's range() takes it."""
    when = datetime.fromtimestamp(at_ms // 1000, tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at_ms % 1000:03d}Z"


def _zone_filter(zone: str) -> str:
    return f"r.zone == {flux_string(zone)}" if zone else "not exists r.zone"


def summaries_flux(bucket: str, lot_id: str, zone: str, since_ms: int, until_ms: int, bucket_s: int) -> str:
    """Sums, sample counts and max capacity per UTC-aligned window, one row per non-empty window."""
    return f"""base = from(bucket: {flux_string(bucket)})
  |> range(start: {flux_time(since_ms)}, stop: {flux_time(until_ms)})
  |> filter(fn: (r) => r._measurement == "{SUMMARY}" and r.lot == {flux_string(lot_id)} and {_zone_filter(zone)})
  |> group(columns: ["_field"])
sums = base
  |> filter(fn: (r) => r._field == "occupied" or r._field == "free" or r._field == "arrivals" or r._field == "departures" or r._field == "concentration" or r._field == "price_per_hour")
  |> toFloat()
  |> aggregateWindow(every: {bucket_s}s, fn: sum, createEmpty: false, timeSrc: "_start")
samples = base
  |> filter(fn: (r) => r._field == "occupied")
  |> aggregateWindow(every: {bucket_s}s, fn: count, createEmpty: false, timeSrc: "_start")
  |> toFloat()
  |> set(key: "_field", value: "samples")
capacity = base
  |> filter(fn: (r) => r._field == "capacity")
  |> aggregateWindow(every: {bucket_s}s, fn: max, createEmpty: false, timeSrc: "_start")
  |> toFloat()
union(tables: [sums, samples, capacity])
  |> group()
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
  |> sort(columns: ["_time"])"""


def spot_history_flux(bucket: str, lot_id: str, since_ms: int, until_ms: int, limit: int | None) -> str:
    """A lot's spot events in the window, one row per event, oldest first."""
    text = f"""from(bucket: {flux_string(bucket)})
  |> range(start: {flux_time(since_ms)}, stop: {flux_time(until_ms)})
  |> filter(fn: (r) => r._measurement == "{SPOT_EVENT}" and r.lot == {flux_string(lot_id)})
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
  |> group()
  |> sort(columns: ["_time", "fog"])"""
    return text + (f"\n  |> limit(n: {limit})" if limit is not None else "")


def latest_summaries_flux(bucket: str) -> str:
    """Each lot's newest whole-lot summary (all time: the same answer as SQLite's)."""
    return f"""from(bucket: {flux_string(bucket)})
  |> range(start: 0)
  |> filter(fn: (r) => r._measurement == "{SUMMARY}" and not exists r.zone)
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
  |> group(columns: ["lot"])
  |> top(n: 1, columns: ["_time"])
  |> group()
  |> sort(columns: ["lot"])"""


# ---- rows in the SQLite backend's shape ---------------------------------------------------------


def _ms(value: Any) -> int:
    """A Flux _time (a datetime from the client) as Unix ms, floored: the seq offset is below a ms."""
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime for _time, got {type(value).__name__}")
    return (value - _EPOCH) // timedelta(milliseconds=1)


def _num(row: dict[str, Any], key: str, default: float = 0.0) -> float:
    value = row.get(key)
    return default if value is None else float(value)


def summary_buckets(rows: Iterable[dict[str, Any]], bucket_s: int) -> list[dict[str, Any]]:
    """Pivoted window rows → the bucket dicts of cloud.summaries.bucket_row."""
    out = []
    for row in rows:
        samples = int(_num(row, "samples"))
        if samples == 0:
            continue
        out.append(bucket_row(
            _ms(row["_time"]), bucket_s, samples, _num(row, "occupied"), _num(row, "free"), _num(row, "arrivals"),
            _num(row, "departures"), int(_num(row, "capacity")), _num(row, "concentration"),
            _num(row, "price_per_hour"),
        ))
    return out


def spot_event_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pivoted spot-event rows → spot_history dicts, ordered like SQLite (at_ms, fog_id, seq)."""
    out = [
        {"fog_id": row["fog"], "seq": int(row["seq"]), "lot_id": row["lot"], "spot_id": row.get("spot_id") or "",
         "at_ms": _ms(row["_time"]), "state": row.get("state") or "",
         **{name: int(_num(row, name)) for name in ("prev_duration_s", "node_id", "fcnt", "rssi_dbm")},
         "snr_db": _num(row, "snr_db"), "gateway_id": int(_num(row, "gateway_id"))}
        for row in rows
    ]
    out.sort(key=lambda r: (r["at_ms"], r["fog_id"], r["seq"]))
    return out


def latest_summary_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pivoted newest-summary rows → lots() dicts."""
    out = []
    for row in rows:
        interarrival = row.get("mean_interarrival_s")
        out.append({
            "fog_id": row["fog"], "seq": int(row["seq"]), "lot_id": row["lot"], "zone": "",
            "window_start_ms": _ms(row["_time"]), "window_s": int(_num(row, "window_s")),
            "capacity": int(_num(row, "capacity")), "occupied": int(_num(row, "occupied")),
            "free": int(_num(row, "free")), "arrivals": int(_num(row, "arrivals")),
            "departures": int(_num(row, "departures")), "concentration": _num(row, "concentration"),
            "mean_interarrival_s": None if interarrival is None else float(interarrival),
            "price_per_hour": _num(row, "price_per_hour"), "unhealthy_sensors": int(_num(row, "unhealthy_sensors")),
        })
    out.sort(key=lambda r: r["lot_id"])
    return out


class InfluxHistory:
    """HistoryStore over InfluxDB 2.x with the official client (HTTP API v2)."""

    def __init__(self, settings: InfluxSettings) -> None:
        from influxdb_client import InfluxDBClient, WritePrecision
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.settings = settings
        self._client = InfluxDBClient(url=settings.url, token=settings.token, org=settings.org,
                                      timeout=int(settings.timeout_s * 1000))
        self._write = self._client.write_api(write_options=SYNCHRONOUS)
        self._query = self._client.query_api()
        self._precision: Any = WritePrecision.NS  # a str constant the stubs type as the class

    def write_history(self, batch: parking_pb2.Batch) -> None:
        lines = batch_lines(batch)
        size = self.settings.batch_size
        for start in range(0, len(lines), size):
            self._write.write(bucket=self.settings.bucket, org=self.settings.org, record=lines[start:start + size],
                              write_precision=self._precision)

    def _rows(self, flux: str) -> list[dict[str, Any]]:
        return [record.values for table in self._query.query(flux, org=self.settings.org) for record in table.records]

    def lot_summaries(
        self, lot_id: str, since_ms: int, until_ms: int, bucket_s: int, *, zone: str = ""
    ) -> list[dict[str, Any]]:
        if bucket_s <= 0:
            raise ValueError(f"bucket_s must be > 0, got {bucket_s}")
        flux = summaries_flux(self.settings.bucket, lot_id, zone, since_ms, until_ms, bucket_s)
        return summary_buckets(self._rows(flux), bucket_s)

    def spot_history(
        self, lot_id: str, since_ms: int, until_ms: int, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        return spot_event_rows(self._rows(spot_history_flux(self.settings.bucket, lot_id, since_ms, until_ms, limit)))

    def lots(self) -> list[dict[str, Any]]:
        return latest_summary_rows(self._rows(latest_summaries_flux(self.settings.bucket)))

    def ping(self) -> None:
        if not self._client.ping():
            raise ConnectionError(f"InfluxDB at {self.settings.url} does not answer /ping")

    def close(self) -> None:
        self._client.close()
