"""The history interface: the time-series queries every backend answers the same way.

Two backends: SQLite (``cloud.store.CloudStore``, the default, which also holds
the ledger, cursors, the update queue and the latest-state tables) and InfluxDB
2.x (``cloud.influx.InfluxHistory``). Whatever the backend, SQLite stays the
ledger: idempotent ingest needs a unique key and a transaction, which InfluxDB
does not offer. With InfluxDB, every batch is also written there (idempotently:
a record's point has a key of its own, so a resend overwrites itself) before
the fog is acknowledged, and the history queries below are answered from it.

The rows returned are the contract: same keys, same types, same order from
either backend (tests/cloud/test_cloud_influx.py checks it against a real
server when INFLUX_URL is set).
"""

from __future__ import annotations

from typing import Any, Protocol

from cloud.config import HistorySettings
from cloud.store import CloudStore
from proto import parking_pb2


class HistoryStore(Protocol):
    """Time-series history: per-minute lot summaries and spot events."""

    def write_history(self, batch: parking_pb2.Batch) -> None:
        """Make the batch's summaries and spot events queryable (idempotent; a resend changes nothing)."""

    def lot_summaries(
        self, lot_id: str, since_ms: int, until_ms: int, bucket_s: int, *, zone: str = ""
    ) -> list[dict[str, Any]]:
        """Summaries with since_ms <= window_start_ms < until_ms in UTC-aligned buckets, oldest first."""
        ...

    def spot_history(
        self, lot_id: str, since_ms: int, until_ms: int, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Spot events of a lot with since_ms <= at_ms < until_ms, oldest first."""
        ...

    def lots(self) -> list[dict[str, Any]]:
        """The newest whole-lot summary of every lot that has one, by lot id."""
        ...

    def ping(self) -> None:
        """Raise if the backend cannot answer."""

    def close(self) -> None:
        """Release connections."""


def open_history(settings: HistorySettings, store: CloudStore) -> HistoryStore:
    """The configured history backend; SQLite is the ledger store itself."""
    if settings.backend == "influxdb":
        from cloud.influx import InfluxHistory  # needs influxdb-client only when configured

        assert settings.influxdb is not None  # parse_config guarantees it
        return InfluxHistory(settings.influxdb)
    return store
