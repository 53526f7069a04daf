"""HC-SR04 ultrasonic ranger: 10 us trigger, echo width by machine.time_pulse_us.

Echo width w (us) is the round trip: distance = w * c / 2 with the speed of
sound c = 331.3 + 0.606 * T m/s (T in degC). A timeout or any negative
result from ``time_pulse_us`` is NO ECHO and gives None, never a distance.
A reading is the median of ``pings`` pings at least ``gap_ms`` apart (the
module needs ~60 ms for stray echoes to die); pings outside 2..400 cm are
implausible and discarded, and a majority of plausible pings is needed.

The echo pin is 5 V on most modules: wire it through a divider.

Integer arithmetic only (no floats, no allocation) in ``read_mm``; with
widths up to 30 ms every product stays a MicroPython small int.
"""

import time

import machine

try:
    from micropython import const
except ImportError:  # CPython type checking / tests

    def const(expr):  # type: ignore[no-redef,misc]
        return expr


TYPE_CHECKING = const(False)  # mypy: True; MicroPython drops the block at compile time (no names interned)
if TYPE_CHECKING:
    from machine import Pin

_MIN_MM = const(20)  # 2 cm: closer is inside the module's blind zone
_MAX_MM = const(4000)  # 4 m: the module's rated range
_TRIGGER_US = const(10)


def sound_speed_dms(temp_c10: int) -> int:
    """Speed of sound in 0.1 m/s for a temperature in 0.1 degC (331.3 + 0.606 T)."""
    return 3313 + (606 * temp_c10 + 500) // 1000


class HCSR04:
    def __init__(
        self,
        trig: "Pin",
        echo: "Pin",
        pings: int = 3,
        gap_ms: int = 60,
        timeout_us: int = 30000,
        temp_c10: int = 200,
    ) -> None:
        self.trig = trig
        self.echo = echo
        trig.init(machine.Pin.OUT, value=0)
        echo.init(machine.Pin.IN)
        self.pings = pings if pings > 0 else 1
        self.gap_ms = gap_ms
        self.timeout_us = timeout_us
        self._c = sound_speed_dms(temp_c10)
        self._mm = [0] * self.pings
        self._last = time.ticks_add(time.ticks_ms(), -gap_ms)
        self.last_width_us = 0  # last raw time_pulse_us result (diagnostics)

    def set_temperature(self, temp_c10: int) -> None:
        """Air temperature in 0.1 degC, for the speed of sound."""
        self._c = sound_speed_dms(temp_c10)

    def ping_us(self) -> int:
        """One measurement: the echo width in us, or negative (-1/-2 timeout, -3 module busy)."""
        # +1: ticks_ms granularity must not shorten the gap below gap_ms
        wait = self.gap_ms + 1 - time.ticks_diff(time.ticks_ms(), self._last)
        if wait > 0:
            time.sleep_ms(wait)
        if self.echo.value():
            # ECHO still high: the module is finishing an earlier cycle (its 38 ms
            # no-echo pulse); timing now would measure that tail as a distance.
            self.last_width_us = -3
            return -3
        trig = self.trig
        trig.value(0)
        time.sleep_us(2)
        trig.value(1)
        time.sleep_us(_TRIGGER_US)
        trig.value(0)
        self._last = time.ticks_ms()
        width = machine.time_pulse_us(self.echo, 1, self.timeout_us)
        self.last_width_us = width
        return width

    def width_to_mm(self, width_us: int) -> int:
        return width_us * self._c // 20000

    def read_mm(self) -> "int | None":
        """Median distance in mm, or None (no echo / implausible)."""
        n = 0
        buf = self._mm
        for _ in range(self.pings):
            w = self.ping_us()
            if w <= 0:
                continue  # -1/-2: timeout, no echo
            mm = w * self._c // 20000
            if mm < _MIN_MM or mm > _MAX_MM:
                continue
            # insertion sort into buf[0:n]
            i = n
            while i > 0 and buf[i - 1] > mm:
                buf[i] = buf[i - 1]
                i -= 1
            buf[i] = mm
            n += 1
        if n * 2 <= self.pings:
            return None
        return buf[n // 2]

    def distance_cm(self) -> "float | None":
        """Convenience (allocates a float): median distance in cm or None."""
        mm = self.read_mm()
        if mm is None:
            return None
        return mm / 10
