"""A register-level QMC5883L magnetometer (I2C 0x0D) for the bench.

Registers (QST datasheet 1.0): 0x00-0x05 X, Y, Z little-endian int16;
0x06 status (DRDY bit0, OVL bit1, DOR bit2); 0x07-0x08 temperature
(100 LSB/degC); 0x09 control 1 (OSR[7:6] RNG[5:4] ODR[3:2] MODE[1:0]);
0x0A control 2 (SOFT_RST bit7, ROL_PNT bit6, INT_ENB bit0); 0x0B SET/RESET
period; 0x0D chip id 0xFF.

Behaviour: in continuous mode a new sample is ready every 1/ODR s (DRDY);
reading the data registers clears DRDY; a sample completed while the
previous one was still unread sets DOR; a field beyond the range (2 or 8
gauss, 1 gauss = 100 uT) sets OVL and the output clips at int16. In standby
nothing new is measured. The register pointer auto-increments; with ROL_PNT
it rolls over from 0x06 to 0x00. Power off (the board's sensor-power pin)
makes it vanish from the bus; power back on is a power-on reset. Runs under
MicroPython and CPython.
"""

import time

try:
    _ticks_ms = time.ticks_ms  # type: ignore[attr-defined]
    _ticks_diff = time.ticks_diff  # type: ignore[attr-defined]

    def _now_ms():
        return _ticks_ms()

    def _since_ms(t0):
        return _ticks_diff(_ticks_ms(), t0)

except AttributeError:  # CPython

    def _now_ms():
        return int(time.monotonic() * 1000)

    def _since_ms(t0):
        return int(time.monotonic() * 1000) - t0


ADDRESS = 0x0D
_ODR_HZ = (10, 50, 100, 200)
_LSB_PER_GAUSS = (12000, 3000)  # RNG 00: +/-2 G, 01: +/-8 G
_RANGE_UT = (200.0, 800.0)


def _clip16(v: int) -> int:
    return -32768 if v < -32768 else 32767 if v > 32767 else v


class QMC5883LModel:
    address = ADDRESS
    i2c_max_hz = 400000

    def __init__(self, field_ut, temp_c, powered=None) -> None:
        """``field_ut()`` -> (x, y, z) uT; ``temp_c()`` -> degC; ``powered()`` -> bool."""
        self.field_ut = field_ut
        self.temp_c = temp_c
        self._powered = powered
        self.regs = bytearray(0x0E)
        self.ptr = 0
        self.was_powered = True
        self.samples = 0
        self._t_last = 0
        self.power_on_reset()

    def power_on_reset(self) -> None:
        for i in range(len(self.regs)):
            self.regs[i] = 0
        self.regs[0x0D] = 0xFF
        self.ptr = 0
        self._t_last = _now_ms()

    def powered(self) -> bool:
        on = True if self._powered is None else bool(self._powered())
        if on and not self.was_powered:
            self.power_on_reset()
        self.was_powered = on
        return on

    # --- measurement -------------------------------------------------------------

    def _continuous(self) -> bool:
        return self.regs[0x09] & 0x03 == 0x01

    def _period_ms(self) -> int:
        return 1000 // _ODR_HZ[(self.regs[0x09] >> 2) & 0x03]

    def _measure(self) -> None:
        rng = (self.regs[0x09] >> 4) & 0x03
        if rng > 1:
            rng = 1  # reserved codes: treat as 8 G
        lsb_per_ut = _LSB_PER_GAUSS[rng] / 100.0
        limit = _RANGE_UT[rng]
        x, y, z = self.field_ut()
        over = abs(x) > limit or abs(y) > limit or abs(z) > limit
        r = self.regs
        for i, v in ((0, x), (2, y), (4, z)):
            c = _clip16(int(round(v * lsb_per_ut))) & 0xFFFF
            r[i] = c & 0xFF
            r[i + 1] = c >> 8
        t = _clip16(int(round(self.temp_c() * 100))) & 0xFFFF
        r[0x07] = t & 0xFF
        r[0x08] = t >> 8
        status = r[0x06]
        if status & 0x01:
            status |= 0x04  # DOR: the previous sample was never read
        status |= 0x01
        if over:
            status |= 0x02
        else:
            status &= ~0x02 & 0xFF
        r[0x06] = status
        self.samples += 1

    def _update(self) -> None:
        if not self._continuous():
            self._t_last = _now_ms()
            return
        period = self._period_ms()
        elapsed = _since_ms(self._t_last)
        if elapsed < period:
            return
        done = elapsed // period
        if done > 1:
            self.regs[0x06] |= 0x01  # a sample was made and overwritten: DOR on the next
        self._t_last += done * period
        self._measure()

    # --- I2C -------------------------------------------------------------------------

    def i2c_write(self, data: bytes) -> None:
        if not data:
            return
        self.ptr = data[0]
        for b in data[1:]:
            self._write_reg(self.ptr, b)
            self.ptr += 1

    def _write_reg(self, reg: int, value: int) -> None:
        if reg == 0x0A:
            if value & 0x80:  # SOFT_RST: back to power-on values
                self.power_on_reset()
                return
            self.regs[0x0A] = value & 0x41
        elif reg == 0x09:
            was = self._continuous()
            self.regs[0x09] = value
            if self._continuous() and not was:
                self._t_last = _now_ms()
        elif reg == 0x0B:
            self.regs[0x0B] = value
        # data, status, temperature and id registers are read-only

    def i2c_read(self, n: int) -> bytes:
        self._update()
        out = bytearray(n)
        read_data = False
        for i in range(n):
            reg = self.ptr
            if reg <= 0x05:
                read_data = True
            out[i] = self.regs[reg] if reg < len(self.regs) else 0
            reg += 1
            if reg == 0x07 and self.regs[0x0A] & 0x40:
                reg = 0x00  # ROL_PNT: 0x06 rolls over to 0x00
            self.ptr = reg
        if read_data:
            self.regs[0x06] &= ~0x05 & 0xFF  # reading data clears DRDY and DOR
        return bytes(out)
