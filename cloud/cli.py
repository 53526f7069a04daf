"""``fogpark-cloud``: run the cloud, and look at what it stored.

    fogpark-cloud serve   [--config FILE] [--db FILE] [--grpc HOST:PORT] [--http HOST:PORT]
    fogpark-cloud history --lot LOT --since 10m [--until ...] [--db FILE] [--format table|json|csv]
    fogpark-cloud cursor  --fog ID [--db FILE]

history and cursor read the store file directly, so they work with the server
stopped (or running: the store is safe for several processes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cloud.auth import ConfigError, FogRegistry, load_registry
from cloud.export import write_events_csv
from cloud.metrics import Counters
from cloud.schema import SchemaError
from cloud.store import CloudStore, now_ms
from cloud.timeparse import TimeParseError, format_ms, parse_duration_s, parse_instant_ms

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
    registry = load_registry(args.config)
    return asyncio.run(_serve(args, registry))


async def _serve(args: argparse.Namespace, registry: FogRegistry) -> int:
    """gRPC and HTTP in one loop until SIGINT/SIGTERM, then a clean stop."""
    # Imported here so `history` and `cursor` start without loading grpc and aiohttp.
    from cloud.http_api import create_app, start_http
    from cloud.service import is_loopback, serve, split_host_port

    try:
        http_host, http_port = split_host_port(args.http)
    except ValueError as exc:
        raise UsageError(f"--http: {exc}") from None
    if not is_loopback(http_host) and not args.allow_insecure_remote:
        raise UsageError(
            f"--http {args.http}: the operator API has no authentication yet; "
            "bind it to 127.0.0.1 or pass --allow-insecure-remote"
        )
    counters = Counters()
    try:
        handle = await serve(
            args.db, registry, address=args.grpc, metrics=counters, tls_cert=args.tls_cert,
            tls_key=args.tls_key, allow_insecure_remote=args.allow_insecure_remote,
        )
    except ValueError as exc:  # serve() refuses bad addresses and TLS/insecure combinations this way
        raise UsageError(f"--grpc/--tls-*: {exc}") from None
    http_store: CloudStore | None = None
    try:
        http_store = await asyncio.to_thread(CloudStore, args.db)
        http = await start_http(create_app(http_store, counters), http_host, http_port)
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
        f"HTTP on http://{http_host}:{http.port}, store {args.db}, {len(registry.fogs)} fog(s) "
        f"from {registry.source}",
        flush=True,
    )
    await stop.wait()
    print("fogpark-cloud: stopping", flush=True)
    await http.stop()
    await handle.stop()
    http_store.close()
    print("fogpark-cloud: stopped", flush=True)
    return 0


# ---- history / cursor --------------------------------------------------------


def _open_existing(db: Path) -> CloudStore:
    """The store at ``db``; a missing file is an error here, not an empty new store."""
    if not db.exists():
        raise UsageError(f"--db {db}: no cloud store there (start `fogpark-cloud serve` first, or give --db)")
    return CloudStore(db)


def _auto_bucket_s(span_ms: int) -> int:
    for bucket_s in _AUTO_BUCKETS_S:
        if span_ms / (bucket_s * 1000) <= _AUTO_MAX_ROWS:
            return bucket_s
    return _AUTO_BUCKETS_S[-1]


def _parse_time(option: str, text: str, now: int) -> int:
    try:
        return parse_instant_ms(text, now)
    except TimeParseError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _cmd_history(args: argparse.Namespace) -> int:
    now = now_ms()
    since_ms = _parse_time("--since", args.since, now)
    until_ms = _parse_time("--until", args.until, now)
    if since_ms >= until_ms:
        raise UsageError(f"--since ({format_ms(since_ms)}) must be before --until ({format_ms(until_ms)})")
    try:
        bucket_s = parse_duration_s(args.bucket) if args.bucket else _auto_bucket_s(until_ms - since_ms)
    except TimeParseError as exc:
        raise UsageError(f"--bucket: {exc}") from None
    store = _open_existing(args.db)
    try:
        events = store.spot_history(args.lot, since_ms, until_ms, limit=args.limit + 1)
        buckets = store.lot_summaries(args.lot, since_ms, until_ms, bucket_s)
    finally:
        store.close()
    truncated = len(events) > args.limit
    events = events[: args.limit]
    if args.format == "json":
        json.dump(
            {"lot_id": args.lot, "since_ms": since_ms, "until_ms": until_ms, "spot_events": events,
             "truncated": truncated, "bucket_s": bucket_s, "summaries": buckets},
            sys.stdout, indent=2,
        )
        print()
    elif args.format == "csv":
        write_events_csv(events, sys.stdout)
    else:
        _print_history_table(args.lot, since_ms, until_ms, events, truncated, bucket_s, buckets)
    return 0


def _print_history_table(
    lot: str, since_ms: int, until_ms: int, events: list[dict[str, Any]], truncated: bool, bucket_s: int,
    buckets: list[dict[str, Any]],
) -> None:
    window = f"{format_ms(since_ms)} .. {format_ms(until_ms)} (UTC)"
    if not events and not buckets:
        print(f"nothing stored for lot {lot!r} in {window}: no spot events, no summaries")
        return
    print(f"lot {lot!r}, {window}")
    print()
    if events:
        more = " (more not shown: use --limit or a narrower window)" if truncated else ""
        print(f"spot events: {len(events)}{more}")
        print(f"{'time':<25} {'spot':<10} {'state':<9} {'node':>10} {'fcnt':>8} {'rssi':>9}")
        for e in events:
            print(
                f"{format_ms(e['at_ms']):<25} {e['spot_id']:<10} {e['state']:<9} {e['node_id']:>10} "
                f"{e['fcnt']:>8} {e['rssi_dbm']:>5} dBm"
            )
    else:
        print("spot events: none in this window")
    print()
    if buckets:
        print(f"summaries, {_bucket_label(bucket_s)} buckets: {len(buckets)}")
        print(f"{'bucket start':<25} {'samples':>7} {'occupied':>9} {'free':>7} {'capacity':>8} "
              f"{'arrivals':>8} {'departures':>10}")
        for b in buckets:
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


# ---- argument parsing --------------------------------------------------------


def _add_existing_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, default=DEFAULT_DB,
                        help=f"SQLite store written by `serve` (default: {DEFAULT_DB}); must exist")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fogpark-cloud",
        description="FogPark cloud tier: gRPC ingest from fogs, history store, operator API.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve", help="run the gRPC service and the operator HTTP API until SIGINT/SIGTERM",
        description="Run FogSync (gRPC, for fogs) and the read-only operator HTTP API in one process. "
        "Stops cleanly on SIGINT/SIGTERM (exit 0). Several replicas may share one --db file.",
    )
    serve.add_argument("--config", type=Path, default=None,
                       help="fog registry TOML ([fogs.<id>] token, lots); default: the embedded demo "
                       "config (fog demo-fog, token demo-token, lot demo)")
    serve.add_argument("--db", type=Path, default=DEFAULT_DB, help=f"SQLite store, created with its parent "
                       f"folders if missing (default: {DEFAULT_DB})")
    serve.add_argument("--grpc", default=DEFAULT_GRPC, metavar="HOST:PORT",
                       help=f"gRPC listen address, port 0 = any free port (default: {DEFAULT_GRPC})")
    serve.add_argument("--http", default=DEFAULT_HTTP, metavar="HOST:PORT",
                       help=f"operator HTTP listen address (default: {DEFAULT_HTTP})")
    serve.add_argument("--tls-cert", type=Path, default=None, help="PEM server certificate for gRPC")
    serve.add_argument("--tls-key", type=Path, default=None, help="PEM private key matching --tls-cert")
    serve.add_argument("--allow-insecure-remote", action="store_true",
                       help="allow plaintext gRPC and the unauthenticated HTTP API on non-loopback "
                       "addresses (only behind a TLS-terminating, access-controlled proxy)")
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    serve.set_defaults(func=_cmd_serve)

    history = sub.add_parser(
        "history", help="print a lot's spot events and summaries from the store",
        description="Print the spot events (time, spot, state, node, fcnt, RSSI) and the bucketed summaries "
        "of one lot in a time window, read straight from the store file.",
    )
    history.add_argument("--lot", required=True, help="lot id, e.g. demo")
    history.add_argument("--since", required=True, help=f"window start: {_TIME_HELP}")
    history.add_argument("--until", default="now", help=f"window end (default: now): {_TIME_HELP}")
    _add_existing_db(history)
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
    _add_existing_db(cursor)
    cursor.set_defaults(func=_cmd_cursor)
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
