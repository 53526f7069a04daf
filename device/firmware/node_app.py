"""The sensor node: sample -> detect -> link, forever (or once per wake in deep sleep).

Every ``sample_ms``: read the magnetometer (and the ultrasonic ranger when
the detector wants it, or every ``detect.range_every`` samples), feed the
detector, and on a committed state change queue an OCCUPANCY frame carrying
how long the previous state lasted. Tamper conditions (``detect.py``)
queue a DIAGNOSTIC when they start (code: range blind / range short /
magnetometer saturated) and when they end (tamper cleared), and set
FLAG_TAMPER in every frame meanwhile. With ``rfid`` the RC522 is polled
while the bay is occupied; a card queues a CHECKIN with its UID. A
HEARTBEAT goes out once the first state is known after a cold boot, then
every ``heartbeat_s``. ``uplink.py`` sends (region rules, counters,
confirmed uplinks, downlinks: CONFIG applied and acknowledged, COMMAND
calibrate / reboot / self-test).

Between samples the node sleeps: ``machine.lightsleep`` or
``time.sleep_ms`` per board profile, or, with ``deep_sleep``,
``machine.deepsleep``: each wake is then a boot that restores the node from
``persist.py`` (RTC memory or flash), takes one sample, sends what is due,
saves, puts the magnetometer in standby and sleeps again. The console says
``sleep: awake <ms> ms`` at each wake (``fogpark-node battery --log``
reads those lines). A hardware watchdog (``wdt_ms``) is fed every sample.
With a bad node.json the node still samples and prints its state on the
console, but never transmits.

Calibration: at the first boot (no saved state), after a CALIBRATE command
(downlink), and at boot when the file ``calibrate.req`` exists (written by
``fogpark-node calibrate`` over the REPL); a heartbeat follows when it is
done.

The sampling path (``Node.step`` when nothing is sent) allocates nothing
beyond small ints: preallocated buffers, integer units (0.1 uT, mm, us).
Time is counted in whole seconds (``uptime_s``): from ticks_ms differences
while awake, and from the port's clock across deep sleep. In deep-sleep mode
the uptime saved before sleeping is re-read from that clock (``_clock_anchor_s``:
the clock's second at uptime 0), so the awake part of each wake, shorter than a
second, is not dropped wake after wake (it once made a state that lasted one
sample period report 0 s).
"""

import gc
import os
import sys
import time

import machine

# isort: split
from uplink import Uplink  # first: it compiles the biggest driver (sx127x) while RAM is freest

# isort: split
import detect
from drivers.hcsr04 import HCSR04

from proto import frame

try:
    from micropython import const
except ImportError:  # CPython: unit tests and the CLI

    def const(expr):  # type: ignore[no-redef,misc]
        return expr


TYPE_CHECKING = const(False)  # mypy: True; MicroPython drops the block at compile time (no names interned)
if TYPE_CHECKING:
    from typing import Any  # noqa: F401 - type comments

    from node_config import NodeConfig

_FW_VERSION = const("0.2.0")
STATE_NAMES = ("empty", "occupied", "unknown")
_SATURATED = const(0x02)  # drivers' read_into() bit
DEEPSLEEP_RESET = getattr(machine, "DEEPSLEEP_RESET", 4)
_CARD_REPEAT_S = const(30)  # the same card again within this is the same check-in


def _rand8() -> int:
    """A random byte from the port's hardware RNG (os.urandom on ESP32, RP2040 and unix)."""
    return os.urandom(1)[0]


def _rand16() -> int:
    b = os.urandom(2)
    return b[0] | (b[1] << 8)


def _forget(name: str) -> None:
    """Drop a module used only now and then from RAM (its next import loads it again), as main.py
    drops node_config after boot: its code and tables are then free for the sampling loop."""
    sys.modules.pop(name, None)
    pkg, _, leaf = name.rpartition(".")
    if pkg and pkg in sys.modules and hasattr(sys.modules[pkg], leaf):
        delattr(sys.modules[pkg], leaf)  # a package keeps its submodules as attributes


def _exists(path: str) -> bool:
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class Node:
    def __init__(self, cfg: "NodeConfig") -> None:
        self.cfg = cfg
        self.up = Uplink(cfg)
        self._load_remote_config()
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
            d["short_below_cm"],
            self._tamper_samples(),
        )
        self.range_every = d["range_every"]
        self.up.on_command = self.command
        self.up.on_config = self.config
        self.up.on_config_pending = self.config_pending
        self.field = [0, 0, 0]
        self.mag = None  # type: Any
        self.ranger = None  # type: HCSR04 | None
        self.rfid = None  # type: Any
        self.adc = None  # type: machine.ADC | None
        self.wdt = None  # type: machine.WDT | None
        self.store = None  # type: Any
        self.battery_div = 2.0
        self.battery_vref = 3300
        self.sleep_mode = "sleep_ms"
        self.uptime_s = 0
        self._ms_acc = 0
        self._clock_anchor_s = int(time.time())
        self._boot_ms = time.ticks_ms()
        self._last_ms = self._boot_ms
        self.cycles = 0
        self.since_range = 0
        self.last_range_mm = detect.RANGE_SKIPPED
        self.prev_state = detect.UNKNOWN
        self.state_since_s = 0
        self.temp_c10 = frame.TEMP_UNKNOWN
        self.temp_offset_c10 = int(cfg.temp_offset_c * 10)
        self.battery_mv = 0
        self.reported_tamper = 0
        self.boot_hb_done = False
        self.boot_hb_wait = -1
        self.next_hb_s = 0
        self.card_uid = b""
        self.card_seen = False
        self.card_at_s = -_CARD_REPEAT_S
        self.calibrate_hb = False
        self.reset_cause = 0
        self.cold = True
        self.bench = None  # type: Any  # test_mode.Bench: the HIL bench on the console (test mode only)

    def _tamper_samples(self) -> int:
        t = self.cfg.tamper_s
        if t <= 0:
            return 0
        n = (t * 1000 + self.cfg.sample_ms - 1) // self.cfg.sample_ms
        return n if n > 1 else 2

    def _load_remote_config(self) -> None:
        if not _exists("remote.cfg"):
            return
        import remote_config

        payload = remote_config.load()
        if payload and len(payload) >= 2 and remote_config.check(self.cfg, payload) == 0:
            remote_config.apply(self.cfg, payload)
            self.up.cfg_version = remote_config.version(payload)
        _forget("remote_config")

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
        resume = None
        if cfg.deep_sleep:
            import persist

            self.store = persist.Store()
            self.cold = self.reset_cause != DEEPSLEEP_RESET
            if self.store.read():
                resume = self.store.unpack(self, not self.cold)
                gap = int(time.time()) - self.store.saved_at_record()
                gap = 0 if gap < 0 else 86400 if gap > 86400 else gap
                self.uptime_s += gap
                self.up.advance(gap)
                # a clock jump (clamped gap) re-anchors here rather than skewing every later wake
                self._clock_anchor_s = int(time.time()) - self.uptime_s
            else:
                self.cold = True
        if _exists("calibrate.req"):
            print("calibration requested (calibrate.req)")
            os.remove("calibrate.req")
            self.det.recalibrate()
            self.calibrate_hb = True
        power = p.get("sensor_power")
        if power:
            Pin(power["pin"], Pin.OUT, value=power["on"])
            time.sleep_ms(20 if self.cold else 2)
        i = p["i2c"]
        try:
            from drivers import magnetometer

            i2c = machine.I2C(i["id"], scl=Pin(i["scl"]), sda=Pin(i["sda"]), freq=i["freq"])
            self.mag = magnetometer.probe(i2c, cfg.detect["mag_range_gauss"], 200 if cfg.deep_sleep else 10)
            _forget("drivers.magnetometer")  # the driver it found stays
            if self.cold:
                print("magnetometer: " + self.mag.name)
            self.update_temperature()
        except OSError as e:
            print("magnetometer: not answering on I2C (" + str(e) + "); detecting by range only")
            self.mag = None
            if self.cold:
                self.up.queue_diagnostic(frame.diagnostic_payload(frame.DIAG_MAG_MISSING, 0, 0))
        r = p.get("ranger")
        if r and cfg.ranger:
            t = self.temp_c10 if self.temp_c10 != frame.TEMP_UNKNOWN else 200
            self.ranger = HCSR04(Pin(r["trig"]), Pin(r["echo"]), temp_c10=t)
            self.det.has_ranger = True
        b = p.get("battery")
        if b:
            self.adc = machine.ADC(Pin(b["adc"]))
            if hasattr(self.adc, "atten") and hasattr(machine.ADC, "ATTN_11DB"):
                self.adc.atten(machine.ADC.ATTN_11DB)
            self.battery_div = b.get("divider", 2.0)
            self.battery_vref = b.get("vref_mv", 3300)
        self.up.setup(p, self.cold, resume)
        if cfg.rfid and p.get("rfid"):
            self._setup_rfid(p)
        if self.store is not None:
            self.store.saved_sig = self.store._signature(self)
        if self.reset_cause == getattr(machine, "WDT_RESET", -1):
            self.up.queue_diagnostic(frame.diagnostic_payload(frame.DIAG_WATCHDOG_RESET, 0, 0))
        if cfg.test_mode:
            import test_mode

            self.bench = test_mode.install(self)
        if cfg.wdt_ms:
            self.wdt = machine.WDT(timeout=cfg.wdt_ms)
        if self.cold:
            self.read_battery()

    def _setup_rfid(self, p: dict) -> None:
        from drivers.rc522 import RC522

        Pin = machine.Pin
        rp = p["radio"]
        f = p["rfid"]
        try:
            spi = machine.SPI(
                rp["spi"], baudrate=f.get("baudrate", 5000000), polarity=0, phase=0,
                sck=Pin(rp["sck"]), mosi=Pin(rp["mosi"]), miso=Pin(rp["miso"]),
            )
            rst = Pin(f["reset"]) if self.cold and "reset" in f else None
            self.rfid = RC522(spi, Pin(f["cs"]), rst, self.cold)
        except OSError as e:
            print(f"rfid: {e}; check-in disabled")
            self.rfid = None

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
        if self.store is None:
            self._tick()
        if self.wdt is not None:
            self.wdt.feed()
        if self.bench is not None:
            self.bench.poll()
        self.cycles += 1
        f = self.field
        det = self.det
        mag_ok = False
        saturated = False
        mag = self.mag
        if mag is not None:
            try:
                saturated = mag.read_into(f) & _SATURATED != 0
                mag_ok = True
            except OSError:
                mag_ok = False
        rng = detect.RANGE_SKIPPED
        ranger = self.ranger
        if ranger is not None:
            self.since_range += 1
            if self.since_range >= self.range_every or det.wants_range(f[0], f[1], f[2], mag_ok and not saturated):
                self.since_range = 0
                mm = ranger.read_mm()
                rng = detect.RANGE_NONE if mm is None else mm
                self.last_range_mm = rng
        was_calibrating = det.cal_left > 0
        changed = det.update(f[0], f[1], f[2], mag_ok, rng, saturated)
        state = det.state
        if changed:
            self.on_change(state, rng != detect.RANGE_SKIPPED)
        elif state != self.prev_state:
            self.prev_state = state  # first known state after boot
            self.state_since_s = self.uptime_s
            print(f"state {STATE_NAMES[state]} (initial)")
        if det.tamper != self.reported_tamper:
            self.on_tamper(f[2] // 10)
        if was_calibrating and det.cal_left == 0:
            print(f"calibrated: baseline {det.bx >> 4} {det.by >> 4} {det.bz >> 4} (0.1 uT)")
            if self.calibrate_hb:
                self.calibrate_hb = False
                self.up.pending_hb = True
        if (self.cycles & 63) == 0 and mag_ok:
            self.update_temperature()
        if self.rfid is not None and state == detect.OCCUPIED:
            self.poll_card()
        up = self.up
        if not self.boot_hb_done:
            if state != detect.UNKNOWN or self.cycles > det.calib_samples + 2 * det.hold + 2:
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
        up.poll()
        if up.due():
            hb = up.pending_hb
            if up.flush(self.heartbeat_payload) and hb:
                # +0..10 % jitter keeps heartbeats of nodes booted together from staying in step.
                self.next_hb_s = self.uptime_s + self.cfg.heartbeat_s + _rand8() % (self.cfg.heartbeat_s // 10 + 1)

    def poll_card(self) -> None:
        try:
            uid = self.rfid.read_uid()
        except OSError:
            return
        if uid is None:
            return
        if uid == self.card_uid and self.uptime_s - self.card_at_s < _CARD_REPEAT_S:
            return
        self.card_uid = uid
        self.card_at_s = self.uptime_s
        self.card_seen = True
        import binascii

        print("check-in: card " + binascii.hexlify(uid).decode())
        self.up.queue_checkin(frame.checkin_payload(uid))

    def update_temperature(self) -> None:
        mag = self.mag
        if mag is None or not mag.has_temperature:
            return
        try:
            self.temp_c10 = mag.temperature_c10() + self.temp_offset_c10
        except OSError:
            return
        if self.ranger is not None:
            self.ranger.set_temperature(self.temp_c10)

    def flags(self, state: int, ranged: bool) -> int:
        fl = 0
        det = self.det
        if ranged and self.ranger is not None and det.ranger_trusted() and (state == detect.OCCUPIED) == det.range_hit:
            fl |= frame.FLAG_RANGE_CONFIRMED
        if det.calibrating():
            fl |= frame.FLAG_CALIBRATING
        if det.tamper:
            fl |= frame.FLAG_TAMPER
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
        rng_text = "none" if dist_cm is None else f"{dist_cm} cm"
        print(f"state {STATE_NAMES[state]} after {prev_s} s; deviation {dev_ut} uT; range {rng_text}")
        self.up.queue_occupancy(frame.occupancy_payload(state, self.flags(state, ranged), prev_s, dist_cm, dev_ut))

    def on_tamper(self, reading: int) -> None:
        det = self.det
        for bit, code in (
            (detect.T_RANGE_BLIND, frame.DIAG_RANGE_BLIND),
            (detect.T_RANGE_SHORT, frame.DIAG_RANGE_SHORT),
            (detect.T_MAG_SATURATED, frame.DIAG_MAG_SATURATED),
        ):
            if det.tamper & bit and not self.reported_tamper & bit:
                print(f"tamper: {frame.DIAG_NAMES[code]}")
                extra = det.blind_n if bit == detect.T_RANGE_BLIND else det.short_n if bit == detect.T_RANGE_SHORT else det.sat_n
                self.up.queue_diagnostic(frame.diagnostic_payload(code, reading, extra))
        if self.reported_tamper and not det.tamper:
            print("tamper cleared")
            self.up.queue_diagnostic(frame.diagnostic_payload(frame.DIAG_TAMPER_CLEARED, 0, self.reported_tamper))
        self.reported_tamper = det.tamper

    def heartbeat_payload(self) -> bytes:
        # The state byte carries the state and the flags of bits 4-7 (tamper, low battery, calibrating).
        self.update_temperature()
        self.read_battery()
        st = self.det.state | (self.flags(self.det.state, False) & 0xF0)
        up = self.up
        # LoRa: the last downlink's RSSI; Wi-Fi: the station's RSSI now
        rssi = up.rssi_dbm if up.lora or up.link is None else up.link.last_rssi_dbm
        return frame.heartbeat_payload(
            self.battery_mv,
            None if self.temp_c10 == frame.TEMP_UNKNOWN else self.temp_c10 / 10,
            self.uptime_s,
            rssi,
            self.up.snr_db,
            st,
            self.up.boots() - 1,
        )

    def command(self, cmd: int, args: bytes) -> None:
        """A verified COMMAND downlink."""
        if cmd == frame.CMD_CALIBRATE:
            print("command: recalibrate")
            self.det.recalibrate()
            self.calibrate_hb = True
        elif cmd == frame.CMD_REBOOT:
            print("command: reboot")
            if self.store is not None:
                self.store.save(self, True)
            machine.reset()
        elif cmd == frame.CMD_SELFTEST:
            mag = "ok" if self.mag is not None else "missing"
            ranger = "ok" if self.ranger is not None else "none"
            print(f"self-test: magnetometer {mag}, ranger {ranger}, tamper {self.det.tamper}")
            self.up.pending_hb = True
        else:
            print(f"command {cmd}: not supported by this firmware")

    def config(self, payload: bytes) -> int:
        """A verified CONFIG downlink: the CONFIG_ACK status (0 applied, else 1-based index refused)."""
        import remote_config

        try:
            version = remote_config.version(payload)
            if version == self.up.cfg_version:
                print(f"config {version}: already applied")
                return 0
            status = remote_config.check(self.cfg, payload)
            if status:
                print(f"config {version}: entry {status} refused; nothing changed")
                return status
            remote_config.apply(self.cfg, payload)
            try:
                remote_config.save(payload)
            except OSError as e:
                print(f"config: not saved ({e})")
        finally:
            _forget("remote_config")
        self.up.cfg_version = version
        d = self.cfg.detect
        self.det.set_thresholds(d["arrive_ut"], d["leave_ut"], d["occupied_below_cm"])
        self.det.tamper_samples = self._tamper_samples()
        hb = self.uptime_s + self.cfg.heartbeat_s
        if self.next_hb_s > hb:
            self.next_hb_s = hb
        cfg = self.cfg
        print(
            f"config {version} applied: sample {cfg.sample_ms} ms, heartbeat {cfg.heartbeat_s} s, arrive "
            f"{d['arrive_ut']} uT, occupied below {d['occupied_below_cm']} cm, confirmed {cfg.confirmed}"
        )
        return 0

    def config_pending(self) -> None:
        """The fog has a config for us: send a heartbeat soon, its receive window brings it."""
        self.up.pending_hb = True

    # --- sleeping ---------------------------------------------------------------------

    def sleep(self, ms: int) -> None:
        if ms <= 0:
            return
        if self.bench is not None:  # test mode: awake, listening to the console
            self.bench.wait_ms(ms)
        elif self.sleep_mode == "lightsleep":
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

    def deep_sleep(self) -> None:
        """Save everything, quiet the parts, and sleep until the next sample (ends in a reset)."""
        awake = time.ticks_diff(time.ticks_ms(), self._boot_ms)
        ms = self.cfg.sample_ms - awake
        if ms < 100:
            ms = 100
        if self.mag is not None:
            try:
                self.mag.standby()
            except OSError:
                pass
        if self.up.radio is not None:
            self.up.radio.sleep()
        by_clock = int(time.time()) - self._clock_anchor_s
        if self.uptime_s <= by_clock <= self.uptime_s + awake // 1000 + 2:
            self.up.advance(by_clock - self.uptime_s)
            self.uptime_s = by_clock  # the sub-second awake time counted (ticks count whole seconds)
        store = self.store
        wrote = store.save(self)
        saved = ", state saved" if wrote and store.where == "flash" else ""
        print(f"sleep: awake {awake} ms, next wake in {ms} ms{saved}")
        machine.deepsleep(ms)


def idle_forever(cfg: "NodeConfig") -> None:
    """No usable board profile: nothing to drive; keep saying why."""
    while True:
        for e in cfg.errors:
            print(f"config error: {e}")
        print("node idle: no usable board profile; fix node.json")
        for _ in range(300):
            machine.idle()
            time.sleep_ms(200)


def run(cfg: "NodeConfig", max_samples: int = 0) -> Node:
    """Boot the node with ``cfg`` (main.py loads it) and sample forever."""
    if cfg.pins is None:
        idle_forever(cfg)
    node = Node(cfg)
    node.setup()
    if node.cold:
        mag = "ok" if node.mag is not None else "missing"
        ranger = "ok" if node.ranger is not None else "none"
        link = "radio" if cfg.transport == "lora" else cfg.transport
        link_ok = "ok" if node.up.link is not None else "missing"
        disabled = "" if node.up.enabled else " (transmit disabled)"
        rfid = ", rfid ok" if node.rfid is not None else ""
        sleep = "" if node.store is None else f", deep sleep (state in {node.store.where})"
        print(f"node {_FW_VERSION}: magnetometer {mag}, ranger {ranger}, {link} {link_ok}{disabled}{rfid}{sleep}")
    gc.collect()
    if cfg.deep_sleep:
        node.step()
        node.deep_sleep()
    node.loop(max_samples)
    return node
