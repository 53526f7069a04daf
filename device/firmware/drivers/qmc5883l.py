"""QMC5883L 3-axis magnetometer over I2C (address 0x0D), per the QST datasheet.

Registers: 0x00-0x05 data X, Y, Z (16-bit two's complement, little-endian),
0x06 status (bit0 DRDY, bit1 OVL overflow, bit2 DOR data skipped), 0x07-0x08
temperature (100 LSB/degC, offset not calibrated), 0x09 control 1
(OSR[7:6] RNG[5:4] ODR[3:2] MODE[1:0]), 0x0A control 2 (SOFT_RST bit7,
ROL_PNT bit6, INT_ENB bit0), 0x0B SET/RESET period (0x01 recommended),
0x0D chip id (0xFF).

Sensitivity: 12000 LSB/gauss at +/-2 G, 3000 LSB/gauss at +/-8 G
(1 gauss = 100 uT). When a field exceeds the range the chip sets OVL and
the reading is reported as saturated.

``read_into`` is the sampling-loop path: integers in 0.1 uT written into a
caller-owned list, preallocated buffers, no allocation.
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

ADDRESS = const(0x0D)
_CHIP_ID = const(0xFF)

_REG_DATA = const(0x00)
_REG_STATUS = const(0x06)
_REG_TEMP = const(0x07)
_REG_CTRL1 = const(0x09)
_REG_CTRL2 = const(0x0A)
_REG_PERIOD = const(0x0B)
_REG_CHIP_ID = const(0x0D)

_DRDY = const(0x01)
_OVL = const(0x02)
_DOR = const(0x04)

# read_into() result bits
FRESH = const(0x01)  # new data since the last read
SATURATED = const(0x02)  # a field beyond the range (OVL)
_SKIPPED = const(0x04)  # samples were overwritten unread (DOR)

_MODE_CONTINUOUS = const(0x01)
_ODR_BITS = {10: 0x00, 50: 0x04, 100: 0x08, 200: 0x0C}
_OSR_BITS = {512: 0x00, 256: 0x40, 128: 0x80, 64: 0xC0}
_RANGE_BITS = {2: 0x00, 8: 0x10}
_LSB_PER_UT = {2: 120, 8: 30}  # 12000 and 3000 LSB/gauss


class QMC5883L:
    has_temperature = True
    name = "QMC5883L"

    def __init__(
        self,
        i2c: "I2C",
        address: int = ADDRESS,
        range_gauss: int = 8,
        odr_hz: int = 10,
        osr: int = 512,
    ) -> None:
        if range_gauss not in _RANGE_BITS:
            raise ValueError("range_gauss must be 2 or 8")
        if odr_hz not in _ODR_BITS:
            raise ValueError("odr_hz must be 10, 50, 100 or 200")
        if osr not in _OSR_BITS:
            raise ValueError("osr must be 512, 256, 128 or 64")
        self.i2c = i2c
        self.address = address
        self.range_gauss = range_gauss
        self.lsb_per_ut = _LSB_PER_UT[range_gauss]
        self._data = bytearray(6)
        self._one = bytearray(1)
        self._two = bytearray(2)
        self._ctrl1 = _OSR_BITS[osr] | _RANGE_BITS[range_gauss] | _ODR_BITS[odr_hz] | _MODE_CONTINUOUS
        self._period_ms = 1000 // odr_hz
        self.reset()

    def _write(self, reg: int, value: int) -> None:
        self._one[0] = value
        self.i2c.writeto_mem(self.address, reg, self._one)

    def _read(self, reg: int) -> int:
        self.i2c.readfrom_mem_into(self.address, reg, self._one)
        return self._one[0]

    def reset(self) -> None:
        """Check the chip id, soft-reset and start continuous measurement."""
        chip = self._read(_REG_CHIP_ID)
        if chip != _CHIP_ID:
            raise OSError(19, f"QMC5883L chip id 0x{chip:02x}, expected 0xff")
        self._write(_REG_CTRL2, 0x80)  # SOFT_RST
        time.sleep_ms(1)
        self._write(_REG_CTRL2, 0x40)  # ROL_PNT: burst reads roll over 0x06 -> 0x00
        self._write(_REG_PERIOD, 0x01)  # SET/RESET period, as the datasheet recommends
        self._write(_REG_CTRL1, self._ctrl1)
        time.sleep_ms(self._period_ms + 2)

    def standby(self) -> None:
        """Standby (about 3 uA, nothing measured) until the next ``reset``."""
        self._write(_REG_CTRL1, self._ctrl1 & 0xFC)

    def status(self) -> int:
        return self._read(_REG_STATUS)

    def read_into(self, out: list) -> int:
        """Write X, Y, Z in 0.1 uT into ``out[0:3]``; returns FRESH|SATURATED|SKIPPED bits.

        Waits up to two output periods for DRDY; without it the previous
        sample is returned (FRESH clear).
        """
        st = self._read(_REG_STATUS)
        if not st & _DRDY:
            t0 = time.ticks_ms()
            while not st & _DRDY and time.ticks_diff(time.ticks_ms(), t0) < 2 * self._period_ms:
                time.sleep_ms(2)
                st = self._read(_REG_STATUS)
        buf = self._data
        self.i2c.readfrom_mem_into(self.address, _REG_DATA, buf)
        lsb = self.lsb_per_ut
        for i in range(3):
            v = buf[2 * i] | (buf[2 * i + 1] << 8)
            if v & 0x8000:
                v -= 0x10000
            out[i] = v * 10 // lsb
        flags = 0
        if st & _DRDY:
            flags |= FRESH
        if st & _OVL:
            flags |= SATURATED
        if st & _DOR:
            flags |= _SKIPPED
        return flags

    def read_ut(self) -> tuple:
        """Convenience (allocates): (x, y, z) in uT as floats and the saturated flag."""
        out = [0, 0, 0]
        flags = self.read_into(out)
        return (out[0] / 10, out[1] / 10, out[2] / 10, bool(flags & SATURATED))

    def temperature_c10(self) -> int:
        """Die temperature in 0.1 degC, uncalibrated offset (100 LSB/degC)."""
        self.i2c.readfrom_mem_into(self.address, _REG_TEMP, self._two)
        v = self._two[0] | (self._two[1] << 8)
        if v & 0x8000:
            v -= 0x10000
        return v // 10


Driver = QMC5883L  # the name drivers/magnetometer.py probes for
