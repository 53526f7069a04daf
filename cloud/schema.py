"""The cloud store's tables, as an ordered list of migrations.

Migration N brings a database from schema version N-1 to N. A migration, once
released, never changes: a new column or index is a new function appended to
MIGRATIONS. ``migrate`` runs the missing ones inside one BEGIN IMMEDIATE
transaction, so two replicas opening the same file at once migrate it once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from sqlite_utils import Database

Migration = Callable[[Database], None]


class SchemaError(RuntimeError):
    """The database cannot be used by this version of the code."""


def _v1_initial(db: Database) -> None:
    """Ledger, cursors, one table per record kind, and the updates queue."""
    key = ("fog_id", "seq")
    # The ledger: one row per (fog_id, seq) ever stored, with the serialized Record.
    # The per-kind tables below are derived from it and can be rebuilt from `body`.
    db.table("records").create(
        {"fog_id": str, "seq": int, "kind": str, "lot_id": str, "at_ms": int, "received_ms": int, "body": bytes},
        pk=key,
        not_null={"fog_id", "seq", "kind", "lot_id", "at_ms", "received_ms", "body"},
    )
    db.table("cursors").create({"fog_id": str, "acked_seq": int, "updated_ms": int}, pk="fog_id", not_null={"acked_seq"})
    db.table("summaries").create(
        {
            "fog_id": str, "seq": int, "lot_id": str, "zone": str, "window_start_ms": int, "window_s": int,
            "capacity": int, "occupied": int, "free": int, "arrivals": int, "departures": int,
            "concentration": float, "mean_interarrival_s": float, "price_per_hour": float,
            "unhealthy_sensors": int,
        },
        pk=key,
    )
    # Covering index: bucketed queries over raw minutes read only this index, never the table.
    db.table("summaries").create_index(
        ["lot_id", "zone", "window_start_ms", "occupied", "free", "arrivals", "departures", "capacity",
         "concentration"],
        index_name="summaries_by_lot_time",
    )
    # Additive hourly rollup of summaries, kept by ingest (see cloud/summaries.py).
    db.table("summary_hours").create(
        {
            "lot_id": str, "zone": str, "hour_ms": int, "samples": int, "occupied_sum": int, "free_sum": int,
            "arrivals_sum": int, "departures_sum": int, "capacity_max": int, "concentration_sum": float,
        },
        pk=("lot_id", "zone", "hour_ms"),
        not_null={"lot_id", "zone", "hour_ms", "samples", "occupied_sum", "free_sum", "arrivals_sum",
                  "departures_sum", "capacity_max", "concentration_sum"},
    )
    db.table("spot_events").create(
        {
            "fog_id": str, "seq": int, "lot_id": str, "spot_id": str, "at_ms": int, "state": str,
            "prev_duration_s": int, "node_id": int, "fcnt": int, "rssi_dbm": int, "snr_db": float,
            "gateway_id": int,
        },
        pk=key,
    )
    db.table("spot_events").create_index(["lot_id", "at_ms"], index_name="spot_events_by_lot_time")
    db.table("alerts").create(
        {
            "fog_id": str, "seq": int, "lot_id": str, "alert_id": str, "kind": str, "spot_id": str,
            "node_id": int, "first_seen_ms": int, "last_seen_ms": int, "cleared_ms": int, "detail": str,
        },
        pk=key,
    )
    db.table("alerts").create_index(["lot_id", "alert_id", "fog_id", "seq"], index_name="alerts_by_lot_alert")
    db.table("reservations").create(
        {
            "fog_id": str, "seq": int, "lot_id": str, "reservation_id": str, "spot_id": str, "plan": str,
            "status": str, "start_ms": int, "end_ms": int, "price_total": float, "late_charge": float,
            "updated_ms": int, "source": str,
        },
        pk=key,
    )
    db.table("reservations").create_index(["lot_id", "reservation_id"], index_name="reservations_by_lot")
    db.table("node_health").create(
        {
            "fog_id": str, "seq": int, "lot_id": str, "node_id": int, "spot_id": str, "last_seen_ms": int,
            "battery_mv": int, "temp_c": float, "uptime_s": int, "tamper": bool,
        },
        pk=key,
    )
    db.table("node_health").create_index(["lot_id", "node_id"], index_name="node_health_by_lot_node")
    # What the cloud sends each fog; version is per fog and is the Subscribe resume point.
    db.table("cloud_updates").create(
        {"fog_id": str, "version": int, "kind": str, "created_ms": int, "body": bytes},
        pk=("fog_id", "version"),
        not_null={"fog_id", "version", "kind", "created_ms", "body"},
    )


def _v2_operators(db: Database) -> None:
    """Price in the hourly rollup, bookings made in the cloud, trained Markov models, spot-state index."""
    # Price per hour is averaged per bucket like occupancy; backfilled from the minutes already held.
    db.execute("ALTER TABLE summary_hours ADD COLUMN price_sum REAL NOT NULL DEFAULT 0")
    db.execute(
        "UPDATE summary_hours SET price_sum = (SELECT TOTAL(s.price_per_hour) FROM summaries AS s "
        "WHERE s.lot_id = summary_hours.lot_id AND s.zone = summary_hours.zone "
        "AND s.window_start_ms >= summary_hours.hour_ms AND s.window_start_ms < summary_hours.hour_ms + 3600000)"
    )
    # The covering index gains price_per_hour so raw-minute buckets still never read the table.
    db.execute("DROP INDEX IF EXISTS summaries_by_lot_time")
    db.table("summaries").create_index(
        ["lot_id", "zone", "window_start_ms", "occupied", "free", "arrivals", "departures", "capacity",
         "concentration", "price_per_hour"],
        index_name="summaries_by_lot_time_price",
    )
    db.table("spot_events").create_index(["lot_id", "spot_id", "at_ms"], index_name="spot_events_by_lot_spot")
    db.table("reservations").create_index(["lot_id", "start_ms"], index_name="reservations_by_lot_start")
    # A booking made through the operator API, forwarded to the lot's fog as CloudUpdate.booking;
    # its fate comes back as Reservation records with the same id (source "cloud").
    db.table("cloud_bookings").create(
        {"booking_id": str, "lot_id": str, "fog_id": str, "plan": str, "start_ms": int, "end_ms": int,
         "spot_id": str, "plate": str, "card_uid_hex": str, "created_ms": int, "created_by": str,
         "update_version": int},
        pk="booking_id",
        not_null={"booking_id", "lot_id", "fog_id", "plan", "start_ms", "end_ms", "created_ms", "update_version"},
    )
    db.table("cloud_bookings").create_index(["lot_id", "created_ms"], index_name="cloud_bookings_by_lot")
    # The newest trained matrix per (lot, season key), and the quality report of each lot's newest run.
    db.table("markov_models").create(
        {"lot_id": str, "season_key": str, "matrix_json": str, "trained_ms": int},
        pk=("lot_id", "season_key"), not_null={"lot_id", "season_key", "matrix_json", "trained_ms"},
    )
    db.table("model_reports").create(
        {"lot_id": str, "trained_ms": int, "report_json": str}, pk="lot_id",
        not_null={"lot_id", "trained_ms", "report_json"},
    )


MIGRATIONS: tuple[Migration, ...] = (_v1_initial, _v2_operators)


def schema_version(db: Database) -> int:
    """The version recorded in the database, 0 for a new file."""
    if not db.table("schema_version").exists():
        return 0
    row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(db: Database, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Apply the missing migrations in one write transaction; return the resulting version.

    The connection must be in autocommit mode (isolation_level None) so the
    transaction here is the only one. An up-to-date database is recognised
    without taking the write lock, so opening a busy store does not wait.
    """
    if schema_version(db) == len(migrations):
        return len(migrations)
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)"
        )
        current = schema_version(db)
        if current > len(migrations):
            raise SchemaError(
                f"database schema version {current} is newer than this fogpark-cloud understands "
                f"(up to {len(migrations)}); upgrade fogpark-cloud"
            )
        for version in range(current + 1, len(migrations) + 1):
            migrations[version - 1](db)
            db.execute(
                "INSERT INTO schema_version (version, applied_ms) VALUES (?, ?)",
                (version, int(time.time() * 1000)),
            )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return len(migrations)
