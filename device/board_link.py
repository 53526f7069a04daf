"""The installer's side of a board on USB serial: flash, monitor, calibrate (``fogpark-node``).

* ``flash`` lays out the board's filesystem with ``device/mpy_build.py``
  (compiled ``.mpy`` by default, ``--source`` for ``.py``), checks that the
  board's MicroPython loads that ``.mpy`` version, and copies everything
  with one ``mpremote connect PORT exec ... + fs cp ... + reset`` session,
  drawing a progress bar from mpremote's ``cp`` lines. A module shipped as
  ``.mpy`` has its stale ``.py`` removed first (MicroPython would import
  the ``.py``), and the other way round. ``fcnt.dat``, ``state.bin`` and
  ``remote.cfg`` are never touched: a reflash must not rewind the frame
  counter. ``--erase-and-install-micropython FIRMWARE.bin`` first erases a
  blank ESP32 and writes MicroPython with ``esptool``. ``--dry-run`` prints
  the exact commands instead. ``--romfs`` (a MicroPython built with ROMFS
  and a ROMFS partition) writes the compiled modules and board profiles as
  one ROMFS image with ``mpremote romfs deploy`` (they then run in place,
  from flash: the firmware needs ~40 % less heap) and copies only
  ``main.py`` and node.json to the filesystem, removing the filesystem's
  copies of the modules (they would be imported first).
* ``monitor`` reads the serial console with pyserial and decodes the
  lines the firmware prints with ``"debug": true`` in node.json:
  ``FRAME TX <hex>`` (a frame it sent) and ``FRAME RX <hex>`` (a downlink
  it heard), with proto/frame.py; given the node's key it checks each MIC
  (reconstructing the counters as the fog does).
* ``calibrate`` asks the node to learn its empty-bay baseline again: over
  the REPL (mpremote writes ``calibrate.req`` on the board and resets it;
  the firmware calibrates at boot), or, for a node in the field, as a
  COMMAND downlink frame to queue on the fog.
"""

from __future__ import annotations

import codecs
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from device import mpy_build
from proto import frame

CONSOLE_TX = "FRAME TX "
CONSOLE_RX = "FRAME RX "
ESPTOOL_OFFSETS = {"esp32": "0x1000", "esp32s2": "0x1000", "esp32s3": "0x0", "esp32c3": "0x0", "esp32c6": "0x0"}
KEEP_ON_BOARD = ("fcnt.dat", "state.bin", "remote.cfg")


def mpremote(port: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "mpremote", "connect", port, *args]


def esptool(chip: str, port: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "esptool", "--chip", chip, "--port", port, *args]


def prepare_script(remotes: list[str]) -> str:
    """MicroPython run on the board before copying (one line): folders, no stale twin of a module, and no
    saved verdict on node.json (``node.json.checked``): new firmware may bring new rules or defaults."""
    dirs = sorted({r.rsplit("/", 1)[0] for r in remotes if "/" in r})
    twins = ["node.json.checked"]
    for r in remotes:
        if r.endswith(".mpy"):
            twins.append(r[:-4] + ".py")
        elif r.endswith(".py") and r != "main.py":
            twins.append(r[:-3] + ".mpy")
    return (
        "import os; "
        "e = lambda p: p.rsplit('/', 1)[1] in os.listdir(p.rsplit('/', 1)[0]) if '/' in p else p in os.listdir(); "
        f"[os.mkdir(d) for d in {tuple(dirs)!r} if not e(d)]; "
        f"[os.remove(f) for f in {tuple(twins)!r} if e(f)]; "
        "print('prepared')"
    )


def romfs_prepare_script(remotes: list[str]) -> str:
    """MicroPython run on the board before ``main.py`` and node.json are copied, after a ROMFS deploy:
    the filesystem's copies of the modules in the image (and their twins) go, then the folders they
    leave empty (an empty ``proto/`` on the filesystem would hide the package in /rom), and the saved
    verdict on node.json."""
    files = ["node.json.checked"]
    for r in remotes:
        files.append(r)
        if r.endswith(".mpy"):
            files.append(r[:-4] + ".py")
    dirs = sorted({r.rsplit("/", 1)[0] for r in remotes if "/" in r}, key=len, reverse=True)
    return (
        "import os\n"
        f"for f in {tuple(files)!r}:\n"
        "    try:\n"
        "        os.remove(f)\n"
        "    except OSError:\n"
        "        pass\n"
        f"for d in {tuple(dirs)!r}:\n"
        "    try:\n"
        "        os.rmdir(d)\n"
        "    except OSError:\n"
        "        pass\n"
        "print('prepared')\n"
    )


def install_commands(port: str, firmware_bin: Path | None, chip: str, baud: int) -> list[list[str]]:
    """Erase a blank board and write MicroPython with esptool (none without ``firmware_bin``): the first
    commands of either kind of flash."""
    if firmware_bin is None:
        return []
    return [
        esptool(chip, port, "erase-flash"),
        esptool(chip, port, "--baud", str(baud), "write-flash", "-z", ESPTOOL_OFFSETS[chip], str(firmware_bin)),
    ]


def romfs_flash_commands(
    port: str,
    image: Path,
    rom_remotes: list[str],
    main_py: Path,
    node_json: Path,
    firmware_bin: Path | None = None,
    chip: str = "esp32",
    baud: int = 460800,
) -> list[list[str]]:
    """The commands ``flash --romfs`` runs, in order: (esptool,) the ROMFS image, then the filesystem."""
    cmds = install_commands(port, firmware_bin, chip, baud)
    cmds.append(mpremote(port, "romfs", "deploy", str(image)))
    cmds.append(mpremote(port, "exec", romfs_prepare_script(rom_remotes), "+", "fs", "cp", str(main_py), ":main.py",
                         "+", "fs", "cp", str(node_json), ":node.json", "+", "reset"))
    return cmds


def run_romfs_deploy(cmd: list[str], size: int, out: IO[str], timeout: float = 600) -> int:
    """Run ``mpremote romfs deploy``, drawing the progress bar from its ``Writing at offset N`` reports."""
    deployed = []

    def report(record: str) -> None:
        m = re.match(r"Writing at offset (\d+)", record)
        if m:
            progress(min(int(m.group(1)) + 4096, size), size, "ROMFS image", out)  # mpremote writes 4 KiB chunks
        elif record == "ROMFS image deployed":
            deployed.append(True)

    rc, tail = _run_reporting(cmd, report, timeout)
    out.write("\n")
    if rc != 0 or not deployed:
        out.write("mpremote romfs deploy failed (" + str(rc) + "):\n" + "\n".join(tail) + "\n")
        return rc or 1
    return 0


def flash_commands(
    port: str,
    files: list[tuple[Path, str]],
    node_json: Path,
    firmware_bin: Path | None = None,
    chip: str = "esp32",
    baud: int = 460800,
) -> list[list[str]]:
    """The commands ``flash`` runs, in order."""
    cmds = install_commands(port, firmware_bin, chip, baud)
    remotes = [r for _, r in files] + ["node.json"]
    args: list[str] = ["exec", prepare_script(remotes)]
    for local, remote in files:
        args += ["+", "fs", "cp", str(local), ":" + remote]
    args += ["+", "fs", "cp", str(node_json), ":node.json", "+", "reset"]
    cmds.append(mpremote(port, *args))
    return cmds


def board_mpy_abi(port: str, timeout: float = 30) -> tuple[int, int]:
    """(version, sub-version) of the .mpy files the board's MicroPython loads."""
    proc = subprocess.run(
        mpremote(port, "exec", "import sys; print('MPY', sys.implementation._mpy)"),
        capture_output=True, text=True, timeout=timeout,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("MPY "):
            return mpy_build.parse_mpy_abi(int(line.split()[1]))
    raise RuntimeError("the board did not say its .mpy version: " + (proc.stderr or proc.stdout).strip()[-300:])


def progress(done: int, total: int, name: str, out: IO[str]) -> None:
    width = 30
    fill = width * done // total if total else width
    out.write("\r[" + "#" * fill + "." * (width - fill) + f"] {done}/{total} {name[:40]:<40}")
    out.flush()


def _run_reporting(cmd: list[str], report: Callable[[str], None], timeout: float) -> tuple[int, list[str]]:
    """Run ``cmd``, handing each record of its output to ``report`` as it comes: lines, and also the
    carriage-return separated reports of a progress counter. Returns the exit status and the last 20
    records (for an error message)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
    tail: list[str] = []
    pending = ""
    deadline = time.monotonic() + timeout
    while True:
        chunk = os.read(proc.stdout.fileno(), 4096)  # what is there: a report without a newline counts too
        pending += decode(chunk, final=not chunk)
        *records, pending = re.split(r"[\r\n]", pending)
        if not chunk and pending:
            records.append(pending)
        for record in records:
            record = record.rstrip()
            if record:
                tail = (tail + [record])[-20:]
                report(record)
        if not chunk:
            break
        if time.monotonic() > deadline:
            proc.kill()
            break
    proc.stdout.close()
    return proc.wait(), tail


def run_copy(cmd: list[str], total: int, out: IO[str], timeout: float = 300) -> int:
    """Run the mpremote copy session, drawing the progress bar from its ``cp`` lines."""
    done = []

    def report(record: str) -> None:
        if record.startswith("cp "):
            done.append(record)
            progress(len(done), total, record.rsplit(":", 1)[-1], out)

    rc, tail = _run_reporting(cmd, report, timeout)
    out.write("\n")
    if rc != 0:
        out.write("mpremote failed (" + str(rc) + "):\n" + "\n".join(tail) + "\n")
    return rc


# --- monitor ---------------------------------------------------------------------------


def describe(fr: frame.Frame) -> str:
    """One line saying what a frame carries."""
    try:
        f = fr.fields()
    except frame.FrameError as e:
        return "undecodable payload (" + e.reason + ")"
    t = fr.msg_type
    if t == frame.OCCUPANCY:
        flags = [n for bit, n in ((frame.FLAG_ACK_REQUESTED, "ack_requested"), (frame.FLAG_TAMPER, "tamper"),
                                  (frame.FLAG_LOW_BATTERY, "low_battery"), (frame.FLAG_RANGE_CONFIRMED, "range_confirmed"),
                                  (frame.FLAG_CALIBRATING, "calibrating")) if f["flags"] & bit]
        rng = "none" if f["distance_cm"] is None else str(f["distance_cm"]) + " cm"
        return (f"state {frame.STATE_NAMES[f['state']]}, previous state {f['prev_duration_s']} s, range {rng}, "
                f"deviation {f['mag_dev_ut']} uT" + (", flags " + "|".join(flags) if flags else ""))
    if t == frame.HEARTBEAT:
        temp = "?" if f["temp_c"] is None else f"{f['temp_c']:.1f} C"
        return (f"battery {f['battery_mv']} mV, {temp}, up {f['uptime_s']} s, state "
                f"{frame.STATE_NAMES.get(f['state'] & 3, '?')} (byte 0x{f['state']:02x}), rssi {f['rssi_dbm']}, "
                f"snr {f['snr_db']}, reboots {f['reboots']}")
    if t == frame.DIAGNOSTIC:
        return f"{frame.DIAG_NAMES.get(f['code'], 'code ' + str(f['code']))}, value {f['value']}, detail {f['extra']}"
    if t == frame.CHECKIN:
        return "card " + f["uid"].hex()
    if t == frame.CONFIG_ACK:
        return f"config {f['config_version']} " + ("applied" if f["status"] == 0 else f"refused at entry {f['status']}")
    if t == frame.ACK:
        return f"acknowledges fcnt16 {f['acked_fcnt16']}" + (", config pending" if f["flags"] & 1 else "")
    if t == frame.CONFIG:
        return f"config {f['config_version']}: " + ", ".join(f"{k}={v.hex()}" for k, v in f["entries"])
    if t == frame.COMMAND:
        return "command " + {1: "calibrate", 2: "reboot", 3: "self-test"}.get(f["command"], str(f["command"]))
    return ""


class FrameDecoder:
    """Decodes FRAME TX/RX console lines; checks MICs when it knows the key."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key
        self.last = {"TX": -1, "RX": -1}

    def line(self, text: str) -> str:
        text = text.rstrip("\r\n")
        for tag in ("TX", "RX"):
            prefix = "FRAME " + tag + " "
            if text.startswith(prefix):
                return self._frame(tag, text[len(prefix):].strip())
        return text

    def _frame(self, tag: str, hexdata: str) -> str:
        try:
            data = bytes.fromhex(hexdata)
            fr = frame.parse_frame(data)
        except ValueError as e:
            return f"{tag} undecodable frame {hexdata[:80]} ({e})"
        head = f"{tag} {fr.type_name()} node {fr.node_id:08x} fcnt16 {fr.fcnt16} ({len(data)} B): {describe(fr)}"
        if self.key is None:
            return head
        fcnt = frame.reconstruct_fcnt(fr.fcnt16, self.last[tag])
        if fr.verify(self.key, fcnt):
            self.last[tag] = fcnt
            return head + f" [MIC ok, fcnt {fcnt}]"
        return head + " [MIC BAD]"


def monitor(
    port: str,
    out: IO[str],
    key: bytes | None = None,
    baud: int = 115200,
    seconds: float = 0.0,
    log: IO[str] | None = None,
    opener: Callable[..., Any] | None = None,
) -> int:
    """Print the console, decoding frame lines, until ``seconds`` pass (0: until Ctrl-C)."""
    import serial  # pyserial

    ser = (opener or serial.Serial)(port, baud, timeout=0.2)
    dec = FrameDecoder(key)
    buf = b""
    deadline = time.monotonic() + seconds if seconds > 0 else None
    try:
        while deadline is None or time.monotonic() < deadline:
            chunk = ser.read(256)
            if not chunk:
                continue
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                text = raw.decode("utf-8", "replace").rstrip("\r")
                if log is not None:
                    log.write(text + "\n")
                out.write(dec.line(text) + "\n")
                out.flush()
    except KeyboardInterrupt:
        pass
    finally:
        ser.close()
    return 0


# --- calibrate ------------------------------------------------------------------------------

CALIBRATE_EXEC = "f = open('calibrate.req', 'w'); f.write('1'); f.close(); print('calibration requested')"


def calibrate_commands(port: str) -> list[list[str]]:
    return [mpremote(port, "exec", CALIBRATE_EXEC, "+", "reset")]


def calibrate_downlink(node_id: int, key: bytes, fcnt: int) -> bytes:
    return frame.encode_frame(frame.COMMAND, node_id, fcnt, frame.command_payload(frame.CMD_CALIBRATE, b""), key)


def shell(cmd: list[str]) -> str:
    return shlex.join(cmd)
