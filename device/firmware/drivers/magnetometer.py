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

TYPE_CHECKING = False
if TYPE_CHECKING:
    from machine import I2C

ADDRESSES = (0x0D, 0x2C, 0x1E)


def probe(i2c: "I2C", range_gauss: int = 8, odr_hz: int = 0) -> object:
    """A started driver for the magnetometer found on ``i2c``; OSError(19) when none answers."""
    found = i2c.scan()
    for addr in ADDRESSES:
        if addr not in found:
            continue
        try:
            if addr == 0x0D:
                from drivers.qmc5883l import QMC5883L

                return QMC5883L(i2c, range_gauss=range_gauss, odr_hz=odr_hz or 10)
            if addr == 0x2C:
                from drivers.qmc5883p import QMC5883P

                return QMC5883P(i2c, range_gauss=range_gauss, odr_hz=odr_hz or 10)
            from drivers.hmc5883l import HMC5883L

            return HMC5883L(i2c, range_gauss=range_gauss, odr_hz=15 if odr_hz <= 15 else 75)
        except OSError:
            continue  # something else lives at that address: try the next candidate
    raise OSError(19, "no QMC5883L (0x0D), QMC5883P (0x2C) or HMC5883L (0x1E) on the I2C bus; found " + str(found))
