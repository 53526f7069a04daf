"""HC-SR04 driver against the pin-level model (run under MicroPython)."""

import time

import machine
from drivers.hcsr04 import HCSR04
from emu_setup import result, setup

board, world, parts = setup(distance_cm=100.0, temp_c=20.0)
r = board["ranger"]
trig = machine.Pin(r["trig"])
echo = machine.Pin(r["echo"])
drv = HCSR04(trig, echo, temp_c10=200)

result("d100_t20", drv.distance_cm())
result("d100_t20_mm", drv.read_mm())

# temperature compensation: air at 35 C, the driver told 35 C vs left at 20 C
world.set({"temp_c": 35.0})
drv.set_temperature(350)
result("d100_t35_compensated", drv.distance_cm())
drv.set_temperature(200)
result("d100_t35_uncompensated", drv.distance_cm())
world.set({"temp_c": -10.0})
drv.set_temperature(-100)
result("d100_tm10_compensated", drv.distance_cm())
world.set({"temp_c": 20.0})
drv.set_temperature(200)

# no echo: nothing above the sensor (the module holds ECHO high ~38 ms, then gives up)
world.set({"distance_cm": None})
result("no_echo", drv.distance_cm())
result("no_echo_raw", drv.ping_us())
# a target beyond the module's reach is no echo too
world.set({"distance_cm": 600.0})
result("beyond_range", drv.distance_cm())
# a second driver firing while ECHO still holds the previous no-echo pulse: busy, not a distance
long = HCSR04(trig, echo, timeout_us=50000, temp_c10=200)
world.set({"distance_cm": None})
time.sleep_ms(70)
first = drv.ping_us()  # times out at 30 ms; the module holds ECHO until 38 ms
result("busy_raw", [first, echo.value(), long.ping_us()])
# with a timeout longer than the no-echo pulse, the 38 ms width is implausible, still None
time.sleep_ms(70)
result("no_echo_long_timeout_raw", long.ping_us())
result("no_echo_long_timeout", long.distance_cm())

# a module variant that never raises ECHO without a reflection
world.set({"no_echo_pulse_us": 0})
time.sleep_ms(70)
result("silent_module", [drv.ping_us(), drv.distance_cm()])
world.set({"no_echo_pulse_us": 38000})

# time_pulse_us without a trigger: the pulse never starts
time.sleep_ms(70)
result("untriggered", machine.time_pulse_us(echo, 1, 20000))

# pings are spaced >= 60 ms (the model ignores triggers inside a 60 ms cycle)
world.set({"distance_cm": 50.0})
time.sleep_ms(70)
parts["ranger"].ignored = 0
fast = HCSR04(trig, echo, pings=5, gap_ms=60, temp_c10=200)
t0 = time.ticks_ms()
d = fast.distance_cm()
result("five_pings", {"cm": d, "ms": time.ticks_diff(time.ticks_ms(), t0), "ignored": parts["ranger"].ignored})
