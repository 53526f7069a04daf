"""``fogpark-fog``: the fog box's command line."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path

from fog.cli_tools import TOOL_COMMANDS, TOOLS_HELP, add_tool_parsers, run_tool
from fog.config import DEMO_FOG_CONFIG, ConfigError, SerialIngest, load_fog_config
from fog.evaluation.cli import add_evaluate_parser
from fog.logsetup import setup_logging

DESCRIPTION = """FogPark fog daemon and tools for a lot's box.

commands:
  run     run the daemon: ingest (serial gateways, MQTT, SPI radio), the 10 ms cycle, the SQLite
          store, cloud sync and the local HTTP API, until SIGTERM/SIGINT
  check   validate a fog config (and the lot file and node registry it names)
          without starting anything; exit 0 when valid, 2 with the problem
""" + TOOLS_HELP + """  evaluate  FogPark's selection, pricing and MCPR against the baselines in Eclipse SUMO
          (needs the `sim` extra); --quick for a CI-sized run; writes a report
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fogpark-fog", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run the fog daemon",
                         description="Run the fog daemon until SIGTERM/SIGINT.")
    run.add_argument("--config", type=Path, default=None,
                     help=f"fog config file (default: the embedded demo, {DEMO_FOG_CONFIG.name})")
    run.add_argument("--api", metavar="HOST:PORT", help="override [api].listen (port 0 = any free port)")
    run.add_argument("--data-dir", type=Path, help="override [fog].data_dir (where the SQLite store lives)")
    run.add_argument("--serial", action="append", default=[], metavar="PORT",
                     help="add a serial gateway on PORT (repeatable)")
    run.add_argument("--cloud", action="append", default=None, metavar="HOST:PORT",
                     help="override [cloud].targets (repeatable)")
    run.add_argument("--no-cloud", action="store_true", help="run without cloud sync")
    run.add_argument("--log-level", default="INFO")
    run.add_argument("--log-json", action="store_true", help="log JSON lines (for log shippers)")
    chk = sub.add_parser("check", help="validate a fog config without starting",
                         description="Validate a fog config, its lot file and its node registry.")
    chk.add_argument("config", type=Path)
    chk.add_argument("--data-dir", type=Path, help="override [fog].data_dir (where cloud-sent lot files are kept)")
    add_tool_parsers(sub)
    add_evaluate_parser(sub)  # imports neither SUMO nor matplotlib until it runs
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in TOOL_COMMANDS:
        return run_tool(args)
    if args.command == "evaluate":
        return int(args.func(args))
    if args.command == "check":
        try:
            cfg = load_fog_config(args.config, args.data_dir)
        except ConfigError as err:
            print(f"invalid: {err}", file=sys.stderr)
            return 2
        print(f"ok: fog {cfg.fog_id}, lot {cfg.lot.id} ({cfg.lot.capacity} spots, {len(cfg.lot.edges)} lanes, "
              f"from the {cfg.lot_origin}), {len(cfg.nodes)} nodes, {len(cfg.serial)} serial gateways, "
              f"cloud {'off' if not cfg.cloud else ', '.join(cfg.cloud.targets)}")
        if cfg.lot_problem:
            print(f"warning: {cfg.lot_problem}", file=sys.stderr)
        return 0
    setup_logging(args.log_level, args.log_json)
    try:
        cfg = load_fog_config(args.config, args.data_dir)
    except ConfigError as err:
        print(f"fogpark-fog: not starting: {err}", file=sys.stderr)
        return 2
    cfg = _apply_overrides(cfg, args)
    from fog.daemon import FogDaemon  # imported late: `check` needs no runtime deps

    asyncio.run(FogDaemon(cfg).run())
    return 0


def _apply_overrides(cfg, args):  # type: ignore[no-untyped-def]
    changes: dict[str, object] = {}
    if args.api:
        host, _, port = args.api.rpartition(":")
        changes.update(api_host=host, api_port=int(port))
    if args.serial:
        extra = tuple(SerialIngest(p, 115200, f"serial{i}") for i, p in enumerate(args.serial, len(cfg.serial)))
        changes["serial"] = cfg.serial + extra
    if args.no_cloud:
        changes["cloud"] = None
    elif args.cloud and cfg.cloud:
        changes["cloud"] = dataclasses.replace(cfg.cloud, targets=tuple(args.cloud))
    return dataclasses.replace(cfg, **changes)


if __name__ == "__main__":
    sys.exit(main())
