"""A register-level SX1276 (LoRa mode) for the bench; runs under MicroPython and CPython.

What it models (SX1276/77/78/79 datasheet rev 7):

* The SPI protocol: the first byte after NSS falls is the address with bit 7
  set for a write; further bytes read or write successive registers, except
  RegFifo (0x00), which walks RegFifoAddrPtr (0x0D) through the 256-byte FIFO.
* RegOpMode (0x01): LongRangeMode (bit 7) changes only in SLEEP; the FIFO is
  not accessible and is cleared in SLEEP; TX sends RegPayloadLength bytes
  from RegFifoTxBaseAddr and returns to STDBY with TxDone after the time on
  air; RXSINGLE gives RxTimeout after RegSymbTimeout symbols; CAD gives
  CadDone after two symbols (the channel is always free here).
* RegIrqFlags (0x12) write-1-to-clear, RegIrqFlagsMask (0x11), DIO0 per
  RegDioMapping1 bits 7-6 (00 RxDone, 01 TxDone, 10 CadDone).
* Reception: ``inject`` puts a packet in the FIFO at RegFifoRxBaseAddr (or
  after the previous packet in RXCONTINUOUS), sets RegFifoRxCurrentAddr,
  RegRxNbBytes, RegPktSnrValue, RegPktRssiValue and RxDone (+ValidHeader,
  +PayloadCrcError on a bad CRC) -- only when the radio is listening with
  matching frequency (within BW/4), SF, BW and sync word.
* NRESET: low resets every register to its power-on value.

Entering TX calls ``on_tx(payload: bytes, settings: dict)`` with the radio
settings decoded from the registers: ``freq_hz`` (the synthesiser's
frequency, Frf * 32 MHz / 2^19), ``sf``, ``bw_hz``, ``cr`` (5..8 for
4/5..4/8), ``power_dbm``, ``sync_word``, ``preamble``, ``crc``,
``implicit_header``, ``ldro``, ``toa_us``.

The clock is injectable (``clock_us``: a function returning microseconds);
the default is ``time.ticks_us`` on MicroPython and ``time.monotonic_ns``
on CPython. ``emit(event, dict)`` (optional) receives warnings such as a TX
at SF11/12 without LowDataRateOptimize.
"""

import time

from proto import airtime

try:
    from micropython import const
except ImportError:  # CPython

    def const(expr):  # type: ignore[no-redef,misc]
        return expr


try:
    _ticks_us = time.ticks_us  # type: ignore[attr-defined]
    _ticks_diff = time.ticks_diff  # type: ignore[attr-defined]

    class _TicksClock:
        def __init__(self) -> None:
            self.last = _ticks_us()
            self.total = 0

        def __call__(self) -> int:
            now = _ticks_us()
            self.total += _ticks_diff(now, self.last)
            self.last = now
            return self.total

    def _default_clock():
        return _TicksClock()

except AttributeError:  # CPython

    def _default_clock():
        return lambda: time.monotonic_ns() // 1000


FXOSC = 32000000
VERSION = 0x12

_REG_FIFO = const(0x00)
_REG_OP_MODE = const(0x01)
_REG_FRF_MSB = const(0x06)
_REG_PA_CONFIG = const(0x09)
_REG_FIFO_ADDR_PTR = const(0x0D)
_REG_FIFO_TX_BASE = const(0x0E)
_REG_FIFO_RX_BASE = const(0x0F)
_REG_FIFO_RX_CURRENT = const(0x10)
_REG_IRQ_FLAGS_MASK = const(0x11)
_REG_IRQ_FLAGS = const(0x12)
_REG_RX_NB_BYTES = const(0x13)
_REG_MODEM_STAT = const(0x18)
_REG_PKT_SNR = const(0x19)
_REG_PKT_RSSI = const(0x1A)
_REG_RSSI = const(0x1B)
_REG_MODEM_CONFIG1 = const(0x1D)
_REG_MODEM_CONFIG2 = const(0x1E)
_REG_SYMB_TIMEOUT_LSB = const(0x1F)
_REG_PREAMBLE_MSB = const(0x20)
_REG_PREAMBLE_LSB = const(0x21)
_REG_PAYLOAD_LENGTH = const(0x22)
_REG_FIFO_RX_BYTE_ADDR = const(0x25)
_REG_MODEM_CONFIG3 = const(0x26)
_REG_SYNC_WORD = const(0x39)
_REG_DIO_MAPPING1 = const(0x40)
_REG_VERSION = const(0x42)
_REG_PA_DAC = const(0x4D)

_MODE_SLEEP = const(0)
_MODE_STDBY = const(1)
_MODE_FSTX = const(2)
_MODE_TX = const(3)
_MODE_FSRX = const(4)
_MODE_RX_CONTINUOUS = const(5)
_MODE_RX_SINGLE = const(6)
_MODE_CAD = const(7)
MODE_NAMES = ("sleep", "stdby", "fstx", "tx", "fsrx", "rxcontinuous", "rxsingle", "cad")

_IRQ_RX_TIMEOUT = const(0x80)
_IRQ_RX_DONE = const(0x40)
_IRQ_CRC_ERROR = const(0x20)
_IRQ_VALID_HEADER = const(0x10)
_IRQ_TX_DONE = const(0x08)
_IRQ_CAD_DONE = const(0x04)
_IRQ_CAD_DETECTED = const(0x01)

# Registers the host cannot write (status and identity).
_READ_ONLY = (0x10, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x1C, 0x25, 0x28, 0x29, 0x2A, 0x2C, 0x42)

# Power-on values of the LoRa-mode registers a driver touches (datasheet table 41, "LoRa" column).
_POR = {
    0x01: 0x09,  # RegOpMode: FSK, LowFrequencyModeOn, STDBY
    0x06: 0x6C,  # RegFrf: 434 MHz
    0x07: 0x80,
    0x08: 0x00,
    0x09: 0x4F,  # RegPaConfig
    0x0A: 0x09,
    0x0B: 0x2B,  # RegOcp: 100 mA
    0x0C: 0x20,  # RegLna
    0x0D: 0x00,  # RegFifoAddrPtr
    0x0E: 0x80,  # RegFifoTxBaseAddr
    0x0F: 0x00,  # RegFifoRxBaseAddr
    0x1D: 0x72,  # RegModemConfig1: BW 125 kHz, CR 4/5, explicit header
    0x1E: 0x70,  # RegModemConfig2: SF7
    0x1F: 0x64,  # RegSymbTimeoutLsb
    0x20: 0x00,  # RegPreamble: 8
    0x21: 0x08,
    0x22: 0x01,  # RegPayloadLength
    0x23: 0xFF,  # RegMaxPayloadLength
    0x26: 0x04,  # RegModemConfig3: AgcAutoOn
    0x39: 0x12,  # RegSyncWord
    0x42: 0x12,  # RegVersion
    0x4D: 0x84,  # RegPaDac
}


class SX1276Model:
    spi_mode = (0, 0)
    spi_max_hz = 10000000

    def __init__(self, on_tx=None, clock_us=None, emit=None) -> None:
        self.on_tx = on_tx
        self.emit = emit
        self.clock_us = clock_us if clock_us is not None else _default_clock()
        self.regs = bytearray(0x80)
        self.fifo = bytearray(256)
        self.in_reset = False
        self._addr = -1  # register address of the SPI transaction in progress
        self._write = False
        self._selected = False
        self._mode_since = 0
        self._toa_us = 0
        self._rx_first = True
        self.tx_count = 0
        self.rx_count = 0
        self.mode_us = [0] * 8  # time spent in each RegOpMode mode (a power budget, and "asleep between uses")
        self._acct_mode = 1
        self._acct_t = self.clock_us()
        self.power_on_reset()

    # --- reset and pins --------------------------------------------------------

    def _account(self) -> None:
        now = self.clock_us()
        self.mode_us[self._acct_mode] += now - self._acct_t
        self._acct_t = now
        self._acct_mode = self.regs[_REG_OP_MODE] & 0x07

    def stats(self) -> dict:
        """Time in each mode so far (us) and the current mode."""
        self._account()
        return {"mode": MODE_NAMES[self.mode()], "mode_us": {MODE_NAMES[i]: self.mode_us[i] for i in range(8) if self.mode_us[i]}}

    def power_on_reset(self) -> None:
        if hasattr(self, "mode_us"):
            self._account()
        for i in range(len(self.regs)):
            self.regs[i] = 0
        for reg, value in _POR.items():
            self.regs[reg] = value
        for i in range(256):
            self.fifo[i] = 0
        self._addr = -1
        self._mode_since = self.clock_us()
        if hasattr(self, "mode_us"):
            self._acct_mode = self.regs[_REG_OP_MODE] & 0x07

    def nreset(self, level: int) -> None:
        """The MCU drives NRESET: low holds the chip in reset, high releases it."""
        if level == 0:
            self.in_reset = True
        elif self.in_reset:
            self.in_reset = False
            self.power_on_reset()

    def dio0(self) -> int:
        """Level of DIO0 as RegDioMapping1 routes it."""
        self.tick()
        mapping = self.regs[_REG_DIO_MAPPING1] >> 6
        flags = self.regs[_REG_IRQ_FLAGS]
        if mapping == 0:
            return 1 if flags & _IRQ_RX_DONE else 0
        if mapping == 1:
            return 1 if flags & _IRQ_TX_DONE else 0
        if mapping == 2:
            return 1 if flags & _IRQ_CAD_DONE else 0
        return 0

    # --- SPI --------------------------------------------------------------------

    def spi_select(self, selected: bool) -> None:
        self._selected = selected
        self._addr = -1

    def spi_byte(self, b: int) -> int:
        if self.in_reset or not self._selected:
            return 0
        if self._addr < 0:
            self._addr = b & 0x7F
            self._write = bool(b & 0x80)
            return 0
        addr = self._addr
        if self._write:
            self.write(addr, b)
            out = 0
        else:
            out = self.read(addr)
        if addr != _REG_FIFO:
            self._addr = (addr + 1) & 0x7F
        return out

    # --- register semantics -------------------------------------------------------

    def mode(self) -> int:
        return self.regs[_REG_OP_MODE] & 0x07

    def long_range(self) -> bool:
        return bool(self.regs[_REG_OP_MODE] & 0x80)

    def read(self, addr: int) -> int:
        self.tick()
        if addr == _REG_FIFO:
            if self.mode() == _MODE_SLEEP:
                return 0
            ptr = self.regs[_REG_FIFO_ADDR_PTR]
            self.regs[_REG_FIFO_ADDR_PTR] = (ptr + 1) & 0xFF
            return self.fifo[ptr]
        return self.regs[addr]

    def write(self, addr: int, value: int) -> None:
        self.tick()
        value &= 0xFF
        if addr == _REG_FIFO:
            mode = self.mode()
            if mode == _MODE_SLEEP or mode == _MODE_TX:
                return
            ptr = self.regs[_REG_FIFO_ADDR_PTR]
            self.fifo[ptr] = value
            self.regs[_REG_FIFO_ADDR_PTR] = (ptr + 1) & 0xFF
        elif addr == _REG_OP_MODE:
            self._set_op_mode(value)
        elif addr == _REG_IRQ_FLAGS:
            self.regs[_REG_IRQ_FLAGS] &= ~value & 0xFF
        elif addr in _READ_ONLY:
            return
        else:
            self.regs[addr] = value

    def _set_op_mode(self, value: int) -> None:
        old = self.regs[_REG_OP_MODE]
        old_mode = old & 0x07
        if old_mode != _MODE_SLEEP:
            value = (value & 0x7F) | (old & 0x80)  # LongRangeMode only changes in SLEEP
        new_mode = value & 0x07
        self._account()
        self.regs[_REG_OP_MODE] = value
        self._acct_mode = new_mode
        if new_mode == old_mode:
            return
        self._mode_since = self.clock_us()
        if new_mode == _MODE_SLEEP:
            for i in range(256):
                self.fifo[i] = 0
        elif new_mode == _MODE_TX:
            self._start_tx()
        elif new_mode in (_MODE_RX_CONTINUOUS, _MODE_RX_SINGLE):
            self._rx_first = True

    def _set_irq(self, bits: int) -> None:
        self.regs[_REG_IRQ_FLAGS] |= bits & ~self.regs[_REG_IRQ_FLAGS_MASK] & 0xFF

    def settings(self) -> dict:
        """The radio settings the registers hold right now."""
        r = self.regs
        frf = (r[0x06] << 16) | (r[0x07] << 8) | r[0x08]
        bw_code = r[_REG_MODEM_CONFIG1] >> 4
        bw = airtime.BANDWIDTHS_HZ[bw_code] if bw_code < len(airtime.BANDWIDTHS_HZ) else 0
        cr = ((r[_REG_MODEM_CONFIG1] >> 1) & 0x07) + 4
        sf = r[_REG_MODEM_CONFIG2] >> 4
        preamble = (r[_REG_PREAMBLE_MSB] << 8) | r[_REG_PREAMBLE_LSB]
        return {
            "freq_hz": (frf * 15625 + 128) >> 8,  # Frf * 32e6 / 2^19
            "sf": sf,
            "bw_hz": bw,
            "cr": cr,
            "power_dbm": self.power_dbm(),
            "sync_word": r[_REG_SYNC_WORD],
            "preamble": preamble,
            "crc": bool(r[_REG_MODEM_CONFIG2] & 0x04),
            "implicit_header": bool(r[_REG_MODEM_CONFIG1] & 0x01),
            "ldro": bool(r[_REG_MODEM_CONFIG3] & 0x08),
        }

    def power_dbm(self) -> int:
        pa = self.regs[_REG_PA_CONFIG]
        out = pa & 0x0F
        if pa & 0x80:  # PA_BOOST
            if self.regs[_REG_PA_DAC] & 0x07 == 0x07:
                return 5 + out
            return 2 + out
        pmax10 = 108 + 6 * ((pa >> 4) & 0x07)  # 0.1 dBm
        return (pmax10 - 10 * (15 - out) + 5) // 10

    def _airtime_us(self, n: int, s: dict) -> int:
        sf = s["sf"]
        if not 6 <= sf <= 12 or s["bw_hz"] == 0 or not 5 <= s["cr"] <= 8:
            return 0
        preamble = s["preamble"] if s["preamble"] >= 6 else 6
        t = airtime.time_on_air_s(n, sf, s["bw_hz"], s["cr"], preamble, not s["implicit_header"], s["crc"], s["ldro"])
        return int(t * 1000000)

    def _start_tx(self) -> None:
        if not self.long_range():
            self._warn("tx_in_fsk_mode", {})
            self._toa_us = 0
            return
        n = self.regs[_REG_PAYLOAD_LENGTH]
        base = self.regs[_REG_FIFO_TX_BASE]
        payload = bytes(self.fifo[(base + i) & 0xFF] for i in range(n))
        s = self.settings()
        self._toa_us = self._airtime_us(n, s) if n else 0
        s["toa_us"] = self._toa_us
        if n == 0:
            self._warn("tx_empty", {})
            return
        if s["ldro"] != airtime.low_data_rate_optimize(s["sf"], s["bw_hz"]):
            self._warn("ldro_mismatch", {"sf": s["sf"], "bw_hz": s["bw_hz"], "ldro": s["ldro"]})
        self.tx_count += 1
        if self.on_tx is not None:
            self.on_tx(payload, s)

    def _warn(self, event: str, data: dict) -> None:
        if self.emit is not None:
            self.emit("radio_" + event, data)

    def tick(self) -> None:
        """Advance time-driven state: TX end, RX single timeout, CAD end."""
        mode = self.mode()
        if mode not in (_MODE_TX, _MODE_RX_SINGLE, _MODE_CAD):
            return
        elapsed = self.clock_us() - self._mode_since
        if mode == _MODE_TX:
            if elapsed >= self._toa_us:
                self._set_irq(_IRQ_TX_DONE)
                self._account()
                self.mode_us[_MODE_TX] -= elapsed - self._toa_us  # the TX ended at its time on air
                self.mode_us[_MODE_STDBY] += elapsed - self._toa_us
                self.regs[_REG_OP_MODE] = (self.regs[_REG_OP_MODE] & 0xF8) | _MODE_STDBY
                self._acct_mode = _MODE_STDBY
                self._mode_since += self._toa_us
            return
        s = self.settings()
        if s["bw_hz"] == 0:
            return
        t_sym_us = (1000000 << s["sf"]) // s["bw_hz"]
        if mode == _MODE_RX_SINGLE:
            symbols = ((self.regs[_REG_MODEM_CONFIG2] & 0x03) << 8) | self.regs[_REG_SYMB_TIMEOUT_LSB]
            if elapsed >= symbols * t_sym_us:
                self._set_irq(_IRQ_RX_TIMEOUT)
                self._account()
                self.regs[_REG_OP_MODE] = (self.regs[_REG_OP_MODE] & 0xF8) | _MODE_STDBY
                self._acct_mode = _MODE_STDBY
        elif elapsed >= 2 * t_sym_us:
            self._set_irq(_IRQ_CAD_DONE)
            self._account()
            self.regs[_REG_OP_MODE] = (self.regs[_REG_OP_MODE] & 0xF8) | _MODE_STDBY
            self._acct_mode = _MODE_STDBY

    # --- the air -> this radio ------------------------------------------------------

    def inject(
        self,
        payload: bytes,
        freq_hz: int,
        sf: int,
        bw_hz: int,
        sync_word: int,
        rssi_dbm: float = -80.0,
        snr_db: float = 9.0,
        crc_ok: bool = True,
    ) -> str:
        """A packet ends on the air now; 'received' or why it was not."""
        self.tick()
        if self.in_reset:
            return "in_reset"
        if not self.long_range():
            return "not_lora"
        mode = self.mode()
        if mode not in (_MODE_RX_CONTINUOUS, _MODE_RX_SINGLE):
            return "not_listening"
        s = self.settings()
        if abs(freq_hz - s["freq_hz"]) > s["bw_hz"] // 4:
            return "wrong_frequency"
        if sf != s["sf"]:
            return "wrong_sf"
        if bw_hz != s["bw_hz"]:
            return "wrong_bw"
        if sync_word != s["sync_word"]:
            return "wrong_sync_word"
        n = len(payload)
        if n == 0 or n > 255:
            return "bad_length"
        if self._rx_first or mode == _MODE_RX_SINGLE:
            start = self.regs[_REG_FIFO_RX_BASE]
        else:
            start = self.regs[_REG_FIFO_RX_BYTE_ADDR]
        for i in range(n):
            self.fifo[(start + i) & 0xFF] = payload[i]
        self._rx_first = False
        r = self.regs
        r[_REG_FIFO_RX_CURRENT] = start
        r[_REG_FIFO_RX_BYTE_ADDR] = (start + n) & 0xFF
        r[_REG_RX_NB_BYTES] = n
        snr4 = int(round(snr_db * 4))
        snr4 = max(-128, min(127, snr4))
        r[_REG_PKT_SNR] = snr4 & 0xFF
        pkt_rssi = int(round(rssi_dbm + 157 - (snr4 / 4 if snr4 < 0 else 0)))
        r[_REG_PKT_RSSI] = max(0, min(255, pkt_rssi))
        flags = _IRQ_RX_DONE | _IRQ_VALID_HEADER
        if not crc_ok:
            flags |= _IRQ_CRC_ERROR
        self._set_irq(flags)
        if mode == _MODE_RX_SINGLE:
            self._account()
            r[_REG_OP_MODE] = (r[_REG_OP_MODE] & 0xF8) | _MODE_STDBY
            self._acct_mode = _MODE_STDBY
        self.rx_count += 1
        return "received"
