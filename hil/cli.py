"""``fogpark-hil``: the hardware-in-the-loop bench's command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from hil.stack import StackPorts

DESCRIPTION = """FogPark hardware-in-the-loop bench.

commands:
  demo    run the whole stack on embedded defaults: a cloud (SQLite), a fog for
          the 24-spot demo lot, a gateway on a pty and one emulated node per bay
          (the real firmware under the MicroPython unix port); vehicles arrive
          and leave (Poisson) while a one-screen summary updates; Ctrl-C stops
          everything and leaves no process behind
  run     run a scenario (hil/scenarios/*.toml, or a path) against a fresh stack,
          with faults on its timeline; prints a verdict (ground truth against
          what the fog and the cloud recorded), writes verdict.json and PNG
          plots, and exits 1 when an invariant breaks. `run --all` runs the
          standard set (what `make hil` runs)
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fogpark-hil", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    d = sub.add_parser("demo", help="run cloud + fog + emulated nodes with live traffic",
                       description="Run the whole stack on embedded defaults until Ctrl-C.")
    d.add_argument("--workdir", type=Path, default=Path("var/demo"),
                   help="where logs, the pty and the stores go (emptied at start; default var/demo)")
    d.add_argument("--fog-port", type=int, default=8080, help="fog HTTP API port (default 8080)")
    d.add_argument("--cloud-grpc", type=int, default=50051, help="cloud gRPC port (default 50051)")
    d.add_argument("--cloud-http", type=int, default=8081, help="cloud HTTP API port (default 8081)")
    d.add_argument("--arrivals-per-min", type=float, default=6.0, help="Poisson arrival rate (default 6)")
    d.add_argument("--mean-stay", type=float, default=120.0, help="mean stay in seconds (default 120)")
    d.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--no-clear", action="store_true", help="append summaries instead of redrawing the screen")
    r = sub.add_parser("run", help="run a scenario and judge it (exit 1 on a broken invariant)",
                       description="Run scenario(s) against a fresh stack; print and write the verdict. "
                                   "Scenario format: hil/scenarios/README.md.")
    r.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                   help="a name from hil/scenarios (e.g. smoke, published-150) or a path to a .toml file")
    r.add_argument("--all", action="store_true", help="run the standard scenarios (make hil)")
    r.add_argument("--list", action="store_true", help="list the scenario library and exit")
    r.add_argument("--workdir", type=Path, default=Path("var/hil"),
                   help="runs go to WORKDIR/<scenario> (emptied at start; default var/hil)")
    r.add_argument("--hardware", action="append", default=[], metavar="PORT=SPOT",
                   help="replace the emulated node of SPOT by a real board on serial PORT (see hil/BENCH.md)")
    r.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from hil.demo import run_demo

        ports = StackPorts(args.fog_port, args.cloud_grpc, args.cloud_http)
        return asyncio.run(run_demo(args.workdir, ports, args.arrivals_per_min, args.mean_stay, args.duration,
                                    args.seed, clear_screen=not args.no_clear and sys.stdout.isatty()))
    if args.command == "run":
        from hil.runner import run_command

        return run_command(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
