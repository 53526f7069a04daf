"""Wires an emulated SX1276 (hil/emu/sx1276_model.py) to the stand-in Pi, as a radio HAT is wired.

SPI: the model answers on /dev/spidev<bus>.<device>. DIO0 drives a GPIO input
(edge callbacks fire on the stand-in's event thread). A GPIO output drives
NRESET. One lock serialises the model between SPI, the GPIO sampler and the
bench's ``receive`` (the "air"), since those run on different threads.

Import with ``hil/pi_standins`` on ``sys.path`` (as ``pi_wiring``), so that it
shares the ``spidev`` and ``RPi.GPIO`` modules the code under test imports.
"""

from __future__ import annotations

import threading

import spidev
from RPi import GPIO

from hil.emu.sx1276_model import SX1276Model


class WiredSX1276:
    def __init__(self, model: SX1276Model, bus: int = 0, device: int = 0, dio0_pin: int = 25,
                 reset_pin: int = 22) -> None:
        self.model = model
        self.bus, self.device = bus, device
        self.lock = threading.RLock()
        spidev.attach(bus, device, model, self.lock)
        GPIO.wire_input(dio0_pin, self._dio0)
        GPIO.wire_output(reset_pin, self._nreset)

    def _dio0(self) -> int:
        with self.lock:
            return int(self.model.dio0())

    def _nreset(self, level: int) -> None:
        with self.lock:
            self.model.nreset(level)

    def receive(self, payload: bytes, freq_hz: int, sf: int, bw_hz: int, sync_word: int, rssi_dbm: float = -80.0,
                snr_db: float = 9.0, crc_ok: bool = True) -> str:
        """A packet ends on the air now; the model's verdict ('received' or why not)."""
        with self.lock:
            return str(self.model.inject(payload, freq_hz, sf, bw_hz, sync_word, rssi_dbm, snr_db, crc_ok))

    def unplug(self) -> None:
        """The module comes off its connector: SPI reads 0x00, DIO0 stays low."""
        spidev.detach(self.bus, self.device)
        with self.lock:
            self.model.nreset(0)

    def plug(self) -> None:
        """Back on the connector: powered up afresh (registers at their reset values)."""
        with self.lock:
            self.model.nreset(0)
            self.model.nreset(1)
        spidev.attach(self.bus, self.device, self.model, self.lock)
