"""The fog's durable store: SQLite in WAL mode through sqlite-utils.

Everything the fog acknowledges goes through :meth:`FogStore.commit_cycle`,
one transaction per cycle, *before* it is exposed on the API or synced: the
node counters (replay protection), the event log, spot states, alerts and the
outbox to the cloud. A ``kill -9`` at any point leaves either the whole cycle
or none of it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

SCHEMA_VERSION = 1


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


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_migrate_1]


@dataclass
class CycleWrite:
    """What one cycle changes; written in one transaction by commit_cycle."""

    counters: dict[int, tuple[int, bytes, int]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    spots: dict[str, dict[str, Any]] = field(default_factory=dict)
    outbox: list[tuple[str, bytes, int]] = field(default_factory=list)
    refusals: dict[str, int] = field(default_factory=dict)
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def empty(self) -> bool:
        return not (self.counters or self.events or self.spots or self.outbox or self.refusals or self.alerts)


class FogStore:
    """One SQLite file per fog; only the daemon's thread writes to it."""

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self.db = sqlite_utils.Database(conn)
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed cycle survives power loss, not only a crashed process.
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.db.execute("PRAGMA busy_timeout=5000")
        self._migrate()

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

    def _transaction(self) -> Any:
        conn = self.db.conn

        class _Tx:
            def __enter__(self) -> None:
                conn.execute("BEGIN IMMEDIATE")

            def __exit__(self, exc_type: object, *_: object) -> None:
                conn.execute("ROLLBACK" if exc_type else "COMMIT")

        return _Tx()

    def schema_version(self) -> int:
        return int(self.db.execute("SELECT version FROM schema_version").fetchone()[0])

    # --- loading at start ---------------------------------------------------

    def load_counters(self) -> dict[int, tuple[int, bytes, int]]:
        rows = self.db.execute("SELECT node_id, last_fcnt, last_raw, last_at_ms FROM node_counters")
        return {r[0]: (r[1], bytes(r[2] or b""), r[3]) for r in rows}

    def load_spots(self) -> dict[str, dict[str, Any]]:
        return {r["spot_id"]: r for r in self.db["spots"].rows}

    def load_refusals(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.db.execute("SELECT reason, count FROM refusals")}

    def load_alerts(self) -> dict[str, dict[str, Any]]:
        return {r["alert_id"]: r for r in self.db["alerts"].rows}

    # --- the one write path ----------------------------------------------------

    def commit_cycle(self, w: CycleWrite) -> None:
        """Write a whole cycle atomically; raises (and writes nothing) on failure."""
        if w.empty():
            return
        conn = self.db.conn
        with self._transaction():
            if w.counters:
                conn.executemany(
                    "INSERT INTO node_counters VALUES (?,?,?,?) ON CONFLICT(node_id) DO UPDATE SET "
                    "last_fcnt=excluded.last_fcnt, last_raw=excluded.last_raw, last_at_ms=excluded.last_at_ms",
                    [(n, c[0], c[1], c[2]) for n, c in w.counters.items()],
                )
            if w.events:
                self.db.table("events").insert_all(w.events)
            for spot in w.spots.values():
                self.db.table("spots").upsert(spot, pk="spot_id")
            if w.outbox:
                conn.executemany("INSERT INTO outbox (kind, body, created_ms) VALUES (?,?,?)", w.outbox)
            if w.refusals:
                conn.executemany(
                    "INSERT INTO refusals VALUES (?,?) ON CONFLICT(reason) DO UPDATE SET count=count+excluded.count",
                    list(w.refusals.items()),
                )
            for alert in w.alerts.values():
                self.db.table("alerts").upsert(alert, pk="alert_id")

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

    def count(self, table: str) -> int:
        return int(self.db.execute(f"SELECT COUNT(*) FROM [{table}]").fetchone()[0])

    def close(self) -> None:
        self.db.conn.close()

