"""Gateway board <-> fog serial link: SLIP framing with a CRC-16 per packet.

Runs unchanged on MicroPython (the gateway firmware) and CPython (the fog).
See ``proto/SERIAL.md``. A packet on the wire is::

    SLIP( [kind : 1][body : n][crc16 : 2 little-endian] )

CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over kind+body. SLIP's END byte
(0xC0) delimits packets, so after garbage or a cut line the receiver is back
in step at the next END.
"""

import struct

END = 0xC0
ESC = 0xDB
ESC_END = 0xDC
ESC_ESC = 0xDD

# Packet kinds.
RX = 0x01  # gateway -> fog: a radio frame heard, with reception metadata
TX = 0x02  # fog -> gateway: a radio frame to transmit (downlink)
STATUS = 0x03  # gateway -> fog: gateway heartbeat
KIND_NAMES = {RX: "rx", TX: "tx", STATUS: "status"}

RX_META = "<HhbBI"  # gateway id, RSSI dBm, SNR (0.25 dB steps), SF, frequency Hz
RX_META_LEN = 10
TX_META = "<BI"  # SF, frequency Hz
TX_META_LEN = 5
STATUS_BODY = "<HII"  # gateway id, uptime s, frames heard
STATUS_BODY_LEN = 10

MAX_PACKET = 256  # unescaped kind + body + CRC; longer is garbage


class LinkError(ValueError):
    """A packet that did not survive the line; ``reason`` is a short code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        ValueError.__init__(self, reason + (": " + detail if detail else ""))


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE; check value for b"123456789" is 0x29B1."""
    crc = 0xFFFF
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            if crc & 0x8000:
                crc = ((crc << 1) ^ 0x1021) & 0xFFFF
            else:
                crc = (crc << 1) & 0xFFFF
    return crc


def slip_encode(packet: bytes) -> bytes:
    """One SLIP frame, with a leading END to flush any line noise."""
    out = bytearray([END])
    for b in packet:
        if b == END:
            out.append(ESC)
            out.append(ESC_END)
        elif b == ESC:
            out.append(ESC)
            out.append(ESC_ESC)
        else:
            out.append(b)
    out.append(END)
    return bytes(out)


def encode_packet(kind: int, body: bytes) -> bytes:
    """kind + body + CRC, SLIP-framed, ready for the wire."""
    raw = bytes([kind]) + bytes(body)
    return slip_encode(raw + struct.pack("<H", crc16(raw)))


def encode_rx(radio_frame: bytes, gateway_id: int, rssi_dbm: int, snr_db: float, sf: int, freq_hz: int) -> bytes:
    snr_q = max(-128, min(127, int(round(snr_db * 4))))
    meta = struct.pack(RX_META, gateway_id & 0xFFFF, int(rssi_dbm), snr_q, sf & 0xFF, int(freq_hz))
    return encode_packet(RX, meta + bytes(radio_frame))


def encode_tx(radio_frame: bytes, sf: int, freq_hz: int) -> bytes:
    return encode_packet(TX, struct.pack(TX_META, sf & 0xFF, int(freq_hz)) + bytes(radio_frame))


def encode_status(gateway_id: int, uptime_s: int, frames_heard: int) -> bytes:
    return encode_packet(STATUS, struct.pack(STATUS_BODY, gateway_id, uptime_s, frames_heard))


def decode_packet(raw: bytes) -> dict:
    """Check the CRC and split an unescaped packet; raises only LinkError."""
    if len(raw) < 3:
        raise LinkError("too_short", str(len(raw)) + " bytes")
    body = raw[:-2]
    (crc,) = struct.unpack("<H", raw[-2:])
    if crc16(body) != crc:
        raise LinkError("bad_crc", "CRC mismatch")
    kind = body[0]
    rest = body[1:]
    if kind == RX:
        if len(rest) < RX_META_LEN:
            raise LinkError("bad_length", "rx packet shorter than its metadata")
        gw, rssi, snr_q, sf, freq = struct.unpack(RX_META, rest[:RX_META_LEN])
        return {
            "kind": RX,
            "gateway_id": gw,
            "rssi_dbm": rssi,
            "snr_db": snr_q / 4,
            "sf": sf,
            "freq_hz": freq,
            "frame": bytes(rest[RX_META_LEN:]),
        }
    if kind == TX:
        if len(rest) < TX_META_LEN:
            raise LinkError("bad_length", "tx packet shorter than its metadata")
        sf, freq = struct.unpack(TX_META, rest[:TX_META_LEN])
        return {"kind": TX, "sf": sf, "freq_hz": freq, "frame": bytes(rest[TX_META_LEN:])}
    if kind == STATUS:
        if len(rest) != STATUS_BODY_LEN:
            raise LinkError("bad_length", "status packet of " + str(len(rest)) + " bytes")
        gw, up, heard = struct.unpack(STATUS_BODY, rest)
        return {"kind": STATUS, "gateway_id": gw, "uptime_s": up, "frames_heard": heard}
    raise LinkError("bad_kind", "unknown packet kind " + str(kind))


class SlipDecoder:
    """Incremental SLIP reader: feed it any chunks, get whole packets back.

    ``feed`` returns a list whose items are dicts (good packets) or LinkError
    instances (a damaged packet, already resynchronised past). Bytes before
    the first END are discarded as line noise.
    """

    def __init__(self, max_packet: int = MAX_PACKET) -> None:
        self.max_packet = max_packet
        self._buf = bytearray()
        self._esc = False
        self._bad = ""  # reason the current packet is already damaged
        self._synced = False

    def feed(self, data: bytes) -> list:
        out: list = []
        for b in data:
            if b == END:
                if self._synced and (self._buf or self._bad):
                    if self._bad:
                        out.append(LinkError(self._bad, "packet dropped"))
                    else:
                        try:
                            out.append(decode_packet(bytes(self._buf)))
                        except LinkError as err:
                            out.append(err)
                self._synced = True
                self._buf = bytearray()
                self._esc = False
                self._bad = ""
                continue
            if not self._synced or self._bad:
                continue
            if self._esc:
                self._esc = False
                if b == ESC_END:
                    b = END
                elif b == ESC_ESC:
                    b = ESC
                else:
                    self._bad = "bad_escape"
                    continue
            elif b == ESC:
                self._esc = True
                continue
            if len(self._buf) >= self.max_packet:
                self._bad = "oversize"
                continue
            self._buf.append(b)
        return out
