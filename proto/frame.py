"""FogPark radio frame, version 1: the one codec for firmware and fog.

This module is imported unchanged by the MicroPython firmware (``device/``)
and by the CPython fog (``fog/``); see ``proto/FRAME.md`` for the layout.
It therefore uses only what both interpreters have: ``struct``, ``bytes``,
``bytearray``, plain classes, and AES-ECB from ``cryptolib`` (MicroPython)
or ``cryptography`` (CPython). No typing imports, no dataclasses, no
f-strings with ``=``.

Layout (little-endian, as LoRaWAN)::

    [ver<<4 | type : 1][node_id : 4][fcnt low 16 bits : 2][payload : n][MIC : 4]

The MIC is the first 4 bytes of AES-128-CMAC (RFC 4493) over a LoRaWAN-style
B0 block (which binds the direction and the full 32-bit counter) followed by
the header and payload.
"""

import struct

try:
    from micropython import const
except ImportError:  # CPython: unit tests and the CLI

    def const(expr):  # type: ignore[no-redef,misc]
        return expr


TYPE_CHECKING = const(False)  # mypy: True; MicroPython drops the block at compile time (no names interned)
if TYPE_CHECKING:
    from collections.abc import Callable

_fast_cmac = None  # type: Callable[[bytes, bytes], bytes] | None  # (CPython: set below)

try:  # MicroPython
    import cryptolib  # type: ignore[import-not-found]

    _aes_last = [b"", None]  # type: list  # [key, its ECB encrypt]: a node has one key

    def _aes_encryptor(key: bytes) -> "Callable[[bytes], bytes]":
        """One ECB encryptor per key, reused (ECB keeps no state between blocks). A fresh one per
        frame cost a 320-byte block every send; in a 64 KiB heap that block is where it ran out."""
        if _aes_last[0] != key:
            _aes_last[1] = cryptolib.aes(key, 1).encrypt
            _aes_last[0] = bytes(key)
        return _aes_last[1]

except ImportError:  # CPython: OpenSSL's AES and CMAC, in a module the node never loads. By getattr with
    # long strings: MicroPython interns the names of an import statement (and short strings) even in a
    # branch it never runs, and the node is short of RAM.
    _aes_encryptor = getattr(__import__("proto.frame_cpython", None, None, ["aes_encryptor"]), "aes_encryptor")  # noqa: B009
    _fast_cmac = getattr(__import__("proto.frame_cpython", None, None, ["openssl_cmac"]), "openssl_cmac")  # noqa: B009


VERSION = 1

# Uplink message types (node -> fog): 1..7.
OCCUPANCY = 1
HEARTBEAT = 2
DIAGNOSTIC = 3
CHECKIN = 4
CONFIG_ACK = 5
# Downlink message types (fog -> node): 8..15.
ACK = 8
CONFIG = 9
COMMAND = 10

TYPE_NAMES = {
    OCCUPANCY: "occupancy",
    HEARTBEAT: "heartbeat",
    DIAGNOSTIC: "diagnostic",
    CHECKIN: "checkin",
    CONFIG_ACK: "config_ack",
    ACK: "ack",
    CONFIG: "config",
    COMMAND: "command",
}

HEADER_LEN = 7
MIC_LEN = 4
MIN_FRAME_LEN = HEADER_LEN + MIC_LEN
MAX_FRAME_LEN = 64
MAX_PAYLOAD_LEN = MAX_FRAME_LEN - MIN_FRAME_LEN
MAX_FCNT_GAP = 16384  # as LoRaWAN: a larger forward jump is not reconstructed

# Spot states carried in the occupancy / heartbeat state byte (bits 0-1).
EMPTY = 0
OCCUPIED = 1
UNKNOWN = 2
STATE_NAMES = {EMPTY: "empty", OCCUPIED: "occupied", UNKNOWN: "unknown"}
# Bit 3 of an occupancy state byte: the node asks for an ACK downlink (confirmed uplink).
FLAG_ACK_REQUESTED = 0x08
# Flags (bits 4-7 of the state byte).
FLAG_TAMPER = 0x10
FLAG_LOW_BATTERY = 0x20
FLAG_RANGE_CONFIRMED = 0x40
FLAG_CALIBRATING = 0x80

# Diagnostic codes.
DIAG_RANGE_BLIND = 1
DIAG_RANGE_SHORT = 2
DIAG_MAG_SATURATED = 3
DIAG_MAG_MISSING = 4
DIAG_CONFIG_ERROR = 5
DIAG_WATCHDOG_RESET = 6
DIAG_BROWNOUT = 7
DIAG_TAMPER_CLEARED = 8
DIAG_NAMES = {
    DIAG_RANGE_BLIND: "range_blind",
    DIAG_RANGE_SHORT: "range_short",
    DIAG_MAG_SATURATED: "mag_saturated",
    DIAG_MAG_MISSING: "mag_missing",
    DIAG_CONFIG_ERROR: "config_error",
    DIAG_WATCHDOG_RESET: "watchdog_reset",
    DIAG_BROWNOUT: "brownout",
    DIAG_TAMPER_CLEARED: "tamper_cleared",
}

# Downlink commands.
CMD_CALIBRATE = 1
CMD_REBOOT = 2
CMD_SELFTEST = 3

NO_RANGE = 0xFF  # distance byte meaning "no echo / no ranger"
RSSI_UNKNOWN = 0  # heartbeat: -RSSI as uint8, 0 = unknown
SNR_UNKNOWN = -128  # heartbeat: SNR in 0.25 dB steps, -128 = unknown
TEMP_UNKNOWN = -32768  # heartbeat: temperature in 0.1 C, this value = no sensor reading

_FIXED_PAYLOAD_LEN = {
    OCCUPANCY: 5,
    HEARTBEAT: 12,
    DIAGNOSTIC: 7,
    CONFIG_ACK: 3,
    ACK: 3,
}


class FrameError(ValueError):
    """Untrusted bytes that are not a valid frame; ``reason`` is a short code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        ValueError.__init__(self, reason + (": " + detail if detail else ""))


# --- AES-CMAC (RFC 4493) -------------------------------------------------


def _dbl(block: bytes | bytearray) -> bytearray:
    """Doubling in GF(2^128) as RFC 4493 defines it (subkey generation)."""
    out = bytearray(16)
    carry = 0
    for i in range(15, -1, -1):
        b = block[i]
        out[i] = ((b << 1) & 0xFF) | carry
        carry = b >> 7
    if block[0] & 0x80:
        out[15] ^= 0x87
    return out


_subkey_cache = {}  # type: dict


def _subkeys(key: bytes, enc: "Callable[[bytes], bytes]") -> tuple:
    """CMAC subkeys K1, K2 of a key, kept (a node has one key; a fog a few thousand)."""
    sk = _subkey_cache.get(key)
    if sk is None:
        k1 = _dbl(enc(bytes(16)))
        if len(_subkey_cache) >= 4096:
            _subkey_cache.clear()
        sk = _subkey_cache[key] = (k1, _dbl(k1))
    return sk


def aes_cmac(key: bytes, msg: bytes) -> bytes:
    """AES-128-CMAC of ``msg`` under the 16-byte ``key`` (RFC 4493), 16 bytes."""
    if len(key) != 16:
        raise FrameError("bad_key", "AES-128 key must be 16 bytes, got " + str(len(key)))
    if _fast_cmac is not None:
        return _fast_cmac(bytes(key), bytes(msg))
    return portable_aes_cmac(key, msg)


def portable_aes_cmac(key: bytes, msg: bytes) -> bytes:
    """RFC 4493 in plain Python over an AES block cipher: what MicroPython runs."""
    enc = _aes_encryptor(key)
    k1, k2 = _subkeys(bytes(key), enc)
    n = (len(msg) + 15) // 16
    if n == 0:
        n = 1
        complete = False
    else:
        complete = len(msg) % 16 == 0
    x = bytearray(16)
    for i in range(n - 1):
        off = i * 16
        for j in range(16):
            x[j] ^= msg[off + j]
        x = bytearray(enc(bytes(x)))
    last = bytearray(16)
    off = (n - 1) * 16
    tail = len(msg) - off
    if complete:
        for j in range(16):
            last[j] = msg[off + j] ^ k1[j]
    else:
        for j in range(tail):
            last[j] = msg[off + j]
        last[tail] = 0x80
        for j in range(16):
            last[j] ^= k2[j]
    for j in range(16):
        x[j] ^= last[j]
    return bytes(enc(bytes(x)))


# --- frame layer ---------------------------------------------------------


def is_downlink(msg_type: int) -> bool:
    return msg_type >= 8


def compute_mic(key: bytes, msg_type: int, node_id: int, fcnt: int, body: bytes) -> bytes:
    """4-byte MIC over B0 || header+payload; B0 binds direction and full fcnt."""
    b0 = struct.pack(
        "<B4xBIIBB", 0x49, 1 if is_downlink(msg_type) else 0, node_id, fcnt, 0, len(body)
    )
    return aes_cmac(key, b0 + body)[:MIC_LEN]


def encode_frame(msg_type: int, node_id: int, fcnt: int, payload: bytes, key: bytes) -> bytes:
    """Header + payload + MIC for a full 32-bit counter ``fcnt``."""
    if msg_type not in TYPE_NAMES:
        raise FrameError("bad_type", "unknown message type " + str(msg_type))
    if not 0 <= node_id <= 0xFFFFFFFF:
        raise FrameError("bad_node", "node id out of 32-bit range")
    if not 0 <= fcnt <= 0xFFFFFFFF:
        raise FrameError("bad_fcnt", "frame counter out of 32-bit range")
    if len(payload) > MAX_PAYLOAD_LEN:
        raise FrameError("too_long", "payload of " + str(len(payload)) + " bytes")
    body = struct.pack("<BIH", (VERSION << 4) | msg_type, node_id, fcnt & 0xFFFF) + bytes(payload)
    return body + compute_mic(key, msg_type, node_id, fcnt, body)


class Frame:
    """A parsed, not yet authenticated frame (``fcnt16`` is what travelled)."""

    __slots__ = ("msg_type", "node_id", "fcnt16", "payload", "raw")

    def __init__(self, msg_type: int, node_id: int, fcnt16: int, payload: bytes, raw: bytes) -> None:
        self.msg_type = msg_type
        self.node_id = node_id
        self.fcnt16 = fcnt16
        self.payload = payload
        self.raw = raw

    def type_name(self) -> str:
        return TYPE_NAMES[self.msg_type]

    def verify(self, key: bytes, fcnt: int) -> bool:
        """True when the MIC matches ``key`` and the full counter ``fcnt``."""
        if fcnt & 0xFFFF != self.fcnt16:
            return False
        body = self.raw[:-MIC_LEN]
        mic = compute_mic(key, self.msg_type, self.node_id, fcnt, body)
        # Constant-time comparison: a timing oracle on the MIC must not exist.
        diff = 0
        tag = self.raw[-MIC_LEN:]
        for i in range(MIC_LEN):
            diff |= mic[i] ^ tag[i]
        return diff == 0

    def fields(self) -> dict:
        return decode_payload(self.msg_type, self.payload)


def parse_frame(data: bytes) -> Frame:
    """Split untrusted bytes into a Frame; raises only FrameError."""
    try:
        data = bytes(data)
    except Exception:  # noqa: BLE001 - anything not bytes-like is a bad frame
        raise FrameError("not_bytes", "frame is not a byte string") from None
    n = len(data)
    if n < MIN_FRAME_LEN:
        raise FrameError("too_short", str(n) + " bytes, minimum " + str(MIN_FRAME_LEN))
    if n > MAX_FRAME_LEN:
        raise FrameError("too_long", str(n) + " bytes, maximum " + str(MAX_FRAME_LEN))
    head, node_id, fcnt16 = struct.unpack("<BIH", data[:HEADER_LEN])
    version = head >> 4
    msg_type = head & 0x0F
    if version != VERSION:
        raise FrameError("bad_version", "version " + str(version) + ", expected " + str(VERSION))
    if msg_type not in TYPE_NAMES:
        raise FrameError("bad_type", "unknown message type " + str(msg_type))
    payload = data[HEADER_LEN:-MIC_LEN]
    _check_payload_len(msg_type, payload)
    return Frame(msg_type, node_id, fcnt16, payload, data)


def _check_payload_len(msg_type: int, payload: bytes) -> None:
    n = len(payload)
    want = _FIXED_PAYLOAD_LEN.get(msg_type)
    if want is not None and n != want:
        raise FrameError(
            "bad_length",
            TYPE_NAMES[msg_type] + " payload is " + str(n) + " bytes, expected " + str(want),
        )
    if msg_type == CHECKIN and (n < 1 or payload[0] not in (4, 7, 10) or n != 1 + payload[0]):
        raise FrameError("bad_length", "checkin UID must be 4, 7 or 10 bytes")
    if msg_type == CONFIG and (n < 2 or not _tlv_ok(payload, 2)):
        raise FrameError("bad_length", "config payload is not version + TLV entries")
    if msg_type == COMMAND and n < 1:
        raise FrameError("bad_length", "command payload is empty")


def _tlv_ok(payload: bytes, off: int) -> bool:
    n = len(payload)
    while off < n:
        if off + 2 > n:
            return False
        off += 2 + payload[off + 1]
    return off == n


def reconstruct_fcnt(fcnt16: int, last: int) -> int:
    """The full counter for ``fcnt16`` received after ``last`` (-1: none yet).

    As LoRaWAN: the smallest counter above ``last`` whose low 16 bits match.
    The caller refuses a result more than MAX_FCNT_GAP ahead of ``last``.
    """
    if last < 0:
        return fcnt16
    cand = (last & ~0xFFFF) | fcnt16
    if cand <= last:
        cand += 0x10000
    return cand


def previous_fcnt(fcnt16: int, last: int) -> int:
    """The largest counter <= ``last`` with these low bits (to name replays), or -1."""
    cand = (last & ~0xFFFF) | fcnt16
    if cand > last:
        cand -= 0x10000
    return cand


# --- payloads --------------------------------------------------------------


def _duration_code(seconds: float) -> int:
    """Seconds up to 32767 exactly; beyond, minutes with bit 15 set (22 days max)."""
    if seconds < 0:
        seconds = 0
    if seconds < 0x8000:
        return int(seconds)
    minutes = int(seconds) // 60
    if minutes > 0x7FFF:
        minutes = 0x7FFF
    return 0x8000 | minutes


def _duration_seconds(code: int) -> int:
    if code & 0x8000:
        return (code & 0x7FFF) * 60
    return code


def occupancy_payload(
    state: int, flags: int, prev_duration_s: float, distance_cm: float | None, mag_dev_ut: float
) -> bytes:
    """5 bytes: state|flags, previous state's duration, range (2 cm), field deviation (uT)."""
    if distance_cm is None or distance_cm < 0:
        dist = NO_RANGE
    else:
        dist = (int(distance_cm) + 1) // 2  # nearest 2 cm step
        if dist > 254:
            dist = 254
    dev = int(mag_dev_ut)
    if dev < 0:
        dev = 0
    if dev > 255:
        dev = 255
    return struct.pack("<BHBB", (state & 0x03) | (flags & 0xF8), _duration_code(prev_duration_s), dist, dev)


def heartbeat_payload(
    battery_mv: int,
    temp_c: float | None,
    uptime_s: int,
    rssi_dbm: float | None,
    snr_db: float | None,
    state: int,
    reboots: int,
) -> bytes:
    """12 bytes: battery mV, temperature 0.1 C, uptime s, last RSSI/SNR, state, reboots."""
    rssi = RSSI_UNKNOWN if rssi_dbm is None else min(255, max(1, -int(rssi_dbm)))
    if snr_db is None:
        snr = SNR_UNKNOWN
    else:
        snr = int(round(snr_db * 4))
        snr = max(-127, min(127, snr))
    if temp_c is None:
        temp = TEMP_UNKNOWN
    else:
        temp = max(-32767, min(32767, int(round(temp_c * 10))))
    return struct.pack(
        "<HhIBbBB",
        max(0, min(0xFFFF, int(battery_mv))),
        temp,
        max(0, min(0xFFFFFFFF, int(uptime_s))),
        rssi,
        snr,
        state & 0xFF,
        reboots & 0xFF,
    )


def diagnostic_payload(code: int, value: int, extra: int) -> bytes:
    """7 bytes: code, a signed 16-bit reading, an unsigned 32-bit detail."""
    return struct.pack("<BhI", code & 0xFF, max(-32768, min(32767, int(value))), int(extra) & 0xFFFFFFFF)


def checkin_payload(uid: bytes) -> bytes:
    """UID length byte + the card UID (4, 7 or 10 bytes, ISO 14443-3)."""
    if len(uid) not in (4, 7, 10):
        raise FrameError("bad_uid", "UID must be 4, 7 or 10 bytes")
    return bytes([len(uid)]) + bytes(uid)


def config_ack_payload(config_version: int, status: int) -> bytes:
    return struct.pack("<HB", config_version & 0xFFFF, status & 0xFF)


def ack_payload(acked_fcnt16: int, flags: int) -> bytes:
    return struct.pack("<HB", acked_fcnt16 & 0xFFFF, flags & 0xFF)


def config_payload(config_version: int, entries: list) -> bytes:
    """Version + TLV entries; ``entries`` is a list of (key 0..255, value bytes)."""
    out = struct.pack("<H", config_version & 0xFFFF)
    for key, value in entries:
        if len(value) > 255:
            raise FrameError("too_long", "config value over 255 bytes")
        out += bytes([key & 0xFF, len(value)]) + bytes(value)
    return out


def command_payload(command: int, args: bytes) -> bytes:
    return bytes([command & 0xFF]) + bytes(args)


def decode_payload(msg_type: int, payload: bytes) -> dict:
    """Named fields of a payload (a dict); raises only FrameError."""
    _check_payload_len(msg_type, payload)
    if msg_type == OCCUPANCY:
        sf, dur, dist, dev = struct.unpack("<BHBB", payload)
        state = sf & 0x03
        if state not in STATE_NAMES:
            raise FrameError("bad_state", "state value " + str(state))
        return {
            "state": state,
            "flags": sf & 0xF8,
            "prev_duration_s": _duration_seconds(dur),
            "distance_cm": None if dist == NO_RANGE else dist * 2,
            "mag_dev_ut": dev,
        }
    if msg_type == HEARTBEAT:
        mv, temp, up, rssi, snr, state, reboots = struct.unpack("<HhIBbBB", payload)
        return {
            "battery_mv": mv,
            "temp_c": None if temp == TEMP_UNKNOWN else temp / 10,
            "uptime_s": up,
            "rssi_dbm": None if rssi == RSSI_UNKNOWN else -rssi,
            "snr_db": None if snr == SNR_UNKNOWN else snr / 4,
            "state": state,
            "reboots": reboots,
        }
    if msg_type == DIAGNOSTIC:
        code, value, extra = struct.unpack("<BhI", payload)
        return {"code": code, "value": value, "extra": extra}
    if msg_type == CHECKIN:
        return {"uid": bytes(payload[1:])}
    if msg_type == CONFIG_ACK or msg_type == ACK:
        a, b = struct.unpack("<HB", payload)
        if msg_type == ACK:
            return {"acked_fcnt16": a, "flags": b}
        return {"config_version": a, "status": b}
    if msg_type == CONFIG:
        version = struct.unpack("<H", payload[:2])[0]
        entries = []
        off = 2
        while off < len(payload):
            key = payload[off]
            ln = payload[off + 1]
            entries.append((key, bytes(payload[off + 2 : off + 2 + ln])))
            off += 2 + ln
        return {"config_version": version, "entries": entries}
    if msg_type == COMMAND:
        return {"command": payload[0], "args": bytes(payload[1:])}
    raise FrameError("bad_type", "unknown message type " + str(msg_type))
