"""A register-level QMC5883P magnetometer (I2C 0x2C) for the bench; MicroPython and CPython.

Registers (QST datasheet): 0x00 chip id 0x80; 0x01-0x06 X, Y, Z
little-endian int16; 0x09 status (DRDY bit0, OVFL bit1); 0x0A control 1
(OSR2 OSR1 ODR MODE: 00 suspend, 01 normal, 10 single, 11 continuous);
0x0B control 2 (SOFT_RST bit7, RNG[3:2]: 30/12/8/2 G at
1000/2500/3750/15000 LSB/G); 0x29 axis sign. In normal/continuous mode a
sample is ready every 1/ODR s; single mode measures once and returns to
suspend; reading the data clears DRDY; a field beyond the range sets OVFL
and clips the output. Power gating as ``qmc5883l_model``.
"""

from qmc5883l_model import _clip16, _now_ms, _since_ms

ADDRESS = 0x2C
_ODR_HZ = (10, 50, 100, 200)
_LSB_PER_GAUSS = (1000, 2500, 3750, 15000)
_RANGE_UT = (3000.0, 1200.0, 800.0, 200.0)


class QMC5883PModel:
    address = ADDRESS
    i2c_max_hz = 400000

    def __init__(self, field_ut, temp_c=None, powered=None) -> None:
        self.field_ut = field_ut
        self._powered = powered
        self.regs = bytearray(0x2A)
        self.ptr = 0
        self.was_powered = True
        self.samples = 0
        self._t_last = 0
        self.power_on_reset()

    def power_on_reset(self) -> None:
        for i in range(len(self.regs)):
            self.regs[i] = 0
        self.regs[0x00] = 0x80
        self.ptr = 0
        self._t_last = _now_ms()

    def powered(self) -> bool:
        on = True if self._powered is None else bool(self._powered())
        if on and not self.was_powered:
            self.power_on_reset()
        self.was_powered = on
        return on

    def _mode(self) -> int:
        return self.regs[0x0A] & 0x03

    def _measure(self) -> None:
        rng = (self.regs[0x0B] >> 2) & 0x03
        lsb_per_ut = _LSB_PER_GAUSS[rng] / 100.0
        limit = _RANGE_UT[rng]
        x, y, z = self.field_ut()
        over = abs(x) > limit or abs(y) > limit or abs(z) > limit
        r = self.regs
        for i, v in ((1, x), (3, y), (5, z)):
            c = _clip16(int(round(v * lsb_per_ut))) & 0xFFFF
            r[i] = c & 0xFF
            r[i + 1] = c >> 8
        r[0x09] = 0x01 | (0x02 if over else 0)
        self.samples += 1

    def _update(self) -> None:
        mode = self._mode()
        if mode == 0:
            self._t_last = _now_ms()
            return
        period = 1000 // _ODR_HZ[(self.regs[0x0A] >> 2) & 0x03]
        elapsed = _since_ms(self._t_last)
        if elapsed < period:
            return
        self._t_last += (elapsed // period) * period
        self._measure()
        if mode == 2:  # single: back to suspend
            self.regs[0x0A] &= 0xFC

    def i2c_write(self, data: bytes) -> None:
        if not data:
            return
        self.ptr = data[0]
        for b in data[1:]:
            reg = self.ptr
            if reg == 0x0B and b & 0x80:
                self.power_on_reset()
                return
            if reg == 0x0A:
                if b & 0x03 and not self._mode():
                    self._t_last = _now_ms()
                self.regs[0x0A] = b
            elif reg in (0x0B, 0x29):
                self.regs[reg] = b
            self.ptr = reg + 1

    def i2c_read(self, n: int) -> bytes:
        self._update()
        out = bytearray(n)
        data = False
        for i in range(n):
            reg = self.ptr
            if 0x01 <= reg <= 0x06:
                data = True
            out[i] = self.regs[reg] if reg < len(self.regs) else 0
            self.ptr = reg + 1
        if data:
            self.regs[0x09] &= 0xFE  # reading data clears DRDY (OVFL stays with the sample)
        return bytes(out)
