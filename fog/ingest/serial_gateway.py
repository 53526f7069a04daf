"""Serial gateway ingest: a gateway board on USB serial, the proto/SERIAL.md link.

One thread per port (pyserial reads block). It survives unplug/replug by
reopening with exponential backoff, and garbage on the line by SLIP
resynchronisation; damaged packets are counted, never fatal.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

import serial

from fog.admission import Reception
from fog.config import SerialIngest
from proto import serial_link as sl

log = logging.getLogger("fogpark.fog.serial")


class KeepInputSerial(serial.Serial):
    """pyserial flushes the input buffer when it opens a port. A fog restarting (or
    reopening after a glitch) would throw away frames the gateway delivered meanwhile;
    each is authenticated and counter-checked anyway, so keep them."""

    _opening = False

    def open(self) -> None:
        self._opening = True
        try:
            super().open()
        finally:
            self._opening = False

    def _reset_input_buffer(self) -> None:
        if not self._opening:
            super()._reset_input_buffer()  # type: ignore[misc]


class SerialGateway:
    """Reads RX packets from one port and hands each radio frame to ``submit``."""

    def __init__(
        self,
        cfg: SerialIngest,
        submit: Callable[[Reception], None],
        on_link_error: Callable[[str, str], None] | None = None,
        backoff_max_s: float = 10.0,
    ) -> None:
        self.cfg = cfg
        self.submit = submit
        self.on_link_error = on_link_error or (lambda gw, reason: None)
        self.backoff_max_s = backoff_max_s
        self.connected = False
        self.last_error = ""
        self.packets = 0
        self.reopens = 0
        self._stop = threading.Event()
        self._port: serial.Serial | None = None
        self._thread = threading.Thread(target=self._run, name=f"serial-{cfg.gateway}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        port = self._port
        if port is not None:
            try:
                port.cancel_read()
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        self._thread.join(timeout=3)

    def write(self, data: bytes) -> bool:
        """Send a downlink packet; False when the gateway is not connected."""
        port = self._port
        if port is None or not self.connected:
            return False
        try:
            port.write(data)
            return True
        except (serial.SerialException, OSError):
            return False

    def _run(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            try:
                self._port = KeepInputSerial(self.cfg.port, self.cfg.baud, timeout=0.2)
            except (serial.SerialException, OSError) as err:
                self._note_down(f"cannot open {self.cfg.port}: {err}")
                self._stop.wait(delay * (0.5 + random.random()))  # jitter: gateways do not retry in step
                delay = min(delay * 2, self.backoff_max_s)
                continue
            delay = 0.1
            self.connected = True
            self.last_error = ""
            log.info("serial gateway %s connected on %s", self.cfg.gateway, self.cfg.port)
            try:
                self._read_loop(self._port)
            except (serial.SerialException, OSError) as err:
                self._note_down(f"{self.cfg.port} lost: {err}")
            finally:
                self.connected = False
                try:
                    self._port.close()
                except Exception:  # noqa: BLE001 - the device may already be gone
                    pass
                self._port = None
                if not self._stop.is_set():
                    self.reopens += 1

    def _note_down(self, why: str) -> None:
        if why != self.last_error:
            log.warning("serial gateway %s: %s", self.cfg.gateway, why)
        self.last_error = why
        self.connected = False

    def _read_loop(self, port: serial.Serial) -> None:
        decoder = sl.SlipDecoder()
        while not self._stop.is_set():
            chunk = port.read(max(1, port.in_waiting or 1))
            if not chunk:
                continue
            now_ms = int(time.time() * 1000)
            for item in decoder.feed(chunk):
                if isinstance(item, sl.LinkError):
                    self.on_link_error(self.cfg.gateway, item.reason)
                    continue
                self.packets += 1
                if item["kind"] == sl.RX:
                    self.submit(Reception(item["frame"], self.cfg.gateway, item["gateway_id"], item["rssi_dbm"],
                                          item["snr_db"], now_ms, item["sf"], item["freq_hz"]))
