"""``fogpark-cloud``: run the cloud, and ask it what operators ask (the same functions as the HTTP API).

    fogpark-cloud serve    [--config FILE] [--db FILE] [--grpc HOST:PORT] [--http HOST:PORT] [--tls-cert/--tls-key]
    fogpark-cloud history  --lot LOT --since 10m          spot events + bucketed summaries
    fogpark-cloud cursor   --fog ID
    fogpark-cloud lots | occupancy | stats | revenue | reservations | no-shows | alerts | nodes | bookings
    fogpark-cloud recommend (--lat/--lon | --x-m/--y-m) [--w-distance/--w-price/--w-free]
    fogpark-cloud book     --lot LOT --start ISO --end ISO [--plan] [--spot] [--plate] [--card]
    fogpark-cloud model    train [--lot LOT] [--push] | report [--lot LOT] | push --lot LOT
    fogpark-cloud export   ngsi-ld [--type T] [--lot LOT] [--out FILE]

Everything but ``serve`` reads the store file directly (and the configured
history backend), so it works with the server stopped or running: the store is
safe for several processes. Whoever can read the store file is an admin, so the
CLI needs no token. ``--format table|json|csv`` everywhere a list is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cloud.auth import ConfigError
from cloud.config import CloudConfig, load_config
from cloud.metrics import Counters
from cloud.queries import Operations, QueryError, Report
from cloud.schema import SchemaError
from cloud.store import CloudStore
from cloud.timeparse import format_ms

DEFAULT_DB = Path("var/cloud.db")
DEFAULT_GRPC = "127.0.0.1:50051"
DEFAULT_HTTP = "127.0.0.1:8081"
# Summary buckets offered by `history` when --bucket is not given: the finest giving <= 120 rows.
_AUTO_BUCKETS_S = (60, 300, 900, 3600, 6 * 3600, 86400)
_AUTO_MAX_ROWS = 120
_TIME_HELP = "'now', a duration ago (90s, 10m, 2h, 1d) or an ISO-8601 time (UTC if no zone)"


class UsageError(Exception):
    """An option value that cannot be used; the message names the option."""


# ---- serve -------------------------------------------------------------------


def _cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(args.config)
    return asyncio.run(_serve(args, config))


async def _serve(args: argparse.Namespace, config: CloudConfig) -> int:
    """gRPC and HTTP in one loop until SIGINT/SIGTERM, then a clean stop."""
    # Imported here so the query commands start without loading grpc and aiohttp.
    from cloud.history import open_history
    from cloud.http_api import create_app, start_http
    from cloud.service import is_loopback, serve, split_host_port

    try:
        http_host, http_port = split_host_port(args.http)
    except ValueError as exc:
        raise UsageError(f"--http: {exc}") from None
    if not is_loopback(http_host):
        if config.anonymous_read:
            raise UsageError(f"--http {args.http}: {config.source} sets [http] anonymous_read = true, which is "
                             "for the loopback demo only; remove it or bind the API to 127.0.0.1")
        if not args.allow_insecure_remote:
            raise UsageError(f"--http {args.http}: the operator API speaks plain HTTP and its tokens would cross "
                             "the network in clear; bind it to 127.0.0.1 behind a TLS-terminating proxy, or pass "
                             "--allow-insecure-remote when such a proxy is in front")
    counters = Counters()
    try:
        handle = await serve(
            args.db, config.registry, address=args.grpc, metrics=counters, tls_cert=args.tls_cert,
            tls_key=args.tls_key, allow_insecure_remote=args.allow_insecure_remote, history=config.history,
        )
    except ValueError as exc:  # serve() refuses bad addresses and TLS/insecure combinations this way
        raise UsageError(f"--grpc/--tls-*: {exc}") from None
    http_store: CloudStore | None = None
    try:
        http_store = await asyncio.to_thread(CloudStore, args.db)
        history = open_history(config.history, http_store)
        http = await start_http(create_app(Operations(http_store, history, config), counters), http_host,
                                http_port)
    except BaseException:
        await handle.stop()
        if http_store is not None:
            http_store.close()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(
        f"fogpark-cloud: gRPC on {handle.target} ({'TLS' if handle.secure else 'plaintext'}), "
        f"HTTP on http://{http_host}:{http.port}, store {args.db}, history {config.history.backend}, "
        f"{len(config.registry.fogs)} fog(s), {len(config.operators)} operator(s) from {config.source}",
        flush=True,
    )
    await stop.wait()
    print("fogpark-cloud: stopping", flush=True)
    await http.stop()
    await handle.stop()
    if history is not http_store:
        history.close()
    http_store.close()
    print("fogpark-cloud: stopped", flush=True)
    return 0


# ---- opening the store -----------------------------------------------------------


def _open_existing(db: Path) -> CloudStore:
    """The store at ``db``; a missing file is an error here, not an empty new store."""
    if not db.exists():
        raise UsageError(f"--db {db}: no cloud store there (start `fogpark-cloud serve` first, or give --db)")
    return CloudStore(db)


def _with_ops(args: argparse.Namespace, fn: Callable[[Operations], Any]) -> Any:
    """Run ``fn`` over the store and history backend named by --db/--config; QueryError names the option."""
    from cloud.history import open_history

    config = load_config(args.config)
    store = _open_existing(args.db)
    history = open_history(config.history, store)
    try:
        return fn(Operations(store, history, config))
    except QueryError as exc:
        raise UsageError(f"--{exc.where.replace('_', '-')}: {exc.error}") from None
    finally:
        if history is not store:
            history.close()
        store.close()


# ---- output ----------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.0f}"
    return str(value)


def print_report(report: Report, fmt: str, *, table_columns: Sequence[str] | None = None) -> None:
    """JSON (rows + metadata), CSV (rows), or an aligned table for people."""
    if fmt == "json":
        json.dump(report.as_json(), sys.stdout, indent=2, default=str)
        print()
        return
    if fmt == "csv":
        report.write_csv(sys.stdout)
        return
    columns = list(table_columns or [c for c in report.columns if not c.endswith("_ms")])
    if not report.rows:
        print(f"no {report.kind.replace('_', ' ')}")
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in report.rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def _report_command(fn: Callable[[Operations, argparse.Namespace], Report]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        report = _with_ops(args, lambda ops: fn(ops, args))
        print_report(report, args.format)
        return 0
    return run


# ---- history / cursor --------------------------------------------------------


def _auto_bucket_s(span_ms: int) -> int:
    for bucket_s in _AUTO_BUCKETS_S:
        if span_ms / (bucket_s * 1000) <= _AUTO_MAX_ROWS:
            return bucket_s
    return _AUTO_BUCKETS_S[-1]


def _cmd_history(args: argparse.Namespace) -> int:
    def query(ops: Operations) -> tuple[Report, Report]:
        since_ms, until_ms = ops.window(args.since, args.until, args.since)
        bucket = args.bucket or f"{_auto_bucket_s(until_ms - since_ms)}s"
        events = ops.spot_history(args.lot, str(format_ms(since_ms)), str(format_ms(until_ms)), args.limit)
        buckets = ops.occupancy(args.lot, format_ms(since_ms), format_ms(until_ms), bucket)
        return events, buckets

    events, buckets = _with_ops(args, query)
    meta = events.meta
    if args.format == "json":
        json.dump({"lot_id": args.lot, "since_ms": meta["since_ms"], "until_ms": meta["until_ms"],
                   "spot_events": events.rows, "truncated": meta["truncated"],
                   "bucket_s": buckets.meta["bucket_s"], "summaries": buckets.rows}, sys.stdout, indent=2)
        print()
    elif args.format == "csv":
        events.write_csv(sys.stdout)
    else:
        _print_history_table(args.lot, events, buckets)
    return 0


def _print_history_table(lot: str, events: Report, buckets: Report) -> None:
    window = f"{format_ms(events.meta['since_ms'])} .. {format_ms(events.meta['until_ms'])} (UTC)"
    if not events.rows and not buckets.rows:
        print(f"nothing stored for lot {lot!r} in {window}: no spot events, no summaries")
        return
    print(f"lot {lot!r}, {window}")
    print()
    if events.rows:
        more = " (more not shown: use --limit or a narrower window)" if events.meta["truncated"] else ""
        print(f"spot events: {len(events.rows)}{more}")
        print(f"{'time':<25} {'spot':<10} {'state':<9} {'node':>10} {'fcnt':>8} {'rssi':>9}")
        for e in events.rows:
            print(
                f"{format_ms(e['at_ms']):<25} {e['spot_id']:<10} {e['state']:<9} {e['node_id']:>10} "
                f"{e['fcnt']:>8} {e['rssi_dbm']:>5} dBm"
            )
    else:
        print("spot events: none in this window")
    print()
    if buckets.rows:
        print(f"summaries, {_bucket_label(buckets.meta['bucket_s'])} buckets: {len(buckets.rows)}")
        print(f"{'bucket start':<25} {'samples':>7} {'occupied':>9} {'free':>7} {'capacity':>8} "
              f"{'arrivals':>8} {'departures':>10}")
        for b in buckets.rows:
            print(
                f"{format_ms(b['bucket_start_ms']):<25} {b['samples']:>7} {b['mean_occupied']:>9.1f} "
                f"{b['mean_free']:>7.1f} {b['capacity']:>8} {b['arrivals']:>8} {b['departures']:>10}"
            )
    else:
        print("summaries: none in this window")


def _bucket_label(bucket_s: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if bucket_s % size == 0:
            return f"{bucket_s // size}{unit}"
    return f"{bucket_s}s"


def _cmd_cursor(args: argparse.Namespace) -> int:
    store = _open_existing(args.db)
    try:
        acked = store.cursor(args.fog)
    finally:
        store.close()
    if acked:
        print(f"fog {args.fog!r}: acked_seq {acked} (the fog resumes at seq {acked + 1})")
    else:
        print(f"fog {args.fog!r}: nothing stored yet (acked_seq 0, the fog starts at seq 1)")
    return 0


# ---- writes: bookings, models, export ---------------------------------------------------


def _cmd_book(args: argparse.Namespace) -> int:
    body = {"lot_id": args.lot, "plan": args.plan, "start": args.start, "end": args.end}
    body.update({k: v for k, v in (("spot_id", args.spot), ("plate", args.plate), ("card_uid_hex", args.card)) if v})
    booking = _with_ops(args, lambda ops: ops.book(body, "cli"))
    if args.format == "json":
        print(json.dumps(booking, indent=2))
    else:
        print(f"booking {booking['booking_id']} for lot {booking['lot_id']} ({booking['start']} .. {booking['end']}) "
              f"forwarded to fog {booking['fog_id']} (update version {booking['update_version']}); "
              "the fog admits or refuses it: see `fogpark-cloud bookings`")
    return 0


def _cmd_model(args: argparse.Namespace) -> int:
    if args.action == "push":
        if not args.lot:
            raise UsageError("--lot: `model push` needs the lot whose models to push")
        result = _with_ops(args, lambda ops: ops.push(args.lot))
        if args.format == "json":
            print(json.dumps(result, indent=2))
        else:
            for fog, span in result["fogs"].items():
                print(f"lot {result['lot_id']}: {result['season_keys']} season keys queued for fog {fog} "
                      f"(versions {span['first_version']}..{span['last_version']})")
        return 0
    if args.action == "train":
        report = _with_ops(args, lambda ops: ops.train(args.lot, args.push))
    else:
        report = _with_ops(args, lambda ops: ops.model_report(args.lot))
    print_report(report, args.format, table_columns=(
        "lot_id", "trained", "calendar", "samples", "held_out_days", "horizon_s", "evaluated_forecasts",
        "brier", "brier_persistence", "skill", "helps", "season_keys", "error"))
    if args.format == "table" and report.rows:
        print("\nbrier: mean multi-category Brier score of the model's forecasts on the held-out days (0 best, 2 "
              "worst); brier_persistence: the same for 'the state stays as it is'; skill = 1 - brier / "
              "persistence: above 0 the model helps")
    return 0


def _cmd_push_config(args: argparse.Namespace) -> int:
    kind, path = ("lot", args.lot_file) if args.lot_file else ("tariff", args.tariff_file)
    result = _with_ops(args, lambda ops: ops.push_config(args.lot, kind, path))
    if args.format == "json":
        print(json.dumps(result, indent=2))
    else:
        for fog, version in result["fogs"].items():
            print(f"{kind} file {path} queued for fog {fog} as update version {version}; the fog applies it "
                  "live or refuses it with a config_refused alert (see `fogpark-cloud alerts`)")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    result = _with_ops(args, lambda ops: ops.ngsi_ld(args.type, args.lot))
    text = json.dumps(result["entities"], indent=2) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"{len(result['entities'])} NGSI-LD entities written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    for skipped in result["skipped"]:
        print(f"skipped {skipped['id']}: {skipped['reason']}", file=sys.stderr)
    return 0


# ---- argument parsing --------------------------------------------------------


def _common(parser: argparse.ArgumentParser, *, fmt: bool = True) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="cloud config TOML (default: the embedded demo config)")
    parser.add_argument("--db", type=Path, default=DEFAULT_DB,
                        help=f"SQLite store written by `serve` (default: {DEFAULT_DB}); must exist")
    if fmt:
        parser.add_argument("--format", choices=("table", "json", "csv"), default="table",
                            help="table (default, for people), json (rows and metadata), csv (rows)")


def _window(parser: argparse.ArgumentParser, default_since: str) -> None:
    parser.add_argument("--since", default=default_since, help=f"window start (default {default_since}): {_TIME_HELP}")
    parser.add_argument("--until", default="now", help=f"window end (default: now): {_TIME_HELP}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fogpark-cloud",
        description="FogPark cloud tier: gRPC ingest from fogs, history, operator API and dashboard, Markov models, "
        "city-level recommendation and bookings.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve", help="run the gRPC service, the operator HTTP API and the dashboard until SIGINT/SIGTERM",
        description="Run FogSync (gRPC, for fogs) and the operator HTTP API + dashboard in one process. "
        "Stops cleanly on SIGINT/SIGTERM (exit 0). Several replicas may share one --db file.",
    )
    serve.add_argument("--config", type=Path, default=None,
                       help="cloud config TOML (fogs, operators, lots, history, calendar); default: the embedded "
                       "demo config (fog demo-fog, token demo-token, lot demo, operator token demo-read-token)")
    serve.add_argument("--db", type=Path, default=DEFAULT_DB, help=f"SQLite store, created with its parent "
                       f"folders if missing (default: {DEFAULT_DB})")
    serve.add_argument("--grpc", default=DEFAULT_GRPC, metavar="HOST:PORT",
                       help=f"gRPC listen address, port 0 = any free port (default: {DEFAULT_GRPC})")
    serve.add_argument("--http", default=DEFAULT_HTTP, metavar="HOST:PORT",
                       help=f"operator HTTP listen address (default: {DEFAULT_HTTP})")
    serve.add_argument("--tls-cert", type=Path, default=None, help="PEM server certificate for gRPC "
                       "(deploy/gen_tls.py makes one)")
    serve.add_argument("--tls-key", type=Path, default=None, help="PEM private key matching --tls-cert")
    serve.add_argument("--allow-insecure-remote", action="store_true",
                       help="allow plaintext gRPC and HTTP on non-loopback addresses (only behind a "
                       "TLS-terminating proxy)")
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    serve.set_defaults(func=_cmd_serve)

    history = sub.add_parser(
        "history", help="print a lot's spot events and summaries",
        description="Print the spot events (time, spot, state, node, fcnt, RSSI) and the bucketed summaries "
        "of one lot in a time window, read straight from the store.",
    )
    history.add_argument("--lot", required=True, help="lot id, e.g. demo")
    history.add_argument("--since", required=True, help=f"window start: {_TIME_HELP}")
    history.add_argument("--until", default="now", help=f"window end (default: now): {_TIME_HELP}")
    _common(history, fmt=False)
    history.add_argument("--format", choices=("table", "json", "csv"), default="table",
                         help="table (default, for people), json (events and summaries), "
                         "csv (spot events only, for spreadsheets)")
    history.add_argument("--bucket", default=None,
                         help="summary bucket, e.g. 1m, 1h, 1d (default: the finest giving at most "
                         f"{_AUTO_MAX_ROWS} rows)")
    history.add_argument("--limit", type=int, default=1000, help="most spot events shown (default: 1000)")
    history.set_defaults(func=_cmd_history)

    cursor = sub.add_parser(
        "cursor", help="print the highest contiguous seq stored for a fog",
        description="Print a fog's cursor: the highest contiguous sequence number the cloud holds, "
        "i.e. where the fog resumes after a reconnect.",
    )
    cursor.add_argument("--fog", required=True, help="fog id, e.g. demo-fog")
    cursor.add_argument("--db", type=Path, default=DEFAULT_DB,
                        help=f"SQLite store written by `serve` (default: {DEFAULT_DB}); must exist")
    cursor.set_defaults(func=_cmd_cursor)

    p = sub.add_parser("lots", help="the city view: every lot with position, availability, price, freshness")
    _common(p)
    p.set_defaults(func=_report_command(lambda ops, a: ops.city()))

    p = sub.add_parser("occupancy", help="occupied/free spots, concentration and price of a lot over time",
                       description="Mean occupied and free spots, concentration index and price per hour of a lot, "
                       "per bucket; arrivals and departures summed.")
    p.add_argument("--lot", required=True)
    _window(p, "1d")
    p.add_argument("--bucket", default="1h", help="bucket, e.g. 5m, 1h, 1d (default 1h, UTC-aligned)")
    p.add_argument("--zone", default=None, help="a zone of the lot (default: the whole lot)")
    _common(p)
    p.set_defaults(func=_report_command(lambda ops, a: ops.occupancy(a.lot, a.since, a.until, a.bucket, a.zone)))

    p = sub.add_parser("stats", help="concentration index and mean inter-arrival time of a lot (ALGORITHMS.md 1)")
    p.add_argument("--lot", required=True)
    _window(p, "15m")
    _common(p)
    p.set_defaults(func=_report_command(lambda ops, a: ops.stats(a.lot, a.since, a.until)))

    p = sub.add_parser("revenue", help="reservations and revenue per plan")
    p.add_argument("--lot", default=None, help="one lot (default: all)")
    _window(p, "7d")
    _common(p)
    p.set_defaults(func=_report_command(lambda ops, a: ops.revenue(a.lot, a.since, a.until)))

    p = sub.add_parser("reservations", help="reservations (latest status of each) starting in a window")
    p.add_argument("--lot", default=None)
    p.add_argument("--status", default=None, help="admitted, checked_in, completed, cancelled, no_show, refused")
    _window(p, "7d")
    _common(p)
    p.set_defaults(func=_report_command(lambda ops, a: ops.reservations(a.lot, a.status, a.since, a.until)))

    p = sub.add_parser("no-shows", help="no-shows recorded by fogs, and bookings overdue past the waiting window")
    p.add_argument("--lot", default=None)
    _window(p, "7d")
    _common(p)
    p.set_defaults(func=_report_command(lambda ops, a: ops.no_shows(a.lot, a.since, a.until)))

    p = sub.add_parser("alerts", help="alerts (latest version of each)")
    p.add_argument("--lot", default=None)
    p.add_argument("--active", action="store_true", help="only alerts not cleared")
    p.add_argument("--since", default=None, help=f"last seen at or after: {_TIME_HELP}")
    _common(p)
    p.set_defaults(func=_report_command(
        lambda ops, a: ops.alerts(a.lot, "true" if a.active else None, a.since)))

    p = sub.add_parser("nodes", help="node health across the city: battery, last seen, silent, tamper")
    p.add_argument("--lot", default=None)
    _common(p)
    p.set_defaults(func=_report_command(lambda ops, a: ops.nodes(a.lot)))

    p = sub.add_parser("recommend", help="rank the city's lots for a destination (MCPR, ALGORITHMS.md 5)",
                       description="Rank lots with a free spot by distance to the destination, price per hour and "
                       "free spots, with the driver's weights (default equal). Coordinates as in [lots].")
    for name in ("--lat", "--lon", "--x-m", "--y-m"):
        p.add_argument(name, default=None)
    for name in ("--w-distance", "--w-price", "--w-free"):
        p.add_argument(name, default=None, help="weight >= 0 (default 1)")
    _common(p)
    p.set_defaults(func=_report_command(lambda ops, a: ops.recommend(
        lat=a.lat, lon=a.lon, x_m=a.x_m, y_m=a.y_m, w_distance=a.w_distance, w_price=a.w_price, w_free=a.w_free)))

    p = sub.add_parser("book", help="make an online booking, forwarded to the lot's fog (the fog decides)")
    p.add_argument("--lot", required=True)
    p.add_argument("--start", required=True, help="ISO-8601 start, e.g. 2024-05-01T08:00:00Z")
    p.add_argument("--end", required=True, help="ISO-8601 end")
    p.add_argument("--plan", default="occupancy", help="hybrid_short, occupancy, subscription or fixed")
    p.add_argument("--spot", default=None, help="a spot id (default: the fog chooses)")
    p.add_argument("--plate", default=None)
    p.add_argument("--card", default=None, help="RFID card UID as hex")
    _common(p)
    p.set_defaults(func=_cmd_book)

    p = sub.add_parser("bookings", help="bookings made in the cloud with the fog's verdict (forwarded/admitted/"
                       "refused/...)")
    p.add_argument("--lot", default=None)
    _common(p)
    p.set_defaults(func=_report_command(lambda ops, a: ops.bookings(a.lot)))

    p = sub.add_parser("model", help="Markov availability models: train, report quality, push to fogs",
                       description="train: learn per-lot season matrices from stored history and score them "
                       "(Brier vs persistence on held-out days); report: the newest scores; push: queue a lot's "
                       "models for its fog (CloudUpdate.model).")
    p.add_argument("action", choices=("train", "report", "push"))
    p.add_argument("--lot", default=None, help="one lot (default: every lot)")
    p.add_argument("--push", action="store_true", help="with train: queue the new models for the fogs")
    _common(p)
    p.set_defaults(func=_cmd_model)

    p = sub.add_parser("push-config", help="send a lot file or a tariff to the lot's fog(s), applied live there",
                       description="Queue a whole lot file (--lot-file) or a tariff (--tariff-file: a [tariff] "
                       "table, as in the lot file) for every fog serving --lot. Checked here first; the fog "
                       "checks it against its nodes and reservations, applies it between two cycles and keeps it "
                       "across restarts, or refuses it with a config_refused alert.")
    p.add_argument("--lot", required=True)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--lot-file", type=Path, help="a lot file (the fog's format, fog/examples/README.md)")
    which.add_argument("--tariff-file", type=Path, help="a tariff: a [tariff] table or its keys")
    _common(p)
    p.set_defaults(func=_cmd_push_config)

    p = sub.add_parser("export", help="export lots and spots as FIWARE NGSI-LD (OffStreetParking, ParkingSpot)")
    p.add_argument("what", choices=("ngsi-ld",))
    p.add_argument("--type", default=None, choices=("OffStreetParking", "ParkingSpot"))
    p.add_argument("--lot", default=None)
    p.add_argument("--out", type=Path, default=None, help="write to this file (default: stdout)")
    _common(p, fmt=False)
    p.set_defaults(func=_cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fogpark-cloud``; returns the exit status (2: bad usage or config)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "limit", 1) < 1:
        parser.error("--limit must be at least 1")
    try:
        return int(args.func(args))
    except (UsageError, ConfigError) as exc:
        print(f"fogpark-cloud {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, SchemaError) as exc:
        print(f"fogpark-cloud {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
