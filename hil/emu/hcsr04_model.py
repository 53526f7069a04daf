"""An HC-SR04 ultrasonic module at the pin level, for the bench (MicroPython).

TRIG: a high pulse of at least 10 us starts a measurement cycle (ignored
while the previous cycle's 60 ms is not over). About 460 us later (the
eight-cycle 40 kHz burst and the module's processing) ECHO goes high for the
round trip, 2 * d / c, with c = 331.3 + 0.606 * T m/s from the world's
temperature. When nothing reflects within range (the world's distance is
None, or beyond 4.5 m) ECHO stays high for 38 ms, as common modules do, and
then drops (the world's ``no_echo_pulse_us``; 0 models modules that never
raise ECHO at all): a driver sees a timeout, never a distance. Closer than 2 cm the echo returns inside the blind zone and the
module reports the blind-zone width (~2 cm).

``pulse(level, timeout_us)`` answers ``machine.time_pulse_us`` on the ECHO
pin with its exact semantics (-2: the pulse did not start within the
timeout, -1: it did not end within the timeout), sleeping as long as the
real call would block.
"""

from time import sleep_us  # type: ignore[attr-defined]  # MicroPython

START_DELAY_US = 460
NO_ECHO_US = 38000
CYCLE_US = 60000
MAX_CM = 450.0
MIN_CM = 2.0


def echo_width_us(distance_cm, temp_c, no_echo_us=NO_ECHO_US) -> int:
    """Echo pulse width for a target at ``distance_cm`` (None: no echo -> ``no_echo_us``)."""
    if distance_cm is None or distance_cm > MAX_CM:
        return no_echo_us
    if distance_cm < MIN_CM:
        distance_cm = MIN_CM
    c = 331.3 + 0.606 * temp_c  # m/s
    return int(2.0 * distance_cm / 100.0 / c * 1000000.0 + 0.5)


class HCSR04Model:
    def __init__(self, distance_cm, temp_c, clock_us, no_echo_us=None) -> None:
        """``distance_cm()`` -> cm or None; ``temp_c()`` -> degC; ``clock_us()`` -> us;
        ``no_echo_us()`` -> width of the give-up pulse when nothing reflects (0: ECHO never rises)."""
        self.no_echo_us = no_echo_us
        self.distance_cm = distance_cm
        self.temp_c = temp_c
        self.clock_us = clock_us
        self.trig_rise = -1
        self.cycle_start = -CYCLE_US
        self.echo_rise = -1
        self.echo_fall = -1
        self.triggers = 0
        self.ignored = 0

    def on_trig(self, level: int) -> None:
        now = self.clock_us()
        if level:
            self.trig_rise = now
            return
        if self.trig_rise < 0:
            return
        width = now - self.trig_rise
        self.trig_rise = -1
        if width < 10:
            self.ignored += 1
            return
        if now - self.cycle_start < CYCLE_US:
            self.ignored += 1
            return
        self.cycle_start = now
        self.triggers += 1
        give_up = NO_ECHO_US if self.no_echo_us is None else self.no_echo_us()
        width = echo_width_us(self.distance_cm(), self.temp_c(), give_up)
        if width <= 0:  # a module that never raises ECHO without a reflection
            self.echo_rise = self.echo_fall = -1
            return
        self.echo_rise = now + START_DELAY_US
        self.echo_fall = self.echo_rise + width

    def echo_level(self) -> int:
        now = self.clock_us()
        return 1 if self.echo_rise <= now < self.echo_fall else 0

    def pulse(self, level: int, timeout_us: int) -> int:
        now = self.clock_us()
        rise = self.echo_rise
        fall = self.echo_fall
        if level == 0:
            # Timing a low pulse: starts at fall, ends at the next rise (none scheduled).
            if now < fall:
                wait = fall - now if now >= rise else 0
                if wait >= timeout_us:
                    sleep_us(timeout_us)
                    return -2
                sleep_us(wait)
            sleep_us(timeout_us)
            return -1
        if rise < 0 or now >= fall:
            sleep_us(timeout_us)  # no pulse coming
            return -2
        if now < rise:
            wait = rise - now
            if wait >= timeout_us:
                sleep_us(timeout_us)
                return -2
            sleep_us(wait)
            now = rise
        remaining = fall - now
        if remaining >= timeout_us:
            sleep_us(timeout_us)
            return -1
        sleep_us(remaining)
        return remaining
