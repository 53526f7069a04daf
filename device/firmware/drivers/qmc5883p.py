"""QMC5883P 3-axis magnetometer over I2C (address 0x2C), per the QST datasheet.

Registers: 0x00 chip id (0x80); 0x01-0x06 data X, Y, Z (16-bit two's
complement, little-endian); 0x09 status (bit0 DRDY, bit1 OVFL overflow);
0x0A control 1 (OSR2[7:6] OSR1[5:4] ODR[3:2] MODE[1:0]: 00 suspend, 01
normal, 10 single, 11 continuous); 0x0B control 2 (SOFT_RST bit7,
SELF_TEST bit6, RNG[3:2], SET/RESET mode[1:0]); 0x29 axis sign (0x06 as
the datasheet's start-up sequence writes).

Sensitivity by RNG: 00 +/-30 G 1000 LSB/G, 01 +/-12 G 2500, 10 +/-8 G
3750, 11 +/-2 G 15000 (1 gauss = 100 uT). No temperature output: the
node falls back to "temperature unknown" (the ranger assumes 20 degC).

The same interface as ``qmc5883l.QMC5883L``: ``read_into`` writes X, Y, Z
in 0.1 uT into a caller-owned list and returns FRESH|SATURATED bits, no
allocation.
"""

import time

try:
    from micropython import const
except ImportError:  # CPython type checking / tests

    def const(expr):  # type: ignore[no-redef,misc]
        return expr


TYPE_CHECKING = const(False)  # mypy: True; MicroPython drops the block at compile time (no names interned)
if TYPE_CHECKING:
    from machine import I2C

ADDRESS = const(0x2C)
_CHIP_ID = const(0x80)

_REG_CHIP_ID = const(0x00)
_REG_DATA = const(0x01)
_REG_STATUS = const(0x09)
_REG_CTRL1 = const(0x0A)
_REG_CTRL2 = const(0x0B)
_REG_SIGN = const(0x29)

_DRDY = const(0x01)
_OVFL = const(0x02)

FRESH = const(0x01)
SATURATED = const(0x02)

_MODE_SUSPEND = const(0x00)
_MODE_CONTINUOUS = const(0x03)
_ODR_BITS = {10: 0x00, 50: 0x04, 100: 0x08, 200: 0x0C}
_RANGE_BITS = {30: 0x00, 12: 0x04, 8: 0x08, 2: 0x0C}
_LSB_PER_GAUSS = {30: 1000, 12: 2500, 8: 3750, 2: 15000}


class QMC5883P:
    has_temperature = False
    name = "QMC5883P"

    def __init__(self, i2c: "I2C", address: int = ADDRESS, range_gauss: int = 8, odr_hz: int = 10) -> None:
        if range_gauss not in _RANGE_BITS:
            raise ValueError("range_gauss must be 2, 8, 12 or 30")
        if odr_hz not in _ODR_BITS:
            raise ValueError("odr_hz must be 10, 50, 100 or 200")
        self.i2c = i2c
        self.address = address
        self.range_gauss = range_gauss
        self.lsb_per_gauss = _LSB_PER_GAUSS[range_gauss]
        self._data = bytearray(6)
        self._one = bytearray(1)
        # OSR1 = 8 (00), OSR2 = 8 (11): the quietest filtering
        self._ctrl1 = 0xC0 | _ODR_BITS[odr_hz] | _MODE_CONTINUOUS
        self._ctrl2 = _RANGE_BITS[range_gauss]  # SET/RESET on
        self._period_ms = 1000 // odr_hz
        self.reset()

    def _write(self, reg: int, value: int) -> None:
        self._one[0] = value
        self.i2c.writeto_mem(self.address, reg, self._one)

    def _read(self, reg: int) -> int:
        self.i2c.readfrom_mem_into(self.address, reg, self._one)
        return self._one[0]

    def reset(self) -> None:
        """Check the chip id, soft-reset, define the axis signs, start continuous measurement."""
        chip = self._read(_REG_CHIP_ID)
        if chip != _CHIP_ID:
            raise OSError(19, f"QMC5883P chip id 0x{chip:02x}, expected 0x80")
        self._write(_REG_CTRL2, 0x80)  # SOFT_RST
        time.sleep_ms(1)
        self._write(_REG_SIGN, 0x06)
        self._write(_REG_CTRL2, self._ctrl2)
        self._write(_REG_CTRL1, self._ctrl1)
        time.sleep_ms(self._period_ms + 2)

    def standby(self) -> None:
        """Suspend mode (a few uA) until the next ``reset``."""
        self._write(_REG_CTRL1, _MODE_SUSPEND)

    def read_into(self, out: list) -> int:
        """X, Y, Z in 0.1 uT into ``out[0:3]``; FRESH|SATURATED bits."""
        st = self._read(_REG_STATUS)
        if not st & _DRDY:
            t0 = time.ticks_ms()
            while not st & _DRDY and time.ticks_diff(time.ticks_ms(), t0) < 2 * self._period_ms:
                time.sleep_ms(2)
                st = self._read(_REG_STATUS)
        buf = self._data
        self.i2c.readfrom_mem_into(self.address, _REG_DATA, buf)
        lsb = self.lsb_per_gauss
        for i in range(3):
            v = buf[2 * i] | (buf[2 * i + 1] << 8)
            if v & 0x8000:
                v -= 0x10000
            out[i] = v * 1000 // lsb
        flags = 0
        if st & _DRDY:
            flags |= FRESH
        if st & _OVFL:
            flags |= SATURATED
        return flags

    def temperature_c10(self) -> "int | None":
        return None


Driver = QMC5883P  # the name drivers/magnetometer.py probes for
