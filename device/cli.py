"""``fogpark-node``: the installer's tool for FogPark sensor nodes.

Subcommands (``fogpark-node <command> --help`` for details):

* ``provision`` -- create a node's identity: a node id (random unless
  given), a fresh 128-bit AES key, its spot and board; writes node.json for
  the node's flash and appends the node to the fog's registry (nodes.toml).
* ``airtime`` -- LoRa time on air of a frame and the highest send rate a
  duty-cycle limit allows.
* ``check`` -- validate a node.json with the firmware's own validator.
* ``flash`` -- copy the firmware (compiled to .mpy), the proto modules, the
  board profile and node.json to a board over USB serial with mpremote
  (optionally installing MicroPython on a blank ESP32 with esptool first).
* ``monitor`` -- the serial console, with the frames the firmware prints
  (``FRAME TX/RX <hex>``, debug mode) decoded and their MICs checked.
* ``calibrate`` -- make a node learn its empty-bay baseline again: over the
  REPL, or as a COMMAND downlink for the fog to send.
* ``battery`` -- the energy budget term by term, battery life, the
  dominant term and the solar panel for energy neutrality.

node.json is validated by ``device/firmware/node_config_check.py`` -- the code the
node itself runs at boot -- loaded here under CPython, so the tool and the
node never disagree about what a valid file is.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

from proto import airtime

FIRMWARE_DIR = Path(__file__).resolve().parent / "firmware"
BOARDS_DIR = Path(__file__).resolve().parent / "boards"


def firmware_module(name: str) -> ModuleType:
    """Import a pure firmware module (MicroPython source, no ``machine``) under CPython.

    device/firmware goes at the end of sys.path, so firmware modules import
    their siblings by plain name, as on the node.
    """
    if str(FIRMWARE_DIR) not in sys.path:
        sys.path.append(str(FIRMWARE_DIR))
    return importlib.import_module(name)


def validate_node_json(data: object) -> Any:
    """The firmware validator's verdict (a NodeConfig with ``errors``)."""
    return firmware_module("node_config_check").check(data, [str(BOARDS_DIR)])


# --- registry (nodes.toml) ------------------------------------------------------


def read_registry(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open("rb") as f:
        data = tomllib.load(f)
    nodes = data.get("nodes", [])
    if not isinstance(nodes, list):
        raise ValueError(str(path) + ": 'nodes' must be an array of tables ([[nodes]])")
    return nodes


def _toml_str(s: str) -> str:
    # JSON string escapes are a subset of TOML basic-string escapes
    return json.dumps(s)


def append_registry(path: Path, node_id: int, spot: str, key_hex: str) -> None:
    entry = f"\n[[nodes]]\nnode_id = {node_id}\nspot = {_toml_str(spot)}\nkey = {_toml_str(key_hex)}\n"
    new = not path.exists()
    if new:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("# FogPark node registry: one [[nodes]] table per node (node_id, spot, AES key).\n")
            f.write("# Written by `fogpark-node provision`; read by the fog. Keep it secret.\n")
            f.write(entry)
    else:
        with path.open("a") as f:
            f.write(entry)


# --- commands ---------------------------------------------------------------------


def cmd_provision(args: argparse.Namespace) -> int:
    out = Path(args.out)
    registry = Path(args.registry) if args.registry else None
    if out.exists() and not args.force:
        print("error: " + str(out) + " exists (use --force to overwrite)", file=sys.stderr)
        return 2
    existing = read_registry(registry) if registry else []
    taken = {n.get("node_id") for n in existing}
    if args.node_id is not None:
        node_id = args.node_id
        if node_id in taken:
            print("error: node id " + str(node_id) + " is already in " + str(registry), file=sys.stderr)
            return 2
    else:
        node_id = 0
        while node_id == 0 or node_id in taken:
            node_id = secrets.randbelow(0xFFFFFFFF) + 1
    key_hex = secrets.token_hex(16)
    node = {"node_id": node_id, "key": key_hex, "spot": args.spot, "board": args.board}
    cfg = validate_node_json(node)
    if cfg.errors:
        for e in cfg.errors:
            print("error: " + e, file=sys.stderr)
        return 2
    for n in existing:
        if n.get("spot") == args.spot:
            print(
                "warning: spot " + repr(args.spot) + " already has node " + str(n.get("node_id")) + " in the registry",
                file=sys.stderr,
            )
    if args.fog:
        # Register with the running fog first: if it refuses (spot taken, bad token), no node.json is written.
        err = register_with_fog(args.fog, args.token or os.environ.get("FOGPARK_ADMIN_TOKEN", ""),
                                node_id, args.spot, key_hex)
        if err:
            print("error: the fog refused the node: " + err, file=sys.stderr)
            return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(node, f, indent=2)
        f.write("\n")
    if registry:
        append_registry(registry, node_id, args.spot, key_hex)
    print("node " + str(node_id) + " spot " + args.spot + " board " + args.board + ": wrote " + str(out))
    if registry:
        print("registered in " + str(registry))
    if args.fog:
        print("registered with the fog at " + args.fog)
    return 0


def register_with_fog(url: str, token: str, node_id: int, spot: str, key_hex: str) -> str:
    """POST the node to the fog's registry API; '' on success, else the fog's reason."""
    import urllib.error
    import urllib.request

    body = json.dumps({"node_id": node_id, "spot": spot, "key": key_hex}).encode()
    req = urllib.request.Request(url.rstrip("/") + "/v1/nodes", data=body, method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return "" if resp.status == 201 else "HTTP " + str(resp.status)
    except urllib.error.HTTPError as e:
        try:
            detail = json.loads(e.read().decode())
            return str(detail.get("error")) + " (" + str(detail.get("where")) + ")"
        except ValueError:
            return "HTTP " + str(e.code)
    except (urllib.error.URLError, OSError) as e:
        return "cannot reach " + url + ": " + str(e)


def cmd_airtime(args: argparse.Namespace) -> int:
    bw_hz = int(round(args.bw * 1000))
    if bw_hz not in airtime.BANDWIDTHS_HZ:
        print(
            "error: --bw must be one of " + ", ".join(str(b / 1000).rstrip("0").rstrip(".") for b in airtime.BANDWIDTHS_HZ),
            file=sys.stderr,
        )
        return 2
    duty = args.duty / 100.0
    try:
        toa = airtime.time_on_air_s(
            args.payload, args.sf, bw_hz, args.cr, args.preamble, not args.implicit_header, not args.no_crc
        )
        per_hour = airtime.max_packets_per_hour(toa, duty)
        off = airtime.off_time_s(toa, duty)
    except ValueError as e:
        print("error: " + str(e), file=sys.stderr)
        return 2
    ldro = airtime.low_data_rate_optimize(args.sf, bw_hz)
    print(
        "time on air: {:.1f} ms  (SF{} BW {:g} kHz CR 4/{}, {} B payload, {} symbol preamble, "
        "{} header, CRC {}, LowDataRateOptimize {})".format(
            toa * 1000,
            args.sf,
            bw_hz / 1000,
            args.cr,
            args.payload,
            args.preamble,
            "implicit" if args.implicit_header else "explicit",
            "off" if args.no_crc else "on",
            "on" if ldro else "off",
        )
    )
    print(
        f"max rate at {args.duty:g} % duty cycle: {per_hour} frames/hour (one every {toa + off:.1f} s)"
    )
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    path = Path(args.node_json)
    try:
        text = path.read_text()
    except OSError as e:
        print(str(path) + ": cannot read: " + (e.strerror or str(e)), file=sys.stderr)
        return 1
    try:
        data = json.loads(text)
    except ValueError as e:
        print(str(path) + ": not valid JSON: " + str(e), file=sys.stderr)
        return 1
    cfg = validate_node_json(data)
    if cfg.errors:
        for problem in cfg.errors:
            print(str(path) + ": " + problem, file=sys.stderr)
        print(str(path) + ": INVALID (" + str(len(cfg.errors)) + " problem(s)); the node would not transmit")
        return 1
    print(str(path) + ": ok: " + firmware_module("node_config").summary(cfg))
    return 0


def _load_node_json(path: str) -> tuple[dict[str, Any] | None, Any, str]:
    """(data, validated config, error message)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except OSError as e:
        return None, None, str(p) + ": cannot read: " + (e.strerror or str(e))
    except ValueError as e:
        return None, None, str(p) + ": not valid JSON: " + str(e)
    cfg = validate_node_json(data)
    if cfg.errors:
        return data, cfg, "\n".join(str(p) + ": " + e for e in cfg.errors)
    return data, cfg, ""


def cmd_flash(args: argparse.Namespace) -> int:
    import tempfile

    from device import board_link, mpy_build

    data, cfg, err = _load_node_json(args.node_json)
    if err:
        print(err, file=sys.stderr)
        print("error: not flashing a node.json the node would refuse", file=sys.stderr)
        return 2
    assert data is not None
    compiled = not args.source
    if args.romfs and not compiled:
        print("error: --romfs ships compiled .mpy (a ROMFS image runs bytecode in place); drop --source", file=sys.stderr)
        return 2
    fw = Path(args.erase_and_install_micropython) if args.erase_and_install_micropython else None
    if fw is not None and not args.dry_run and not fw.is_file():
        print("error: " + str(fw) + " not found", file=sys.stderr)
        return 2
    if fw is not None and args.chip not in board_link.ESPTOOL_OFFSETS:
        print("error: --chip must be one of " + ", ".join(board_link.ESPTOOL_OFFSETS), file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fogpark-flash-") as d:
        try:
            files = mpy_build.compile_tree(Path(d), data["board"], compiled)
        except mpy_build.BuildError as e:
            print("error: " + str(e), file=sys.stderr)
            return 2
        if args.romfs:
            image, rom_remotes, main_py = _romfs_layout(Path(d), files)
            cmds = board_link.romfs_flash_commands(args.port, image, rom_remotes, main_py, Path(args.node_json), fw,
                                                   args.chip, args.baud)
        else:
            cmds = board_link.flash_commands(args.port, files, Path(args.node_json), fw, args.chip, args.baud)
        if args.dry_run:
            if compiled and not args.no_check:
                v = mpy_build.mpy_version()
                print(f"# check the board loads .mpy v{v[0]}.{v[1]}:")
                print(board_link.shell(board_link.mpremote(args.port, "exec", "import sys; print('MPY', sys.implementation._mpy)")))
            for c in cmds:
                print(board_link.shell(c))
            return 0
        if fw is not None:
            for c in cmds[:2]:
                print("$ " + board_link.shell(c), file=sys.stderr)
                if subprocess.run(c).returncode != 0:
                    print("error: esptool failed", file=sys.stderr)
                    return 1
            time.sleep(2)  # MicroPython's first boot makes its filesystem
        if compiled and not args.no_check:
            want = mpy_build.mpy_version()
            try:
                got = board_link.board_mpy_abi(args.port)
            except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
                print("error: cannot talk to the board on " + args.port + ": " + str(e), file=sys.stderr)
                return 1
            if got[0] != want[0] or got[1] < want[1]:
                print(
                    f"error: the board's MicroPython loads .mpy v{got[0]}.{got[1]}, mpy-cross makes v{want[0]}.{want[1]}: "
                    "update MicroPython on the board, or flash the sources with --source",
                    file=sys.stderr,
                )
                return 1
        if args.romfs:
            size = image.stat().st_size
            print(f"writing a ROMFS image of {size} bytes ({len(rom_remotes)} files) to {args.port}", file=sys.stderr)
            if board_link.run_romfs_deploy(cmds[-2], size, sys.stderr) != 0:
                print("error: the ROMFS image was not written. A board whose MicroPython has no ROMFS partition "
                      "(stock ESP32 downloads) takes the plain flash: drop --romfs", file=sys.stderr)
                return 1
            total = 2
        else:
            total = len(files) + 1
        print("flashing " + str(total) + " files (" + ("compiled .mpy" if compiled else "sources") + ") to " + args.port, file=sys.stderr)
        rc = board_link.run_copy(cmds[-1], total, sys.stderr)
        if rc != 0:
            return 1
    print("node " + str(cfg.node_id) + " flashed on " + args.port + "; it restarts now (fogpark-node monitor --port " + args.port + ")")
    return 0


def _romfs_layout(work: Path, files: list[tuple[Path, str]]) -> tuple[Path, list[str], Path]:
    """The ROMFS image of every flashed file but main.py (which MicroPython runs from the filesystem):
    (image, the paths it holds, main.py)."""
    from device import mpy_build

    rom = work / "romfs"
    remotes = []
    main_py = work / "main.py"
    for local, remote in files:
        if remote in mpy_build.SOURCE_ONLY:
            main_py = local
            continue
        dst = rom / remote
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, dst)
        remotes.append(remote)
    image = work / "firmware.romfs"
    image.write_bytes(mpy_build.romfs_image(rom))
    return image, remotes, main_py


def cmd_monitor(args: argparse.Namespace) -> int:
    from device import board_link

    key = None
    if args.node_json:
        data, cfg, err = _load_node_json(args.node_json)
        if err and (cfg is None or not cfg.key):
            print(err, file=sys.stderr)
            return 2
        key = cfg.key
    elif args.key:
        try:
            key = bytes.fromhex(args.key)
        except ValueError:
            key = b""
        if len(key) != 16:
            print("error: --key must be 32 hex characters", file=sys.stderr)
            return 2
    log = open(args.log, "a") if args.log else None  # noqa: SIM115 - closed below
    try:
        return board_link.monitor(args.port, sys.stdout, key, args.baud, args.seconds, log)
    except OSError as e:
        print("error: " + args.port + ": " + str(e), file=sys.stderr)
        return 1
    finally:
        if log is not None:
            log.close()


def cmd_calibrate(args: argparse.Namespace) -> int:
    from device import board_link

    if args.downlink:
        data, cfg, err = _load_node_json(args.node_json) if args.node_json else (None, None, "--downlink needs --node-json")
        if err or cfg is None:
            print(err, file=sys.stderr)
            return 2
        pkt = board_link.calibrate_downlink(cfg.node_id, cfg.key, args.fcnt)
        print("COMMAND calibrate for node " + str(cfg.node_id) + " (downlink counter " + str(args.fcnt) + "): " + pkt.hex())
        print(
            "note: queue it on the fog as a downlink for this node; it is sent in the node's receive window after "
            f"its next uplink (LoRa), or published to fogpark/<lot>/down/{cfg.node_id:08x} (Wi-Fi). The counter must be "
            "above the last downlink counter the node accepted. The node answers with a heartbeat once calibrated."
        )
        return 0
    if not args.port:
        print("error: --port (or --downlink) is required", file=sys.stderr)
        return 2
    cmds = board_link.calibrate_commands(args.port)
    if args.dry_run:
        for c in cmds:
            print(board_link.shell(c))
        return 0
    for c in cmds:
        proc = subprocess.run(c, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            print("error: mpremote failed: " + (proc.stderr or proc.stdout).strip()[-300:], file=sys.stderr)
            return 1
    print("calibration requested on " + args.port + ": the node restarts and learns its empty bay (keep it clear)")
    return 0


def cmd_battery(args: argparse.Namespace) -> int:
    from device import battery

    b = battery.Budget(profile=args.profile)
    if args.node_json:
        data, cfg, err = _load_node_json(args.node_json)
        if err:
            print(err, file=sys.stderr)
            return 2
        b.wake_s = cfg.sample_ms / 1000
        b.heartbeat_s = cfg.heartbeat_s
        r = cfg.radio
        b.sf, b.bw_hz, b.cr, b.preamble = r["sf"], r["bw_hz"], r["cr"], r["preamble"]
        b.rx_window_ms = r["rx_window_ms"]
        b.confirmed = cfg.confirmed
        b.retries = cfg.retries
        b.range_every = cfg.detect["range_every"]
    for name in ("wake_s", "heartbeat_s", "sf", "arrivals_per_day", "capacity_mah", "usable", "sun_hours",
                 "charge_eff", "ack_loss", "rx_window_ms", "active_ma", "sleep_ua", "range_every", "retries"):
        v = getattr(args, name)
        if v is not None:
            setattr(b, name, v)
    if args.bw is not None:
        b.bw_hz = int(args.bw * 1000)
    if args.confirmed:
        b.confirmed = True
    b.mag_mode = args.mag_mode
    b.awake_ms = battery.AWAKE_MS[args.firmware]
    if args.awake_ms is not None:
        b.awake_ms = args.awake_ms
    if args.log:
        try:
            b.awake_ms, n = battery.awake_ms_from_log(Path(args.log))
        except (OSError, ValueError) as e:
            print("error: " + str(e), file=sys.stderr)
            return 2
        print(f"awake time measured: {b.awake_ms:.0f} ms, mean of {n} wakes in {args.log}, "
              f"+ {args.boot_ms:g} ms of boot before main.py")
        b.awake_ms += args.boot_ms
    if b.wake_s <= 0 or not 0 < b.usable <= 1 or b.capacity_mah <= 0 or b.sun_hours <= 0 or not 0 < b.charge_eff <= 1:
        print("error: wake period, capacity, sun hours must be positive; usable and efficiency in (0, 1]", file=sys.stderr)
        return 2
    try:
        print(battery.report(b))
    except ValueError as e:
        print("error: " + str(e), file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    boards = sorted(p.stem for p in BOARDS_DIR.glob("*.json"))
    p = argparse.ArgumentParser(
        prog="fogpark-node",
        description="FogPark sensor-node tool for installers: provision node identities, size LoRa airtime, "
        "validate node.json, flash boards, watch their console, recalibrate them, budget their battery.",
        epilog="Boards: " + ", ".join(boards) + ". Pin maps live in device/boards/.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    pr = sub.add_parser(
        "provision",
        help="create a node: id, 128-bit key, spot, board -> node.json (+ registry entry)",
        description="Generate a node identity and write node.json for the node's flash. The node id is random "
        "(1..2^32-1, unique in the registry) unless --node-id is given; the AES-128 key always comes from "
        "the secrets module. With --registry the node is appended to that nodes.toml ([[nodes]] tables with "
        "node_id, spot, key), which the fog reads. The key is never printed.",
    )
    pr.add_argument("--board", required=True, choices=boards, help="board profile (pin map)")
    pr.add_argument("--spot", required=True, help="parking spot this node watches, e.g. A-017")
    pr.add_argument("--node-id", type=int, help="node id (default: random)")
    pr.add_argument("--out", default="node.json", help="where to write node.json (default: %(default)s)")
    pr.add_argument("--registry", help="nodes.toml to append the node to (created if missing)")
    pr.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    pr.add_argument("--fog", metavar="URL", help="register the node with a running fog's API (e.g. http://fog:8080)")
    pr.add_argument("--token", help="the fog's admin token (default: $FOGPARK_ADMIN_TOKEN)")
    pr.set_defaults(func=cmd_provision)

    at = sub.add_parser(
        "airtime",
        help="LoRa time on air of a frame and the max send rate under a duty-cycle limit",
        description="Time on air by the Semtech formula (SX1276 datasheet, AN1200.13) and how many such "
        "frames fit in an hour under a duty-cycle limit (EU868 g1: 1 %%). The payload is the whole PHY "
        "payload: a FogPark occupancy frame is 16 bytes, a heartbeat 23.",
    )
    at.add_argument("--sf", type=int, default=7, help="spreading factor 6..12 (default %(default)s)")
    at.add_argument("--bw", type=float, default=125, help="bandwidth in kHz (default %(default)s)")
    at.add_argument("--cr", type=int, default=5, help="coding rate 4/CR, CR 5..8 (default %(default)s)")
    at.add_argument("--payload", type=int, default=16, help="PHY payload bytes (default %(default)s)")
    at.add_argument("--preamble", type=int, default=8, help="preamble symbols (default %(default)s)")
    at.add_argument("--duty", type=float, default=1.0, help="duty-cycle limit in %% (default %(default)s)")
    at.add_argument("--no-crc", action="store_true", help="payload CRC off")
    at.add_argument("--implicit-header", action="store_true", help="implicit header mode")
    at.set_defaults(func=cmd_airtime)

    ck = sub.add_parser(
        "check",
        help="validate a node.json with the firmware's own validator",
        description="Run device/firmware/node_config_check.py (the validator the node runs at boot) on a "
        "node.json. Exit status 0 when valid; otherwise every problem is listed, naming the key.",
    )
    ck.add_argument("node_json", metavar="node.json", help="the file to check")
    ck.set_defaults(func=cmd_check)

    fl = sub.add_parser(
        "flash",
        help="copy firmware (.mpy), proto modules, board profile and node.json to a board over USB serial",
        description="Compile device/firmware and the proto modules to .mpy with mpy-cross (main.py stays source), "
        "check the board's MicroPython loads that .mpy version, then copy everything with one mpremote session "
        "(connect PORT exec ... + fs cp ... + reset) with a progress bar. A stale .py twin of a shipped .mpy is "
        "removed; fcnt.dat, state.bin and remote.cfg are kept (a reflash never rewinds the frame counter).",
    )
    fl.add_argument("node_json", metavar="node.json", help="the node's identity and settings (fogpark-node provision)")
    fl.add_argument("--port", required=True, help="serial port of the board, e.g. /dev/ttyUSB0")
    fl.add_argument("--source", action="store_true", help="ship .py sources instead of compiled .mpy")
    fl.add_argument("--no-check", action="store_true", help="do not ask the board for its .mpy version first")
    fl.add_argument("--erase-and-install-micropython", metavar="FIRMWARE.bin",
                    help="a blank ESP32: erase the flash and write this MicroPython image with esptool first")
    fl.add_argument("--chip", default="esp32", help="esptool chip (default %(default)s)")
    fl.add_argument("--baud", type=int, default=460800, help="esptool baud rate (default %(default)s)")
    fl.add_argument("--dry-run", action="store_true", help="print the exact commands, run nothing")
    fl.add_argument("--romfs", action="store_true",
                    help="write the modules as a ROMFS image (MicroPython built with ROMFS): bytecode runs in place, "
                    "~40%% less heap; only main.py and node.json go to the filesystem")
    fl.set_defaults(func=cmd_flash)

    mo = sub.add_parser(
        "monitor",
        help="serial console with the firmware's FRAME TX/RX lines decoded",
        description="Print a board's serial console (pyserial). Lines 'FRAME TX <hex>' and 'FRAME RX <hex>', which "
        "the firmware prints with \"debug\": true in node.json, are decoded with proto/frame.py; with the node's key "
        "(--node-json or --key) each MIC is checked. Ctrl-C stops.",
    )
    mo.add_argument("--port", required=True)
    mo.add_argument("--baud", type=int, default=115200)
    mo.add_argument("--node-json", help="node.json, for the key (MIC checks)")
    mo.add_argument("--key", help="the node's AES key, 32 hex characters")
    mo.add_argument("--seconds", type=float, default=0.0, help="stop after this long (default: until Ctrl-C)")
    mo.add_argument("--log", help="also append the raw console lines to this file (for 'battery --log')")
    mo.set_defaults(func=cmd_monitor)

    ca = sub.add_parser(
        "calibrate",
        help="make a node learn its empty-bay baseline again (REPL, or a downlink)",
        description="Over the REPL (--port): mpremote writes calibrate.req on the board and resets it; the "
        "firmware calibrates at boot and sends a heartbeat when done. For a node in the field (--downlink): print "
        "the COMMAND calibrate frame for the fog to send in the node's receive window. Keep the bay empty meanwhile.",
    )
    ca.add_argument("--port", help="serial port of the board")
    ca.add_argument("--dry-run", action="store_true", help="print the mpremote command, run nothing")
    ca.add_argument("--downlink", action="store_true", help="print the COMMAND downlink instead")
    ca.add_argument("--node-json", help="node.json (node id and key) for --downlink")
    ca.add_argument("--fcnt", type=int, default=1, help="downlink counter for --downlink (default %(default)s)")
    ca.set_defaults(func=cmd_calibrate)

    ba = sub.add_parser(
        "battery",
        help="energy budget term by term, battery life, dominant term, solar panel for energy neutrality",
        description="Estimated battery life from the configured intervals, the awake time per wake (a profile "
        "figure, --awake-ms, or measured: --log with a console capture of 'sleep: awake <ms> ms' lines) and "
        "datasheet currents (sources in device/battery.py). Defaults: wake every 30 s, deep sleep, compiled .mpy.",
    )
    ba.add_argument("--profile", choices=["custom", "devboard"], default="custom",
                    help="custom: a battery board, 10 uA-class sleep; devboard: Heltec/TTGO-class (~1 mA asleep)")
    ba.add_argument("--node-json", help="take wake period, heartbeat, radio, confirmed uplinks from a node.json")
    ba.add_argument("--wake-s", type=float, help="seconds between wakes (default 30)")
    ba.add_argument("--firmware", choices=["mpy", "source"], default="mpy", help="compiled .mpy or .py sources")
    ba.add_argument("--awake-ms", type=float, help="awake time per wake in ms (overrides --firmware)")
    ba.add_argument("--log", help="console log of a real board: mean of its 'sleep: awake <ms> ms' lines")
    ba.add_argument("--boot-ms", type=float, default=60.0,
                    help="with --log: boot time before main.py runs, which the firmware cannot see (default %(default)s)")
    ba.add_argument("--active-ma", type=float, help="MCU active current in mA")
    ba.add_argument("--sleep-ua", type=float, help="whole board's sleep current in uA")
    ba.add_argument("--mag-mode", choices=["single", "continuous"], default="single",
                    help="magnetometer in standby between samples (single) or always measuring (continuous)")
    ba.add_argument("--range-every", type=int, help="ultrasonic reading at least every N wakes (default 20)")
    ba.add_argument("--arrivals-per-day", type=float, help="vehicles per day (default 20)")
    ba.add_argument("--heartbeat-s", type=float, help="heartbeat period in s (default 10800)")
    ba.add_argument("--sf", type=int, help="spreading factor (default 7)")
    ba.add_argument("--bw", type=float, help="bandwidth in kHz (default 125)")
    ba.add_argument("--rx-window-ms", type=float, help="receive window after each uplink (default 0)")
    ba.add_argument("--confirmed", action="store_true", help="confirmed occupancy frames")
    ba.add_argument("--ack-loss", type=float, help="probability an ACK is lost (default 0.1)")
    ba.add_argument("--retries", type=int, help="retries of a confirmed frame (default 3)")
    ba.add_argument("--capacity-mah", type=float, help="battery capacity (default 3000)")
    ba.add_argument("--usable", type=float, help="usable fraction of the capacity (default 0.85)")
    ba.add_argument("--sun-hours", type=float, help="peak sun hours per day for the panel size (default 3)")
    ba.add_argument("--charge-eff", type=float, help="charge efficiency panel -> battery (default 0.7)")
    ba.set_defaults(func=cmd_battery)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
