"""``fogpark-node flash | monitor | calibrate | battery``.

flash, monitor and calibrate run against a board on a pseudo-terminal
(hil/emu/pty_board.py): the real MicroPython unix-port REPL behind a pty,
with the emulated hardware, which mpremote drives exactly as a board on
USB serial (raw REPL, raw-paste, soft reset).
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from device import battery, board_link
from device.cli import BOARDS_DIR, firmware_module
from device.cli import main as cli_main
from hil.emu.pty_board import PtyBoard
from proto import frame

pytestmark = pytest.mark.xdist_group("device_cli")  # module fixtures: build them once, on one worker

KEY_HEX = "2b7e151628aed2a6abf7158809cf4f3c"


# --- battery --------------------------------------------------------------------------------


def test_battery_default_profile_lasts_a_year(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["battery"]) == 0
    out = capsys.readouterr().out
    for term in ("sleep", "wake-ups", "sensing: magnetometer", "sensing: ultrasonic", "airtime", "retries", "total"):
        assert re.search(r"^" + re.escape(term) + r"\s+\d+\.\d{3}\s+\d+\.\d%$", out, re.M), term
    m = re.search(r"battery life on 3000 mAh \(85 % usable\): (\d+) days = ([\d.]+) years", out)
    assert m is not None and float(m.group(2)) >= 1.0
    assert "dominant term: wake-ups" in out
    assert re.search(r"solar for energy neutrality: [\d.]+ mWh/day -> [\d.]+ mW panel", out)
    b = battery.Budget()
    assert b.life_days() >= 365 and b.dominant() == "wake-ups"


def test_battery_terms_respond_to_their_causes() -> None:
    base = battery.Budget()
    base.compute()
    src = battery.Budget(awake_ms=battery.AWAKE_MS["source"])
    assert src.life_days() < 365  # compiling sources at every wake costs the year
    cont = battery.Budget(mag_mode="continuous")
    assert cont.compute()["sensing: magnetometer"] > 1.5  # 75 uA all day
    conf = battery.Budget(confirmed=True, rx_window_ms=1000)
    t = conf.compute()
    assert t["retries"] > 0 and t["airtime"] > base.terms["airtime"]
    dev = battery.Budget(profile="devboard")
    assert dev.dominant() == "sleep" and dev.life_days() < 120
    assert battery.Budget(sun_hours=1.5).panel_wp() == pytest.approx(2 * base.panel_wp())


def test_battery_uses_measured_awake_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "console.log"
    log.write_text("boot\nsleep: awake 90 ms, next wake in 29910 ms\nstate empty\nsleep: awake 110 ms, next wake in 29890 ms\n")
    assert cli_main(["battery", "--log", str(log)]) == 0
    out = capsys.readouterr().out
    assert "awake time measured: 100 ms, mean of 2 wakes" in out and "awake 160 ms" in out  # + 60 ms of boot
    log.write_text("no deep sleep here\n")
    assert cli_main(["battery", "--log", str(log)]) == 2
    assert "no 'sleep: awake <ms> ms' lines" in capsys.readouterr().err


def test_battery_from_node_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "node.json"
    p.write_text(json.dumps({"node_id": 5, "key": KEY_HEX, "spot": "B-1", "board": "heltec_lora32_v2", "sample_ms": 60000,
                             "confirmed": True, "radio": {"sf": 9, "rx_window_ms": 1000}}))
    assert cli_main(["battery", "--node-json", str(p)]) == 0
    out = capsys.readouterr().out
    assert "wake every 60 s" in out and "SF9/125 kHz" in out and "confirmed" in out


# --- flash / monitor / calibrate on a pty board ----------------------------------------------------


def test_flash_dry_run_prints_the_exact_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "node.json"
    p.write_text(json.dumps({"node_id": 5, "key": KEY_HEX, "spot": "B-1", "board": "ttgo_lora32"}))
    fw = tmp_path / "ESP32_GENERIC-v1.29.bin"
    assert cli_main(["flash", str(p), "--port", "/dev/ttyUSB0", "--dry-run", "--erase-and-install-micropython", str(fw)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(ln.endswith("esptool --chip esp32 --port /dev/ttyUSB0 erase-flash") for ln in lines)
    assert any(ln.endswith(f"esptool --chip esp32 --port /dev/ttyUSB0 --baud 460800 write-flash -z 0x1000 {fw}") for ln in lines)
    assert any("mpremote connect /dev/ttyUSB0 exec 'import sys; print('\"'\"'MPY'\"'\"'" in ln for ln in lines)
    copy = lines[-1]
    assert copy.split()[1:5] == ["-m", "mpremote", "connect", "/dev/ttyUSB0"]
    assert ":node_app.mpy" in copy and ":proto/frame.mpy" in copy and ":drivers/rc522.mpy" in copy
    assert ":main.py" in copy and ":node_app.py" not in copy
    assert ":boards/ttgo_lora32.json" in copy and ":boards/heltec_lora32_v2.json" not in copy
    assert copy.endswith(f"fs cp {p} :node.json + reset")
    capsys.readouterr()
    assert cli_main(["flash", str(p), "--port", "/dev/ttyUSB0", "--dry-run", "--source"]) == 0
    src = capsys.readouterr().out.splitlines()[-1]
    assert ":node_app.py" in src and ".mpy" not in src.replace(".mpy'", "")  # only the prepare script names .mpy


def test_flash_refuses_an_invalid_node_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "node.json"
    p.write_text(json.dumps({"node_id": 5, "key": "abc", "spot": "B-1", "board": "ttgo_lora32"}))
    assert cli_main(["flash", str(p), "--port", "/dev/null", "--dry-run"]) == 2
    assert "'key': must be 32 hex characters" in capsys.readouterr().err


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PtyBoard]:
    root = tmp_path_factory.mktemp("ptyboard")
    b = PtyBoard(root / "flash", emu_out=root / "emu.log").start()
    time.sleep(0.5)
    yield b
    b.stop()


def _node_json(path: Path) -> Path:
    path.write_text(json.dumps({"node_id": 0x1234ABCD, "key": KEY_HEX, "spot": "P-1", "board": "unix_emulated",
                                "boot_jitter_s": 0, "debug": True, "detect": {"calib_samples": 4}}))
    return path


def _wait(cond: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.1)
    return None


def test_flash_monitor_and_calibrate_a_board(board: PtyBoard, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nj = _node_json(tmp_path / "node.json")
    (board.flash / "fcnt.dat").write_text("fcnt1 48 2\n")  # the node has sent frames before: a reflash must not rewind
    (board.flash / "detect.py").write_text("raise ImportError('stale source: must be removed')\n")
    # a verdict on this very node.json saved by older firmware (its defaults differ): flash must drop it
    check = firmware_module("node_config_check")
    cfg = check.check(json.loads(nj.read_text()), [str(BOARDS_DIR)])
    values = {name: getattr(cfg, name) for name in check.FIELDS} | {"key": KEY_HEX, "sample_ms": 4321}
    sig = firmware_module("node_config").signature(nj.read_bytes(), (BOARDS_DIR / "unix_emulated.json").read_bytes())
    stale = {"sig": sig, "board_file": "boards/unix_emulated.json", "cfg": values}
    (board.flash / "node.json.checked").write_text(json.dumps(stale))
    assert cli_main(["flash", str(nj), "--port", board.port]) == 0
    err = capsys.readouterr().err
    assert re.search(r"\[#{30}\] \d+/\d+", err)  # the progress bar reached the end
    files = {str(p.relative_to(board.flash)) for p in board.flash.rglob("*") if p.is_file()}
    assert {"main.py", "node_app.mpy", "detect.mpy", "proto/frame.mpy", "drivers/sx127x.mpy", "boards/unix_emulated.json",
            "node.json", "fcnt.dat"} <= files
    assert "detect.py" not in files  # the stale twin of a shipped .mpy is gone
    verdict = board.flash / "node.json.checked"  # checked again by the new firmware at its first boot
    assert _wait(lambda: verdict.exists() and json.loads(verdict.read_text())["cfg"]["sample_ms"] == 500, 10)
    assert not [f for f in files if f.endswith(".py") and f != "main.py"]
    # the board restarted into the flashed firmware: it is on the air (the emulator's log) ...
    tx = _wait(lambda: [ln for ln in (board.emu_out.read_text() if board.emu_out.exists() else "").splitlines()
                        if ln.startswith("TX ")], 10)
    assert tx, "the flashed firmware did not transmit"
    # ... and its console, decoded by monitor, shows the frame with a good MIC and the counter kept
    out = io.StringIO()
    assert board_link.monitor(board.port, out, bytes.fromhex(KEY_HEX), seconds=3.0) == 0
    text = out.getvalue()
    assert cli_main(["monitor", "--port", board.port, "--key", KEY_HEX, "--seconds", "2"]) == 0
    text += capsys.readouterr().out
    first = int.from_bytes(bytes.fromhex(tx[0].split()[1])[5:7], "little")
    assert first >= 48  # counted on from the reserved block, never from 0

    # calibrate over the REPL: the firmware finds calibrate.req at boot, relearns, reports
    assert cli_main(["calibrate", "--port", board.port]) == 0
    assert "calibration requested on " + board.port in capsys.readouterr().out
    out = io.StringIO()
    board_link.monitor(board.port, out, bytes.fromhex(KEY_HEX), seconds=5.0)
    text += out.getvalue()
    assert not (board.flash / "calibrate.req").exists()
    assert re.search(r"^TX heartbeat node 1234abcd fcnt16 \d+ \(23 B\): battery 3900 mV.*\[MIC ok, fcnt \d+\]$", text, re.M), text
    # (the boot lines before monitor opened the port are gone: pyserial flushes its input on open)
    assert re.search(r"^calibrated: baseline", text, re.M)


@pytest.fixture
def rom_board(tmp_path: Path) -> Iterator[PtyBoard]:
    """A board whose MicroPython has a 128 KiB ROMFS partition (hil/emu/romfs_partition.py)."""
    b = PtyBoard(tmp_path / "rom" / "flash", emu_out=tmp_path / "rom" / "emu.log", romfs_size=128 * 1024,
                 heapsize="1M").start()
    time.sleep(0.5)
    yield b
    b.stop()


def test_flash_romfs_runs_the_firmware_from_the_rom_partition(
    rom_board: PtyBoard, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nj = _node_json(tmp_path / "node.json")
    assert cli_main(["flash", str(nj), "--port", rom_board.port, "--romfs", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "mpremote connect " + rom_board.port + " romfs deploy " in out and "fs cp " in out
    # a plain flash first: its copies of the modules on the filesystem must go (they would be imported first)
    assert cli_main(["flash", str(nj), "--port", rom_board.port]) == 0
    assert (rom_board.flash / "proto" / "frame.mpy").exists()
    log = rom_board.emu_out
    assert _wait(lambda: log.exists() and "TX " in log.read_text(), 10)
    capsys.readouterr()
    before = len(log.read_text())
    assert cli_main(["flash", str(nj), "--port", rom_board.port, "--romfs"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"\[#{30}\] \d+/\d+ ROMFS image", err), err  # the image's progress bar reached the end
    assert rom_board.romfs_file.read_bytes()[:3] == b"\xd2\xcd\x31"  # a ROMFS image in the partition
    files = {str(p.relative_to(rom_board.flash)) for p in rom_board.flash.rglob("*")}
    assert "main.py" in files and "node.json" in files and "fcnt.dat" in files  # the counter is kept
    assert not [f for f in files if f.endswith((".mpy", ".json")) and f not in ("node.json",)], files
    assert not (rom_board.flash / "proto").exists() and not (rom_board.flash / "drivers").exists()
    # the node boots from /rom (nothing else left to import) and is on the air again
    assert _wait(lambda: "TX " in log.read_text()[before:], 15), log.read_text()[before:]
    verdict = rom_board.flash / "node.json.checked"
    assert _wait(lambda: verdict.exists() and json.loads(verdict.read_text())["board_file"].startswith("/rom/"), 10)


def test_flash_romfs_on_a_board_without_rom_says_so_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    b = PtyBoard(tmp_path / "plain" / "flash", emu_out=tmp_path / "plain" / "emu.log").start()
    try:
        time.sleep(0.5)
        (b.flash / "fcnt.dat").write_text("fcnt1 48 2\n")
        nj = _node_json(tmp_path / "node.json")
        assert cli_main(["flash", str(nj), "--port", b.port, "--romfs"]) == 1
        err = capsys.readouterr().err
        assert "ROMFS is not enabled on this device" in err and "drop --romfs" in err
        assert sorted(p.name for p in b.flash.iterdir()) == ["fcnt.dat"]
    finally:
        b.stop()


def test_calibrate_as_a_downlink(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nj = _node_json(tmp_path / "node.json")
    assert cli_main(["calibrate", "--downlink", "--node-json", str(nj), "--fcnt", "7"]) == 0
    out = capsys.readouterr().out
    hexdata = re.search(r"COMMAND calibrate for node 305441741 \(downlink counter 7\): ([0-9a-f]+)", out)
    assert hexdata is not None and "fogpark/<lot>/down/1234abcd" in out
    fr = frame.parse_frame(bytes.fromhex(hexdata.group(1)))
    assert fr.msg_type == frame.COMMAND and fr.fields()["command"] == frame.CMD_CALIBRATE
    assert fr.verify(bytes.fromhex(KEY_HEX), 7)


def test_monitor_decodes_frame_lines() -> None:
    key = bytes.fromhex(KEY_HEX)
    dec = board_link.FrameDecoder(key)
    occ = frame.encode_frame(frame.OCCUPANCY, 9, 3, frame.occupancy_payload(1, frame.FLAG_RANGE_CONFIRMED, 95, 28, 40), key)
    line = dec.line("FRAME TX " + occ.hex() + "\r\n")
    assert line.startswith("TX occupancy node 00000009 fcnt16 3 (16 B): state occupied, previous state 95 s, range 28 cm")
    assert line.endswith("flags range_confirmed [MIC ok, fcnt 3]")
    forged = bytearray(occ)
    forged[-1] ^= 1
    assert dec.line("FRAME TX " + forged.hex()).endswith("[MIC BAD]")
    assert dec.line("FRAME RX zz").startswith("RX undecodable frame")
    assert dec.line("state occupied after 95 s") == "state occupied after 95 s"
