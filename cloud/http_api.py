"""Read-only operator HTTP API: lots, spot history, bucketed summaries, health, metrics.

Bound to 127.0.0.1 by default; there is no authentication yet. Every bad
parameter gets a 400 with ``{"error": ..., "where": ...}`` and is counted.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from cloud.export import write_events_csv
from cloud.metrics import Counters
from cloud.store import CloudStore, now_ms
from cloud.timeparse import TimeParseError, format_ms, parse_duration_s, parse_instant_ms

MAX_HISTORY_ROWS = 100_000
DEFAULT_HISTORY_ROWS = 10_000
MAX_BUCKETS = 100_000
STORE_KEY = web.AppKey("store", CloudStore)
METRICS_KEY = web.AppKey("metrics", Counters)
CLOCK_KEY: web.AppKey[Callable[[], int]] = web.AppKey("clock")


class BadRequest(Exception):
    """A request parameter that cannot be used; ``where`` names it."""

    def __init__(self, where: str, error: str, code: str | None = None) -> None:
        super().__init__(error)
        self.where = where
        self.error = error
        self.code = code or f"bad_{where}"  # a metric label: from a fixed set, never client text


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _bad_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn BadRequest into a counted 400 with a JSON body."""
    try:
        return await handler(request)
    except BadRequest as exc:
        resource = request.match_info.route.resource
        surface = f"http.{resource.canonical if resource else 'unknown'}"
        request.app[METRICS_KEY].reject(surface, exc.code)
        return web.json_response({"error": exc.error, "where": exc.where}, status=400)


def _query(request: web.Request, known: tuple[str, ...]) -> dict[str, str]:
    """The query parameters, refusing unknown or repeated ones (a typo must not be silently ignored)."""
    params: dict[str, str] = {}
    for key, value in request.query.items():
        if key not in known:
            raise BadRequest(
                key, f"unknown query parameter {key!r}; known: {', '.join(known) or 'none'}", "unknown_parameter"
            )
        if key in params:
            raise BadRequest(key, f"query parameter {key!r} given more than once", "repeated_parameter")
        params[key] = value
    return params


def _window(request: web.Request, params: dict[str, str], default_since: str) -> tuple[int, int]:
    """since/until as Unix ms: durations ago, 'now' or ISO-8601; since must be before until."""
    now = request.app[CLOCK_KEY]()
    bounds = []
    for name, default in (("since", default_since), ("until", "now")):
        try:
            bounds.append(parse_instant_ms(params.get(name, default), now))
        except TimeParseError as exc:
            raise BadRequest(name, str(exc)) from None
    since_ms, until_ms = bounds
    if since_ms >= until_ms:
        raise BadRequest("since", f"since ({format_ms(since_ms)}) must be before until ({format_ms(until_ms)})")
    return since_ms, until_ms


def _int_param(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise BadRequest(name, f"{name} must be a whole number from {low} to {high}, got {text!r}")
    return int(text)


async def lots(request: web.Request) -> web.Response:
    """Every lot's newest whole-lot summary, as a JSON array (the shape `fogpark-hil demo` reads)."""
    _query(request, ())
    rows = await asyncio.to_thread(request.app[STORE_KEY].lots)
    return web.json_response(rows)


async def history(request: web.Request) -> web.Response:
    """A lot's spot events in the window, as JSON or CSV, oldest first."""
    params = _query(request, ("since", "until", "format", "limit"))
    since_ms, until_ms = _window(request, params, "1h")
    fmt = params.get("format", "json")
    if fmt not in ("json", "csv"):
        raise BadRequest("format", f"format must be json or csv, got {fmt!r}")
    limit = _int_param(params, "limit", DEFAULT_HISTORY_ROWS, 1, MAX_HISTORY_ROWS)
    lot_id = request.match_info["lot"]
    rows = await asyncio.to_thread(request.app[STORE_KEY].spot_history, lot_id, since_ms, until_ms, limit=limit + 1)
    truncated = len(rows) > limit
    rows = rows[:limit]
    if fmt == "csv":
        out = io.StringIO()
        write_events_csv(rows, out)
        headers = {"X-FogPark-Truncated": "true"} if truncated else {}
        return web.Response(text=out.getvalue(), content_type="text/csv", headers=headers)
    return web.json_response({
        "lot_id": lot_id, "since_ms": since_ms, "until_ms": until_ms, "count": len(rows),
        "truncated": truncated, "events": rows,
    })


async def summaries(request: web.Request) -> web.Response:
    """A lot's summaries aggregated into buckets (mean occupied/free, arrivals summed)."""
    params = _query(request, ("since", "until", "bucket", "zone"))
    since_ms, until_ms = _window(request, params, "1d")
    try:
        bucket_s = parse_duration_s(params.get("bucket", "1h"))
    except TimeParseError as exc:
        raise BadRequest("bucket", str(exc)) from None
    if (until_ms - since_ms) // (bucket_s * 1000) > MAX_BUCKETS:
        raise BadRequest("bucket", f"window / bucket is more than {MAX_BUCKETS} buckets; use a larger bucket")
    lot_id = request.match_info["lot"]
    zone = params.get("zone", "")
    rows = await asyncio.to_thread(
        request.app[STORE_KEY].lot_summaries, lot_id, since_ms, until_ms, bucket_s, zone=zone
    )
    return web.json_response({
        "lot_id": lot_id, "zone": zone, "since_ms": since_ms, "until_ms": until_ms, "bucket_s": bucket_s,
        "buckets": rows,
    })


async def healthz(request: web.Request) -> web.Response:
    """200 when the store answers, 503 with the reason when it does not."""
    try:
        await asyncio.to_thread(request.app[STORE_KEY].ping)
    except Exception as exc:  # noqa: BLE001 - any store failure is "unhealthy", reported as such
        return web.json_response({"status": "error", "store": f"{type(exc).__name__}: {exc}"}, status=503)
    return web.json_response({"status": "ok", "store": "ok"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of the shared counters."""
    return web.Response(body=request.app[METRICS_KEY].render().encode(),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def create_app(store: CloudStore, counters: Counters, *, clock: Callable[[], int] = now_ms) -> web.Application:
    """The operator API over ``store``; ``counters`` is shared with the gRPC service for /metrics."""
    app = web.Application(middlewares=[_bad_requests])
    app[STORE_KEY] = store
    app[METRICS_KEY] = counters
    app[CLOCK_KEY] = clock
    app.router.add_get("/v1/lots", lots)
    app.router.add_get("/v1/lots/{lot}/history", history)
    app.router.add_get("/v1/lots/{lot}/summaries", summaries)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


@dataclass
class HttpServer:
    """A running operator API."""

    runner: web.AppRunner
    host: str
    port: int

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_http(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> HttpServer:
    """Serve ``app`` on host:port (0 = any free port) and say where."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound: Any = runner.addresses[0]
    return HttpServer(runner, host, int(bound[1]))
