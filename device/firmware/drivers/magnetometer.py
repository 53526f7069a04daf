"""Which magnetometer is on the bus: GY-271 modules ship with any of three chips.

``probe(i2c)`` scans the bus and returns a started driver for the first
chip it recognises, checking its identity register as well as its
address: QMC5883L (0x0D, chip id 0xFF), QMC5883P (0x2C, chip id 0x80),
HMC5883L (0x1E, identification "H43"). Only the driver that is needed is
imported, to keep it out of RAM otherwise. Every driver has the same
interface: ``read_into(out) -> FRESH|SATURATED`` in 0.1 uT,
``temperature_c10()`` (None without a temperature sensor), ``standby()``,
``reset()``, ``name``, ``has_temperature``.
"""

FRESH = 0x01
SATURATED = 0x02

try:
    from micropython import const
except ImportError:  # CPython: unit tests and the CLI

    def const(expr):  # type: ignore[no-redef,misc]
        return expr


TYPE_CHECKING = const(False)  # mypy: True; MicroPython drops the block at compile time (no names interned)
if TYPE_CHECKING:
    from machine import I2C


def probe(i2c: "I2C", range_gauss: int = 8, odr_hz: int = 0) -> object:
    """A started driver for the magnetometer found on ``i2c``; OSError(19) when none answers."""
    found = i2c.scan()
    for addr, module, odr in (
        (0x0D, "drivers.qmc5883l", odr_hz or 10),
        (0x2C, "drivers.qmc5883p", odr_hz or 10),
        (0x1E, "drivers.hmc5883l", 15 if odr_hz <= 15 else 75),
    ):
        if addr not in found:
            continue
        try:
            # Imported by name, each driver's class as ``Driver``: the drivers that are not needed are
            # not loaded, and their names are not interned either (an import statement interns its names).
            return __import__(module, None, None, ["Driver"]).Driver(i2c, range_gauss=range_gauss, odr_hz=odr)
        except OSError:
            continue  # something else lives at that address: try the next candidate
    raise OSError(19, "no QMC5883L (0x0D), QMC5883P (0x2C) or HMC5883L (0x1E) on the I2C bus; found " + str(found))
