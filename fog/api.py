"""The fog's local HTTP API (aiohttp): what the lot's displays, apps and operators read.

Every read is of committed state: a GET waits (up to ``SETTLE_S``) until no
cycle's commit is in flight, then reads in that same step of the loop, so no
cycle can apply anything in between (see fog/cycle.py and
fog/store_writer.py). If the disk is so far behind that it cannot, the
answer says so in ``X-FogPark-Pending-Commits``. Bad requests get a 4xx
with a JSON body ``{"error": ..., "where": ...}`` and change nothing.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from fog import api_engine, node_registry
from fog.http_errors import http_error

if TYPE_CHECKING:
    from fog.daemon import FogDaemon

MAX_BODY = 64 * 1024
SETTLE_S = 0.05  # a commit takes ~1-5 ms; longer means the disk is struggling: answer anyway, and say so
DAEMON: web.AppKey[FogDaemon] = web.AppKey("daemon")
SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("sockets")


def _error(status: int, error: str, where: str) -> web.Response:
    return web.json_response({"error": error, "where": where}, status=status)


def _lot(request: web.Request) -> FogDaemon:
    daemon = request.app[DAEMON]
    lot = request.match_info.get("lot")
    if lot is not None and lot != daemon.cfg.lot.id:
        raise http_error(404, f"unknown lot {lot!r}", "path.lot")
    return daemon


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise http_error(400, f"{name} must be an integer, got {raw!r}", f"query.{name}") from None
    if not lo <= value <= hi:
        raise http_error(400, f"{name} must be in {lo}..{hi}", f"query.{name}")
    return value


async def lots(request: web.Request) -> web.Response:
    return web.json_response([request.app[DAEMON].engine.state.summary()])


async def lot(request: web.Request) -> web.Response:
    return web.json_response(_lot(request).engine.state.summary())


async def spots(request: web.Request) -> web.Response:
    daemon = _lot(request)
    out: list[dict[str, Any]] = []
    for s in daemon.engine.state.spots.values():
        out.append({"spot": s.spot_id, "zone": s.zone, "kind": s.kind, "state": s.state, "since_ms": s.since_ms,
                    "node_id": s.node_id, "last_seen_ms": s.last_seen_ms, "battery_mv": s.battery_mv,
                    "tamper": bool(s.tamper), "rssi_dbm": s.rssi_dbm, "snr_db": s.snr_db})
    return web.json_response(out)


async def events(request: web.Request) -> web.Response:
    daemon = _lot(request)
    after = _int_param(request, "after", 0, 0, 2**62)
    limit = _int_param(request, "limit", 100, 1, 1000)
    page = daemon.store.events_page(after, limit)
    return web.json_response({"events": page, "next_after": page[-1]["id"] if page else after})


async def alerts(request: web.Request) -> web.Response:
    daemon = _lot(request)
    return web.json_response(sorted(daemon.engine.alerts.values(), key=lambda a: a["first_seen_ms"]))


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[DAEMON].stats())


async def metrics(request: web.Request) -> web.Response:
    body = request.app[DAEMON].metrics.render()
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


async def healthz(request: web.Request) -> web.Response:
    health = request.app[DAEMON].health()
    return web.json_response(health, status=200 if health["status"] != "down" else 503)


async def stream(request: web.Request) -> web.WebSocketResponse:
    """WebSocket of state changes: one JSON message per committed change."""
    _lot(request)
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    await request.app[DAEMON].engine.settled(SETTLE_S)
    await ws.send_json({"type": "hello", **request.app[DAEMON].engine.state.summary()})
    try:
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                break
    finally:
        request.app[SOCKETS].discard(ws)
    return ws


def broadcast(app: web.Application, changes: list[dict[str, Any]]) -> None:
    """Called by the cycle after a commit; sends without blocking the cycle."""
    sockets: set[web.WebSocketResponse] = app[SOCKETS]
    for ws in list(sockets):
        if not ws.closed:
            for change in changes:
                asyncio.ensure_future(ws.send_json(change))


@web.middleware
async def committed_reads(request: web.Request, handler: Any) -> web.StreamResponse:
    """GETs read once nothing applied is still uncommitted (handlers read before their first await)."""
    if request.method != "GET":
        return await handler(request)
    engine = request.app[DAEMON].engine
    if await engine.settled(SETTLE_S):
        return await handler(request)
    pending = len(engine.inflight)
    response = await handler(request)
    response.headers["X-FogPark-Pending-Commits"] = str(pending)
    return response


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400:
            request.app[DAEMON].count_bad_request(exc.status)
        if exc.content_type == "application/json" or exc.status < 400:
            raise
        return _error(exc.status, exc.reason, request.path)


def make_app(daemon: FogDaemon) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY, middlewares=[json_errors, committed_reads])
    app[DAEMON] = daemon
    app[SOCKETS] = set()
    app.router.add_get("/v1/lots", lots)
    app.router.add_get("/v1/lots/{lot}", lot)
    app.router.add_get("/v1/lots/{lot}/spots", spots)
    app.router.add_get("/v1/lots/{lot}/events", events)
    app.router.add_get("/v1/lots/{lot}/alerts", alerts)
    app.router.add_get("/v1/lots/{lot}/stream", stream)
    app.router.add_get("/v1/stats", stats)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    api_engine.add_routes(app, daemon)  # selection, availability, quotes, reservations, auction
    node_registry.add_routes(app, daemon)  # register/retire sensor nodes (fogpark-node provision)
    return app
