"""The node's physical world, steered by the bench over stdin (MicroPython).

State: distance from the ultrasonic ranger to whatever is above it (cm, or
None when nothing reflects), the magnetic field at the magnetometer (uT,
x/y/z), air temperature (degC), battery voltage (mV), and noise levels.

Control lines arrive on stdin and are read without blocking, through
``select.poll``, whenever the firmware touches emulated hardware or sleeps
(see ``README.md`` for the protocol)::

    WORLD {"distance_cm": 35.0, "field_ut": [20, -5, 82], "temp_c": 12.5}
    RX <hex> <freq_hz> <sf> <bw_hz> <sync_word> <rssi_dbm> <snr_db> [crc_ok]
    PING <token>
    MEM
    EXIT

End of stdin means the bench is gone: the node exits.
"""

import gc
import json
import os
import random
import select
import sys
from gc import mem_alloc, mem_free  # type: ignore[attr-defined]  # MicroPython
from time import sleep_ms, ticks_add, ticks_diff, ticks_ms  # type: ignore[attr-defined]

WORLD_KEYS = (
    "distance_cm",
    "field_ut",
    "temp_c",
    "battery_mv",
    "mag_noise_ut",
    "range_noise_cm",
    "no_echo_pulse_us",
    "card_uid",
    "wifi",
)


_OUT: list = [None]


def out():
    """Where EMU and TX lines go: stdout, or the file FOGPARK_EMU_OUT names (a REPL board's
    stdout is its serial console, which must carry only what the firmware prints)."""
    f = _OUT[0]
    if f is None:
        path = os.getenv("FOGPARK_EMU_OUT")
        f = open(path, "a") if path else sys.stdout
        _OUT[0] = f
    return f


def emit(event: str, data=None) -> None:
    """An EMU line for the bench."""
    f = out()
    f.write("EMU " + event + " " + json.dumps(data if data is not None else {}) + "\n")
    if f is not sys.stdout:
        f.flush()


class World:
    def __init__(self, stream=None, exit_on_eof=True) -> None:
        self.distance_cm: float | None = None  # nothing above the sensor: no echo
        self.field_ut = [18.0, -4.0, 44.0]  # a typical mid-latitude Earth field
        self.temp_c = 20.0
        self.battery_mv = 3900
        self.mag_noise_ut = 0.2
        self.range_noise_cm = 0.0
        self.no_echo_pulse_us = 38000  # HC-SR04 give-up pulse; 0: ECHO never rises
        self.card_uid: bytes | None = None  # an ISO 14443-3A card on the RC522
        self.wifi: dict | None = None  # the access point in range: {"ssid", "password", "rssi"}
        self.handlers: dict = {}  # command word -> fn(rest of line)
        self.lines = 0
        self.exit_on_eof = exit_on_eof
        self.stream = stream if stream is not None else sys.stdin
        self.poller = select.poll()
        self.open = os.getenv("FOGPARK_EMU_CONTROL") != "none"  # "none": stdin is a REPL console
        if self.open:
            self.poller.register(self.stream, select.POLLIN)
        seed = os.getenv("FOGPARK_EMU_SEED")
        if seed:
            random.seed(int(seed))

    # --- what the parts see ----------------------------------------------------

    def _noise(self, sigma: float) -> float:
        if sigma <= 0:
            return 0.0
        # sum of three uniforms: close enough to a Gaussian, cheap, no math.log
        return (random.random() + random.random() + random.random() - 1.5) * 2.0 * sigma

    def field_sample(self) -> tuple:
        n = self.mag_noise_ut
        f = self.field_ut
        return (f[0] + self._noise(n), f[1] + self._noise(n), f[2] + self._noise(n))

    def distance_sample(self):
        d = self.distance_cm
        if d is None:
            return None
        return d + self._noise(self.range_noise_cm)

    def temperature(self) -> float:
        return self.temp_c

    def card(self):
        return self.card_uid

    # --- the bench's control lines -------------------------------------------------

    def set(self, data: dict) -> None:
        for k in data:
            if k not in WORLD_KEYS:
                raise ValueError("unknown world key " + repr(k) + " (known: " + ", ".join(WORLD_KEYS) + ")")
        if "distance_cm" in data:
            d = data["distance_cm"]
            self.distance_cm = None if d is None else float(d)
        if "field_ut" in data:
            f = data["field_ut"]
            if len(f) != 3:
                raise ValueError("field_ut must be [x, y, z]")
            self.field_ut = [float(f[0]), float(f[1]), float(f[2])]
        if "temp_c" in data:
            self.temp_c = float(data["temp_c"])
        if "battery_mv" in data:
            self.battery_mv = int(data["battery_mv"])
        if "mag_noise_ut" in data:
            self.mag_noise_ut = float(data["mag_noise_ut"])
        if "range_noise_cm" in data:
            self.range_noise_cm = float(data["range_noise_cm"])
        if "no_echo_pulse_us" in data:
            self.no_echo_pulse_us = int(data["no_echo_pulse_us"])
        if "card_uid" in data:
            c = data["card_uid"]
            if c is not None:
                c = bytes.fromhex(c)
                if len(c) not in (4, 7, 10):
                    raise ValueError("card_uid must be 4, 7 or 10 bytes of hex")
            self.card_uid = c
        if "wifi" in data:
            w = data["wifi"]
            if w is not None and (not isinstance(w, dict) or "ssid" not in w):
                raise ValueError("wifi must be null or {ssid, password, rssi}")
            self.wifi = w

    def handle(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        self.lines += 1
        word, _, rest = line.partition(" ")
        try:
            if word == "WORLD":
                self.set(json.loads(rest))
            elif word == "PING":
                emit("pong", {"token": rest})
            elif word == "MEM":
                gc.collect()
                emit("mem", {"alloc": mem_alloc(), "free": mem_free()})
            elif word == "EXIT":
                emit("exit", {})
                sys.exit(0)
            elif word in self.handlers:
                self.handlers[word](rest)
            else:
                raise ValueError("unknown command " + repr(word))
        except (ValueError, TypeError, KeyError, IndexError) as e:
            emit("error", {"line": line[:200], "error": str(e)})

    def _read_line(self) -> None:
        line = self.stream.readline()
        if not line:
            self.open = False
            self.poller.unregister(self.stream)
            if self.exit_on_eof:
                emit("eof", {})
                sys.exit(0)
            return
        self.handle(line)

    def poll(self) -> None:
        """Handle every control line already waiting; never blocks."""
        while self.open and self.poller.poll(0):
            self._read_line()

    def wait_ms(self, ms: int) -> None:
        """Sleep ``ms`` milliseconds, handling control lines as they arrive."""
        deadline = ticks_add(ticks_ms(), ms)
        while True:
            left = ticks_diff(deadline, ticks_ms())
            if left <= 0:
                return
            if not self.open:
                sleep_ms(left)
                return
            if self.poller.poll(left):
                self._read_line()
