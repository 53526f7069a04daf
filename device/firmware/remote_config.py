"""CONFIG downlinks (proto/FRAME.md type 9): validate, apply, persist, and the CONFIG_ACK status.

TLV keys (FRAME.md): 1 sample period (uint16 s), 2 heartbeat period
(uint16 min), 3 occupied-below range (uint16 cm), 4 magnetic threshold
(uint8 uT: the arrival threshold; the leave threshold keeps its ratio to
it), 5 confirmed uplinks (uint8 0/1). Integers little-endian.

All or nothing: every entry is checked (known key, right length, value in
the range node.json allows) before any is applied. The CONFIG_ACK status
is 0 when all were applied, else the 1-based index of the first refused
entry, and then nothing changed. A config whose version equals the one
already applied is acknowledged again without being re-applied (the ACK
may have been lost). An applied config is written to flash
(``remote.cfg``: the raw payload) and applied again at every boot, on top
of node.json: a reboot does not undo it.
"""

try:
    from micropython import const
except ImportError:  # CPython: unit tests and the CLI

    def const(expr):  # type: ignore[no-redef,misc]
        return expr


TYPE_CHECKING = const(False)  # mypy: True; MicroPython drops the block at compile time (no names interned)
if TYPE_CHECKING:
    from typing import Any  # noqa: F401 - type comments

PATH = "remote.cfg"

_K_SAMPLE_S = const(1)
_K_HEARTBEAT_MIN = const(2)
_K_OCCUPIED_BELOW_CM = const(3)
_K_MAG_THRESHOLD_UT = const(4)
_K_CONFIRMED = const(5)

# key -> (value length, low, high); ranges as node.json allows them
RULES = {
    _K_SAMPLE_S: (2, 1, 600),
    _K_HEARTBEAT_MIN: (2, 1, 1440),
    _K_OCCUPIED_BELOW_CM: (2, 5, 400),
    _K_MAG_THRESHOLD_UT: (1, 1, 255),
    _K_CONFIRMED: (1, 0, 1),
}


def entries(payload: bytes) -> list:
    """[(key, value int or -1 when malformed)] from a CONFIG payload (version first, 2 bytes)."""
    out = []
    off = 2
    n = len(payload)
    while off + 2 <= n:
        key = payload[off]
        ln = payload[off + 1]
        raw = payload[off + 2 : off + 2 + ln]
        rule = RULES.get(key)
        if rule is None or ln != rule[0] or len(raw) != ln:
            out.append((key, -1))
        else:
            out.append((key, raw[0] | (raw[1] << 8) if ln == 2 else raw[0]))
        off += 2 + ln
    return out


def check(cfg: object, payload: bytes) -> int:
    """0 when every entry can be applied to ``cfg``, else the 1-based index of the first refused one."""
    c = cfg  # type: Any
    i = 0
    for key, value in entries(payload):
        i += 1
        rule = RULES.get(key)
        if rule is None or value < 0 or not rule[1] <= value <= rule[2]:
            return i
        if key == _K_SAMPLE_S and c.deep_sleep and value < 1:
            return i
        if key == _K_CONFIRMED and value and c.transport == "lora" and c.radio["rx_window_ms"] <= 0:
            return i  # nobody would listen for the ACK
    return 0


def apply(cfg: object, payload: bytes) -> None:
    """Apply a checked payload to ``cfg`` (the caller re-derives the detector's thresholds)."""
    c = cfg  # type: Any
    d = c.detect
    for key, value in entries(payload):
        if key == _K_SAMPLE_S:
            c.sample_ms = value * 1000
        elif key == _K_HEARTBEAT_MIN:
            c.heartbeat_s = value * 60
        elif key == _K_OCCUPIED_BELOW_CM:
            d["occupied_below_cm"] = float(value)
        elif key == _K_MAG_THRESHOLD_UT:
            ratio = d["leave_ut"] / d["arrive_ut"]
            d["arrive_ut"] = float(value)
            d["leave_ut"] = value * ratio
        elif key == _K_CONFIRMED:
            c.confirmed = bool(value)


def version(payload: bytes) -> int:
    return payload[0] | (payload[1] << 8)


def save(payload: bytes) -> None:
    with open(PATH + ".tmp", "wb") as f:
        f.write(payload)
    import os

    try:
        os.rename(PATH + ".tmp", PATH)
    except OSError:
        try:
            os.remove(PATH)
        except OSError:
            pass
        os.rename(PATH + ".tmp", PATH)


def load() -> "bytes | None":
    try:
        with open(PATH, "rb") as f:
            return f.read()
    except OSError:
        return None

