"""MFRC522 (RC522 module) 13.56 MHz RFID reader over SPI: ISO 14443-3A card UIDs.

SPI mode 0, up to 10 MHz; the address byte is ``(reg << 1) & 0x7E`` with
bit 7 set for a read (MFRC522 datasheet 8.1.2.3). Registers used:

    0x01 CommandReg     0x00 Idle, 0x03 CalcCRC, 0x0C Transceive, 0x0F SoftReset
    0x02 ComIEnReg      0x04 ComIrqReg (bit7 Set1; RxIRq 0x20, IdleIRq 0x10,
                        ErrIRq 0x02, TimerIRq 0x01)
    0x05 DivIrqReg      CRCIRq 0x04
    0x06 ErrorReg       ProtocolErr 0x01, ParityErr 0x02, CRCErr 0x04, CollErr 0x08,
                        BufferOvfl 0x10
    0x09 FIFODataReg    0x0A FIFOLevelReg (bit7 FlushBuffer)
    0x0C ControlReg     RxLastBits[2:0]
    0x0D BitFramingReg  StartSend bit7, TxLastBits[2:0]
    0x11 ModeReg        CRCPreset 01 = 0x6363 (ISO 14443-3A)
    0x14 TxControlReg   Tx1RFEn/Tx2RFEn (antenna) 0x03
    0x15 TxASKReg       Force100ASK 0x40
    0x21/0x22 CRCResultReg MSB/LSB
    0x2A TModeReg, 0x2B TPrescalerReg, 0x2C/0x2D TReloadReg: the receive timeout
    0x37 VersionReg     0x91 v1.0, 0x92 v2.0, 0x88 FM17522 clone, 0x12 a common clone

``read_uid`` does REQA, the anticollision and SELECT loop through cascade
levels 1-3 (4, 7 or 10-byte UIDs, cascade tag 0x88) and HLTA, so a card
left on the reader is read once; take it away and present it again to be
read again. The CRC_A of SELECT and HLTA frames is computed by the chip's
CRC coprocessor.
"""

import time

import machine

try:
    from micropython import const
except ImportError:  # CPython type checking / tests

    def const(expr):  # type: ignore[no-redef,misc]
        return expr


TYPE_CHECKING = const(False)  # mypy: True; MicroPython drops the block at compile time (no names interned)
if TYPE_CHECKING:
    from machine import SPI, Pin

_CMD = const(0x01)
_COM_IEN = const(0x02)
_COM_IRQ = const(0x04)
_DIV_IRQ = const(0x05)
_ERROR = const(0x06)
_FIFO_DATA = const(0x09)
_FIFO_LEVEL = const(0x0A)
_CONTROL = const(0x0C)
_BIT_FRAMING = const(0x0D)
_MODE = const(0x11)
_TX_CONTROL = const(0x14)
_TX_ASK = const(0x15)
_CRC_MSB = const(0x21)
_CRC_LSB = const(0x22)
_T_MODE = const(0x2A)
_T_PRESCALER = const(0x2B)
_T_RELOAD_H = const(0x2C)
_T_RELOAD_L = const(0x2D)
_VERSION = const(0x37)

_IDLE = const(0x00)
_CALC_CRC = const(0x03)
_TRANSCEIVE = const(0x0C)
_SOFT_RESET = const(0x0F)

_REQA = const(0x26)
_HLTA = const(0x50)
_CASCADE_TAG = const(0x88)

_VERSIONS = const((0x91, 0x92, 0x88, 0x12))


class RC522:
    def __init__(self, spi: "SPI", cs: "Pin", reset: "Pin | None" = None, cold: bool = True) -> None:
        """``cold`` False (a wake from deep sleep): the chip kept its settings; only check it is there."""
        self.spi = spi
        self.cs = cs
        cs.init(machine.Pin.OUT, value=1)
        self._w = bytearray(2)
        self._r = bytearray(2)
        self._buf = bytearray(12)
        self._uid = bytearray(10)
        self._cl = bytearray(4)
        if reset is not None:
            reset.init(machine.Pin.OUT, value=0)
            time.sleep_ms(1)
            reset.value(1)
            time.sleep_ms(50)  # oscillator start-up
        self.version = self.read_reg(_VERSION)
        if self.version not in _VERSIONS:
            raise OSError(19, f"RC522 not found: VersionReg 0x{self.version:02x}")
        if not cold and self.read_reg(_T_RELOAD_L) == 30:
            return
        self.write_reg(_CMD, _SOFT_RESET)
        time.sleep_ms(50)
        self.write_reg(_T_MODE, 0x8D)  # TAuto, prescaler high bits 0xD
        self.write_reg(_T_PRESCALER, 0x3E)  # 13.56 MHz / (2 * 0xD3E + 1) = 2 kHz
        self.write_reg(_T_RELOAD_H, 0)
        self.write_reg(_T_RELOAD_L, 30)  # 15 ms receive timeout
        self.write_reg(_TX_ASK, 0x40)
        self.write_reg(_MODE, 0x3D)  # CRC preset 0x6363
        self.antenna(False)

    # --- registers --------------------------------------------------------------

    def read_reg(self, reg: int) -> int:
        w = self._w
        w[0] = 0x80 | ((reg << 1) & 0x7E)
        w[1] = 0
        self.cs.value(0)
        self.spi.write_readinto(w, self._r)
        self.cs.value(1)
        return self._r[1]

    def write_reg(self, reg: int, value: int) -> None:
        w = self._w
        w[0] = (reg << 1) & 0x7E
        w[1] = value & 0xFF
        self.cs.value(0)
        self.spi.write(w)
        self.cs.value(1)

    def antenna(self, on: bool) -> None:
        v = self.read_reg(_TX_CONTROL)
        self.write_reg(_TX_CONTROL, (v | 0x03) if on else (v & 0xFC))

    # --- ISO 14443-3A --------------------------------------------------------------

    def _crc(self, n: int) -> bool:
        """CRC_A of ``_buf[0:n]`` appended at ``_buf[n:n+2]`` (LSB first); False on timeout."""
        self.write_reg(_CMD, _IDLE)
        self.write_reg(_DIV_IRQ, 0x04)
        self.write_reg(_FIFO_LEVEL, 0x80)
        for i in range(n):
            self.write_reg(_FIFO_DATA, self._buf[i])
        self.write_reg(_CMD, _CALC_CRC)
        for _ in range(50):
            if self.read_reg(_DIV_IRQ) & 0x04:
                self.write_reg(_CMD, _IDLE)
                self._buf[n] = self.read_reg(_CRC_LSB)
                self._buf[n + 1] = self.read_reg(_CRC_MSB)
                return True
            time.sleep_ms(1)
        return False

    def _transceive(self, n: int, tx_last_bits: int = 0) -> int:
        """Send ``_buf[0:n]``; the answer lands in ``_buf``. Its length in bytes, or -1 (none / error)."""
        self.write_reg(_CMD, _IDLE)
        self.write_reg(_COM_IRQ, 0x7F)  # clear every IRQ bit
        self.write_reg(_FIFO_LEVEL, 0x80)
        for i in range(n):
            self.write_reg(_FIFO_DATA, self._buf[i])
        self.write_reg(_CMD, _TRANSCEIVE)
        self.write_reg(_BIT_FRAMING, 0x80 | tx_last_bits)  # StartSend
        irq = 0
        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < 40:
            irq = self.read_reg(_COM_IRQ)
            if irq & 0x31:  # RxIRq, IdleIRq or TimerIRq
                break
            time.sleep_ms(1)
        self.write_reg(_BIT_FRAMING, 0)
        if not irq & 0x30 or irq & 0x01:
            return -1  # no card answered before the timer ran out
        if self.read_reg(_ERROR) & 0x1B:  # buffer overflow, collision, parity, protocol
            return -1
        got = self.read_reg(_FIFO_LEVEL) & 0x7F
        if got > len(self._buf):
            got = len(self._buf)
        for i in range(got):
            self._buf[i] = self.read_reg(_FIFO_DATA)
        return got

    def read_uid(self) -> "bytes | None":
        """The UID of a card in the field (4, 7 or 10 bytes), or None. Halts the card afterwards."""
        self.antenna(True)
        try:
            return self._read_uid()
        finally:
            self.antenna(False)

    def _read_uid(self) -> "bytes | None":
        buf = self._buf
        buf[0] = _REQA
        if self._transceive(1, 7) != 2:  # ATQA
            return None
        uid = self._uid
        size = 0
        for level in range(3):
            sel = 0x93 + 2 * level
            buf[0] = sel
            buf[1] = 0x20  # NVB: anticollision, no UID bits known
            if self._transceive(2) != 5:
                return None
            if buf[0] ^ buf[1] ^ buf[2] ^ buf[3] != buf[4]:
                return None  # BCC mismatch
            cl = self._cl
            for i in range(4, -1, -1):
                if i < 4:
                    cl[i] = buf[i]
                buf[i + 2] = buf[i]
            buf[0] = sel
            buf[1] = 0x70  # NVB: SELECT, 40 UID bits
            if not self._crc(7) or self._transceive(9) != 3:  # SAK + CRC_A
                return None
            sak = buf[0]
            if sak & 0x04:  # UID not complete: the cascade tag, then three UID bytes
                if cl[0] != _CASCADE_TAG:
                    return None
                for i in range(1, 4):
                    uid[size] = cl[i]
                    size += 1
                continue
            for i in range(4):  # the last cascade level: four UID bytes
                uid[size] = cl[i]
                size += 1
            self._halt()
            return bytes(uid[:size])
        return None

    def _halt(self) -> None:
        buf = self._buf
        buf[0] = _HLTA
        buf[1] = 0
        if self._crc(2):
            self._transceive(4)  # a halted card does not answer: a timeout is success
