"""The three GY-271 magnetometer chips and the bus probe, against their register models (MicroPython)."""

import machine
from drivers import magnetometer
from emu_setup import result
from hmc5883l_model import HMC5883LModel
from qmc5883l_model import QMC5883LModel
from qmc5883p_model import QMC5883PModel

FIELD = [25.0, -10.0, 40.0]
field = {"ut": FIELD}
MODELS = (("qmc5883l", QMC5883LModel, 10), ("qmc5883p", QMC5883PModel, 20), ("hmc5883l", HMC5883LModel, 30))

for name, Model, bus in MODELS:
    scl, sda = bus, bus + 1
    model = Model(lambda: tuple(field["ut"]), lambda: 21.5)
    machine.emu_i2c(scl, sda, model)
    i2c = machine.I2C(0, scl=machine.Pin(scl), sda=machine.Pin(sda), freq=400000)
    field["ut"] = FIELD
    out = [0, 0, 0]
    mag = magnetometer.probe(i2c, 8)
    flags = mag.read_into(out)
    r = {"scan": i2c.scan(), "chip": mag.name, "dut": list(out), "fresh": bool(flags & 1), "sat": bool(flags & 2),
         "temp": mag.temperature_c10()}
    # a field beyond the range: 1000 uT on z (beyond +/-8 G) -> the overflow indication, never a reading
    field["ut"] = [25.0, -10.0, 1000.0]
    mag.reset()
    flags = mag.read_into(out)
    r["over"] = {"sat": bool(flags & 2), "dut": list(out)}
    field["ut"] = FIELD
    mag.reset()
    mag.read_into(out)
    mag.standby()
    r["after_standby_samples"] = model.samples
    import time

    time.sleep_ms(250)
    r["samples_while_standby"] = model.samples - r["after_standby_samples"]
    result(name, r)

# HMC5883L data order on the wire: X, Z, Y, big-endian (read the raw registers)
model = HMC5883LModel(lambda: (10.0, 20.0, 30.0), None)
machine.emu_i2c(40, 41, model)
i2c = machine.I2C(0, scl=machine.Pin(40), sda=machine.Pin(41), freq=400000)
from drivers.hmc5883l import HMC5883L  # noqa: E402

h = HMC5883L(i2c, range_gauss=1)  # gain 1090 LSB/G: 10.9 LSB/uT
raw = i2c.readfrom_mem(0x1E, 0x03, 6)
result("hmc_raw", list(raw))
out = [0, 0, 0]
h.read_into(out)
result("hmc_xyz", out)

# nothing on a bus: probe says so
try:
    magnetometer.probe(machine.I2C(0, scl=machine.Pin(50), sda=machine.Pin(51), freq=400000))
    result("empty_bus", "found")
except OSError as e:
    result("empty_bus", [e.args[0], str(e)])
