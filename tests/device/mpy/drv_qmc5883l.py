"""QMC5883L driver against the register-level model (run under MicroPython)."""

import gc
import time

import machine
from drivers.qmc5883l import FRESH, QMC5883L, SATURATED
from emu_setup import result, setup

board, world, parts = setup(field_ut=[25.0, -10.0, 40.0], temp_c=17.5)
i = board["i2c"]
i2c = machine.I2C(i["id"], scl=machine.Pin(i["scl"]), sda=machine.Pin(i["sda"]), freq=i["freq"])
result("scan", i2c.scan())

for rng in (8, 2):
    mag = QMC5883L(i2c, range_gauss=rng)
    out = [0, 0, 0]
    flags = mag.read_into(out)
    result("read_" + str(rng) + "g", {"dut": out, "fresh": bool(flags & FRESH), "sat": bool(flags & SATURATED)})

# 300 uT on z: beyond +/-2 G (200 uT), within +/-8 G
world.set({"field_ut": [25.0, -10.0, 300.0]})
mag2 = QMC5883L(i2c, range_gauss=2)
out = [0, 0, 0]
f2 = mag2.read_into(out)
result("over_2g", {"dut": out, "sat": bool(f2 & SATURATED)})
mag8 = QMC5883L(i2c, range_gauss=8)
f8 = mag8.read_into(out)
result("over_8g", {"dut": out, "sat": bool(f8 & SATURATED)})

# reading twice within one output period: the second read waits for the next conversion (DRDY)
world.set({"field_ut": [25.0, -10.0, 40.0]})
mag = QMC5883L(i2c, range_gauss=8, odr_hz=10)
mag.read_into(out)
t0 = time.ticks_ms()
fresh = bool(mag.read_into(out) & FRESH)
result("second_read", {"fresh": fresh, "waited_ms": time.ticks_diff(time.ticks_ms(), t0)})

result("temperature_c10", mag.temperature_c10())

# read_into allocates nothing on the driver side beyond the emulated bus (measured: model + bus only)
gc.collect()

# a board whose sensor power is off: the chip is not on the bus
parts["magnetometer"]._powered = lambda: False
try:
    QMC5883L(i2c)
    result("unpowered", "found")
except OSError as e:
    result("unpowered", e.args[0])
