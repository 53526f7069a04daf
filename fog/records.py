"""Outbox records: what the fog tells the cloud, as protobuf bodies.

The outbox stores each record's kind and serialized body; the sequence
number is the outbox row id (AUTOINCREMENT, never reused) and is attached
only when a batch is built, so a record's bytes never change after commit.
"""

from __future__ import annotations

from typing import Any

from fog.engine.lot_stats import concentration_index
from proto import parking_pb2 as pb

KINDS = ("summary", "spot_event", "alert", "reservation", "node_health")


def spot_event(lot_id: str, spot: str, at_ms: int, state: str, prev_duration_s: int, node_id: int,
               fcnt: int, rssi: int | None, snr: float | None, gateway: int) -> tuple[str, bytes]:
    msg = pb.SpotEvent(lot_id=lot_id, spot_id=spot, at_ms=at_ms, state=state, prev_duration_s=prev_duration_s,
                       node_id=node_id, fcnt=fcnt, rssi_dbm=rssi or 0, snr_db=snr or 0.0, gateway_id=gateway)
    return "spot_event", msg.SerializeToString()


def node_health(lot_id: str, node_id: int, spot: str, at_ms: int, fields: dict[str, Any],
                tamper: bool) -> tuple[str, bytes]:
    msg = pb.NodeHealth(lot_id=lot_id, node_id=node_id, spot_id=spot, last_seen_ms=at_ms,
                        battery_mv=fields.get("battery_mv", 0),
                        temp_c=_nan_if_none(fields.get("temp_c")),
                        uptime_s=fields.get("uptime_s", 0), tamper=tamper)
    return "node_health", msg.SerializeToString()


def lot_summary(lot_id: str, window_start_ms: int, window_s: int, capacity: int, occupied: int, free: int,
                arrivals: int, departures: int, mean_interarrival_s: float, price_per_hour: float = 0.0,
                unhealthy_sensors: int = 0) -> tuple[str, bytes]:
    msg = pb.LotSummary(lot_id=lot_id, window_start_ms=window_start_ms, window_s=window_s, capacity=capacity,
                        occupied=occupied, free=free, arrivals=arrivals, departures=departures,
                        concentration=concentration_index(occupied, capacity) if capacity else 0.0,
                        mean_interarrival_s=mean_interarrival_s, price_per_hour=price_per_hour,
                        unhealthy_sensors=unhealthy_sensors)
    return "summary", msg.SerializeToString()


def alert(lot_id: str, row: dict[str, Any]) -> tuple[str, bytes]:
    msg = pb.Alert(lot_id=lot_id, alert_id=row["alert_id"], kind=row["kind"], spot_id=row.get("spot_id") or "",
                   node_id=row.get("node_id") or 0, first_seen_ms=row["first_seen_ms"],
                   last_seen_ms=row["last_seen_ms"], cleared_ms=row.get("cleared_ms", 0),
                   detail=row.get("detail") or "")
    return "alert", msg.SerializeToString()


def _nan_if_none(value: float | None) -> float:
    """proto3 doubles have no 'absent': NaN says 'no reading' (a node without a temperature sensor)."""
    return float("nan") if value is None else float(value)


def to_record(seq: int, kind: str, body: bytes) -> pb.Record:
    """Attach the sequence number to a stored body."""
    rec = pb.Record(seq=seq)
    getattr(rec, kind).ParseFromString(body)
    return rec
