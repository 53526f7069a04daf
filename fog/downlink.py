"""Downlinks from the fog: the ACK a node asked for with FLAG_ACK_REQUESTED.

An ACK is built inside the cycle that commits the frame it acknowledges,
with the node's next downlink counter (0, 1, 2, ... per node, stored in the
same transaction), and sent only after that commit, through the gateway
that heard the frame. Only the counter's low 16 bits travel; the node
reconstructs the rest as LoRaWAN does, which is why the counter must start
at 0 and move by one (a counter taken from the clock could not be
reconstructed by a node that has heard no downlink yet).
"""

from __future__ import annotations

from fog.admission import Accepted
from proto import frame as fr


def wants_ack(v: Accepted) -> bool:
    return v.msg_type == fr.OCCUPANCY and bool(v.fields["flags"] & fr.FLAG_ACK_REQUESTED)


def ack_frame(v: Accepted, down_fcnt: int) -> bytes:
    """The ACK downlink for an accepted uplink (the low 16 bits of its counter), as downlink ``down_fcnt``."""
    payload = fr.ack_payload(v.fcnt & 0xFFFF, 0)
    return fr.encode_frame(fr.ACK, v.node.node_id, down_fcnt & 0xFFFFFFFF, payload, v.node.key)
