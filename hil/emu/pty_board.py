"""A MicroPython board on a pseudo-terminal: the real unix-port REPL, the emulated hardware, a flash folder.

    python -m hil.emu.pty_board --flash DIR [--board unix_emulated] [--heapsize 512k] [--romfs-size BYTES]

prints the serial port's path (``/dev/pts/N``) and serves it until killed.
``mpremote``, ``fogpark-node flash|monitor|calibrate`` and pyserial talk to
it as to a board on USB serial: after a (re)boot it runs ``main.py`` from
the flash folder (the working directory, first on the import path), on the
emulated parts of ``node_main.py``; Ctrl-C stops the firmware and leaves
the REPL, whose raw mode mpremote uses to copy files and run code.

What the relay adds to the unix port, because the unix port is not a board:

* it exits on Ctrl-D (a board soft-resets): the relay prints
  ``MPY: soft reboot``, starts MicroPython again (without ``main.py`` when
  the reset came from the raw REPL, as a board does) and, for the raw REPL,
  re-enters raw mode, so mpremote sees what a board says;
* ``machine.reset()`` / watchdog exit with 80 + cause (hil/emu/machine.py):
  the relay boots it again with that reset cause, running ``main.py``;
* the device side of the pty is the process's controlling terminal with
  ISIG on, so a Ctrl-C byte interrupts a running program (as a board's
  UART interrupt character does).

The emulator's own lines (TX on air, EMU events) go to ``--emu-out``
(default ``DIR/../emu.log``), not to the console. ``--romfs-size`` gives the
board a ROMFS partition of that many bytes (``romfs_partition.py``; its
flash is the file ``DIR.romfs0`` beside the flash folder), as a MicroPython
built with ROMFS has: ``mpremote romfs deploy`` writes it, and the next boot
mounts it at /rom.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EMU_DIR = REPO / "hil" / "emu"
BOARDS_DIR = REPO / "device" / "boards"
RESET_EXIT_BASE = 80


def _device_tty(fd: int) -> None:
    """Raw, but with ISIG (Ctrl-C -> SIGINT), as a board's console."""
    attrs = termios.tcgetattr(fd)
    attrs[0] = 0  # iflag
    attrs[1] = 0  # oflag: the unix REPL writes its own CR-LF
    attrs[3] = termios.ISIG  # lflag: no echo, no canonical mode
    attrs[6][termios.VINTR] = 3
    attrs[6][termios.VMIN] = 1
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def _host_tty(fd: int) -> None:
    attrs = termios.tcgetattr(fd)
    attrs[0] = 0
    attrs[1] = 0
    attrs[3] = 0
    attrs[6][termios.VMIN] = 1
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


class PtyBoard:
    def __init__(
        self,
        flash: Path,
        board: str = "unix_emulated",
        micropython: str | None = None,
        heapsize: str = "512k",
        emu_out: Path | None = None,
        world: str | None = None,
        romfs_size: int = 0,
    ) -> None:
        from hil.node_process import DEFAULT_MICROPYTHON

        self.flash = Path(flash).resolve()
        self.flash.mkdir(parents=True, exist_ok=True)
        self.board = board
        self.micropython = micropython or DEFAULT_MICROPYTHON
        self.heapsize = heapsize
        self.emu_out = Path(emu_out) if emu_out else self.flash.parent / "emu.log"
        self.world = world
        self.romfs_size = romfs_size
        self.romfs_file = self.flash.parent / (self.flash.name + ".romfs0")
        self.dev_master, self.dev_slave = pty.openpty()
        self.host_master, self.host_slave = pty.openpty()
        _device_tty(self.dev_slave)
        _host_tty(self.host_slave)
        self.port = os.ttyname(self.host_slave)
        self.proc: subprocess.Popen[bytes] | None = None
        self.raw = False  # the host put the REPL in raw mode
        self.skip_main = False
        self.reset_cause: int | None = None
        self.boots = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._want_raw = False
        self._seen = b""
        self._thread: threading.Thread | None = None

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["MICROPYPATH"] = ":".join([".frozen", str(self.flash), str(EMU_DIR), str(REPO)])
        env["FOGPARK_EMU_BOARD"] = str(BOARDS_DIR / (self.board + ".json"))
        env["FOGPARK_EMU_CONTROL"] = "none"
        env["FOGPARK_EMU_OUT"] = str(self.emu_out)
        env.pop("FOGPARK_EMU_UART", None)
        if self.romfs_size:
            env["FOGPARK_EMU_ROMFS"] = str(self.romfs_file) + ":" + str(self.romfs_size)
        else:
            env.pop("FOGPARK_EMU_ROMFS", None)
        if self.world:
            env["FOGPARK_EMU_WORLD"] = self.world
        if self.skip_main:
            env["FOGPARK_BOARD_SKIP_MAIN"] = "1"
        else:
            env.pop("FOGPARK_BOARD_SKIP_MAIN", None)
        if self.reset_cause is not None:
            env["FOGPARK_EMU_RESET_CAUSE"] = str(self.reset_cause)
        else:
            env.pop("FOGPARK_EMU_RESET_CAUSE", None)
        return env

    def _spawn(self) -> None:
        slave = self.dev_slave

        def controlling_tty() -> None:
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            signal.signal(signal.SIGINT, signal.SIG_DFL)

        self.proc = subprocess.Popen(
            [self.micropython, "-X", "heapsize=" + self.heapsize, "-i", str(EMU_DIR / "repl_boot.py")],
            cwd=self.flash,
            env=self._env(),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            preexec_fn=controlling_tty,
        )
        self.boots += 1
        self._want_raw = self.skip_main and self.raw
        self._seen = b""

    def start(self) -> PtyBoard:
        self._spawn()
        self._thread = threading.Thread(target=self._relay, daemon=True, name="pty-board")
        self._thread.start()
        return self

    def _relay(self) -> None:
        dm, hm = self.dev_master, self.host_master
        while not self._stop.is_set():
            proc = self.proc
            if proc is not None and proc.poll() is not None:
                self._rebooted(proc.returncode)
                continue
            r, _, _ = select.select([dm, hm], [], [], 0.05)
            if hm in r:
                try:
                    data = os.read(hm, 4096)
                except OSError:
                    data = b""
                if data:
                    if b"\x01" in data:
                        self.raw = True
                    if b"\x02" in data:
                        self.raw = False
                    os.write(dm, data)
            if dm in r:
                try:
                    data = os.read(dm, 4096)
                except OSError:
                    data = b""
                if data:
                    if self._want_raw:
                        self._seen = (self._seen + data)[-64:]
                        if self._seen.endswith(b">>> "):
                            self._want_raw = False
                            os.write(dm, b"\x01")
                    os.write(hm, data)

    def _rebooted(self, rc: int) -> None:
        """The unix port ended: do what a board does next."""
        cause = rc - RESET_EXIT_BASE
        if 0 < cause < 10:  # machine.reset(), watchdog, deep sleep: a hard reboot runs main.py
            self.reset_cause = cause
            self.skip_main = False
            self.raw = False
        else:  # Ctrl-D: a soft reset; from the raw REPL a board stays there and skips main.py
            self.reset_cause = None
            self.skip_main = self.raw
            os.write(self.host_master, b"MPY: soft reboot\r\n")
        time.sleep(0.05)
        self._spawn()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=2)
        for fd in (self.dev_master, self.dev_slave, self.host_master, self.host_slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> PtyBoard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hil.emu.pty_board", description=__doc__.split("\n")[0])
    ap.add_argument("--flash", required=True, type=Path, help="the board's filesystem (a folder)")
    ap.add_argument("--board", default="unix_emulated", help="board profile to wire (default %(default)s)")
    ap.add_argument("--heapsize", default="512k")
    ap.add_argument("--romfs-size", type=int, default=0, help="a ROMFS partition of this many bytes (0: none)")
    ap.add_argument("--emu-out", type=Path, help="where the emulator's TX/EMU lines go")
    args = ap.parse_args(argv)
    board = PtyBoard(args.flash, args.board, heapsize=args.heapsize, emu_out=args.emu_out,
                     romfs_size=args.romfs_size).start()
    print(board.port, flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        board.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
