"""``fogpark-node``: the installer's tool for FogPark sensor nodes.

Subcommands (``fogpark-node <command> --help`` for details):

* ``provision`` -- create a node's identity: a node id (random unless
  given), a fresh 128-bit AES key, its spot and board; writes node.json for
  the node's flash and appends the node to the fog's registry (nodes.toml).
* ``airtime`` -- LoRa time on air of a frame and the highest send rate a
  duty-cycle limit allows.
* ``check`` -- validate a node.json with the firmware's own validator.

node.json is validated by ``device/firmware/node_config.py`` -- the code the
node itself runs at boot -- loaded here under CPython, so the tool and the
node never disagree about what a valid file is.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import secrets
import sys
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
    return firmware_module("node_config").validate(data, [str(BOARDS_DIR)])


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
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    boards = sorted(p.stem for p in BOARDS_DIR.glob("*.json"))
    p = argparse.ArgumentParser(
        prog="fogpark-node",
        description="FogPark sensor-node tool for installers: provision node identities, "
        "size LoRa airtime, validate node.json.",
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
        description="Run device/firmware/node_config.py (the validator the node runs at boot) on a "
        "node.json. Exit status 0 when valid; otherwise every problem is listed, naming the key.",
    )
    ck.add_argument("node_json", metavar="node.json", help="the file to check")
    ck.set_defaults(func=cmd_check)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
