"""Real boards in a bench run: a node on USB serial that speaks the emulated node's line protocol.

A board flashed with the firmware in test mode (``hil/BENCH.md``) reads
``WORLD <json>`` / ``RX …`` / ``PING <token>`` lines on its USB UART — the same
lines the emulated node reads on stdin (``hil/emu/README.md``) — and reports
``TX <hex> <freq_hz> <sf> <bw_hz> <cr> <power_dbm> <sync_word>`` for every
packet its radio sends, plus ``EMU <event> <json>`` lines. :class:`HardwareNode`
is an :class:`EmulatedNode` whose "process" is that serial port, so the Stack,
the channel model and the verdict treat real and emulated bays alike.

:class:`PtyBoard` is the test double: a pty whose far end relays to an
EmulatedNode, so the host side is tested without a board on the desk.
"""

from __future__ import annotations

import json
import os
import threading
import time
import tty
from pathlib import Path
from typing import Any

from hil.node_process import EmulatedNode, Transmission

BAUD = 115200


class HardwareNode(EmulatedNode):
    """A real board on ``port`` standing in for one bay."""

    def __init__(self, port: str, node_json: dict[str, Any], workdir: Path, baud: int = BAUD) -> None:
        super().__init__(node_json, workdir)
        self.port = port
        self.baud = baud
        self._serial: Any = None
        self._serial_lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._serial is not None and not self._stopping

    @property
    def pid(self) -> int | None:
        return None

    def start(self, timeout: float = 5.0) -> None:
        """Open the port; the board answers ``PING`` once it is in test mode (it has booted)."""
        import serial  # pyserial, extra "hil"

        self._stopping = False
        self._serial = serial.Serial(self.port, self.baud, timeout=0.2)
        self.starts += 1
        self._reader = threading.Thread(target=self._read_serial, daemon=True, name=f"board-{self.port}")
        self._reader.start()
        t0 = time.monotonic()
        if not self.sync(timeout=timeout):
            self.stop()
            raise RuntimeError(f"board on {self.port} did not answer PING within {timeout} s: is it in test mode?")
        self.start_time_s = time.monotonic() - t0

    def stop(self, timeout: float = 1.0) -> int | None:
        self._stopping = True
        ser, self._serial = self._serial, None
        if ser is not None:
            ser.close()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=2)
        return 0

    def restart(self, timeout: float = 5.0) -> None:
        """A real board is power-cycled by hand; here the bench reconnects."""
        self.stop()
        self.start(timeout=timeout)

    def send_line(self, line: str) -> None:
        ser = self._serial
        if ser is None:
            raise RuntimeError(f"board on {self.port} is not connected")
        with self._serial_lock:
            ser.write((line.rstrip("\n") + "\n").encode())
            ser.flush()

    def _read_serial(self) -> None:
        buf = b""
        while not self._stopping:
            ser = self._serial
            if ser is None:
                break
            try:
                chunk = ser.read(256)
            except (OSError, TypeError, ValueError):  # port closed under us (unplugged, or stop())
                break
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                self._line(raw.decode(errors="replace").rstrip("\r"))

    def _line(self, line: str) -> None:
        """The same parsing as EmulatedNode._read, for lines from a board."""
        if line.startswith("TX "):
            try:
                self._add_tx(Transmission.parse(line, time.monotonic()))
            except ValueError:
                self._add_console(line)
        elif line.startswith("EMU "):
            word, _, rest = line[4:].partition(" ")
            try:
                data = json.loads(rest) if rest else {}
            except ValueError:
                data = {"raw": rest}
            with self._cond:
                self.events.append((word, data))
                self._cond.notify_all()
        else:
            self._add_console(line)


def parse_hardware(specs: list[str]) -> dict[str, str]:
    """``["/dev/ttyACM0=A01", …]`` → {spot: port}; a clear error for a malformed one."""
    out: dict[str, str] = {}
    for spec in specs:
        port, sep, spot = spec.partition("=")
        if not sep or not port or not spot:
            raise ValueError(f"--hardware {spec!r}: expected PORT=SPOT, e.g. /dev/ttyACM0=A01")
        if spot in out:
            raise ValueError(f"--hardware: spot {spot} given twice")
        out[spot] = port
    return out


class PtyBoard:
    """A pretend board on a pty: relays lines between the pty and an EmulatedNode.

    Host → board lines go to the node's stdin; the node's transmissions come
    back as ``TX`` lines and its ``pong``/``rx`` events as ``EMU`` lines — what a
    board in test mode prints on its UART.
    """

    def __init__(self, node: EmulatedNode, link: Path) -> None:
        self.node = node
        self.link = Path(link)
        self.master, slave = os.openpty()
        tty.setraw(slave)
        tty.setraw(self.master)
        self._slave = slave
        self.link.unlink(missing_ok=True)
        self.link.symlink_to(os.ttyname(slave))
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._host_to_node, daemon=True),
                         threading.Thread(target=self._node_to_host, daemon=True)]

    def start(self) -> None:
        self.node.start()
        for t in self._threads:
            t.start()

    def _host_to_node(self) -> None:
        buf = b""
        while not self._stop.is_set():
            try:
                chunk = os.read(self.master, 1024)
            except OSError:
                break
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                line = raw.decode(errors="replace").strip()
                if line and self.node.running:
                    self.node.send_line(line)

    def _node_to_host(self) -> None:
        sent_tx = 0
        sent_ev = 0
        while not self._stop.is_set():
            with self.node._cond:
                self.node._cond.wait(0.05)
                txs = self.node.tx_log[sent_tx:]
                evs = self.node.events[sent_ev:]
                sent_tx += len(txs)
                sent_ev += len(evs)
            for tx in txs:
                self._write_raw(f"TX {tx.payload.hex()} {tx.freq_hz} {tx.sf} {tx.bw_hz} {tx.cr} "
                                f"{tx.power_dbm} {tx.sync_word:#x}")
            for word, data in evs:
                self._write_raw(f"EMU {word} {json.dumps(data)}")

    def _write_raw(self, line: str) -> None:
        try:
            os.write(self.master, (line + "\n").encode())
        except OSError:
            pass

    def close(self) -> None:
        self._stop.set()
        self.node.stop()
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=2)
        self.link.unlink(missing_ok=True)
