"""What a valid batch is, and how a record's body maps to a table; pure, no I/O.

The store and the service both lean on this module so that "valid" is defined
once, next to the contract in ``proto/parking.proto``.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any, TypeAlias

from proto import parking_pb2

MAX_RECORDS = 5000
# SQLite integers are signed 64-bit; the proto's uint64 seq must fit.
MAX_SEQ = 2**63 - 1
MAX_FOG_ID_LEN = 128

# oneof field name in Record -> table holding that kind's decoded fields.
KIND_TABLES: dict[str, str] = {
    "summary": "summaries",
    "spot_event": "spot_events",
    "alert": "alerts",
    "reservation": "reservations",
    "node_health": "node_health",
}
# The field that says when a record happened, copied to records.at_ms.
KIND_TIME_FIELD: dict[str, str] = {
    "summary": "window_start_ms",
    "spot_event": "at_ms",
    "alert": "last_seen_ms",
    "reservation": "updated_ms",
    "node_health": "last_seen_ms",
}

Body: TypeAlias = (
    parking_pb2.LotSummary
    | parking_pb2.SpotEvent
    | parking_pb2.Alert
    | parking_pb2.Reservation
    | parking_pb2.NodeHealth
)


class BatchError(ValueError):
    """A batch the cloud refuses as a whole; ``code`` is a short label for metrics."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class LotNotAllowed(BatchError):
    """A record for a lot the sending fog is not registered for (a permission, not a format error)."""


def record_kind(record: parking_pb2.Record) -> str | None:
    """The oneof field set in ``record`` (``"summary"``, ``"spot_event"`` ...), or None."""
    return record.WhichOneof("body")


def record_body(record: parking_pb2.Record, kind: str) -> Body:
    """The message held in the record's oneof."""
    body: Body = getattr(record, kind)
    return body


def validate_batch(batch: parking_pb2.Batch, allowed_lots: Set[str] | None = None) -> None:
    """Raise BatchError naming the first problem; a batch that passes can be stored as is.

    ``allowed_lots``: when given, every record's lot must be in it (LotNotAllowed otherwise).
    """
    if not batch.fog_id:
        raise BatchError("no_fog_id", "batch.fog_id is empty")
    if len(batch.fog_id) > MAX_FOG_ID_LEN:
        raise BatchError("bad_fog_id", f"batch.fog_id is {len(batch.fog_id)} characters, the limit is {MAX_FOG_ID_LEN}")
    records = batch.records
    if not records:
        raise BatchError("empty", f"batch from fog {batch.fog_id!r} has no records")
    if len(records) > MAX_RECORDS:
        raise BatchError("too_many_records", f"batch has {len(records)} records, the limit is {MAX_RECORDS}")
    first = records[0].seq
    if batch.first_seq != first:
        raise BatchError("first_seq_mismatch", f"batch.first_seq {batch.first_seq} != records[0].seq {first}")
    if batch.last_seq != records[-1].seq:
        raise BatchError(
            "last_seq_mismatch", f"batch.last_seq {batch.last_seq} != records[-1].seq {records[-1].seq}"
        )
    if first < 1 or batch.last_seq > MAX_SEQ:
        raise BatchError("seq_out_of_range", f"seqs {first}..{batch.last_seq} are outside 1..{MAX_SEQ}")
    for index, record in enumerate(records):
        if record.seq != first + index:
            raise BatchError(
                "not_contiguous",
                f"records[{index}].seq is {record.seq}, expected {first + index} (seqs must be contiguous)",
            )
        kind = record_kind(record)
        if kind is None:
            raise BatchError(
                "no_body", f"record seq {record.seq} has no body (empty, or a kind this cloud does not know)"
            )
        lot_id = record_body(record, kind).lot_id
        if not lot_id:
            raise BatchError("no_lot_id", f"record seq {record.seq} ({kind}) has an empty lot_id")
        if allowed_lots is not None and lot_id not in allowed_lots:
            raise LotNotAllowed(
                "lot_not_allowed",
                f"record seq {record.seq} is for lot {lot_id!r}; fog {batch.fog_id!r} may send only "
                f"{sorted(allowed_lots)}",
            )


def body_values(body: Body, columns: tuple[str, ...]) -> list[Any]:
    """The body's fields named by ``columns``, NaN stored as NULL ("undefined", not a number)."""
    values: list[Any] = []
    for column in columns:
        value = getattr(body, column)
        values.append(None if isinstance(value, float) and value != value else value)
    return values
