"""An emulated gateway board on a pseudo-terminal: the fog's serial ingest sees a real tty.

The bench writes proto/SERIAL.md packets into the pty master; the fog opens
the slave through pyserial exactly as it opens /dev/ttyUSB0. ``port_path`` is a
stable symlink (as udev's /dev/serial/by-id is), so ``unplug``/``replug``
can swap the pty underneath, as pulling the USB cable does.
"""

from __future__ import annotations

import os
import tty
from pathlib import Path

from proto import serial_link as sl


class PtyGateway:
    def __init__(self, link_path: Path, gateway_id: int = 1, sf: int = 7, freq_hz: int = 868_100_000) -> None:
        self.port_path = Path(link_path)
        self.gateway_id = gateway_id
        self.sf = sf
        self.freq_hz = freq_hz
        self.master: int | None = None
        self._slave: int | None = None
        self.sent = 0
        self.plug()

    def plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no line discipline: bytes pass as they are (0x0A, 0x0D, 0x03 included)
        tty.setraw(master)
        self.master, self._slave = master, slave
        tmp = self.port_path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(self.port_path)

    def unplug(self) -> None:
        """Close both ends: the fog's reads fail as when the board is pulled."""
        for fd in (self.master, self._slave):
            if fd is not None:
                os.close(fd)
        self.master = self._slave = None

    def replug(self) -> None:
        self.unplug()
        self.plug()

    def write_raw(self, data: bytes) -> None:
        if self.master is None:
            raise OSError("gateway unplugged")
        view = memoryview(data)
        while view:
            n = os.write(self.master, view)
            view = view[n:]

    def send_rx(self, radio_frame: bytes, rssi_dbm: int = -90, snr_db: float = 7.5) -> None:
        """One heard radio frame, as the gateway firmware forwards it."""
        self.write_raw(sl.encode_rx(radio_frame, self.gateway_id, rssi_dbm, snr_db, self.sf, self.freq_hz))
        self.sent += 1

    def close(self) -> None:
        self.unplug()
        self.port_path.unlink(missing_ok=True)
