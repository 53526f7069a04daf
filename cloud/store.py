"""CloudStore: the cloud's SQLite history, shared safely by several replicas.

Every write is one ``BEGIN IMMEDIATE`` transaction (the write lock is taken up
front, so two processes never deadlock upgrading a read lock) with a busy
timeout, in WAL mode so readers never wait for the writer. A store object
holds one connection behind a lock: callers may use it from any thread, one
call at a time.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence, Set
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from cloud.records import KIND_TABLES, KIND_TIME_FIELD, body_values, record_body, record_kind, validate_batch
from cloud.schema import migrate
from cloud.summaries import add_to_hours, bucketed
from proto import parking_pb2

log = logging.getLogger(__name__)

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")

_LEDGER_INSERT = (
    "INSERT OR IGNORE INTO records (fog_id, seq, kind, lot_id, at_ms, received_ms, body) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
# End of the contiguous run that starts just after the cursor: the first stored seq
# whose successor is missing. Walks the primary key in order and stops there.
_RUN_END = (
    "SELECT r.seq FROM records AS r WHERE r.fog_id = ? AND r.seq > ? "
    "AND NOT EXISTS (SELECT 1 FROM records AS n WHERE n.fog_id = r.fog_id AND n.seq = r.seq + 1) "
    "ORDER BY r.seq LIMIT 1"
)
# Loose index scan: one index probe per distinct lot, then that lot's newest whole-lot summary.
_LATEST_PER_LOT = """
WITH RECURSIVE lot(lot_id) AS (
  SELECT MIN(lot_id) FROM summaries
  UNION ALL
  SELECT (SELECT MIN(s.lot_id) FROM summaries AS s WHERE s.lot_id > lot.lot_id) FROM lot
  WHERE lot.lot_id IS NOT NULL
)
SELECT s.* FROM lot JOIN summaries AS s ON s.rowid = (
  SELECT rowid FROM summaries WHERE lot_id = lot.lot_id AND zone = ''
  ORDER BY window_start_ms DESC, seq DESC LIMIT 1)
ORDER BY s.lot_id
"""


def now_ms() -> int:
    """Wall clock in Unix ms, the unit of every time in the contract."""
    return time.time_ns() // 1_000_000


def _enable_wal(db: Database, timeout_s: float) -> None:
    """Switch the file to WAL, waiting up to ``timeout_s`` for the lock.

    The switch needs an exclusive lock and SQLite does not apply the busy
    timeout to it: replicas starting together on a new file got "database is
    locked" at once (3 processes, ~1 start in 100 here). They retry instead.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            db.enable_wal()
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


class CloudStore:
    """History of every fog's records, cursors, and the per-fog queue of cloud updates."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 10.0, synchronous: str = "FULL") -> None:
        """Open (creating parents and schema as needed) the database at ``path``.

        ``synchronous=FULL`` by default: an Ack lets the fog forget records, so a
        commit must survive power loss, not only a crash of this process.
        """
        if synchronous.upper() not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, got {synchronous!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            str(self.path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        self.db = Database(conn)
        _enable_wal(self.db, busy_timeout_s)
        conn.execute(f"PRAGMA synchronous={synchronous}")
        migrate(self.db)
        self._lock = threading.Lock()
        self._kind_inserts: dict[str, tuple[tuple[str, ...], str]] = {}
        for kind, table in KIND_TABLES.items():
            columns = tuple(c for c in self.db.table(table).columns_dict if c not in ("fog_id", "seq"))
            marks = ", ".join("?" * (len(columns) + 2))
            sql = f"INSERT INTO {table} (fog_id, seq, {', '.join(columns)}) VALUES ({marks})"
            self._kind_inserts[kind] = (columns, sql)

    def close(self) -> None:
        """Close the connection; the object is unusable afterwards."""
        with self._lock:
            self.db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction holding the database write lock from the start."""
        with self._lock:
            conn = self.db.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, params: dict[str, Any] | tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.db.query(sql, params))

    # ---- ingest -------------------------------------------------------------

    def ingest_batch(
        self, batch: parking_pb2.Batch, *, allowed_lots: Set[str] | None = None, received_ms: int | None = None
    ) -> parking_pb2.Ack:
        """Store the records not yet held, advance the fog's cursor, and say what happened.

        Raises BatchError (or LotNotAllowed) before touching the database. A
        repeated or overlapping batch stores nothing twice; a batch after a gap
        is stored but the ack stays at the last contiguous seq.
        """
        validate_batch(batch, allowed_lots)
        fog_id = batch.fog_id
        received = now_ms() if received_ms is None else received_ms
        with self._write() as conn:
            held = dict(
                conn.execute(
                    "SELECT seq, body FROM records WHERE fog_id = ? AND seq BETWEEN ? AND ?",
                    (fog_id, batch.first_seq, batch.last_seq),
                )
            )
            ledger: list[tuple[Any, ...]] = []
            per_kind: defaultdict[str, list[list[Any]]] = defaultdict(list)
            new_summaries: list[parking_pb2.LotSummary] = []
            conflicting: list[int] = []
            for record in batch.records:
                encoded = record.SerializeToString()
                if record.seq in held:
                    if held[record.seq] != encoded:
                        conflicting.append(record.seq)
                    continue
                kind = record_kind(record)
                assert kind is not None  # validate_batch refused bodiless records
                body = record_body(record, kind)
                at_ms = getattr(body, KIND_TIME_FIELD[kind])
                ledger.append((fog_id, record.seq, kind, body.lot_id, at_ms, received, encoded))
                columns, _ = self._kind_inserts[kind]
                per_kind[kind].append([fog_id, record.seq, *body_values(body, columns)])
                if kind == "summary":
                    new_summaries.append(record.summary)
            stored = conn.executemany(_LEDGER_INSERT, ledger).rowcount if ledger else 0
            for kind, rows in per_kind.items():
                conn.executemany(self._kind_inserts[kind][1], rows)
            add_to_hours(conn, new_summaries)
            acked = self._advance_cursor(conn, fog_id, batch.first_seq, batch.last_seq, received)
        if conflicting:
            log.warning(
                "fog %s resent %d seq(s) with a different body (first %d); kept the copy stored first",
                fog_id, len(conflicting), conflicting[0],
            )
        return parking_pb2.Ack(
            fog_id=fog_id, acked_seq=acked, stored=stored, duplicates=len(batch.records) - stored
        )

    @staticmethod
    def _advance_cursor(conn: sqlite3.Connection, fog_id: str, first: int, last: int, at_ms: int) -> int:
        """Move the cursor to the end of the contiguous run, if this batch touched its edge."""
        row = conn.execute("SELECT acked_seq FROM cursors WHERE fog_id = ?", (fog_id,)).fetchone()
        acked = int(row[0]) if row else 0
        # The cursor can move only if this batch covers acked + 1 (now stored).
        if not first <= acked + 1 <= last:
            return acked
        (end,) = conn.execute(_RUN_END, (fog_id, acked)).fetchone()
        conn.execute(
            "INSERT INTO cursors (fog_id, acked_seq, updated_ms) VALUES (?, ?, ?) "
            "ON CONFLICT (fog_id) DO UPDATE SET acked_seq = excluded.acked_seq, updated_ms = excluded.updated_ms",
            (fog_id, end, at_ms),
        )
        return int(end)

    def cursor(self, fog_id: str) -> int:
        """Highest contiguous seq stored for ``fog_id`` (0: nothing yet); the fog resumes after it."""
        rows = self._query("SELECT acked_seq FROM cursors WHERE fog_id = ?", (fog_id,))
        return int(rows[0]["acked_seq"]) if rows else 0

    # ---- operator queries ---------------------------------------------------

    def spot_history(
        self, lot_id: str, since_ms: int, until_ms: int, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Spot events of a lot with since_ms <= at_ms < until_ms, oldest first."""
        return self._query(
            "SELECT fog_id, seq, lot_id, spot_id, at_ms, state, prev_duration_s, node_id, fcnt, rssi_dbm, "
            "snr_db, gateway_id FROM spot_events WHERE lot_id = ? AND at_ms >= ? AND at_ms < ? "
            "ORDER BY at_ms, fog_id, seq LIMIT ?",
            (lot_id, since_ms, until_ms, -1 if limit is None else limit),
        )

    def lot_summaries(
        self, lot_id: str, since_ms: int, until_ms: int, bucket_s: int, *, zone: str = ""
    ) -> list[dict[str, Any]]:
        """Summaries in [since_ms, until_ms) aggregated into UTC-aligned buckets of ``bucket_s``.

        Per bucket: samples, mean occupied/free/concentration, arrivals and departures
        summed, max capacity; empty buckets are left out. ``zone=""`` is the whole lot
        (zone summaries are kept apart so nothing is counted twice).
        """
        if bucket_s <= 0:
            raise ValueError(f"bucket_s must be > 0, got {bucket_s}")
        with self._lock:
            return bucketed(self.db.conn, lot_id, zone, since_ms, until_ms, bucket_s)

    def lots(self) -> list[dict[str, Any]]:
        """The newest whole-lot summary of every lot that has one."""
        return self._query(_LATEST_PER_LOT)

    def alerts(
        self, lot_id: str | None = None, *, active_only: bool = False, since_ms: int | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """The latest version of each alert (by seq), newest activity first."""
        return self._query(
            "SELECT a.* FROM alerts AS a "
            "WHERE a.seq = (SELECT MAX(b.seq) FROM alerts AS b "
            "               WHERE b.lot_id = a.lot_id AND b.alert_id = a.alert_id AND b.fog_id = a.fog_id) "
            "AND (:lot_id IS NULL OR a.lot_id = :lot_id) AND (NOT :active_only OR a.cleared_ms = 0) "
            "AND (:since_ms IS NULL OR a.last_seen_ms >= :since_ms) "
            "ORDER BY a.last_seen_ms DESC, a.alert_id LIMIT :limit",
            {"lot_id": lot_id, "active_only": active_only, "since_ms": since_ms, "limit": limit},
        )

    # ---- cloud -> fog updates -----------------------------------------------

    def enqueue_update(self, fog_id: str, update: parking_pb2.CloudUpdate) -> int:
        """Queue ``update`` for ``fog_id`` under the next version, which is returned."""
        self._check_update(fog_id, update)
        with self._write() as conn:
            return self._enqueue(conn, fog_id, update)

    @staticmethod
    def _check_update(fog_id: str, update: parking_pb2.CloudUpdate) -> None:
        if not fog_id or update.WhichOneof("body") is None:
            raise ValueError("enqueue_update needs a fog_id and an update with a body")
        if update.version:
            raise ValueError(f"update.version is {update.version}; the store assigns versions, leave it 0")

    @staticmethod
    def _enqueue(conn: sqlite3.Connection, fog_id: str, update: parking_pb2.CloudUpdate) -> int:
        """Insert one update under the fog's next version, inside the caller's write transaction."""
        (version,) = conn.execute(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM cloud_updates WHERE fog_id = ?", (fog_id,)
        ).fetchone()
        stamped = parking_pb2.CloudUpdate()
        stamped.CopyFrom(update)
        stamped.version = version
        conn.execute(
            "INSERT INTO cloud_updates (fog_id, version, kind, created_ms, body) VALUES (?, ?, ?, ?, ?)",
            (fog_id, version, update.WhichOneof("body"), now_ms(), stamped.SerializeToString()),
        )
        return int(version)

    def enqueue_updates(self, fog_id: str, updates: Sequence[parking_pb2.CloudUpdate]) -> list[int]:
        """Queue several updates for one fog in one transaction (a model push is hundreds of matrices)."""
        for update in updates:
            self._check_update(fog_id, update)
        with self._write() as conn:
            return [self._enqueue(conn, fog_id, update) for update in updates]

    def updates_after(self, fog_id: str, after_version: int, limit: int = 100) -> list[parking_pb2.CloudUpdate]:
        """Updates for ``fog_id`` with version > after_version, oldest first."""
        rows = self._query(
            "SELECT body FROM cloud_updates WHERE fog_id = ? AND version > ? ORDER BY version LIMIT ?",
            (fog_id, after_version, limit),
        )
        return [parking_pb2.CloudUpdate.FromString(row["body"]) for row in rows]

    # ---- operator views -------------------------------------------------------

    def reservations(
        self, lot_id: str | None = None, *, status: str | None = None, since_ms: int | None = None,
        until_ms: int | None = None, limit: int = 10_000,
    ) -> list[dict[str, Any]]:
        """The latest version (by seq) of each reservation whose start is in [since_ms, until_ms), by start."""
        return self._query(
            "SELECT r.* FROM reservations AS r "
            "WHERE r.seq = (SELECT MAX(b.seq) FROM reservations AS b WHERE b.lot_id = r.lot_id "
            "               AND b.reservation_id = r.reservation_id AND b.fog_id = r.fog_id) "
            "AND (:lot_id IS NULL OR r.lot_id = :lot_id) AND (:status IS NULL OR r.status = :status) "
            "AND (:since_ms IS NULL OR r.start_ms >= :since_ms) AND (:until_ms IS NULL OR r.start_ms < :until_ms) "
            "ORDER BY r.start_ms, r.lot_id, r.reservation_id LIMIT :limit",
            {"lot_id": lot_id, "status": status, "since_ms": since_ms, "until_ms": until_ms, "limit": limit},
        )

    def node_health(self, lot_id: str | None = None) -> list[dict[str, Any]]:
        """The newest health report of every node (by last_seen_ms, then seq), by lot and node id."""
        return self._query(
            "SELECT h.* FROM node_health AS h WHERE h.seq = (SELECT b.seq FROM node_health AS b "
            "  WHERE b.lot_id = h.lot_id AND b.node_id = h.node_id AND b.fog_id = h.fog_id "
            "  ORDER BY b.last_seen_ms DESC, b.seq DESC LIMIT 1) "
            "AND (:lot_id IS NULL OR h.lot_id = :lot_id) ORDER BY h.lot_id, h.node_id",
            {"lot_id": lot_id},
        )

    def spot_states(self, lot_id: str | None = None) -> list[dict[str, Any]]:
        """Every spot's newest event (its current state as far as the cloud knows), by lot and spot."""
        return self._query(
            "SELECT e.lot_id, e.spot_id, e.state, e.at_ms, e.node_id FROM spot_events AS e "
            "WHERE e.rowid = (SELECT b.rowid FROM spot_events AS b WHERE b.lot_id = e.lot_id "
            "  AND b.spot_id = e.spot_id ORDER BY b.at_ms DESC, b.seq DESC LIMIT 1) "
            "AND (:lot_id IS NULL OR e.lot_id = :lot_id) ORDER BY e.lot_id, e.spot_id",
            {"lot_id": lot_id},
        )

    # ---- bookings made in the cloud -------------------------------------------

    def create_booking(self, booking: parking_pb2.Booking, fog_id: str, created_by: str) -> int:
        """Record a booking and queue it for the lot's fog in one transaction; returns the update version.

        One transaction so a booking is never shown as made but not forwarded, or forwarded twice.
        """
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM cloud_bookings WHERE booking_id = ?", (booking.booking_id,)).fetchone():
                raise ValueError(f"booking id {booking.booking_id!r} already exists")
            version = self._enqueue(conn, fog_id, parking_pb2.CloudUpdate(booking=booking))
            conn.execute(
                "INSERT INTO cloud_bookings (booking_id, lot_id, fog_id, plan, start_ms, end_ms, spot_id, plate, "
                "card_uid_hex, created_ms, created_by, update_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (booking.booking_id, booking.lot_id, fog_id, booking.plan, booking.start_ms, booking.end_ms,
                 booking.spot_id, booking.plate, booking.card_uid_hex, now_ms(), created_by, version),
            )
        return version

    def bookings(self, lot_id: str | None = None, *, limit: int = 1000) -> list[dict[str, Any]]:
        """Cloud bookings, newest first, with the fog's latest word on each (status "forwarded" until then)."""
        return self._query(
            "SELECT c.booking_id, c.lot_id, c.fog_id, c.plan, c.start_ms, c.end_ms, c.spot_id AS requested_spot, "
            "c.created_ms, c.created_by, c.update_version, COALESCE(r.status, 'forwarded') AS status, "
            "r.spot_id AS spot_id, r.price_total, r.updated_ms "
            "FROM cloud_bookings AS c LEFT JOIN reservations AS r ON r.rowid = ("
            "  SELECT b.rowid FROM reservations AS b WHERE b.lot_id = c.lot_id AND b.reservation_id = c.booking_id "
            "  ORDER BY b.seq DESC LIMIT 1) "
            "WHERE (:lot_id IS NULL OR c.lot_id = :lot_id) ORDER BY c.created_ms DESC, c.booking_id LIMIT :limit",
            {"lot_id": lot_id, "limit": limit},
        )

    # ---- Markov models ----------------------------------------------------------

    def save_models(
        self, lot_id: str, matrices: Mapping[str, Sequence[Sequence[float]]], report: dict[str, Any], trained_ms: int
    ) -> None:
        """Replace a lot's matrices and quality report with a new training run's."""
        with self._write() as conn:
            conn.execute("DELETE FROM markov_models WHERE lot_id = ?", (lot_id,))
            conn.executemany(
                "INSERT INTO markov_models (lot_id, season_key, matrix_json, trained_ms) VALUES (?, ?, ?, ?)",
                [(lot_id, key, json.dumps([list(row) for row in m]), trained_ms) for key, m in matrices.items()],
            )
            conn.execute(
                "INSERT INTO model_reports (lot_id, trained_ms, report_json) VALUES (?, ?, ?) "
                "ON CONFLICT (lot_id) DO UPDATE SET trained_ms = excluded.trained_ms, "
                "report_json = excluded.report_json",
                (lot_id, trained_ms, json.dumps(report)),
            )

    def models(self, lot_id: str) -> dict[str, list[list[float]]]:
        """The lot's newest matrices by season key."""
        rows = self._query("SELECT season_key, matrix_json FROM markov_models WHERE lot_id = ? ORDER BY season_key",
                           (lot_id,))
        return {row["season_key"]: json.loads(row["matrix_json"]) for row in rows}

    def model_reports(self, lot_id: str | None = None) -> list[dict[str, Any]]:
        """The newest quality report of each lot (or of one lot)."""
        rows = self._query(
            "SELECT lot_id, trained_ms, report_json FROM model_reports WHERE (:lot IS NULL OR lot_id = :lot) "
            "ORDER BY lot_id", {"lot": lot_id},
        )
        return [json.loads(row["report_json"]) for row in rows]

    def write_history(self, batch: parking_pb2.Batch) -> None:
        """History-backend hook (see cloud.history): SQLite already stored the batch in ingest_batch."""

    def ping(self) -> None:
        """Raise if the database cannot be read (for health checks)."""
        self._query("SELECT 1 AS ok")
