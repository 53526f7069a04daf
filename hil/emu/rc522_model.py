"""A register-level MFRC522 (RC522 module) with an ISO 14443-3A card, for the bench.

SPI: address byte ``(reg << 1) & 0x7E``, bit 7 set to read; further bytes
in the same selection repeat the access on the same register (FIFO
bursts), as the chip does. Modelled: CommandReg (Idle, CalcCRC, Transceive,
SoftReset), the 64-byte FIFO and FIFOLevelReg flush, ComIrqReg/DivIrqReg
(write with bit 7 clear to clear the bits set), BitFramingReg StartSend and
TxLastBits, ControlReg RxLastBits, ErrorReg, the CRC coprocessor (CRC_A,
preset 0x6363), the timer (TPrescaler/TReload: no answer raises TimerIRq
after the timeout), TxControlReg antenna bits, VersionReg 0x92.

The card (``card_uid()`` -> bytes of 4, 7 or 10, or None): IDLE -REQA/WUPA->
READY -SELECT (CRC checked) x cascade levels-> ACTIVE -HLTA-> HALT (answers
only WUPA). Anticollision (NVB 0x20) returns the level's four bytes (the
cascade tag 0x88 first when more levels follow) and BCC; SAK is 0x04
(UID incomplete) or 0x08. Taking the card away and presenting one again
puts it back in IDLE. Only with the antenna on is there a card at all.
"""

VERSION = 0x92
_IDLE, _READY, _ACTIVE, _HALT = 0, 1, 2, 3


def crc_a(data) -> int:
    """ISO 14443-3A CRC_A (x^16 + x^12 + x^5 + 1, reflected, preset 0x6363)."""
    crc = 0x6363
    for b in data:
        b ^= crc & 0xFF
        b = (b ^ (b << 4)) & 0xFF
        crc = (crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4)
    return crc & 0xFFFF


class RC522Model:
    spi_mode = (0, 0)
    spi_max_hz = 10000000

    def __init__(self, card_uid, clock_us) -> None:
        self.card_uid = card_uid
        self.clock_us = clock_us
        self.regs = bytearray(0x40)
        self.fifo = bytearray()
        self._addr = -1
        self._read = False
        self._selected = False
        self.card_state = _IDLE
        self._card = None
        self._timeout_at = -1
        self.reads = 0  # SELECT completions (a card was read)
        self.reset()

    def reset(self) -> None:
        r = self.regs
        for i in range(len(r)):
            r[i] = 0
        r[0x01] = 0x20  # CommandReg: Idle
        r[0x04] = 0x14
        r[0x0A] = 0
        r[0x14] = 0x80
        r[0x37] = VERSION
        self.fifo = bytearray()
        self._timeout_at = -1

    # --- the card in the field -----------------------------------------------

    def _present(self):
        uid = self.card_uid()
        if uid != self._card:
            self._card = uid
            self.card_state = _IDLE
        if uid is None or not self.regs[0x14] & 0x03:
            return None
        return uid

    def _card_answer(self, frame: bytes, last_bits: int):
        """The card's answer to ``frame`` or None (silence)."""
        uid = self._present()
        if uid is None or not frame:
            return None
        cmd = frame[0]
        if last_bits == 7 and len(frame) == 1 and cmd in (0x26, 0x52):
            if cmd == 0x26 and self.card_state == _HALT:
                return None
            if self.card_state in (_IDLE, _HALT):
                self.card_state = _READY
                size = {4: 0, 7: 1, 10: 2}[len(uid)]
                return bytes([(size << 6) | 0x04, 0x00])
            return None
        if cmd in (0x93, 0x95, 0x97) and len(frame) >= 2 and self.card_state == _READY:
            level = (cmd - 0x93) // 2
            levels = {4: 1, 7: 2, 10: 3}[len(uid)]
            if level >= levels:
                return None
            if level < levels - 1:
                part = bytes([0x88]) + bytes(uid[3 * level : 3 * level + 3])
            else:
                part = bytes(uid[3 * level : 3 * level + 4])
            bcc = part[0] ^ part[1] ^ part[2] ^ part[3]
            if frame[1] == 0x20:
                return part + bytes([bcc])
            if frame[1] == 0x70 and len(frame) == 9:
                if crc_a(frame[:7]) != frame[7] | (frame[8] << 8) or frame[2:6] != part or frame[6] != bcc:
                    self.card_state = _IDLE
                    return None
                sak = 0x04 if level < levels - 1 else 0x08
                if sak == 0x08:
                    self.card_state = _ACTIVE
                    self.reads += 1
                c = crc_a(bytes([sak]))
                return bytes([sak, c & 0xFF, c >> 8])
            return None
        if cmd == 0x50 and len(frame) == 4 and self.card_state == _ACTIVE:
            if crc_a(frame[:2]) == frame[2] | (frame[3] << 8):
                self.card_state = _HALT
            return None
        if self.card_state != _HALT:
            self.card_state = _IDLE
        return None

    # --- timer ----------------------------------------------------------------------

    def _timeout_us(self) -> int:
        r = self.regs
        presc = ((r[0x2A] & 0x0F) << 8) | r[0x2B]
        reload = (r[0x2C] << 8) | r[0x2D]
        return (reload + 1) * (2 * presc + 1) * 1000000 // 13560000

    def tick(self) -> None:
        if self._timeout_at >= 0 and self.clock_us() >= self._timeout_at:
            self._timeout_at = -1
            self.regs[0x04] |= 0x01  # TimerIRq

    # --- commands ---------------------------------------------------------------------

    def _command(self, cmd: int) -> None:
        r = self.regs
        r[0x01] = cmd
        if cmd == 0x0F:  # SoftReset
            self.reset()
        elif cmd == 0x03:  # CalcCRC
            c = crc_a(self.fifo)
            r[0x21] = c >> 8
            r[0x22] = c & 0xFF
            r[0x05] |= 0x04
        elif cmd == 0x00:
            self._timeout_at = -1

    def _start_send(self) -> None:
        r = self.regs
        if r[0x01] & 0x0F != 0x0C:
            return
        frame = bytes(self.fifo)
        self.fifo = bytearray()
        answer = self._card_answer(frame, r[0x0D] & 0x07)
        r[0x06] = 0
        if answer is None:
            self._timeout_at = self.clock_us() + self._timeout_us()
            return
        self.fifo = bytearray(answer)
        r[0x0C] = (r[0x0C] & 0xF8)  # whole bytes received
        r[0x04] |= 0x30  # RxIRq | IdleIRq

    # --- registers and SPI ---------------------------------------------------------------

    def read(self, reg: int) -> int:
        self.tick()
        if reg == 0x09:
            if self.fifo:
                v = self.fifo[0]
                self.fifo = self.fifo[1:]
                return v
            return 0
        if reg == 0x0A:
            return len(self.fifo)
        return self.regs[reg & 0x3F]

    def write(self, reg: int, value: int) -> None:
        self.tick()
        r = self.regs
        if reg == 0x01:
            self._command(value & 0x0F)
        elif reg in (0x04, 0x05):
            if value & 0x80:
                r[reg] |= value & 0x7F
            else:
                r[reg] &= ~value & 0xFF
        elif reg == 0x09:
            if len(self.fifo) < 64:
                self.fifo.append(value)
        elif reg == 0x0A:
            if value & 0x80:
                self.fifo = bytearray()
        elif reg == 0x0D:
            r[0x0D] = value & 0x7F
            if value & 0x80:
                self._start_send()
        elif reg != 0x37:
            r[reg] = value

    def spi_select(self, selected: bool) -> None:
        self._selected = selected
        self._addr = -1

    def spi_byte(self, b: int) -> int:
        if not self._selected:
            return 0
        if self._addr < 0:
            self._addr = (b >> 1) & 0x3F
            self._read = bool(b & 0x80)
            return 0
        if self._read:
            return self.read(self._addr)
        self.write(self._addr, b)
        return 0
