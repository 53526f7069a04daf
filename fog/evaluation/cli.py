"""``fogpark-fog evaluate``: the SUMO evaluation from one command.

`add_evaluate_parser` registers the sub-command on the fog's CLI;
`run_evaluate` runs it. ``python -m fog.evaluation`` runs the same thing
standalone. Exit status: 0 when the report was written and every task ran,
1 when some tasks failed (the report lists them), 2 when the input is
unusable or SUMO is not installed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["add_evaluate_parser", "main", "run_evaluate"]

DESCRIPTION = """Evaluate FogPark's spot selection, pricing and multi-lot recommendation in SUMO.

Builds a SUMO network from the lot (or a lot from a SUMO network), drives
SUMO through TraCI with the fog engine in the loop against the traditional
search, sweeps what the publication plotted, and writes a Markdown report
with tables and PNG plots into --out. Needs the 'sim' extra:
    pip install -e '.[sim]'
"""


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true",
                   help="CI-sized plan: 3 points per sweep, 5 seeds, 10-minute published runs (well under 3 min)")
    p.add_argument("--seeds", type=int, default=None, metavar="N",
                   help="seeds per sweep point, for every part (default: 30 for (a)/(b), 10 published, "
                        "20 revenue, 5 MCPR days; --quick: 5/3/5/2)")
    p.add_argument("--out", type=Path, default=Path("var/eval"), metavar="DIR",
                   help="where the report goes (default: var/eval)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--lot", type=Path, default=None, metavar="FILE",
                     help="lot file to evaluate on (default: a generated 150-spot lot, generate_lot(150, seed=0))")
    src.add_argument("--sumo-net", type=Path, default=None, metavar="FILE",
                     help="evaluate on a lot read from a SUMO .net.xml (drawn in netedit or from OSM via "
                          "netconvert); the lot file derived from it is written to DIR/lot-from-sumo.toml")
    p.add_argument("--sumo-additional", type=Path, action="append", default=[], metavar="FILE",
                   help="additional file with the network's parking areas (repeatable; default: "
                        "NAME.parking.add.xml beside the network when it exists)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help=f"worker processes, each with its own SUMO (default: CPU count, {os.cpu_count()})")
    p.add_argument("--convert-only", action="store_true",
                   help="only write the lot file and the SUMO network into DIR, then stop")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_evaluate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``evaluate`` to a sub-parser set (``fogpark-fog``'s)."""
    p = subparsers.add_parser(
        "evaluate", help="evaluate selection, pricing and MCPR in SUMO and write a report",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _configure(p)
    p.set_defaults(func=run_evaluate)
    return p


def _sumo_missing() -> str | None:
    try:
        import sumolib  # noqa: F401
        import traci  # noqa: F401

        from fog.evaluation.sumo_net import sumo_binary

        sumo_binary("sumo")
        sumo_binary("netconvert")
        import matplotlib  # noqa: F401
    except Exception as err:  # noqa: BLE001 - any import or lookup failure means the extra is missing
        return f"{err}"
    return None


def run_evaluate(args: argparse.Namespace) -> int:
    """Run the evaluation described by parsed ``args``; returns the exit status."""
    problem = _sumo_missing()
    if problem is not None:
        print(f"fogpark-fog evaluate: SUMO is not available ({problem}).\n"
              "Install the simulation extra: pip install -e '.[sim]'", file=sys.stderr)
        return 2
    from fog.config import ConfigError
    from fog.engine.lot_generator import generate_lot
    from fog.evaluation.lot_document import (
        LotDocument,
        document_from_file,
        document_from_generated,
        write_document,
    )
    from fog.evaluation.report import headline, write_report
    from fog.evaluation.sumo_net import SumoNetError, read_sumo_network
    from fog.evaluation.sweeps import DEFAULT_PLAN, QUICK_PLAN, prepare_network, run_evaluation

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    try:
        doc: LotDocument
        if args.sumo_net is not None:
            additional = list(args.sumo_additional)
            if not additional:
                guess = args.sumo_net.with_name(args.sumo_net.name.replace(".net.xml", "") + ".parking.add.xml")
                additional = [guess] if guess.exists() else []
            doc, notes = read_sumo_network(args.sumo_net, additional)
            written = write_document(doc, out / "lot-from-sumo.toml", header=f"Lot read from {args.sumo_net}")
            for note in notes:
                print(f"note: {note}", file=sys.stderr)
            print(f"lot file: {written} ({len(doc['spots'])} spots, {len(doc['graph']['edges'])} lanes)")
            lot_name = f"{doc['lot']['name']} (from {args.sumo_net.name})"
        elif args.lot is not None:
            doc = document_from_file(args.lot)
            lot_name = f"{doc['lot']['name']} ({args.lot})"
        else:
            doc = document_from_generated(generate_lot(150, seed=0), lot_id="generated-150",
                                          name="generated 150-spot lot")
            lot_name = "generated 150-spot lot (generate_lot(150, seed=0))"
        if args.convert_only:
            setup, round_trip = prepare_network(doc, out)
            print(f"SUMO network: {setup.network.net_file}\nparking areas: {setup.network.parking_file}\n{round_trip}")
            return 0
    except (ConfigError, SumoNetError, ValueError) as err:
        print(f"fogpark-fog evaluate: {err}", file=sys.stderr)
        return 2

    plan = QUICK_PLAN if args.quick else DEFAULT_PLAN
    if args.seeds is not None:
        try:
            plan = plan.with_seeds(args.seeds)
        except ValueError as err:
            print(f"fogpark-fog evaluate: --seeds: {err}", file=sys.stderr)
            return 2
    jobs = args.jobs if args.jobs is not None else (os.cpu_count() or 1)
    started = time.monotonic()
    results = run_evaluation(plan, doc, out, jobs=max(1, jobs), lot_name=lot_name, progress=not args.no_progress)
    results.command = _command(args)
    files = write_report(results)
    print(f"report: {files[0]} ({time.monotonic() - started:.0f} s, plan {plan.name}, {results.jobs} jobs)")
    for line in headline(results):
        print(f"  {line}")
    if results.errors:
        print(f"{len(results.errors)} task(s) failed; see the report", file=sys.stderr)
        return 1
    return 0


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run (jobs and progress do not change the numbers)."""
    parts = ["fogpark-fog evaluate"]
    if args.quick:
        parts.append("--quick")
    if args.seeds is not None:
        parts.append(f"--seeds {args.seeds}")
    if args.lot is not None:
        parts.append(f"--lot {args.lot}")
    if args.sumo_net is not None:
        parts.append(f"--sumo-net {args.sumo_net}")
        parts += [f"--sumo-additional {a}" for a in args.sumo_additional]
    parts.append(f"--out {args.out}")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """``python -m fog.evaluation``."""
    p = argparse.ArgumentParser(prog="python -m fog.evaluation", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _configure(p)
    return run_evaluate(p.parse_args(argv))
