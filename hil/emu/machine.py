"""A drop-in ``machine`` module for the MicroPython unix port, wired to emulated parts.

The firmware imports ``machine`` as on a board; this file (first on
``sys.path`` when ``node_main.py`` runs) shadows the port's built-in
``machine``, still reachable as ``umachine`` for ``PinBase`` and ``Signal``.

Emulation is at the pin and bus level: a ``Pin`` is a ``PinBase`` whose
level is what the MCU drives (outputs) or what a part drives (inputs);
``SPI`` clocks bytes into the device whose chip-select is low, ``I2C``
addresses devices by the pins of their bus (both in ``emu_bus.py``),
``time_pulse_us`` measures a pulse a part generates, ``ADC`` reads a
voltage a part puts on a pin. Drivers do all their real register and pin
work. ``node_main.py`` connects the part models with the ``emu_*``
functions, which are not MicroPython API. Constants use ESP32 values.

Kept small on purpose: it shares the node's heap with the firmware.
"""

import binascii
import sys
from time import (  # type: ignore[attr-defined]  # MicroPython
    sleep_ms,
    sleep_us,
    ticks_add,
    ticks_diff,
    ticks_ms,
    ticks_us,
)

import umachine  # the unix port's built-in machine

PinBase: "Any" = umachine.PinBase  # type: ignore[attr-defined]
Signal: "Any" = umachine.Signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
TIMER_WAKE = 4
RESET_EXIT_BASE = 80  # process exit status = RESET_EXIT_BASE + reset cause

_IN = 1
_OUT = 3
_OD = 7
_PULL_UP = 2

# --- wiring --------------------------------------------------------------------
_mode: dict = {}  # pin -> mode
_pull: dict = {}  # pin -> pull
_out: dict = {}  # pin -> output latch
_drivers: dict = {}  # pin -> fn() -> 0/1/None: a part drives this pin
_watchers: dict = {}  # pin -> [fn(level)]: parts watching an MCU output
_pulses: dict = {}  # pin -> fn(level, timeout_us): time_pulse_us on this pin
_adc: dict = {}  # pin -> fn() -> microvolts
_spi: list = []  # (sck, cs, device)
_i2c: dict = {}  # (scl, sda, address) -> device
_services: list = []  # fn(): run whenever the firmware touches hardware
_irqs: dict = {}  # pin -> [handler, trigger, last level, Pin]
_hooks = {"sleep": None, "emit": None}
_state = {"freq": 160000000, "wdt": 0, "wdt_at": 0, "rtc": b"", "clk": 0, "clk_t": ticks_us()}


def emu_watch(pin, fn):
    """``fn(level)`` whenever the MCU changes the level it drives on ``pin``."""
    _watchers.setdefault(pin, []).append(fn)


def emu_drive(pin, fn):
    """A part drives ``pin``: ``fn()`` -> 0, 1 or None (high impedance)."""
    _drivers[pin] = fn


def emu_pulse(pin, fn):
    _pulses[pin] = fn


def emu_adc(pin, fn):
    _adc[pin] = fn


def emu_spi(sck, cs, dev):
    """``dev`` on the SPI bus clocked by ``sck``, selected while ``cs`` is low."""
    _spi.append((sck, cs, dev))
    emu_watch(cs, lambda level: dev.spi_select(level == 0))


def emu_i2c(scl, sda, dev):
    _i2c[(scl, sda, dev.address)] = dev


def emu_service(fn):
    _services.append(fn)


def emu_hook(name, fn):
    """'sleep': fn(ms) sleeps serving the bench; 'emit': fn(event, dict) writes EMU lines."""
    _hooks[name] = fn


def emu_output_level(pin):
    """What the MCU drives on ``pin``, or None if it is not an output."""
    if _mode.get(pin) in (_OUT, _OD):
        return _out.get(pin, 0)
    return None


def emu_clock_us():
    """Microseconds since start-up, free of ticks wrap-around."""
    now = ticks_us()
    _state["clk"] += ticks_diff(now, _state["clk_t"])
    _state["clk_t"] = now
    return _state["clk"]


def emu_rtc_memory(data):
    _state["rtc"] = bytes(data)


def _emit(event, data):
    fn = _hooks["emit"]
    if fn:
        fn(event, data)


def _level(pin):
    mode = _mode.get(pin)
    if mode == _OUT:
        return _out.get(pin, 0)
    low = mode == _OD and _out.get(pin, 1) == 0
    drv = _drivers.get(pin)
    v = drv() if drv else None
    if low:
        return 0
    if v is not None:
        return 1 if v else 0
    return 1 if _pull.get(pin) == _PULL_UP else 0


def service():
    """Let the world advance: bench input, part timers, pin IRQs, the watchdog."""
    for fn in _services:
        fn()
    for pin, irq in _irqs.items():
        level = _level(pin)
        if level != irq[2]:
            irq[2] = level
            if irq[0] and irq[1] & (1 if level else 2):
                irq[0](irq[3])
    if _state["wdt"] and ticks_diff(ticks_ms(), _state["wdt_at"]) > 0:
        _emit("wdt", {"timeout_ms": _state["wdt"]})
        _reset(WDT_RESET)


class Pin(PinBase):  # type: ignore[misc,valid-type]
    IN = _IN
    OUT = _OUT
    OPEN_DRAIN = _OD
    PULL_DOWN = 1
    PULL_UP = _PULL_UP
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        if not isinstance(id, int):
            raise ValueError("emulated pins are numbered")
        self.id = id
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        pin = self.id
        before = _level(pin)
        if value is not None:
            _out[pin] = 1 if value else 0
        if pull != -1:
            _pull[pin] = pull
        if mode != -1 and mode is not None:
            _mode[pin] = mode
        if _mode.get(pin) in (_OUT, _OD):
            after = _level(pin)
            if after != before:
                self._notify(after)

    def _notify(self, level):
        for fn in _watchers.get(self.id, ()):
            fn(level)

    def value(self, v=None):
        pin = self.id
        if v is None:
            if pin in _drivers:
                service()
            return _level(pin)
        before = _level(pin)
        _out[pin] = 1 if v else 0
        if _mode.get(pin) in (_OUT, _OD):
            after = _level(pin)
            if after != before:
                self._notify(after)
        return None

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3, *, priority=1, wake=None, hard=False):
        _irqs[self.id] = [handler, trigger, _level(self.id), self]


def _pin_id(p):
    return p if isinstance(p, int) or p is None else p.id


def time_pulse_us(pin, pulse_level, timeout_us=1000000):
    """As the real one: -2 if the pulse did not start in time, -1 if it did not end."""
    service()
    pid = _pin_id(pin)
    fn = _pulses.get(pid)
    if fn:
        return fn(pulse_level, timeout_us)
    level = _level(pid)  # a static pin: nothing changes while we wait
    sleep_us(timeout_us)
    return -1 if level == pulse_level else -2


class RTC:
    def __init__(self, id=0):
        pass

    def memory(self, data=None):
        """RTC slow memory: kept across emulated resets (via the host), lost at power-off.

        FOGPARK_EMU_RTC_MEMORY=0 emulates a port without it (AttributeError, as on rp2)."""
        import os

        if os.getenv("FOGPARK_EMU_RTC_MEMORY") == "0":
            raise AttributeError("'RTC' object has no attribute 'memory'")
        if data is None:
            return _state["rtc"]
        if len(data) > 2048:
            raise ValueError("RTC memory is 2048 bytes")
        _state["rtc"] = bytes(data)
        _emit("rtc_memory", {"hex": binascii.hexlify(_state["rtc"]).decode()})


class WDT:
    def __init__(self, id=0, timeout=5000):
        if timeout < 1:
            raise ValueError("timeout must be positive")
        _state["wdt"] = timeout
        self.feed()

    def feed(self):
        _state["wdt_at"] = ticks_add(ticks_ms(), _state["wdt"])


def _reset(cause):
    _emit("reset", {"cause": cause})
    sys.exit(RESET_EXIT_BASE + cause)


def reset():
    _reset(SOFT_RESET)


soft_reset = reset


def reset_cause():
    import os

    v = os.getenv("FOGPARK_EMU_RESET_CAUSE")
    return int(v) if v else PWRON_RESET


def wake_reason():
    return TIMER_WAKE if reset_cause() == DEEPSLEEP_RESET else 0


def unique_id():
    return b"\x24\x0a\xc4\xfe\x00\x01"


def freq(hz=None):
    if hz is None:
        return _state["freq"]
    _state["freq"] = hz


def idle():
    service()


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


def _sleep(ms):
    fn = _hooks["sleep"]
    if fn:
        fn(ms)
    else:
        sleep_ms(ms)


def lightsleep(time_ms=None):
    """Sleep, serving the bench meanwhile; the watchdog pauses as on ESP32."""
    if time_ms is None:
        time_ms = 3600000
    _sleep(time_ms)
    if _state["wdt"]:
        _state["wdt_at"] = ticks_add(_state["wdt_at"], time_ms)
    service()


def deepsleep(time_ms=None):
    """Ends in a reset with DEEPSLEEP_RESET: RAM lost, RTC memory kept."""
    _emit("deepsleep", {"ms": time_ms})
    _state["wdt"] = 0
    if time_ms:
        _sleep(time_ms)
    _reset(DEEPSLEEP_RESET)


from emu_bus import ADC, I2C, SPI, UART, SoftI2C, SoftSPI  # noqa: E402, F401 - the rest of the module
