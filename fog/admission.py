"""Frame admission: is this radio frame authentic, fresh and new?

Pure logic over the node registry and the per-node counter table (which the
caller persists in the same transaction as the frame's effects). Order of
checks: parse → direction → known node → multi-gateway duplicate → MIC with
the reconstructed counter → replay / counter gap / bad MIC.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fog.config import NodeEntry
from proto import frame as fr


@dataclass(frozen=True)
class Reception:
    """How a frame reached the fog (kept with the event)."""

    raw: bytes
    gateway: str  # the fog's name for the path (e.g. "serial0")
    gateway_id: int = 0  # the gateway board's own id, from the serial link
    rssi_dbm: int | None = None
    snr_db: float | None = None
    received_ms: int = 0
    sf: int = 7  # the channel it was heard on: downlinks answer on the same
    freq_hz: int = 868_100_000
    # Called after the cycle that handled this frame committed: transports that acknowledge
    # (MQTT QoS 1) acknowledge here, never before the frame is durable.
    on_commit: Callable[[], None] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Accepted:
    node: NodeEntry
    msg_type: int
    fcnt: int
    fields: dict[str, Any]
    rx: Reception


@dataclass(frozen=True)
class Refused:
    reason: str  # one short code, the metrics label
    detail: str
    node_id: int | None
    rx: Reception


@dataclass(frozen=True)
class Duplicate:
    node_id: int
    rx: Reception


Verdict = Accepted | Refused | Duplicate


def frame_digest(raw: bytes) -> bytes:
    """A short digest stored per node to recognise the same frame via another gateway."""
    return hashlib.blake2s(raw, digest_size=8).digest()


class FrameAdmission:
    """Decides on each frame; ``counters`` maps node id → (last fcnt, digest, at ms)."""

    def __init__(
        self,
        nodes: dict[int, NodeEntry],
        counters: dict[int, tuple[int, bytes, int]],
        dedup_window_ms: int = 10_000,
    ) -> None:
        self.nodes = nodes
        self.counters = counters
        self.dedup_window_ms = dedup_window_ms

    def admit(self, rx: Reception) -> Verdict:
        try:
            frame = fr.parse_frame(rx.raw)
            if fr.is_downlink(frame.msg_type):
                return Refused("bad_direction", "a downlink type arrived on the uplink", frame.node_id, rx)
            fields = frame.fields()  # payload semantics checked before anything counts
        except fr.FrameError as err:
            return Refused(err.reason, str(err), None, rx)
        node = self.nodes.get(frame.node_id)
        if node is None:
            return Refused("unknown_node", f"node {frame.node_id:#010x} is not registered", frame.node_id, rx)
        last, digest, last_at = self.counters.get(node.node_id, (-1, b"", 0))
        if digest == frame_digest(rx.raw) and rx.received_ms - last_at <= self.dedup_window_ms:
            return Duplicate(node.node_id, rx)
        fcnt = fr.reconstruct_fcnt(frame.fcnt16, last)
        in_window = last < 0 or fcnt - last <= fr.MAX_FCNT_GAP
        if in_window and frame.verify(node.key, fcnt):
            self.counters[node.node_id] = (fcnt, frame_digest(rx.raw), rx.received_ms)
            return Accepted(node, frame.msg_type, fcnt, fields, rx)
        if last >= 0:
            old = fr.previous_fcnt(frame.fcnt16, last)
            if old >= 0 and frame.verify(node.key, old):
                return Refused("replay", f"counter {old} is not above {last}", node.node_id, rx)
            if not in_window and frame.verify(node.key, fcnt):
                return Refused("fcnt_gap", f"counter jumped from {last} to {fcnt}", node.node_id, rx)
        return Refused("bad_mic", "MIC does not verify under the node's key", node.node_id, rx)
