"""SX1276/77/78/79 (RFM95/96, HopeRF) LoRa transceiver over machine.SPI.

Registers used (LoRa mode, SX1276 datasheet rev 7, section 6.4):

    0x00 RegFifo              FIFO access through FifoAddrPtr
    0x01 RegOpMode            bit7 LongRangeMode (only writable in SLEEP),
                              bits2-0 mode: 0 SLEEP 1 STDBY 3 TX 5 RXCONTINUOUS 6 RXSINGLE
    0x06-0x08 RegFrf          Frf = freq * 2^19 / 32 MHz
    0x09 RegPaConfig          bit7 PaSelect (PA_BOOST), bits3-0 OutputPower
    0x0B RegOcp               over-current protection trim
    0x0C RegLna               LnaBoostHf
    0x0D RegFifoAddrPtr, 0x0E RegFifoTxBaseAddr, 0x0F RegFifoRxBaseAddr,
    0x10 RegFifoRxCurrentAddr
    0x12 RegIrqFlags          write 1 to clear; TxDone 0x08, RxDone 0x40,
                              PayloadCrcError 0x20, RxTimeout 0x80
    0x13 RegRxNbBytes
    0x19 RegPktSnrValue       signed, 0.25 dB steps
    0x1A RegPktRssiValue      RSSI = -157 + value (HF port)
    0x1D RegModemConfig1      Bw[7:4] CodingRate[3:1] ImplicitHeaderModeOn[0]
    0x1E RegModemConfig2      SpreadingFactor[7:4] RxPayloadCrcOn[2]
    0x20-0x21 RegPreamble
    0x22 RegPayloadLength
    0x26 RegModemConfig3      LowDataRateOptimize[3] AgcAutoOn[2]
    0x39 RegSyncWord
    0x40 RegDioMapping1       Dio0Mapping[7:6]: 00 RxDone, 01 TxDone
    0x42 RegVersion           0x12 for the SX1276 family
    0x4D RegPaDac             0x87 enables +20 dBm on PA_BOOST

SPI: mode 0, MSB first, address byte bit7 = 1 for a write; the address
auto-increments within a burst, except RegFifo which walks FifoAddrPtr.
"""

import time

import machine

from proto import airtime

try:
    from micropython import const
except ImportError:  # CPython type checking / tests

    def const(expr):  # type: ignore[no-redef,misc]
        return expr


TYPE_CHECKING = const(False)  # mypy: True; MicroPython drops the block at compile time (no names interned)
if TYPE_CHECKING:
    from machine import SPI, Pin

_REG_FIFO = const(0x00)
_REG_OP_MODE = const(0x01)
_REG_FRF_MSB = const(0x06)
_REG_FRF_MID = const(0x07)
_REG_FRF_LSB = const(0x08)
_REG_PA_CONFIG = const(0x09)
_REG_OCP = const(0x0B)
_REG_LNA = const(0x0C)
_REG_FIFO_ADDR_PTR = const(0x0D)
_REG_FIFO_TX_BASE = const(0x0E)
_REG_FIFO_RX_BASE = const(0x0F)
_REG_FIFO_RX_CURRENT = const(0x10)
_REG_IRQ_FLAGS = const(0x12)
_REG_RX_NB_BYTES = const(0x13)
_REG_PKT_SNR = const(0x19)
_REG_PKT_RSSI = const(0x1A)
_REG_MODEM_CONFIG1 = const(0x1D)
_REG_MODEM_CONFIG2 = const(0x1E)
_REG_PREAMBLE_MSB = const(0x20)
_REG_PREAMBLE_LSB = const(0x21)
_REG_PAYLOAD_LENGTH = const(0x22)
_REG_MODEM_CONFIG3 = const(0x26)
_REG_SYNC_WORD = const(0x39)
_REG_DIO_MAPPING1 = const(0x40)
_REG_VERSION = const(0x42)
_REG_PA_DAC = const(0x4D)

_LONG_RANGE = const(0x80)
_MODE_SLEEP = const(0x00)
_MODE_STDBY = const(0x01)
_MODE_TX = const(0x03)
_MODE_RX_CONTINUOUS = const(0x05)
_MODE_RX_SINGLE = const(0x06)

_IRQ_RX_TIMEOUT = const(0x80)
_IRQ_RX_DONE = const(0x40)
_IRQ_CRC_ERROR = const(0x20)
_IRQ_TX_DONE = const(0x08)

_DIO0_RX_DONE = const(0x00)
_DIO0_TX_DONE = const(0x40)

VERSION = const(0x12)
_FXOSC = const(32000000)

BANDWIDTHS_HZ = airtime.BANDWIDTHS_HZ  # RegModemConfig1 Bw codes 0..9
_SETTINGS = ("freq_hz", "sf", "bw_hz", "cr", "power_dbm", "sync_word", "preamble", "crc")


class RadioError(OSError):
    pass


class SX127x:
    def __init__(
        self,
        spi: "SPI",
        cs: "Pin",
        reset: "Pin",
        dio0: "Pin",
        freq_hz: int = 868100000,
        sf: int = 7,
        bw_hz: int = 125000,
        cr: int = 5,
        power_dbm: int = 14,
        sync_word: int = 0x12,
        preamble: int = 8,
        crc: bool = True,
        cold: bool = True,
    ) -> None:
        """``cold`` False (a wake from deep sleep): the radio kept its registers while the MCU slept;
        reset and reconfigure only if they do not hold these settings."""
        self.spi = spi
        self.cs = cs
        self.reset_pin = reset
        self.dio0 = dio0
        cs.init(machine.Pin.OUT, value=1)
        dio0.init(machine.Pin.IN)
        self._w2 = bytearray(2)
        self._r2 = bytearray(2)
        self._addr = bytearray(1)
        self.last_rssi_dbm = None  # type: int | None
        self.last_snr_db = None  # type: float | None
        self.freq_hz = freq_hz
        self.sf = sf
        self.bw_hz = bw_hz
        self.cr = cr
        self.power_dbm = power_dbm
        self.sync_word = sync_word
        self.preamble = preamble
        self.crc = crc
        if not cold and self.read_reg(_REG_VERSION) == VERSION and self._configured():
            return
        self.reset()
        version = self.read_reg(_REG_VERSION)
        if version != VERSION:
            raise RadioError(19, f"SX127x not found: RegVersion 0x{version:02x}, expected 0x12")
        self.configure()

    def _configured(self) -> bool:
        """The registers hold LoRa mode and this frequency, SF and bandwidth (checked after deep sleep)."""
        frf = (self.freq_hz * (1 << 19) + _FXOSC // 2) // _FXOSC
        return (
            self.read_reg(_REG_OP_MODE) & _LONG_RANGE != 0
            and self.read_reg(_REG_FRF_MSB) == (frf >> 16) & 0xFF
            and self.read_reg(_REG_FRF_MID) == (frf >> 8) & 0xFF
            and self.read_reg(_REG_FRF_LSB) == frf & 0xFF
            and self.read_reg(_REG_MODEM_CONFIG2) >> 4 == self.sf
            and self.read_reg(_REG_MODEM_CONFIG1) >> 4 == BANDWIDTHS_HZ.index(self.bw_hz)
        )

    # --- register access -------------------------------------------------

    def read_reg(self, reg: int) -> int:
        w = self._w2
        w[0] = reg & 0x7F
        w[1] = 0
        self.cs.value(0)
        self.spi.write_readinto(w, self._r2)
        self.cs.value(1)
        return self._r2[1]

    def write_reg(self, reg: int, value: int) -> None:
        w = self._w2
        w[0] = reg | 0x80
        w[1] = value & 0xFF
        self.cs.value(0)
        self.spi.write(w)
        self.cs.value(1)

    def _write_fifo(self, data: bytes) -> None:
        self._addr[0] = _REG_FIFO | 0x80
        self.cs.value(0)
        self.spi.write(self._addr)
        self.spi.write(data)
        self.cs.value(1)

    def _read_fifo(self, n: int) -> bytes:
        buf = bytearray(n)
        self._addr[0] = _REG_FIFO
        self.cs.value(0)
        self.spi.write(self._addr)
        self.spi.readinto(buf, 0)
        self.cs.value(1)
        return bytes(buf)

    # --- control -----------------------------------------------------------

    def reset(self) -> None:
        """Pulse NRESET low for 1 ms, then wait 10 ms (datasheet: >100 us, then 5 ms)."""
        r = self.reset_pin
        r.init(machine.Pin.OUT, value=1)
        r.value(0)
        time.sleep_ms(1)
        r.value(1)
        time.sleep_ms(10)

    def set_mode(self, mode: int) -> None:
        self.write_reg(_REG_OP_MODE, _LONG_RANGE | mode)

    def mode(self) -> int:
        return self.read_reg(_REG_OP_MODE) & 0x07

    def sleep(self) -> None:
        self.set_mode(_MODE_SLEEP)

    def standby(self) -> None:
        self.set_mode(_MODE_STDBY)

    def configure(self, **settings: "int | bool") -> None:
        """(Re)apply the radio settings; keyword arguments (named as in __init__) change them first."""
        for name in settings:
            if name not in _SETTINGS:
                raise TypeError("unknown radio setting " + name)
            setattr(self, name, settings[name])
        if not 7 <= self.sf <= 12:
            raise ValueError("sf must be 7..12 (explicit header)")
        if self.bw_hz not in BANDWIDTHS_HZ:
            raise ValueError("bw_hz must be one of " + str(BANDWIDTHS_HZ))
        if not 5 <= self.cr <= 8:
            raise ValueError("cr must be 5..8 (4/5..4/8)")
        if not (2 <= self.power_dbm <= 17 or self.power_dbm == 20):
            raise ValueError("power_dbm must be 2..17 or 20 (PA_BOOST)")
        # LongRangeMode can only change in SLEEP.
        self.write_reg(_REG_OP_MODE, _MODE_SLEEP)
        self.write_reg(_REG_OP_MODE, _LONG_RANGE | _MODE_SLEEP)
        time.sleep_ms(1)
        frf = (self.freq_hz * (1 << 19) + _FXOSC // 2) // _FXOSC
        self.write_reg(_REG_FRF_MSB, (frf >> 16) & 0xFF)
        self.write_reg(_REG_FRF_MID, (frf >> 8) & 0xFF)
        self.write_reg(_REG_FRF_LSB, frf & 0xFF)
        if self.power_dbm == 20:
            self.write_reg(_REG_PA_DAC, 0x87)
            self.write_reg(_REG_OCP, 0x20 | 17)  # 140 mA
            self.write_reg(_REG_PA_CONFIG, 0x80 | 0x70 | 15)
        else:
            self.write_reg(_REG_PA_DAC, 0x84)
            self.write_reg(_REG_OCP, 0x20 | 11)  # 100 mA
            self.write_reg(_REG_PA_CONFIG, 0x80 | 0x70 | (self.power_dbm - 2))
        self.write_reg(_REG_LNA, 0x23)  # max gain, LnaBoostHf
        self.write_reg(_REG_FIFO_TX_BASE, 0x00)
        self.write_reg(_REG_FIFO_RX_BASE, 0x00)
        bw_code = BANDWIDTHS_HZ.index(self.bw_hz)
        self.write_reg(_REG_MODEM_CONFIG1, (bw_code << 4) | ((self.cr - 4) << 1))  # explicit header
        self.write_reg(_REG_MODEM_CONFIG2, (self.sf << 4) | (0x04 if self.crc else 0))
        ldro = 0x08 if airtime.low_data_rate_optimize(self.sf, self.bw_hz) else 0
        self.write_reg(_REG_MODEM_CONFIG3, ldro | 0x04)  # AgcAutoOn
        self.write_reg(_REG_PREAMBLE_MSB, (self.preamble >> 8) & 0xFF)
        self.write_reg(_REG_PREAMBLE_LSB, self.preamble & 0xFF)
        self.write_reg(_REG_SYNC_WORD, self.sync_word & 0xFF)
        self.write_reg(_REG_IRQ_FLAGS, 0xFF)

    def time_on_air_ms(self, n: int) -> float:
        return airtime.time_on_air_ms(n, self.sf, self.bw_hz, self.cr, self.preamble, True, self.crc)

    def _irq_or_dio0(self, mask: int) -> int:
        """IRQ flags when DIO0 is up or the flag is already set (DIO0 may be unwired)."""
        if self.dio0.value():
            return self.read_reg(_REG_IRQ_FLAGS)
        flags = self.read_reg(_REG_IRQ_FLAGS)
        return flags if flags & mask else 0

    def send(self, frame: bytes, timeout_ms: "int | None" = None) -> bool:
        """Transmit one packet; True on TxDone, False on timeout. Leaves the radio asleep."""
        n = len(frame)
        if not 1 <= n <= 255:
            raise ValueError("LoRa payload must be 1..255 bytes")
        if timeout_ms is None:
            timeout_ms = int(self.time_on_air_ms(n) * 1.5) + 100
        self.standby()
        self.write_reg(_REG_FIFO_TX_BASE, 0x00)
        self.write_reg(_REG_FIFO_ADDR_PTR, 0x00)
        self._write_fifo(frame)
        self.write_reg(_REG_PAYLOAD_LENGTH, n)
        self.write_reg(_REG_DIO_MAPPING1, _DIO0_TX_DONE)
        self.write_reg(_REG_IRQ_FLAGS, 0xFF)
        self.set_mode(_MODE_TX)
        t0 = time.ticks_ms()
        done = False
        while True:
            if self._irq_or_dio0(_IRQ_TX_DONE) & _IRQ_TX_DONE:
                done = True
                break
            if time.ticks_diff(time.ticks_ms(), t0) > timeout_ms:
                break
            time.sleep_ms(1)
        self.write_reg(_REG_IRQ_FLAGS, 0xFF)
        self.sleep()
        return done

    def rx_window(self, ms: int) -> "bytes | None":
        """Listen for ``ms`` milliseconds; the first good packet, or None. Leaves the radio asleep.

        Sets ``last_rssi_dbm`` / ``last_snr_db`` for a received packet.
        Packets with a CRC error are dropped and listening continues.
        """
        self.standby()
        self.write_reg(_REG_FIFO_RX_BASE, 0x00)
        self.write_reg(_REG_FIFO_ADDR_PTR, 0x00)
        self.write_reg(_REG_DIO_MAPPING1, _DIO0_RX_DONE)
        self.write_reg(_REG_IRQ_FLAGS, 0xFF)
        self.set_mode(_MODE_RX_CONTINUOUS)
        t0 = time.ticks_ms()
        got = None
        while time.ticks_diff(time.ticks_ms(), t0) < ms:
            flags = self._irq_or_dio0(_IRQ_RX_DONE)
            if flags & _IRQ_RX_DONE:
                self.write_reg(_REG_IRQ_FLAGS, 0xFF)
                if flags & _IRQ_CRC_ERROR:
                    continue
                n = self.read_reg(_REG_RX_NB_BYTES)
                self.write_reg(_REG_FIFO_ADDR_PTR, self.read_reg(_REG_FIFO_RX_CURRENT))
                got = self._read_fifo(n)
                snr = self.read_reg(_REG_PKT_SNR)
                if snr & 0x80:
                    snr -= 256
                rssi = -157 + self.read_reg(_REG_PKT_RSSI)
                if snr < 0:
                    rssi += snr // 4
                self.last_snr_db = snr / 4
                self.last_rssi_dbm = rssi
                break
            time.sleep_ms(2)
        self.sleep()
        return got
