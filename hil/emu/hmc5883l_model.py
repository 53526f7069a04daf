"""A register-level HMC5883L magnetometer (I2C 0x1E) for the bench; MicroPython and CPython.

Registers (Honeywell datasheet): 0x00 configuration A (DO[4:2] rate:
0.75/1.5/3/7.5/15/30/75 Hz), 0x01 configuration B (GN[7:5] gain), 0x02
mode (00 continuous, 01 single, 1x idle; after a single measurement the
chip goes idle), 0x03-0x08 data X, Z, Y **big-endian**, 0x09 status
(RDY bit0), 0x0A-0x0C "H43". Outputs are -2048..2047 counts; an axis
beyond the range reads -4096. RDY clears when the data are read. The
pointer auto-increments, jumps from 0x08 back to 0x03 and from 0x0C to
0x00. Power gating as ``qmc5883l_model``.
"""

from qmc5883l_model import _now_ms, _since_ms

ADDRESS = 0x1E
_RATE_MS = (1334, 667, 334, 134, 67, 34, 14, 14)
_LSB_PER_GAUSS = (1370, 1090, 820, 660, 440, 390, 330, 230)


class HMC5883LModel:
    address = ADDRESS
    i2c_max_hz = 400000

    def __init__(self, field_ut, temp_c=None, powered=None) -> None:
        self.field_ut = field_ut
        self._powered = powered
        self.regs = bytearray(0x0D)
        self.ptr = 0
        self.was_powered = True
        self.samples = 0
        self._t_last = 0
        self.power_on_reset()

    def power_on_reset(self) -> None:
        r = self.regs
        for i in range(len(r)):
            r[i] = 0
        r[0x00] = 0x10  # 15 Hz, 1 sample
        r[0x01] = 0x20  # gain 1090 LSB/G
        r[0x02] = 0x01  # single-measurement mode at power-on
        r[0x0A] = 0x48  # "H"
        r[0x0B] = 0x34  # "4"
        r[0x0C] = 0x33  # "3"
        self.ptr = 0
        self._t_last = _now_ms()

    def powered(self) -> bool:
        on = True if self._powered is None else bool(self._powered())
        if on and not self.was_powered:
            self.power_on_reset()
        self.was_powered = on
        return on

    def _measure(self) -> None:
        gain = _LSB_PER_GAUSS[self.regs[0x01] >> 5] / 100.0  # LSB per uT
        x, y, z = self.field_ut()
        r = self.regs
        for i, v in ((3, x), (5, z), (7, y)):  # chip order: X, Z, Y
            c = int(round(v * gain))
            if c < -2048 or c > 2047:
                c = -4096
            c &= 0xFFFF
            r[i] = c >> 8  # big-endian
            r[i + 1] = c & 0xFF
        r[0x09] |= 0x01
        self.samples += 1

    def _update(self) -> None:
        mode = self.regs[0x02] & 0x03
        if mode >= 2:
            self._t_last = _now_ms()
            return
        period = 6 if mode == 1 else _RATE_MS[(self.regs[0x00] >> 2) & 0x07]
        elapsed = _since_ms(self._t_last)
        if elapsed < period:
            return
        self._t_last += (elapsed // period) * period
        self._measure()
        if mode == 1:
            self.regs[0x02] = (self.regs[0x02] & 0xFC) | 0x03  # idle after a single measurement

    def i2c_write(self, data: bytes) -> None:
        if not data:
            return
        self.ptr = data[0]
        for b in data[1:]:
            reg = self.ptr
            if reg <= 0x02:
                if reg == 0x02 and (b & 0x03) < 2 and (self.regs[0x02] & 0x03) >= 2:
                    self._t_last = _now_ms()
                self.regs[reg] = b
            self.ptr = 0 if reg >= 0x0C else reg + 1

    def i2c_read(self, n: int) -> bytes:
        self._update()
        out = bytearray(n)
        data = False
        for i in range(n):
            reg = self.ptr
            if 0x03 <= reg <= 0x08:
                data = True
            out[i] = self.regs[reg] if reg < len(self.regs) else 0
            reg += 1
            if reg == 0x09 and data:
                reg = 0x03
            elif reg > 0x0C:
                reg = 0
            self.ptr = reg
        if data:
            self.regs[0x09] &= 0xFE
        return bytes(out)
