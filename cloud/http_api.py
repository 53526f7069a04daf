"""Operator HTTP API and dashboard over `cloud.queries.Operations` (the CLI uses the same functions).

Authentication: ``Authorization: Bearer <token>`` with the tokens of
``[operators.<name>]`` in the cloud config. Role "read" may call every GET;
role "admin" also the POSTs (bookings, model training and push). Missing or
unknown token → 401, a read-only token on an admin endpoint → 403; every
refusal is counted (``fogpark_cloud_rejected_total{surface,reason}``). Public:
``/healthz`` (load-balancer checks), ``/metrics`` (Prometheus) and the
dashboard's static files, which hold no data (the page asks for a token).
``[http] anonymous_read = true`` lets token-less GETs act as "read": the
loopback demo only (``serve`` refuses it elsewhere).

Every bad parameter gets a 400 (404 for an unknown lot) with
``{"error": ..., "where": ...}`` and is counted; nothing is changed.
List endpoints take ``format=json`` (default) or ``format=csv``.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import web

from cloud.config import Operator, Role
from cloud.metrics import Counters
from cloud.queries import NotFound, Operations, QueryError, Report

OPS_KEY = web.AppKey("ops", Operations)
METRICS_KEY = web.AppKey("metrics", Counters)
ROLES_KEY: web.AppKey[dict[tuple[str, str], Role | None]] = web.AppKey("roles")
# The authenticated operator of the request being handled (set by _auth, read by the handler in the same task;
# a context variable rather than request storage, whose key type changed across aiohttp releases).
OPERATOR: contextvars.ContextVar[Operator] = contextvars.ContextVar("fogpark_operator")
ANONYMOUS = Operator("anonymous", "", "read")
DEFAULT_HISTORY_ROWS = 10_000
MAX_BODY_BYTES = 64 * 1024
DASHBOARD_FILES = {"index.html": "text/html", "app.js": "text/javascript", "chart.js": "text/javascript",
                   "style.css": "text/css"}
# The dashboard may talk to this origin only: the browser itself refuses anything else.
DASHBOARD_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
                 "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_RANK = {"read": 1, "admin": 2}


class BadRequest(QueryError):
    """An HTTP-level parameter problem (unknown or repeated parameter, bad format)."""


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _surface(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return f"http.{resource.canonical if resource else 'unknown'}"


def _refuse(request: web.Request, status: int, where: str, error: str, reason: str) -> web.Response:
    request.app[METRICS_KEY].reject(_surface(request), reason)
    headers = {"WWW-Authenticate": 'Bearer realm="fogpark"'} if status == 401 else {}
    return web.json_response({"error": error, "where": where}, status=status, headers=headers)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """QueryError → counted 400 (404 for NotFound) with a JSON body."""
    try:
        return await handler(request)
    except QueryError as exc:
        return _refuse(request, 404 if isinstance(exc, NotFound) else 400, exc.where, exc.error, exc.code)


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer token → operator; the route's role decides (None: public)."""
    resource = request.match_info.route.resource
    needed = request.app[ROLES_KEY].get((request.method, resource.canonical if resource else ""))
    if needed is None:
        return await handler(request)
    ops = request.app[OPS_KEY]
    header = request.headers.get("Authorization")
    if header is None:
        if ops.config.anonymous_read and needed == "read":
            OPERATOR.set(ANONYMOUS)
            return await handler(request)
        return _refuse(request, 401, "authorization", "missing 'Authorization: Bearer <token>'", "missing_token")
    scheme, _, token = header.partition(" ")
    operator = ops.config.operator_for(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
    if operator is None:
        return _refuse(request, 401, "authorization", "unknown token (or not 'Bearer <token>')", "bad_token")
    if _RANK[operator.role] < _RANK[needed]:
        return _refuse(request, 403, "authorization",
                       f"operator {operator.name!r} has role {operator.role!r}; this needs {needed!r}", "forbidden")
    OPERATOR.set(operator)
    return await handler(request)


def _params(request: web.Request, known: tuple[str, ...]) -> dict[str, str]:
    """The query parameters, refusing unknown or repeated ones (a typo must not be silently ignored)."""
    params: dict[str, str] = {}
    for key, value in request.query.items():
        if key not in known:
            raise BadRequest(key, f"unknown query parameter {key!r}; known: {', '.join(known) or 'none'}",
                             "unknown_parameter")
        if key in params:
            raise BadRequest(key, f"query parameter {key!r} given more than once", "repeated_parameter")
        params[key] = value
    return params


def _format(params: dict[str, str]) -> str:
    fmt = params.get("format", "json")
    if fmt not in ("json", "csv"):
        raise BadRequest("format", f"format must be json or csv, got {fmt!r}")
    return fmt


def _int_param(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise BadRequest(name, f"{name} must be a whole number from {low} to {high}, got {text!r}")
    return int(text)


def _bool_param(params: dict[str, str], name: str) -> bool:
    text = params.get(name, "false")
    if text not in ("true", "false"):
        raise BadRequest(name, f"{name} must be true or false, got {text!r}")
    return text == "true"


def _respond(report: Report, fmt: str, headers: dict[str, str] | None = None) -> web.Response:
    if fmt == "csv":
        return web.Response(text=report.csv_text(), content_type="text/csv", headers=headers)
    return web.json_response(report.as_json(), headers=headers)


async def _run(request: web.Request, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


def _listing(known: tuple[str, ...], method: Callable[[Operations], Callable[..., Report]]) -> Handler:
    """A GET that maps its query parameters (less ``format``) onto an Operations method."""
    async def handler(request: web.Request) -> web.Response:
        params = _params(request, (*known, "format"))
        fmt = _format(params)
        kwargs = {k: v for k, v in params.items() if k != "format"}
        kwargs.update(request.match_info)
        report = await _run(request, method(request.app[OPS_KEY]), **kwargs)
        return _respond(report, fmt)
    return handler


# ---- handlers with their own shapes -------------------------------------------------------------


async def lots(request: web.Request) -> web.Response:
    """Every lot's newest whole-lot summary, as a JSON array (the shape `fogpark-hil demo` reads)."""
    _params(request, ())
    return web.json_response(await _run(request, request.app[OPS_KEY].history.lots))


async def history(request: web.Request) -> web.Response:
    """A lot's spot events in the window, as JSON or CSV, oldest first (X-FogPark-Truncated when cut)."""
    params = _params(request, ("since", "until", "format", "limit"))
    fmt = _format(params)
    limit = _int_param(params, "limit", DEFAULT_HISTORY_ROWS, 1, 100_000)
    report = await _run(request, request.app[OPS_KEY].spot_history, request.match_info["lot"],
                        params.get("since"), params.get("until"), limit)
    headers = {"X-FogPark-Truncated": "true"} if report.meta["truncated"] and fmt == "csv" else None
    return _respond(report, fmt, headers)


async def whoami(request: web.Request) -> web.Response:
    """Which operator and role the token is (the dashboard checks a token with it)."""
    _params(request, ())
    operator = OPERATOR.get()
    return web.json_response({"operator": operator.name, "role": operator.role})


async def _json_body(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise BadRequest("body", f"request body over {MAX_BODY_BYTES} bytes", "body_too_large")
    try:
        return json.loads(await request.content.read(MAX_BODY_BYTES + 1) or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("body", "request body must be JSON", "bad_json") from None


async def create_booking(request: web.Request) -> web.Response:
    """Make an online booking; it is forwarded to the lot's fog, which admits or refuses it."""
    _params(request, ())
    body = await _json_body(request)
    operator = OPERATOR.get()
    booking = await _run(request, request.app[OPS_KEY].book, body, operator.name)
    return web.json_response(booking, status=201)


async def train_models(request: web.Request) -> web.Response:
    """Train the Markov models of one lot (``lot=``) or of all; ``push=true`` queues them for the fogs."""
    params = _params(request, ("lot", "push", "format"))
    fmt = _format(params)
    report = await _run(request, request.app[OPS_KEY].train, params.get("lot"), _bool_param(params, "push"))
    return _respond(report, fmt)


async def push_models(request: web.Request) -> web.Response:
    """Queue a lot's stored models for its fog(s)."""
    _params(request, ())
    return web.json_response(await _run(request, request.app[OPS_KEY].push, request.match_info["lot"]))


async def ngsi_entities(request: web.Request) -> web.Response:
    """NGSI-LD entities (OffStreetParking, ParkingSpot); ``type=`` and ``lot=`` narrow the list."""
    params = _params(request, ("type", "lot"))
    result = await _run(request, request.app[OPS_KEY].ngsi_ld, params.get("type"), params.get("lot"))
    headers = {"X-FogPark-Skipped": str(len(result["skipped"]))} if result["skipped"] else None
    return web.json_response(result["entities"], content_type="application/ld+json", headers=headers)


async def ngsi_entity(request: web.Request) -> web.Response:
    """One NGSI-LD entity by its URN."""
    _params(request, ())
    wanted = request.match_info["entity_id"]
    result = await _run(request, request.app[OPS_KEY].ngsi_ld)
    for entity in result["entities"]:
        if entity["id"] == wanted:
            return web.json_response(entity, content_type="application/ld+json")
    raise NotFound("entity_id", f"no entity {wanted!r}", "unknown_entity")


async def healthz(request: web.Request) -> web.Response:
    """200 when the store and the history backend answer, 503 with the reason when not."""
    ops = request.app[OPS_KEY]
    checks = {"store": ops.store.ping, "history": ops.history.ping}
    status: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.to_thread(check)
            status[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy", reported as such
            status[name] = f"{type(exc).__name__}: {exc}"
    ok = all(v == "ok" for v in status.values())
    return web.json_response({"status": "ok" if ok else "error", **status}, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of the shared counters."""
    return web.Response(body=request.app[METRICS_KEY].render().encode(),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def dashboard_file(request: web.Request) -> web.Response:
    """The dashboard's own files, from the package (no CDN, works offline)."""
    name = request.match_info.get("name") or "index.html"
    content_type = DASHBOARD_FILES.get(name)
    if content_type is None:
        raise web.HTTPNotFound(text=f"no dashboard file {name!r}")
    text = resources.files("cloud").joinpath("dashboard", name).read_text(encoding="utf-8")
    return web.Response(text=text, content_type=content_type,
                        headers={"Content-Security-Policy": DASHBOARD_CSP, "Cache-Control": "no-cache",
                                 "X-Content-Type-Options": "nosniff"})


async def to_dashboard(request: web.Request) -> web.Response:
    raise web.HTTPFound("/dashboard/")


def create_app(ops: Operations, counters: Counters) -> web.Application:
    """The operator API over ``ops``; ``counters`` is shared with the gRPC service for /metrics."""
    app = web.Application(middlewares=[_errors, _auth], client_max_size=MAX_BODY_BYTES)
    app[OPS_KEY] = ops
    app[METRICS_KEY] = counters
    roles: dict[tuple[str, str], Role | None] = {}
    app[ROLES_KEY] = roles

    def route(method: str, path: str, handler: Handler, role: Role | None) -> None:
        app.router.add_route(method, path, handler)
        roles[(method, path)] = role
        if method == "GET":
            roles[("HEAD", path)] = role

    route("GET", "/v1/lots", lots, "read")
    route("GET", "/v1/city/lots", _listing((), lambda o: o.city), "read")
    route("GET", "/v1/lots/{lot}/history", history, "read")
    route("GET", "/v1/lots/{lot}/summaries", _listing(("since", "until", "bucket", "zone"), lambda o: o.occupancy),
          "read")
    route("GET", "/v1/lots/{lot}/stats", _listing(("since", "until"), lambda o: o.stats), "read")
    route("GET", "/v1/lots/{lot}/spots", _listing((), lambda o: o.spots), "read")
    route("GET", "/v1/revenue", _listing(("lot", "since", "until"), lambda o: o.revenue), "read")
    route("GET", "/v1/reservations", _listing(("lot", "status", "since", "until"), lambda o: o.reservations), "read")
    route("GET", "/v1/no-shows", _listing(("lot", "since", "until"), lambda o: o.no_shows), "read")
    route("GET", "/v1/alerts", _listing(("lot", "active", "since"), lambda o: o.alerts), "read")
    route("GET", "/v1/nodes", _listing(("lot",), lambda o: o.nodes), "read")
    route("GET", "/v1/recommend", _listing(("lat", "lon", "x_m", "y_m", "w_distance", "w_price", "w_free"),
                                           lambda o: o.recommend), "read")
    route("GET", "/v1/bookings", _listing(("lot",), lambda o: o.bookings), "read")
    route("POST", "/v1/bookings", create_booking, "admin")
    route("GET", "/v1/models", _listing(("lot",), lambda o: o.model_report), "read")
    route("POST", "/v1/models/train", train_models, "admin")
    route("POST", "/v1/models/{lot}/push", push_models, "admin")
    route("GET", "/v1/ngsi-ld/entities", ngsi_entities, "read")
    route("GET", "/v1/ngsi-ld/entities/{entity_id}", ngsi_entity, "read")
    route("GET", "/v1/whoami", whoami, "read")
    route("GET", "/healthz", healthz, None)
    route("GET", "/metrics", metrics, None)
    route("GET", "/", to_dashboard, None)
    route("GET", "/dashboard/", dashboard_file, None)
    route("GET", "/dashboard/{name}", dashboard_file, None)
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
