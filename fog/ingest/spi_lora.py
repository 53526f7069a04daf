"""A SX127x on the Raspberry Pi's SPI bus, driven through pyLoRa (PyPI ``pyLoRa``, module ``SX127x``).

pyLoRa 0.3.1 needs handling before it can be trusted with a fog's frames:

* **Import side effects.** ``SX127x.board_config`` imports ``RPi.GPIO`` and
  ``spidev``; ``SX127x.LoRa`` opens SPI *while defining its classes*
  (``LoRa.spi = BOARD.SpiDev()`` with ``BOARD.SPI_BUS/SPI_CS``, and
  ``LoRa2.spi`` on bus 0 CS 1). So this module imports nothing of pyLoRa at
  load: the radio thread sets ``BOARD`` from ``[ingest.spi]`` first, then
  imports it. One radio per process (the SPI handle is class state).
* **Board setup.** ``BOARD.setup()`` blinks an LED on GPIO 13 and pyLoRa
  registers edge detection on four fixed DIO pins. Here GPIO is set up for the
  configured reset and DIO0 pins only, and DIO0's RxDone goes to this module.
* **RX checks.** ``rx_is_good()`` returns False whenever RxDone is set, so
  ``read_payload()`` without ``nocheck`` drops every packet; with
  ``nocheck=True`` it skips the CRC check. PayloadCrcError is checked here.
* **SNR and RSSI.** ``get_pkt_snr_value()`` computes ``(256 - v) / 4``, wrong
  for every value (RegPktSnrValue is two's complement in 0.25 dB);
  ``get_pkt_rssi_value()`` has no SNR < 0 correction and defaults to the
  low-band offset. Both are read from the registers here (datasheet 5.5.5).
* **Mode cache.** ``set_mode()`` skips writes it believes redundant, and
  LongRangeMode only changes in SLEEP: RegOpMode is written and read back here.

The radio thread brings the chip up (reset pulse, RegVersion 0x12, LoRa
settings, RX continuous), then checks every ``poll_s`` that it is still there
and listening (a missed DIO0 edge is serviced by that poll). A lost or reset
chip is brought up again with backoff and jitter; CRC errors are counted.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from fog.admission import Reception
from fog.config import SpiIngest
from proto import airtime

log = logging.getLogger("fogpark.fog.spi")

LF_MAX_HZ = 525_000_000  # above: the HF port (Semtech's RF_MID_BAND_THRESH)
RSSI_OFFSET_HF = -157
RSSI_OFFSET_LF = -164
VERSION = 0x12
PREAMBLE_SYMBOLS = 8

REG_FIFO_RX_BASE_ADDR = 0x0F
REG_OP_MODE = 0x01
REG_IRQ_FLAGS = 0x12
REG_PKT_SNR_VALUE = 0x19
REG_PKT_RSSI_VALUE = 0x1A
REG_VERSION = 0x42
IRQ_RX_DONE = 0x40
IRQ_CRC_ERROR = 0x20
MODE_SLEEP = 0x80  # LongRangeMode | SLEEP
MODE_STDBY = 0x81
MODE_RXCONT = 0x85


class RadioError(Exception):
    """The radio is absent, not responding as a SX127x, or left the mode it was put in."""


def packet_snr_db(reg: int) -> float:
    """RegPktSnrValue: two's complement, 0.25 dB steps."""
    return (reg - 256 if reg & 0x80 else reg) / 4


def packet_rssi_dbm(reg: int, snr_db: float, high_band: bool) -> float:
    """Datasheet 5.5.5: offset + RegPktRssiValue, plus the SNR when it is negative."""
    rssi = (RSSI_OFFSET_HF if high_band else RSSI_OFFSET_LF) + reg
    return rssi + snr_db if snr_db < 0 else float(rssi)


class SpiLoRaRadio:
    """Receives frames on one SX127x and hands each good one to ``submit``."""

    def __init__(
        self,
        cfg: SpiIngest,
        submit: Callable[[Reception], None],
        on_link_error: Callable[[str, str], None] | None = None,
        backoff_max_s: float = 10.0,
        poll_s: float = 0.2,
    ) -> None:
        self.cfg = cfg
        self.name = cfg.gateway
        self.submit = submit
        self.on_link_error = on_link_error or (lambda gw, reason: None)
        self.backoff_max_s = backoff_max_s
        self.poll_s = poll_s
        self.high_band = cfg.freq_hz > LF_MAX_HZ
        self.connected = False
        self.last_error = "not started"
        self.packets = 0
        self.crc_errors = 0
        self.bring_ups = 0
        self.serviced_by_poll = 0
        self._lock = threading.RLock()  # one SPI conversation at a time: GPIO callback thread vs. radio thread
        self._stop = threading.Event()
        self._radio: Any = None  # the pyLoRa LoRa object, made once per process
        self._gpio: Any = None
        self._thread = threading.Thread(target=self._run, name=f"spi-{cfg.gateway}", daemon=True)

    # --- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)

    def stats(self) -> dict[str, Any]:
        return {"connected": self.connected, "last_error": self.last_error, "packets": self.packets,
                "crc_errors": self.crc_errors, "bring_ups": self.bring_ups,
                "serviced_by_poll": self.serviced_by_poll}

    def _run(self) -> None:
        delay = 0.1
        try:
            while not self._stop.is_set():
                try:
                    self._bring_up()
                except (RadioError, OSError, ImportError, RuntimeError) as err:
                    self._note_down(str(err))
                    self._stop.wait(delay * (0.5 + random.random()))  # jitter
                    delay = min(delay * 2, self.backoff_max_s)
                    continue
                delay = 0.1
                self.connected, self.last_error = True, ""
                log.info("spi radio %s listening on spi%d.%d at %d Hz SF%d", self.name, self.cfg.bus,
                         self.cfg.device, self.cfg.freq_hz, self.cfg.sf)
                try:
                    while not self._stop.wait(self.poll_s):
                        self._check()
                except (RadioError, OSError) as err:
                    self._note_down(f"radio lost: {err}")
                finally:
                    self.connected = False
        finally:
            self._release()

    def _note_down(self, why: str) -> None:
        if why != self.last_error:
            log.warning("spi radio %s: %s", self.name, why)
        self.last_error = why
        self.connected = False

    # --- pyLoRa -----------------------------------------------------------------

    def _load(self) -> None:
        """Import pyLoRa with BOARD set from the config (its import opens SPI), once."""
        if self._radio is not None:
            return
        cfg = self.cfg
        try:
            import RPi.GPIO as GPIO
            from SX127x import board_config
        except ImportError as err:
            raise ImportError(f"[ingest.spi] needs pyLoRa, RPi.GPIO and spidev (pip install 'fogpark[pi]'): {err}"
                              ) from None
        board = board_config.BOARD
        board.SPI_BUS, board.SPI_CS = cfg.bus, cfg.device
        board.DIO0, board.RST = cfg.dio0_pin, cfg.reset_pin
        board.low_band = not self.high_band
        board.add_events = staticmethod(lambda *callbacks, **kw: None)  # only DIO0 is wired; registered below
        GPIO.setwarnings(False)
        GPIO.setmode(GPIO.BCM)
        GPIO.setup(cfg.reset_pin, GPIO.OUT, initial=GPIO.HIGH)
        GPIO.setup(cfg.dio0_pin, GPIO.IN, pull_up_down=GPIO.PUD_DOWN)
        try:
            from SX127x.LoRa import LoRa
        except OSError as err:  # no /dev/spidevB.D (SPI not enabled, or pyLoRa's second CS missing)
            raise OSError(f"pyLoRa could not open SPI at import (spi{cfg.bus}.{cfg.device} and spi0.1): {err}"
                          ) from None
        self._radio = LoRa(verbose=False)
        self._gpio = GPIO
        GPIO.add_event_detect(cfg.dio0_pin, GPIO.RISING, callback=self._on_dio0)

    def _bring_up(self) -> None:
        self._load()
        r, cfg = self._radio, self.cfg
        with self._lock:
            self._gpio.output(cfg.reset_pin, 0)  # datasheet 7.2.2: > 100 us low, then 5 ms before SPI
            time.sleep(0.001)
            self._gpio.output(cfg.reset_pin, 1)
            time.sleep(0.006)
            version = r.get_register(REG_VERSION)
            if version != VERSION:
                raise RadioError(f"no SX127x on spi{cfg.bus}.{cfg.device}: RegVersion reads {version:#04x}, "
                                 f"expected {VERSION:#04x}")
            r.set_register(REG_OP_MODE, MODE_SLEEP)  # from STDBY this reaches SLEEP; LoRa mode is set only there
            r.set_register(REG_OP_MODE, MODE_SLEEP)
            if r.get_mode() != MODE_SLEEP:  # get_mode() also resyncs pyLoRa's mode cache
                raise RadioError(f"radio did not enter LoRa sleep (RegOpMode {r.mode:#04x})")
            r.set_mode(MODE_STDBY)
            r.set_freq(cfg.freq_hz / 1e6)
            r.set_modem_config_1(bw=airtime.BANDWIDTHS_HZ.index(cfg.bw_hz), coding_rate=cfg.cr - 4,
                                 implicit_header_mode=0)
            r.set_modem_config_2(spreading_factor=cfg.sf, rx_crc=1)
            r.set_low_data_rate_optim(int(airtime.low_data_rate_optimize(cfg.sf, cfg.bw_hz)))
            r.set_sync_word(cfg.sync_word)
            r.set_preamble(PREAMBLE_SYMBOLS)
            r.set_register(REG_FIFO_RX_BASE_ADDR, 0)
            r.set_dio_mapping([0] * 6)  # DIO0 = RxDone
            r.set_register(REG_IRQ_FLAGS, 0xFF)
            r.set_mode(MODE_RXCONT)
            if r.get_mode() != MODE_RXCONT:
                raise RadioError(f"radio did not enter RX continuous (RegOpMode {r.mode:#04x})")
            self.bring_ups += 1

    def _check(self) -> None:
        """Still a SX127x, still listening; service an RxDone whose DIO0 edge was missed."""
        r = self._radio
        with self._lock:
            version = r.get_register(REG_VERSION)
            if version != VERSION:
                raise RadioError(f"RegVersion reads {version:#04x}: the SX127x stopped answering")
            mode = r.get_mode()
            if mode != MODE_RXCONT:
                raise RadioError(f"radio left RX continuous (RegOpMode {mode:#04x}): reset or brown-out")
            if r.get_register(REG_IRQ_FLAGS) & IRQ_RX_DONE:
                self.serviced_by_poll += 1
                self._service()

    def _on_dio0(self, channel: int) -> None:
        """RPi.GPIO's callback thread: DIO0 rose (RxDone)."""
        if self._stop.is_set() or not self.connected:
            return
        try:
            self._service()
        except Exception:  # noqa: BLE001 - the radio thread's next check brings the radio back
            log.exception("spi radio %s: reading a packet failed", self.name)

    def _service(self) -> None:
        r = self._radio
        with self._lock:
            flags = r.get_register(REG_IRQ_FLAGS)
            if not flags & IRQ_RX_DONE:
                return
            r.set_register(REG_IRQ_FLAGS, flags)  # write-1-to-clear what was seen: DIO0 falls
            if flags & IRQ_CRC_ERROR:
                self.crc_errors += 1
                self.on_link_error(self.name, "crc_error")
                return
            payload = bytes(r.read_payload(nocheck=True))  # nocheck: pyLoRa's own check is inverted
            snr = packet_snr_db(r.get_register(REG_PKT_SNR_VALUE))
            rssi = packet_rssi_dbm(r.get_register(REG_PKT_RSSI_VALUE), snr, self.high_band)
        self.packets += 1
        self.submit(Reception(payload, self.name, 0, round(rssi), snr, int(time.time() * 1000)))

    def _release(self) -> None:
        """Stop listening and give the pins back (the SPI handle is pyLoRa's, per process)."""
        if self._radio is None:
            return
        try:
            self._gpio.remove_event_detect(self.cfg.dio0_pin)
            with self._lock:
                self._radio.set_register(REG_OP_MODE, MODE_SLEEP)
            self._gpio.cleanup([self.cfg.dio0_pin, self.cfg.reset_pin])
        except Exception:  # noqa: BLE001 - shutting down anyway
            log.exception("spi radio %s: release failed", self.name)
