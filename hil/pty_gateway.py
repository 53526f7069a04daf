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
        self._tx_decoder = sl.SlipDecoder()
        self.dropped = 0  # packets lost because the fog was not reading and the tty buffer was full
        self.plug()

    def plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no line discipline: bytes pass as they are (0x0A, 0x0D, 0x03 included)
        tty.setraw(master)
        os.set_blocking(master, False)  # a fog that stops reading must not stall the bench
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

    def write_raw(self, data: bytes) -> bool:
        """Write to the line; False (and counted) when the tty buffer is full, as a gateway drops."""
        if self.master is None:
            raise OSError("gateway unplugged")
        try:
            n = os.write(self.master, data)
        except BlockingIOError:
            n = 0
        if n < len(data):
            # A cut packet (if n > 0) is what the fog's SLIP decoder resynchronises past at the next END.
            self.dropped += 1
            return False
        return True

    def send_rx(self, radio_frame: bytes, rssi_dbm: int = -90, snr_db: float = 7.5) -> None:
        """One heard radio frame, as the gateway firmware forwards it."""
        if self.write_raw(sl.encode_rx(radio_frame, self.gateway_id, rssi_dbm, snr_db, self.sf, self.freq_hz)):
            self.sent += 1

    def read_tx(self) -> list[dict]:
        """Downlink packets the fog wrote to the gateway since the last call (non-blocking)."""
        if self.master is None:
            return []
        out: list[dict] = []
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except (BlockingIOError, OSError):
                break
            if not chunk:
                break
            out.extend(p for p in self._tx_decoder.feed(chunk) if isinstance(p, dict) and p["kind"] == sl.TX)
        return out

    def close(self) -> None:
        self.unplug()
        self.port_path.unlink(missing_ok=True)
