"""HMC5883L 3-axis magnetometer over I2C (address 0x1E), per the Honeywell datasheet.

Registers: 0x00 configuration A (MA[6:5] samples averaged, DO[4:2] output
rate, MS[1:0] bias), 0x01 configuration B (GN[7:5] gain), 0x02 mode (MD[1:0]:
00 continuous, 01 single, 1x idle), 0x03-0x08 data **X, Z, Y**, each
**big-endian** (MSB first) two's complement in -2048..2047, 0x09 status
(bit0 RDY, bit1 LOCK), 0x0A-0x0C identification "H43".

An axis that overflows reads -4096 (0xF000): the sample is reported
SATURATED. Gains (LSB/gauss): 1370 +/-0.88 G, 1090 +/-1.3, 820 +/-1.9,
660 +/-2.5, 440 +/-4.0, 390 +/-4.7, 330 +/-5.6, 230 +/-8.1 (1 gauss =
100 uT). No temperature output.

Same interface as ``qmc5883l.QMC5883L``: ``read_into`` writes X, Y, Z in
0.1 uT (reordered from the chip's X, Z, Y) into a caller-owned list.
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

ADDRESS = const(0x1E)

_REG_CONFIG_A = const(0x00)
_REG_CONFIG_B = const(0x01)
_REG_MODE = const(0x02)
_REG_DATA = const(0x03)
_REG_STATUS = const(0x09)
_REG_ID = const(0x0A)

_RDY = const(0x01)
_OVERFLOW = const(-4096)

FRESH = const(0x01)
SATURATED = const(0x02)

_MODE_CONTINUOUS = const(0x00)
_MODE_IDLE = const(0x03)
# range (gauss, as asked) -> (GN bits, LSB/gauss): the smallest range that covers it
_GAINS = ((1, 0x20, 1090), (2, 0x40, 820), (4, 0x80, 440), (8, 0xE0, 230))
_ODR_BITS = {15: 0x10, 30: 0x14, 75: 0x18}


class HMC5883L:
    has_temperature = False
    name = "HMC5883L"

    def __init__(self, i2c: "I2C", address: int = ADDRESS, range_gauss: int = 8, odr_hz: int = 15) -> None:
        gain = None
        for g in _GAINS:
            if g[0] >= range_gauss:
                gain = g
                break
        if gain is None:
            raise ValueError("range_gauss must be at most 8")
        if odr_hz not in _ODR_BITS:
            raise ValueError("odr_hz must be 15, 30 or 75")
        self.i2c = i2c
        self.address = address
        self.range_gauss = range_gauss
        self._gn = gain[1]
        self.lsb_per_gauss = gain[2]
        self._data = bytearray(6)
        self._one = bytearray(1)
        self._id = bytearray(3)
        self._config_a = 0x60 | _ODR_BITS[odr_hz]  # 8 samples averaged, normal bias
        self._period_ms = 1000 // odr_hz + 1
        self.reset()

    def _write(self, reg: int, value: int) -> None:
        self._one[0] = value
        self.i2c.writeto_mem(self.address, reg, self._one)

    def _read(self, reg: int) -> int:
        self.i2c.readfrom_mem_into(self.address, reg, self._one)
        return self._one[0]

    def reset(self) -> None:
        """Check the identification registers, set rate and gain, start continuous measurement."""
        self.i2c.readfrom_mem_into(self.address, _REG_ID, self._id)
        if self._id != b"H43":
            raise OSError(19, "HMC5883L identification " + repr(bytes(self._id)) + ", expected b'H43'")
        self._write(_REG_CONFIG_A, self._config_a)
        self._write(_REG_CONFIG_B, self._gn)
        self._write(_REG_MODE, _MODE_CONTINUOUS)
        time.sleep_ms(self._period_ms + 6)  # the first conversion after a gain change

    def standby(self) -> None:
        """Idle mode (a few uA) until the next ``reset``."""
        self._write(_REG_MODE, _MODE_IDLE)

    def read_into(self, out: list) -> int:
        """X, Y, Z in 0.1 uT into ``out[0:3]``; FRESH|SATURATED bits."""
        st = self._read(_REG_STATUS)
        if not st & _RDY:
            t0 = time.ticks_ms()
            while not st & _RDY and time.ticks_diff(time.ticks_ms(), t0) < 2 * self._period_ms:
                time.sleep_ms(2)
                st = self._read(_REG_STATUS)
        buf = self._data
        self.i2c.readfrom_mem_into(self.address, _REG_DATA, buf)
        lsb = self.lsb_per_gauss
        flags = FRESH if st & _RDY else 0
        for i in range(3):
            v = (buf[2 * i] << 8) | buf[2 * i + 1]  # big-endian
            if v & 0x8000:
                v -= 0x10000
            if v == _OVERFLOW:
                flags |= SATURATED
            # chip order X, Z, Y -> out order X, Y, Z
            out[0 if i == 0 else 3 - i] = v * 1000 // lsb
        return flags

    def temperature_c10(self) -> "int | None":
        return None


Driver = HMC5883L  # the name drivers/magnetometer.py probes for
