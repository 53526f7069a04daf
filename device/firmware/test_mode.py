"""Test mode: the HIL bench drives this board's sensor readings over its console (hil/BENCH.md).

Only a node.json with ``"test_mode": true`` imports this module
(``node_app.Node.setup``), so a production node never listens to its
console. The bench speaks the emulated node's line protocol, one line per
``\\n`` on the REPL UART (USB serial, 115200 8N1)::

    WORLD {"distance_cm": 25, "field_ut": [18, -4, 89], "battery_mv": 3300, "temp_c": 21, "card_uid": "04a1b2c3"}
    WORLD {"clear": true}
    RX <hex> <freq_hz> <sf> <bw_hz> <sync_word> <rssi_dbm> <snr_db> [crc_ok]
    PING <token>

and the board answers on the same console::

    TX <hex> <freq_hz> <sf> <bw_hz> <cr> <power_dbm> <sync_word>   (the radio starts a packet)
    EMU pong {"token": ...} | EMU rx {"result": ..., "len": n} | EMU error {"line": ..., "error": ...}

Why it works this way:

* WORLD replaces what the drivers return, not the drivers: the real
  magnetometer, ranger, ADC and RC522 (``card_uid``: a card on the reader,
  ``null`` none; only with ``"rfid": true``) are still read (same bus traffic, same
  timing), then the overridden value is handed to the detector. Keys left
  out keep their last value; ``clear`` returns to the real sensors. When
  the field's source changes (the first ``field_ut``, or ``clear``) the
  detector relearns its baseline, since a calibration made on the desk's
  field says nothing about the bench's.
* TX lines carry the radio settings read back from the SX127x registers,
  printed as the packet starts: the bench's channel model times the packet
  from that line. The real radio still transmits (into a dummy load).
* RX lines are downlinks the bench's gateway sends; the node takes one only
  while its receive window is open and the settings match, as a radio would
  (the window also keeps the real radio listening, in short slices).
* Between samples the node stays awake (``time.sleep_ms`` in slices while
  polling the console): light sleep would stop the UART. Deep sleep is
  refused with test mode (node_config_check).

This module allocates per console line; the sampling path of a production
node is untouched.
"""

import binascii
import json
import select
import sys
import time

from proto import airtime

try:
    from micropython import const
except ImportError:  # CPython: unit tests and the CLI

    def const(expr):  # type: ignore[no-redef,misc]
        return expr


TYPE_CHECKING = const(False)  # mypy: True; MicroPython drops the block at compile time (no names interned)
if TYPE_CHECKING:
    from typing import Any  # noqa: F401 - type comments

FRESH = 0x01  # drivers/magnetometer.py
KEYS = ("distance_cm", "field_ut", "battery_mv", "temp_c", "card_uid", "clear")
MAX_LINE = 600
SLICE_MS = 20  # receive-window slice between two looks at the console


def emit(event: str, data: dict) -> None:
    print("EMU " + event + " " + json.dumps(data))


class Bench:
    """The console's line reader and the readings it overrides."""

    def __init__(self, node: "Any") -> None:
        self.node = node  # type: Any
        self.poller = select.poll()
        self.poller.register(sys.stdin, select.POLLIN)
        self.buf = []  # type: list
        self.eof = False
        self.field = None  # type: list | None  # [x, y, z] in 0.1 uT
        self.distance_mm = -1  # type: int | None  # -1: not overridden; None: no echo
        self.battery_mv = -1
        self.temp_c10 = None  # type: int | None
        self.card = -1  # type: int | bytes | None  # -1: not overridden; None: no card
        self.listening = None  # type: Radio | None  # the radio while its receive window is open
        self.rx = None  # type: tuple | None  # (payload, rssi, snr) taken in the window

    # --- the console ---------------------------------------------------------

    def poll(self) -> None:
        """Handle every line already waiting; never blocks."""
        while not self.eof and self.poller.poll(0):
            c = sys.stdin.read(1)
            if not c:
                self.eof = True  # the console is gone (unix port): stop looking
                return
            if c == "\n":
                line = "".join(self.buf)
                self.buf = []
                self.handle(line)
            elif c != "\r":
                if len(self.buf) < MAX_LINE:
                    self.buf.append(c)

    def wait_ms(self, ms: int) -> None:
        """Sleep ``ms`` milliseconds, handling lines as they arrive."""
        deadline = time.ticks_add(time.ticks_ms(), ms)
        while True:
            left = time.ticks_diff(deadline, time.ticks_ms())
            if left <= 0:
                return
            if self.eof:
                time.sleep_ms(left)
                return
            if self.poller.poll(left):
                self.poll()

    def handle(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        parts = line.split(" ", 1)
        word = parts[0]
        rest = parts[1] if len(parts) > 1 else ""
        try:
            if word == "PING":
                emit("pong", {"token": rest})
            elif word == "WORLD":
                self.world(json.loads(rest))
            elif word == "RX":
                self.downlink(rest.split())
            else:
                raise ValueError("unknown command " + word)
        except (ValueError, TypeError, KeyError, IndexError) as e:
            emit("error", {"line": line[:200], "error": str(e)})

    def world(self, data: dict) -> None:
        """Check every key first, then apply: a bad line changes nothing."""
        if not isinstance(data, dict):
            raise ValueError("WORLD wants a JSON object")
        for k in data:
            if k not in KEYS:
                raise ValueError("unknown world key " + k + " (known: " + ", ".join(KEYS) + ")")
        card = self.card
        if "card_uid" in data:
            c = data["card_uid"]
            if self.node.rfid is None:
                raise ValueError("card_uid: this node reads no cards (rfid off or no RC522 in its board profile)")
            card = None if c is None else binascii.unhexlify(c)
            if card is not None and len(card) not in (4, 7, 10):
                raise ValueError("card_uid must be 4, 7 or 10 bytes of hex")
        field = self.field
        dist = self.distance_mm
        mv = self.battery_mv
        t10 = self.temp_c10
        if "field_ut" in data:
            f = data["field_ut"]
            if not isinstance(f, list) or len(f) != 3:
                raise ValueError("field_ut must be [x, y, z]")
            field = [int(float(f[0]) * 10), int(float(f[1]) * 10), int(float(f[2]) * 10)]
        if "distance_cm" in data:
            d = data["distance_cm"]
            dist = None if d is None else int(float(d) * 10)
        if "battery_mv" in data:
            mv = int(data["battery_mv"])
        if "temp_c" in data:
            t10 = int(float(data["temp_c"]) * 10)
        relearn = (field is None) != (self.field is None)
        if data.get("clear"):
            relearn = self.field is not None
            field, dist, mv, t10, card = None, -1, -1, None, -1
        self.field, self.distance_mm, self.battery_mv, self.temp_c10, self.card = field, dist, mv, t10, card
        if relearn:
            print("test mode: magnetometer readings from " + ("the sensor" if field is None else "the bench") + "; recalibrating")
            self.node.det.recalibrate()

    def downlink(self, f: list) -> None:
        if len(f) < 7:
            raise ValueError("RX wants: <hex> <freq_hz> <sf> <bw_hz> <sync_word> <rssi_dbm> <snr_db> [crc_ok]")
        payload = binascii.unhexlify(f[0])
        radio = self.listening
        result = "received"
        if radio is None:
            result = "not_listening"
        else:
            s = radio.settings()
            if abs(int(f[1]) - s[0]) > s[2] // 4:
                result = "wrong_frequency"
            elif int(f[2]) != s[1]:
                result = "wrong_sf"
            elif int(f[3]) != s[2]:
                result = "wrong_bw"
            elif int(f[4], 0) != s[5]:
                result = "wrong_sync_word"
            elif not 0 < len(payload) < 256:
                result = "bad_length"
        emit("rx", {"result": result, "len": len(payload)})
        if result == "received" and (len(f) < 8 or f[7] not in ("0", "false", "bad")):
            self.rx = (payload, int(float(f[5])), float(f[6]))


class Mag:
    """The magnetometer, its field and temperature overridable (same interface as the drivers)."""

    def __init__(self, bench: Bench, inner: "Any") -> None:
        self.bench = bench
        self.inner = inner  # type: Any
        self.name = (self.inner.name if inner is not None else "none") + " (test mode)"

    @property
    def has_temperature(self) -> bool:
        return self.bench.temp_c10 is not None or (self.inner is not None and self.inner.has_temperature)

    def read_into(self, out: list) -> int:
        flags = 0
        err = None
        if self.inner is not None:
            try:
                flags = self.inner.read_into(out)
            except OSError as e:
                err = e
        f = self.bench.field
        if f is None:
            if err is not None:
                raise err
            if self.inner is None:
                raise OSError(19, "no magnetometer and no field from the bench")
            return flags
        out[0] = f[0]
        out[1] = f[1]
        out[2] = f[2]
        return FRESH

    def temperature_c10(self) -> int:
        t = self.bench.temp_c10
        if t is not None:
            return t
        if self.inner is None:
            raise OSError(19, "no magnetometer")
        return self.inner.temperature_c10()

    def standby(self) -> None:
        if self.inner is not None:
            self.inner.standby()

    def reset(self) -> None:
        if self.inner is not None:
            self.inner.reset()


class Ranger:
    """The HC-SR04, its distance overridable (``None``: no echo)."""

    def __init__(self, bench: Bench, inner: "Any") -> None:
        self.bench = bench
        self.inner = inner  # type: Any

    def read_mm(self) -> "int | None":
        mm = self.inner.read_mm()  # the real ping: same timing as in production
        d = self.bench.distance_mm
        return mm if d == -1 else d

    def set_temperature(self, temp_c10: int) -> None:
        self.inner.set_temperature(temp_c10)


class Card:
    """The RC522, the card in its field overridable."""

    def __init__(self, bench: Bench, inner: "Any") -> None:
        self.bench = bench
        self.inner = inner  # type: Any

    def read_uid(self) -> "bytes | None":
        uid = self.inner.read_uid()  # the real reader: same SPI traffic as in production
        c = self.bench.card
        return uid if c == -1 else c  # type: ignore[return-value]


class Battery:
    """The battery ADC in calibrated microvolts at the pin, overridable in mV at the cell."""

    def __init__(self, bench: Bench, inner: "Any", divider: float, vref_mv: int) -> None:
        self.bench = bench
        self.inner = inner  # type: Any
        self.divider = divider
        self.vref_mv = vref_mv

    def read_uv(self) -> int:
        mv = self.bench.battery_mv
        if mv >= 0:
            return int(mv * 1000 / self.divider)
        adc = self.inner
        if adc is None:
            return 0
        if hasattr(adc, "read_uv"):
            return adc.read_uv()
        return adc.read_u16() * self.vref_mv * 1000 // 65535


class Radio:
    """The SX127x: TX lines as packets start, downlinks from the bench in the receive window."""

    def __init__(self, bench: Bench, inner: "Any") -> None:
        self.bench = bench
        self.inner = inner  # type: Any
        self.last_rssi_dbm = None  # type: int | None
        self.last_snr_db = None  # type: float | None

    def settings(self) -> tuple:
        """(freq_hz, sf, bw_hz, cr, power_dbm, sync_word) as the registers hold them now."""
        r = self.inner.read_reg
        frf = (r(0x06) << 16) | (r(0x07) << 8) | r(0x08)
        mc1 = r(0x1D)
        code = mc1 >> 4
        bw = airtime.BANDWIDTHS_HZ[code] if code < len(airtime.BANDWIDTHS_HZ) else 0
        pa = r(0x09)
        out = pa & 0x0F
        if pa & 0x80:  # PA_BOOST; +20 dBm when RegPaDac enables it
            power = 5 + out if r(0x4D) & 0x07 == 0x07 else 2 + out
        else:
            power = (108 + 6 * ((pa >> 4) & 0x07) - 10 * (15 - out) + 5) // 10
        return ((frf * 15625 + 128) >> 8, r(0x1E) >> 4, bw, ((mc1 >> 1) & 0x07) + 4, power, r(0x39))

    def send(self, frame: bytes) -> bool:
        s = self.settings()
        print("TX " + binascii.hexlify(frame).decode() + " " + " ".join(str(v) for v in s[:5]) + " 0x{:02x}".format(s[5]))  # noqa: UP032
        return self.inner.send(frame)

    def rx_window(self, ms: int) -> "bytes | None":
        bench = self.bench
        bench.listening = self
        bench.rx = None
        t0 = time.ticks_ms()
        got = None
        while True:
            bench.poll()
            if bench.rx is not None:
                got, self.last_rssi_dbm, self.last_snr_db = bench.rx
                bench.rx = None
                break
            left = ms - time.ticks_diff(time.ticks_ms(), t0)
            if left <= 0:
                break
            got = self.inner.rx_window(left if left < SLICE_MS else SLICE_MS)
            if got is not None:  # a real gateway answered over the air
                self.last_rssi_dbm = self.inner.last_rssi_dbm
                self.last_snr_db = self.inner.last_snr_db
                break
        bench.listening = None
        return got

    def sleep(self) -> None:
        self.inner.sleep()

    def standby(self) -> None:
        self.inner.standby()


def install(node: "Any") -> Bench:
    """Put the overridable parts in place of the node's drivers; returns the console reader."""
    n = node  # type: Any
    bench = Bench(node)
    n.mag = Mag(bench, n.mag)
    if n.ranger is not None:
        n.ranger = Ranger(bench, n.ranger)
    n.adc = Battery(bench, n.adc, n.battery_div, n.battery_vref)
    if n.rfid is not None:
        n.rfid = Card(bench, n.rfid)
    up = n.up
    if up.radio is not None:
        up.radio = Radio(bench, up.radio)
        up.link = up.radio
    print("test mode: sensor readings and downlinks from the console (hil/BENCH.md)")
    return bench
