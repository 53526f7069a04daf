"""The fog's durable store: SQLite in WAL mode through sqlite-utils.

Everything the fog acknowledges goes through :meth:`FogStore.commit_cycles`,
one transaction per group of cycles, *before* it is acknowledged or synced:
the node counters (replay protection), the event log, spot states, alerts and
the outbox to the cloud. A ``kill -9`` at any point leaves either a whole
cycle or none of it. The cycle's writes have a connection of their own (the
store writer's, fog/store_writer.py); reads and the rare other writes (sync
cursor, compaction) use the main one, so WAL readers never wait for a commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

SCHEMA_VERSION = 3


def _migrate_1(db: sqlite_utils.Database) -> None:
    db.execute(
        """CREATE TABLE node_counters (
            node_id INTEGER PRIMARY KEY, last_fcnt INTEGER NOT NULL,
            last_raw BLOB, last_at_ms INTEGER NOT NULL)"""
    )
    db.execute(
        """CREATE TABLE spots (
            spot_id TEXT PRIMARY KEY, state TEXT NOT NULL, since_ms INTEGER NOT NULL,
            node_id INTEGER, last_seen_ms INTEGER, battery_mv INTEGER, temp_c REAL,
            tamper INTEGER NOT NULL DEFAULT 0, rssi_dbm INTEGER, snr_db REAL)"""
    )
    db.execute(
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, kind TEXT NOT NULL,
            spot_id TEXT, node_id INTEGER, fcnt INTEGER, state TEXT, prev_duration_s INTEGER,
            rssi_dbm INTEGER, snr_db REAL, gateway TEXT, detail TEXT)"""
    )
    db.execute("CREATE INDEX events_at ON events(at_ms)")
    db.execute(
        """CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
            body BLOB NOT NULL, created_ms INTEGER NOT NULL)"""
    )
    db.execute("CREATE TABLE sync_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
    db.execute("CREATE TABLE refusals (reason TEXT PRIMARY KEY, count INTEGER NOT NULL)")
    db.execute(
        """CREATE TABLE alerts (
            alert_id TEXT PRIMARY KEY, kind TEXT NOT NULL, node_id INTEGER, spot_id TEXT,
            first_seen_ms INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL,
            cleared_ms INTEGER NOT NULL DEFAULT 0, count INTEGER NOT NULL, detail TEXT)"""
    )


def _migrate_2(db: sqlite_utils.Database) -> None:
    """The lot engine (fog/lot_engine.py): bookings, auction bids, §1 history, models, engine state."""
    db.execute(
        """CREATE TABLE reservations (
            reservation_id TEXT PRIMARY KEY, kind TEXT NOT NULL, plan TEXT NOT NULL, status TEXT NOT NULL,
            spot_id TEXT, zone TEXT, client TEXT NOT NULL DEFAULT '', card_uid TEXT NOT NULL DEFAULT '',
            plate TEXT NOT NULL DEFAULT '', entrance TEXT, start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL,
            hours INTEGER NOT NULL, price_per_hour REAL NOT NULL, price_total REAL NOT NULL,
            late_charge REAL NOT NULL DEFAULT 0, extension_hours INTEGER NOT NULL DEFAULT 0,
            extension_charge REAL NOT NULL DEFAULT 0, final_charge REAL, occupancy_at_booking REAL,
            probability REAL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,
            checked_in_ms INTEGER, departed_ms INTEGER, detail TEXT NOT NULL DEFAULT '')"""
    )
    db.execute("CREATE INDEX reservations_status ON reservations(status)")
    db.execute(
        """CREATE TABLE auction_bids (
            id INTEGER PRIMARY KEY AUTOINCREMENT, client_id TEXT NOT NULL, amount REAL NOT NULL,
            at_ms INTEGER NOT NULL)"""
    )
    db.execute(
        """CREATE TABLE lot_stats (
            window_end_ms INTEGER PRIMARY KEY, window_s INTEGER NOT NULL, capacity INTEGER NOT NULL,
            occupied INTEGER NOT NULL, concentration REAL NOT NULL, arrivals INTEGER NOT NULL,
            mean_interarrival_s REAL, price_per_hour REAL, unreserved_free INTEGER)"""
    )
    db.execute(
        """CREATE TABLE markov_models (
            season_key TEXT PRIMARY KEY, matrix TEXT NOT NULL, trained_ms INTEGER NOT NULL,
            brier REAL, brier_persistence REAL, received_ms INTEGER NOT NULL)"""
    )
    db.execute("CREATE TABLE engine_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


EVENT_COLUMNS = ("at_ms", "kind", "spot_id", "node_id", "fcnt", "state", "prev_duration_s", "rssi_dbm",
                 "snr_db", "gateway", "detail")
ALERT_COLUMNS = ("alert_id", "kind", "node_id", "spot_id", "first_seen_ms", "last_seen_ms", "cleared_ms", "count",
                 "detail")
_ALERT_UPSERT = (
    f"INSERT INTO alerts ({', '.join(ALERT_COLUMNS)}) VALUES ({', '.join('?' * len(ALERT_COLUMNS))}) "
    "ON CONFLICT(alert_id) DO UPDATE SET " + ", ".join(f"{c}=excluded.{c}" for c in ALERT_COLUMNS[1:])
)
SPOT_COLUMNS = ("spot_id", "state", "since_ms", "node_id", "last_seen_ms", "battery_mv", "temp_c", "tamper",
                "rssi_dbm", "snr_db")
_EVENT_INSERT = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
_SPOT_UPSERT = (
    f"INSERT INTO spots ({', '.join(SPOT_COLUMNS)}) VALUES ({', '.join('?' * len(SPOT_COLUMNS))}) "
    "ON CONFLICT(spot_id) DO UPDATE SET " + ", ".join(f"{c}=excluded.{c}" for c in SPOT_COLUMNS[1:])
)

def _migrate_3(db: sqlite_utils.Database) -> None:
    """Per-node downlink counter: it starts at 0 and only moves forward, as the node expects."""
    db.execute("ALTER TABLE node_counters ADD COLUMN last_down_fcnt INTEGER NOT NULL DEFAULT -1")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_migrate_1, _migrate_2, _migrate_3]
_RESERVATION_COLUMNS = (
    "reservation_id", "kind", "plan", "status", "spot_id", "zone", "client", "card_uid", "plate", "entrance",
    "start_ms", "end_ms", "hours", "price_per_hour", "price_total", "late_charge", "extension_hours",
    "extension_charge", "final_charge", "occupancy_at_booking", "probability", "created_ms", "updated_ms",
    "checked_in_ms", "departed_ms", "detail",
)


@dataclass
class CycleWrite:
    """What one cycle changes; written by commit_cycles, alone or with others in one transaction."""

    counters: dict[int, tuple[int, bytes, int]] = field(default_factory=dict)
    down_counters: dict[int, int] = field(default_factory=dict)  # node -> last downlink counter used
    events: list[dict[str, Any]] = field(default_factory=list)
    spots: dict[str, dict[str, Any]] = field(default_factory=dict)
    outbox: list[tuple[str, bytes, int]] = field(default_factory=list)
    refusals: dict[str, int] = field(default_factory=dict)
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The lot engine's (fog/lot_engine.py): rows keyed by id, upserted; bids and stats appended.
    reservations: dict[str, dict[str, Any]] = field(default_factory=dict)
    bids: list[tuple[str, float, int]] = field(default_factory=list)
    lot_stats: list[dict[str, Any]] = field(default_factory=list)
    models: dict[str, tuple[str, int, float, float, int]] = field(default_factory=dict)
    engine_state: dict[str, str] = field(default_factory=dict)

    def empty(self) -> bool:
        return not (self.counters or self.events or self.spots or self.outbox or self.refusals or self.alerts
                    or self.reservations or self.bids or self.lot_stats or self.models or self.engine_state)


class FogStore:
    """One SQLite file per fog; only the daemon's thread writes to it."""

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.synchronous = synchronous
        self.db = sqlite_utils.Database(self._connect())
        self.db.execute("PRAGMA journal_mode=WAL")
        self._migrate()
        # The cycle's commits: one thread at a time (the store writer's), never the readers'.
        self.wconn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        # FULL: a committed cycle survives power loss, not only a crashed process.
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    def _migrate(self) -> None:
        self.db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = self.db.execute("SELECT version FROM schema_version").fetchone()
        current = row[0] if row else 0
        if current > SCHEMA_VERSION:
            raise RuntimeError(f"{self.path}: schema version {current} is newer than this fog ({SCHEMA_VERSION})")
        for version in range(current + 1, SCHEMA_VERSION + 1):
            with self._transaction():
                MIGRATIONS[version - 1](self.db)
                self.db.execute("DELETE FROM schema_version")
                self.db.execute("INSERT INTO schema_version VALUES (?)", [version])

    def _transaction(self, conn: sqlite3.Connection | None = None) -> Any:
        c: sqlite3.Connection = conn or self.db.conn

        class _Tx:
            def __enter__(self) -> None:
                c.execute("BEGIN IMMEDIATE")

            def __exit__(self, exc_type: object, *_: object) -> None:
                c.execute("ROLLBACK" if exc_type else "COMMIT")

        return _Tx()

    def schema_version(self) -> int:
        return int(self.db.execute("SELECT version FROM schema_version").fetchone()[0])

    # --- loading at start ---------------------------------------------------

    def load_counters(self) -> dict[int, tuple[int, bytes, int]]:
        rows = self.db.execute("SELECT node_id, last_fcnt, last_raw, last_at_ms FROM node_counters")
        return {r[0]: (r[1], bytes(r[2] or b""), r[3]) for r in rows}

    def load_down_counters(self) -> dict[int, int]:
        return {r[0]: r[1] for r in self.db.execute("SELECT node_id, last_down_fcnt FROM node_counters")}

    def load_spots(self) -> dict[str, dict[str, Any]]:
        return {r["spot_id"]: r for r in self.db["spots"].rows}

    def load_refusals(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.db.execute("SELECT reason, count FROM refusals")}

    def load_alerts(self) -> dict[str, dict[str, Any]]:
        return {r["alert_id"]: r for r in self.db["alerts"].rows}

    def _dicts(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        cur = self.db.execute(sql, params)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def load_reservations(self, statuses: tuple[str, ...]) -> list[dict[str, Any]]:
        """Reservations in one of ``statuses`` (the live ones, at start)."""
        marks = ",".join("?" * len(statuses))
        return self._dicts(f"SELECT * FROM reservations WHERE status IN ({marks}) ORDER BY created_ms", statuses)

    def reservation(self, reservation_id: str) -> dict[str, Any] | None:
        rows = self._dicts("SELECT * FROM reservations WHERE reservation_id = ?", [reservation_id])
        return rows[0] if rows else None

    def reservations_page(self, status: str | None, limit: int) -> list[dict[str, Any]]:
        if status:
            return self._dicts("SELECT * FROM reservations WHERE status = ? ORDER BY updated_ms DESC LIMIT ?",
                               [status, limit])
        return self._dicts("SELECT * FROM reservations ORDER BY updated_ms DESC LIMIT ?", [limit])

    def load_bids(self) -> list[tuple[str, float, int]]:
        return [(r[0], r[1], r[2]) for r in
                self.db.execute("SELECT client_id, amount, at_ms FROM auction_bids ORDER BY id")]

    def load_models(self) -> list[dict[str, Any]]:
        return self._dicts("SELECT * FROM markov_models")

    def load_engine_state(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self.db.execute("SELECT key, value FROM engine_state")}

    def lot_stats_page(self, since_ms: int, limit: int) -> list[dict[str, Any]]:
        """§1 history, newest first."""
        return self._dicts("SELECT * FROM lot_stats WHERE window_end_ms >= ? ORDER BY window_end_ms DESC LIMIT ?",
                           [since_ms, limit])

    # --- the one write path ----------------------------------------------------

    def commit_cycles(self, writes: list[CycleWrite]) -> None:
        """Write several cycles in one transaction (a group commit), in order; all or nothing."""
        writes = [w for w in writes if not w.empty()]
        if not writes:
            return
        conn = self.wconn
        with self._transaction(conn):
            for w in writes:
                self._write_cycle(conn, w)

    def _write_cycle(self, conn: sqlite3.Connection, w: CycleWrite) -> None:
        if w.counters:
            conn.executemany(
                "INSERT INTO node_counters (node_id, last_fcnt, last_raw, last_at_ms) VALUES (?,?,?,?) "
                "ON CONFLICT(node_id) DO UPDATE SET "
                "last_fcnt=excluded.last_fcnt, last_raw=excluded.last_raw, last_at_ms=excluded.last_at_ms",
                [(n, c[0], c[1], c[2]) for n, c in w.counters.items()],
            )
        # Plain executemany over fixed columns: the hot path of ingest (sqlite-utils' insert_all
        # and upsert re-read the schema on every call, several statements per frame).
        if w.down_counters:
            conn.executemany("UPDATE node_counters SET last_down_fcnt=? WHERE node_id=?",
                             [(c, n) for n, c in w.down_counters.items()])
        if w.events:
            conn.executemany(_EVENT_INSERT, [tuple(map(e.get, EVENT_COLUMNS)) for e in w.events])
        if w.spots:
            conn.executemany(_SPOT_UPSERT, [tuple(map(s.get, SPOT_COLUMNS)) for s in w.spots.values()])
        if w.outbox:
            conn.executemany("INSERT INTO outbox (kind, body, created_ms) VALUES (?,?,?)", w.outbox)
        if w.refusals:
            conn.executemany(
                "INSERT INTO refusals VALUES (?,?) ON CONFLICT(reason) DO UPDATE SET count=count+excluded.count",
                list(w.refusals.items()),
            )
        if w.alerts:
            conn.executemany(_ALERT_UPSERT, [tuple(map(a.get, ALERT_COLUMNS)) for a in w.alerts.values()])
        self._commit_engine(conn, w)

    def _commit_engine(self, conn: sqlite3.Connection, w: CycleWrite) -> None:
        """The lot engine's part of a cycle (inside commit_cycles' transaction)."""
        if w.reservations:
            cols = ",".join(_RESERVATION_COLUMNS)
            marks = ",".join("?" * len(_RESERVATION_COLUMNS))
            conn.executemany(f"INSERT OR REPLACE INTO reservations ({cols}) VALUES ({marks})",
                             [tuple(r.get(c) for c in _RESERVATION_COLUMNS) for r in w.reservations.values()])
        if w.bids:
            conn.executemany("INSERT INTO auction_bids (client_id, amount, at_ms) VALUES (?,?,?)", w.bids)
        if w.lot_stats:
            conn.executemany(
                "INSERT OR REPLACE INTO lot_stats VALUES (:window_end_ms, :window_s, :capacity, :occupied, "
                ":concentration, :arrivals, :mean_interarrival_s, :price_per_hour, :unreserved_free)",
                w.lot_stats,
            )
        if w.models:
            conn.executemany("INSERT OR REPLACE INTO markov_models VALUES (?,?,?,?,?,?)",
                             [(k, *v) for k, v in w.models.items()])
        if w.engine_state:
            conn.executemany("INSERT OR REPLACE INTO engine_state VALUES (?,?)", list(w.engine_state.items()))

    # --- outbox / sync -------------------------------------------------------------

    def outbox_after(self, seq: int, limit: int) -> list[tuple[int, str, bytes]]:
        rows = self.db.execute(
            "SELECT seq, kind, body FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", [seq, limit]
        ).fetchall()
        return [(r[0], r[1], bytes(r[2])) for r in rows]

    def outbox_stats(self) -> tuple[int, int, int | None]:
        """(rows waiting, highest seq, oldest created_ms) — the sync lag inputs."""
        acked = self.acked_seq()
        row = self.db.execute(
            "SELECT COUNT(*), MIN(created_ms) FROM outbox WHERE seq > ?", [acked]
        ).fetchone()
        top = self.db.execute("SELECT MAX(seq) FROM outbox").fetchone()[0] or 0
        return int(row[0]), int(top), row[1]

    def acked_seq(self) -> int:
        row = self.db.execute("SELECT value FROM sync_state WHERE key='acked_seq'").fetchone()
        return int(row[0]) if row else 0

    def cloud_version(self) -> int:
        """The last cloud update applied (the Subscribe resume point)."""
        row = self.db.execute("SELECT value FROM sync_state WHERE key='cloud_version'").fetchone()
        return int(row[0]) if row else 0

    def set_cloud_version(self, version: int) -> None:
        with self._transaction():
            self.db.execute(
                "INSERT INTO sync_state VALUES ('cloud_version', ?) ON CONFLICT(key) "
                "DO UPDATE SET value=MAX(value, excluded.value)", [version])

    def set_acked(self, seq: int) -> None:
        """Record the cloud's cursor and drop what it holds (never moves back)."""
        with self._transaction():
            self.db.execute(
                "INSERT INTO sync_state VALUES ('acked_seq', ?) ON CONFLICT(key) "
                "DO UPDATE SET value=MAX(value, excluded.value)",
                [seq],
            )
            self.db.execute("DELETE FROM outbox WHERE seq <= ?", [seq])

    # --- reads for the API -------------------------------------------------------------

    def events_page(self, after_id: int, limit: int) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?", [after_id, limit]
        )
        cols = [d[0] for d in rows.description]
        return [dict(zip(cols, r, strict=True)) for r in rows.fetchall()]

    # --- disk ---------------------------------------------------------------------------

    def set_quota(self, max_bytes: int) -> None:
        """Cap the store's size (SQLITE_FULL beyond it), as a small filesystem would."""
        page = int(self.db.execute("PRAGMA page_size").fetchone()[0])
        for conn in (self.db.conn, self.wconn):  # a per-connection limit: both write
            conn.execute(f"PRAGMA max_page_count={max(1, max_bytes // page)}")

    def db_bytes(self) -> int:
        """Pages in use (free pages are reused before the file grows)."""
        page = int(self.db.execute("PRAGMA page_size").fetchone()[0])
        used = int(self.db.execute("PRAGMA page_count").fetchone()[0])
        free = int(self.db.execute("PRAGMA freelist_count").fetchone()[0])
        return (used - free) * page

    def compact_events(self, before_ms: int, chunk: int = 5000) -> int:
        """Fold events older than ``before_ms`` into per-spot daily summaries; returns events removed.

        Small chunks: each transaction needs little room, which is what a nearly full disk has.
        """
        self.db.execute(
            """CREATE TABLE IF NOT EXISTS spot_daily (
                spot_id TEXT NOT NULL, day TEXT NOT NULL, frames INTEGER NOT NULL,
                arrivals INTEGER NOT NULL, departures INTEGER NOT NULL, occupied_s INTEGER NOT NULL,
                PRIMARY KEY (spot_id, day))"""
        )
        removed = 0
        while True:
            with self._transaction():
                top = self.db.execute(
                    "SELECT MAX(id) FROM (SELECT id FROM events WHERE at_ms < ? ORDER BY id LIMIT ?)",
                    [before_ms, chunk],
                ).fetchone()[0]
                if top is None:
                    return removed
                self.db.execute(
                    """INSERT INTO spot_daily (spot_id, day, frames, arrivals, departures, occupied_s)
                       SELECT COALESCE(spot_id, ''), date(at_ms / 1000, 'unixepoch'), COUNT(*),
                              SUM(state = 'occupied'), SUM(state = 'empty'),
                              SUM(CASE WHEN state = 'empty' THEN COALESCE(prev_duration_s, 0) ELSE 0 END)
                       FROM events WHERE id <= ? AND at_ms < ? GROUP BY 1, 2
                       ON CONFLICT (spot_id, day) DO UPDATE SET frames = frames + excluded.frames,
                         arrivals = arrivals + excluded.arrivals, departures = departures + excluded.departures,
                         occupied_s = occupied_s + excluded.occupied_s""",
                    [top, before_ms],
                )
                cur = self.db.execute("DELETE FROM events WHERE id <= ? AND at_ms < ?", [top, before_ms])
                removed += cur.rowcount

    def count(self, table: str) -> int:
        return int(self.db.execute(f"SELECT COUNT(*) FROM [{table}]").fetchone()[0])

    def close(self) -> None:
        self.wconn.close()
        self.db.conn.close()

