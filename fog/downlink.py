"""Downlinks from the fog: the ACK a node asked for with FLAG_ACK_REQUESTED.

An ACK is sent only after the frame it acknowledges is committed (commit
before ack), through the gateway that heard the frame. The downlink counter
per node follows the wall clock (seconds since 2020, or last + 1 when more
than one ACK per second goes to a node), so it keeps increasing across fog
restarts without another write per frame. Decision: a clock stepped back
while the fog was down can make a node refuse ACKs until the clock catches
up; the node then retries and, at worst, reports its state again in its next
heartbeat, so nothing is lost.
"""

from __future__ import annotations

import time

from fog.admission import Accepted
from proto import frame as fr

EPOCH_2020 = 1_577_836_800


class DownlinkCounter:
    def __init__(self) -> None:
        self._last: dict[int, int] = {}

    def next(self, node_id: int, now_s: float | None = None) -> int:
        now = int((time.time() if now_s is None else now_s) - EPOCH_2020)
        value = max(now, self._last.get(node_id, -1) + 1) & 0xFFFFFFFF
        self._last[node_id] = value
        return value


def wants_ack(v: Accepted) -> bool:
    return v.msg_type == fr.OCCUPANCY and bool(v.fields["flags"] & fr.FLAG_ACK_REQUESTED)


def ack_frame(v: Accepted, counter: DownlinkCounter) -> bytes:
    """The ACK downlink for an accepted uplink (low 16 bits of its counter)."""
    payload = fr.ack_payload(v.fcnt & 0xFFFF, 0)
    return fr.encode_frame(fr.ACK, v.node.node_id, counter.next(v.node.node_id), payload, v.node.key)
