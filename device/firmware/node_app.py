"""The sensor node: sample -> detect -> radio, forever.

Every ``sample_ms``: read the magnetometer (and the ultrasonic ranger when
the detector wants it, or every ``detect.range_every`` samples), feed the
detector, and on a committed state change queue an OCCUPANCY frame carrying
how long the previous state lasted. A HEARTBEAT goes out once the first
state is known after boot, then every ``heartbeat_s``. ``uplink.py`` sends
(airtime budget, frame counters, downlinks). Between samples the node
sleeps (``machine.lightsleep`` or ``time.sleep_ms`` per board profile).
With a bad node.json the node still samples and prints its state on the
console, but never transmits.

The sampling path (``Node.step`` when nothing is sent) allocates nothing
beyond small ints: preallocated buffers, integer units (0.1 uT, mm, us).
Time is counted in whole seconds (``uptime_s``) from ticks_ms differences,
so a car parked for weeks does not trip over the ticks wrap-around.
"""

import gc
import os
import time

import machine

# isort: split
from uplink import Uplink  # first: it compiles the biggest driver (sx127x) while RAM is freest

# isort: split
import detect
from drivers.hcsr04 import HCSR04
from drivers.qmc5883l import QMC5883L, SATURATED

from proto import frame

TYPE_CHECKING = False
if TYPE_CHECKING:
    from node_config import NodeConfig

FW_VERSION = "0.1.0"


def _rand8() -> int:
    """A random byte from the port's hardware RNG (os.urandom on ESP32, RP2040 and unix)."""
    return os.urandom(1)[0]


def _rand16() -> int:
    b = os.urandom(2)
    return b[0] | (b[1] << 8)

STATE_NAMES = ("empty", "occupied", "unknown")


class Node:
    def __init__(self, cfg: "NodeConfig") -> None:
        self.cfg = cfg
        d = cfg.detect
        self.det = detect.Detector(
            d["arrive_ut"],
            d["leave_ut"],
            d["occupied_below_cm"],
            d["hold_samples"],
            d["ema_shift"],
            d["calib_samples"],
            d["rebaseline_samples"],
            False,
        )
        self.range_every = d["range_every"]
        self.up = Uplink(cfg)
        self.up.on_command = self.command
        self.field = [0, 0, 0]
        self.mag = None  # type: QMC5883L | None
        self.ranger = None  # type: HCSR04 | None
        self.adc = None  # type: machine.ADC | None
        self.wdt = None  # type: machine.WDT | None
        self.battery_div = 2.0
        self.battery_vref = 3300
        self.sleep_mode = "sleep_ms"
        self.uptime_s = 0
        self._ms_acc = 0
        self._last_ms = time.ticks_ms()
        self.samples = 0
        self.since_range = 0
        self.last_range_mm = detect.RANGE_SKIPPED
        self.prev_state = detect.UNKNOWN
        self.state_since_s = 0
        self.temp_c10 = 200
        self.temp_offset_c10 = int(cfg.temp_offset_c * 10)
        self.battery_mv = 0
        self.saturated = False
        self.boot_hb_done = False
        self.boot_hb_wait = -1
        self.next_hb_s = 0
        self.reset_cause = 0

    # --- hardware ------------------------------------------------------------

    def setup(self) -> None:
        cfg = self.cfg
        p = cfg.pins
        if p is None:
            return
        Pin = machine.Pin
        self.sleep_mode = p.get("sleep", "sleep_ms")
        try:
            self.reset_cause = machine.reset_cause()
        except (AttributeError, OSError):
            self.reset_cause = 0
        power = p.get("sensor_power")
        if power:
            Pin(power["pin"], Pin.OUT, value=power["on"])
            time.sleep_ms(20)
        i = p["i2c"]
        try:
            i2c = machine.I2C(i["id"], scl=Pin(i["scl"]), sda=Pin(i["sda"]), freq=i["freq"])
            self.mag = QMC5883L(i2c, range_gauss=cfg.detect["mag_range_gauss"])
            self.temp_c10 = self.mag.temperature_c10() + self.temp_offset_c10
        except OSError as e:
            print("magnetometer: not answering on I2C (" + str(e) + "); detecting by range only")
            self.mag = None
            self.up.queue_diagnostic(frame.diagnostic_payload(frame.DIAG_MAG_MISSING, 0, 0))
        r = p.get("ranger")
        if r and cfg.ranger:
            self.ranger = HCSR04(Pin(r["trig"]), Pin(r["echo"]), temp_c10=self.temp_c10)
            self.det.has_ranger = True
        b = p.get("battery")
        if b:
            self.adc = machine.ADC(Pin(b["adc"]))
            if hasattr(self.adc, "atten") and hasattr(machine.ADC, "ATTN_11DB"):
                self.adc.atten(machine.ADC.ATTN_11DB)
            self.battery_div = b.get("divider", 2.0)
            self.battery_vref = b.get("vref_mv", 3300)
        self.up.setup(p)
        if self.reset_cause == getattr(machine, "WDT_RESET", -1):
            self.up.queue_diagnostic(frame.diagnostic_payload(frame.DIAG_WATCHDOG_RESET, 0, 0))
        if cfg.wdt_ms:
            self.wdt = machine.WDT(timeout=cfg.wdt_ms)
        self.read_battery()

    def read_battery(self) -> int:
        adc = self.adc
        if adc is not None:
            if hasattr(adc, "read_uv"):  # ESP32: calibrated microvolts
                self.battery_mv = int(adc.read_uv() * self.battery_div / 1000)
            else:
                self.battery_mv = int(adc.read_u16() * self.battery_vref * self.battery_div / 65535)
        return self.battery_mv

    # --- the loop -------------------------------------------------------------

    def _tick(self) -> None:
        now = time.ticks_ms()
        self._ms_acc += time.ticks_diff(now, self._last_ms)
        self._last_ms = now
        while self._ms_acc >= 1000:
            self._ms_acc -= 1000
            self.uptime_s += 1
            self.up.second()

    def step(self) -> None:
        """One sample: read sensors, detect, transmit what is due."""
        self._tick()
        if self.wdt is not None:
            self.wdt.feed()
        self.samples += 1
        f = self.field
        det = self.det
        mag_ok = False
        flags = 0
        mag = self.mag
        if mag is not None:
            try:
                flags = mag.read_into(f)
                mag_ok = True
            except OSError:
                mag_ok = False
        rng = detect.RANGE_SKIPPED
        ranger = self.ranger
        if ranger is not None:
            self.since_range += 1
            if self.since_range >= self.range_every or det.wants_range(f[0], f[1], f[2], mag_ok):
                self.since_range = 0
                mm = ranger.read_mm()
                rng = detect.RANGE_NONE if mm is None else mm
                self.last_range_mm = rng
        changed = det.update(f[0], f[1], f[2], mag_ok, rng)
        state = det.state
        if changed:
            self.on_change(state, rng != detect.RANGE_SKIPPED)
        elif state != self.prev_state:
            self.prev_state = state  # first known state after boot
            self.state_since_s = self.uptime_s
            print("state " + STATE_NAMES[state] + " (initial)")
        if flags & SATURATED:
            if not self.saturated:
                self.saturated = True
                print("magnetometer saturated: field beyond the range")
                self.up.queue_diagnostic(frame.diagnostic_payload(frame.DIAG_MAG_SATURATED, f[2] // 10, 0))
        elif self.saturated and mag_ok:
            self.saturated = False
        if (self.samples & 63) == 0 and mag_ok:
            self.update_temperature()
        up = self.up
        if not self.boot_hb_done:
            if state != detect.UNKNOWN or self.samples > det.calib_samples + 2 * det.hold + 2:
                if self.boot_hb_wait < 0:
                    # Nodes powered together (a site power cut) must not all send in one instant:
                    # wait a random number of samples, up to boot_jitter_s, before the first heartbeat.
                    window = self.cfg.boot_jitter_s * 1000 // self.cfg.sample_ms
                    self.boot_hb_wait = _rand16() % (window + 1)
                if self.boot_hb_wait == 0:
                    self.boot_hb_done = True
                    up.pending_hb = True
                else:
                    self.boot_hb_wait -= 1
        elif self.uptime_s >= self.next_hb_s and not up.pending_hb:
            up.pending_hb = True
        if up.due():
            hb = up.pending_hb
            if up.flush(self.heartbeat_payload) and hb:
                # +0..10 % jitter keeps heartbeats of nodes booted together from staying in step.
                self.next_hb_s = self.uptime_s + self.cfg.heartbeat_s + _rand8() % (self.cfg.heartbeat_s // 10 + 1)

    def update_temperature(self) -> None:
        if self.mag is None:
            return
        try:
            self.temp_c10 = self.mag.temperature_c10() + self.temp_offset_c10
        except OSError:
            return
        if self.ranger is not None:
            self.ranger.set_temperature(self.temp_c10)

    def flags(self, state: int, ranged: bool) -> int:
        fl = 0
        if ranged and self.ranger is not None and (state == detect.OCCUPIED) == self.det.range_hit:
            fl |= frame.FLAG_RANGE_CONFIRMED
        if self.det.calibrating():
            fl |= frame.FLAG_CALIBRATING
        if self.battery_mv and self.battery_mv < self.cfg.low_battery_mv:
            fl |= frame.FLAG_LOW_BATTERY
        return fl

    def on_change(self, state: int, ranged: bool) -> None:
        prev_s = self.uptime_s - self.state_since_s
        self.state_since_s = self.uptime_s
        self.prev_state = state
        rng = self.last_range_mm
        dist_cm = None if rng < 0 else rng / 10
        dev_ut = detect.isqrt(self.det.dev2) // 10
        print(
            "state "
            + STATE_NAMES[state]
            + " after "
            + str(prev_s)
            + " s; deviation "
            + str(dev_ut)
            + " uT; range "
            + ("none" if dist_cm is None else str(dist_cm) + " cm")
        )
        self.up.queue_occupancy(frame.occupancy_payload(state, self.flags(state, ranged), prev_s, dist_cm, dev_ut))

    def heartbeat_payload(self) -> bytes:
        # The state byte carries the plain state: proto.frame decodes a heartbeat's
        # state without splitting off flags (an occupancy frame's state byte has them).
        self.update_temperature()
        return frame.heartbeat_payload(
            self.read_battery(),
            self.temp_c10 / 10,
            self.uptime_s,
            self.up.rssi_dbm,
            self.up.snr_db,
            self.det.state,
            self.up.boots() - 1,
        )

    def command(self, cmd: int, args: bytes) -> None:
        """A verified COMMAND downlink."""
        if cmd == frame.CMD_CALIBRATE:
            print("command: recalibrate")
            self.det.recalibrate()
        elif cmd == frame.CMD_REBOOT:
            print("command: reboot")
            machine.reset()
        else:
            print("command " + str(cmd) + ": not supported by this firmware")

    # --- main loop ----------------------------------------------------------------

    def sleep(self, ms: int) -> None:
        if ms <= 0:
            return
        if self.sleep_mode == "lightsleep":
            machine.lightsleep(ms)
        else:
            time.sleep_ms(ms)

    def loop(self, max_samples: int = 0) -> None:
        period = self.cfg.sample_ms
        n = 0
        while max_samples <= 0 or n < max_samples:
            t0 = time.ticks_ms()
            self.step()
            n += 1
            self.sleep(period - time.ticks_diff(time.ticks_ms(), t0))


def idle_forever(cfg: "NodeConfig") -> None:
    """No usable board profile: nothing to drive; keep saying why."""
    while True:
        for e in cfg.errors:
            print("config error: " + e)
        print("node idle: no usable board profile; fix node.json")
        for _ in range(300):
            machine.idle()
            time.sleep_ms(200)


def run(cfg: "NodeConfig | None" = None, max_samples: int = 0) -> Node:
    """Boot the node with ``cfg`` (default: load node.json) and sample forever."""
    if cfg is None:
        import node_config

        cfg = node_config.load("node.json")
    if cfg.pins is None:
        idle_forever(cfg)
    node = Node(cfg)
    node.setup()
    print(
        "node "
        + FW_VERSION
        + ": magnetometer "
        + ("ok" if node.mag is not None else "missing")
        + ", ranger "
        + ("ok" if node.ranger is not None else "none")
        + ", radio "
        + ("ok" if node.up.radio is not None else "missing")
        + ("" if node.up.enabled else " (transmit disabled)")
    )
    gc.collect()
    node.loop(max_samples)
    return node
