"""Offline operator tools of ``fogpark-fog`` (no daemon needed): ``quote``, ``auction``, ``lotgen``.

* ``quote CONFIG --hours H [--occupied N] [--late-occupied N]`` — the charge
  of a stay under the lot's ``[tariff]`` with its breakdown (§4);
* ``auction BIDS.csv --spots K [--floor F] [--cap C] [--config LOT]`` — the
  seasonal rate, the winners and the revenue of a subscription auction (§4.2);
* ``lotgen --spots N [--seed S] [--out FILE] [--nodes FILE]`` — a generated
  lot (`fog.engine.lot_generator`) written as a lot file the fog loads.

Exit status: 0 done, 2 bad input (the message names the file, line or key).
"""

from __future__ import annotations

import argparse
import csv
import math
import secrets
import sys
import time
import zoneinfo
from datetime import datetime
from pathlib import Path
from typing import Any

from fog.config import ConfigError, LaneEdge, LotConfig, LotPolicy, Spot, load_fog_config, load_lot, read_toml
from fog.engine.lot_generator import LotDicts, generate_lot
from fog.engine.pricing import Bid, round_money, run_auction
from fog.tariffs import parse_tariff, quote

TOOL_COMMANDS = ("quote", "auction", "lotgen")
TOOLS_HELP = """  quote   the charge of a stay under a lot's tariff, with its breakdown (offline)
  auction the seasonal rate, winners and revenue of a subscription auction from a CSV of bids
  lotgen  write a generated lot (N spots, lanes, gates) as a lot file the fog loads
"""
DEFAULT_TARIFFS: dict[str, dict[str, Any]] = {
    "hybrid": {"plan": "hybrid", "first_hour": 2.0, "per_hour": 1.5, "discount_per_range": 0.05,
               "hours_per_range": 2, "max_ranges": 3},
    "occupancy": {"plan": "occupancy", "operating_cost": 2.0, "k": 0.5},
    "fixed": {"plan": "fixed", "rate_per_hour": 2.0},
    "demand": {"plan": "demand", "rate_per_hour": 2.0, "floor": 0.5, "cap": 6.0},
}


class ToolError(Exception):
    """Bad input to a tool; the message says what and where."""


def add_tool_parsers(sub: Any) -> None:
    """Add the tools' subcommands to ``fogpark-fog``'s subparsers."""
    q = sub.add_parser("quote", help="price a stay under a lot's tariff (offline)",
                       description="Print the charge of a stay under the lot's [tariff], with its breakdown.")
    q.add_argument("config", type=Path, help="a lot file, or a fog config (its lot file is used)")
    q.add_argument("--hours", type=float, required=True, help="length of the stay (every started hour counts)")
    q.add_argument("--occupied", type=int, default=0, help="occupied spots when booking (occupancy plan)")
    q.add_argument("--late-occupied", type=int, default=None,
                   help="add the late-arrival charge for arriving after the grace with N spots occupied")
    a = sub.add_parser("auction", help="run a subscription auction over a CSV of bids (offline)",
                       description="Seasonal rate = the k-th highest valid bid; each client's latest bid counts. "
                                   "CSV columns: client,amount[,timestamp] (timestamp: epoch seconds or ISO 8601; "
                                   "a header row is optional).")
    a.add_argument("bids", type=Path, metavar="BIDS.csv")
    a.add_argument("--spots", type=int, default=None, help="k, the spots offered (default: from --config)")
    a.add_argument("--floor", type=float, default=None, help="lowest valid bid (default: --config's, else 0)")
    a.add_argument("--cap", type=float, default=None, help="highest valid bid (default: --config's, else none)")
    a.add_argument("--config", type=Path, default=None, help="a lot file with [tariff.auction] (spots, floor, cap)")
    g = sub.add_parser("lotgen", help="write a generated lot file",
                       description="Generate a lot (aisles of two-sided slots, junction rows, gates) and write "
                                   "it as a lot file that `fogpark-fog check` and the daemon load.")
    g.add_argument("--spots", type=int, required=True)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--id", default=None, help="lot id (default: gen<N>)")
    g.add_argument("--tariff", choices=(*DEFAULT_TARIFFS, "none"), default="hybrid",
                   help="tariff plan to write with example prices (default hybrid)")
    g.add_argument("--out", type=Path, default=None, help="output file (default: stdout)")
    g.add_argument("--nodes", type=Path, default=None,
                   help="also write a node registry with one node per spot and fresh random keys")


def run_tool(args: argparse.Namespace) -> int:
    try:
        if args.command == "quote":
            print(_quote(args))
        elif args.command == "auction":
            print(_auction(args))
        else:
            _lotgen(args)
    except (ConfigError, ToolError) as err:
        print(f"fogpark-fog {args.command}: {err}", file=sys.stderr)
        return 2
    return 0


# ---------------------------------------------------------------- quote
def _load_any(path: Path) -> LotConfig:
    data = read_toml(path)
    return load_fog_config(path).lot if "fog" in data else load_lot(path)


def _quote(args: argparse.Namespace) -> str:
    lot = _load_any(args.config)
    if not lot.tariff:
        raise ToolError(f"{lot.source}: the lot has no [tariff] table")
    tariff = parse_tariff(lot.source, lot.tariff, lot.spots)
    if not (math.isfinite(args.hours) and 0 < args.hours <= lot.policy.max_hours):
        raise ToolError(f"--hours must be more than 0 and at most {lot.policy.max_hours}, got {args.hours:g}")
    for name, value in (("--occupied", args.occupied), ("--late-occupied", args.late_occupied)):
        if value is not None and not 0 <= value <= lot.capacity:
            raise ToolError(f"{name} must be within 0..{lot.capacity} (the lot's capacity), got {value}")
    q = quote(tariff, args.hours, args.occupied, lot.capacity, at_s=time.time(),
              tz=zoneinfo.ZoneInfo(lot.policy.timezone), late_occupied=args.late_occupied)
    head = f"lot {lot.id} ({lot.capacity} spots, {args.occupied} occupied)"
    return f"{head}\n{q.text()}"


# ---------------------------------------------------------------- auction
def read_bids(path: Path) -> list[Bid]:
    """Bids from a CSV (client,amount[,timestamp]); a row without a timestamp counts in file order."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ToolError(f"{path}: cannot read: {err.strerror or err}") from None
    bids: list[Bid] = []
    for line_no, row in enumerate(csv.reader(text.splitlines()), 1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in row]
        if line_no == 1 and cells[0].lower() in ("client", "client_id", "bidder"):
            continue  # header
        if len(cells) < 2 or not cells[0]:
            raise ToolError(f"{path} line {line_no}: expected client,amount[,timestamp], got {row!r}")
        try:
            amount = float(cells[1])
        except ValueError:
            raise ToolError(f"{path} line {line_no}: amount {cells[1]!r} is not a number") from None
        if not math.isfinite(amount):
            raise ToolError(f"{path} line {line_no}: amount {cells[1]!r} is not a finite number")
        stamp = float(line_no)
        if len(cells) > 2 and cells[2]:
            try:
                stamp = float(cells[2])
            except ValueError:
                try:
                    stamp = datetime.fromisoformat(cells[2]).timestamp()
                except ValueError:
                    raise ToolError(f"{path} line {line_no}: timestamp {cells[2]!r} is neither epoch seconds "
                                    "nor ISO 8601") from None
        bids.append(Bid(cells[0], amount, stamp))
    return bids


def _auction(args: argparse.Namespace) -> str:
    spots, floor, cap, zone = args.spots, args.floor, args.cap, None
    if args.config is not None:
        lot = _load_any(args.config)
        terms = parse_tariff(lot.source, lot.tariff, lot.spots).auction
        if terms is None:
            raise ToolError(f"{lot.source}: no [tariff.auction] table")
        spots = terms.spots if spots is None else spots
        floor = terms.floor if floor is None else floor
        cap = terms.cap if cap is None else cap
        zone = terms.zone
    if spots is None or spots < 1:
        raise ToolError("--spots must be at least 1 (or give --config with [tariff.auction])")
    floor = 0.0 if floor is None else floor
    cap = math.inf if cap is None else cap
    if not 0 <= floor <= cap:
        raise ToolError(f"need 0 <= floor <= cap, got floor {floor:g} and cap {cap:g}")
    result = run_auction(read_bids(args.bids), spots, floor, cap)
    out = [f"auction of {spots} spots{f' in zone {zone}' if zone else ''}; valid bids within "
           f"{floor:g}..{cap:g}"]
    if result.rate is None:
        out.append("no valid bids: no rate, no winners, revenue 0.00")
    else:
        out.append(f"rate     {round_money(result.rate)}")
        out.append(f"winners  {len(result.winners)}")
        for i, b in enumerate(result.winners, 1):
            out.append(f"  {i:>3}. {b.client_id:<24} bid {round_money(b.amount):>10}  at {b.timestamp:g}")
        out.append(f"revenue  {round_money(result.revenue)}")
    for err in result.refused:
        out.append(f"refused: {err}")
    return "\n".join(out)


# ---------------------------------------------------------------- lotgen
def lot_config_from_generated(lot: LotDicts, lot_id: str, tariff: dict[str, Any] | None = None) -> LotConfig:
    """A generated lot as the loader would build it from the written file (no TOML round trip)."""
    spots = tuple(Spot(n["id"], "default", "normal", 0.0, 0.0) for n in lot["nodes"] if n["kind"] == "spot")
    nodes: dict[str, str] = {s.id: "spot" for s in spots}
    nodes.update({n["id"]: n["kind"] for n in lot["nodes"] if n["kind"] != "spot"})
    edges = tuple(LaneEdge(e["from"], e["to"], float(e["length_m"]), float(e["speed_mps"]), int(e["capacity"]))
                  for e in lot["edges"])
    tariff = dict(tariff or {})
    parse_tariff("<generated>", tariff, spots)
    return LotConfig(id=lot_id, name=f"generated lot, {len(spots)} spots", spots=spots, graph_nodes=nodes,
                     edges=edges, tariff=tariff, opening_hours="00:00-24:00", source=Path("<generated>"),
                     policy=LotPolicy())


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def lot_toml(cfg: LotConfig, header: str = "") -> str:
    """A lot config as lot-file text (`fog.config.load_lot` reads it back to an equal config)."""
    out = [f"# {line}" for line in header.splitlines()]
    out += ["", "[lot]", f"id = {_toml(cfg.id)}", f"name = {_toml(cfg.name)}",
            f"opening_hours = {_toml(cfg.opening_hours)}", ""]
    if cfg.tariff:
        out.append("[tariff]")
        out += [f"{k} = {_toml(v)}" for k, v in cfg.tariff.items()]
        out.append("")
    for s in cfg.spots:
        out += ["[[spots]]", f"id = {_toml(s.id)}", f"zone = {_toml(s.zone)}", f"kind = {_toml(s.kind)}", ""]
    for node_id, kind in cfg.graph_nodes.items():
        if kind != "spot":
            out += ["[[graph.nodes]]", f"id = {_toml(node_id)}", f"kind = {_toml(kind)}", ""]
    for e in cfg.edges:
        out += ["[[graph.edges]]", f"from = {_toml(e.src)}", f"to = {_toml(e.dst)}",
                f"length_m = {_toml(e.length_m)}", f"speed_mps = {_toml(e.speed_mps)}",
                f"capacity = {_toml(e.capacity)}", ""]
    return "\n".join(out)


def nodes_toml(cfg: LotConfig, first_node_id: int = 0x10000000) -> str:
    """A node registry with one node per spot and fresh random 128-bit keys."""
    out = [f"# Node registry of lot {cfg.id}: fresh random keys (keep this file secret).", ""]
    for i, s in enumerate(cfg.spots):
        out += ["[[nodes]]", f"node_id = 0x{first_node_id + i:08X}", f"spot = {_toml(s.id)}",
                f"key = \"{secrets.token_hex(16)}\"", ""]
    return "\n".join(out)


def _lotgen(args: argparse.Namespace) -> None:
    if args.spots < 1:
        raise ToolError(f"--spots must be at least 1, got {args.spots}")
    lot_id = args.id or f"gen{args.spots}"
    tariff = None if args.tariff == "none" else DEFAULT_TARIFFS[args.tariff]
    cfg = lot_config_from_generated(generate_lot(args.spots, seed=args.seed), lot_id, tariff)
    text = lot_toml(cfg, f"Generated by `fogpark-fog lotgen --spots {args.spots} --seed {args.seed}`.\n"
                         "Format: fog/examples/README.md")
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        load_lot(args.out)  # what we wrote must load
        print(f"wrote {args.out}: {cfg.capacity} spots, {len(cfg.edges)} lanes, {len(cfg.entrances)} entrances",
              file=sys.stderr)
    if args.nodes is not None:
        args.nodes.parent.mkdir(parents=True, exist_ok=True)
        args.nodes.write_text(nodes_toml(cfg), encoding="utf-8")
        print(f"wrote {args.nodes}: {cfg.capacity} nodes", file=sys.stderr)
