"""HTTP routes of the lot engine: selection, availability, quotes, reservations, auction, statistics.

Registered by `fog.api.make_app` (`add_routes`). Requests that change
anything (select, reservation create/cancel/check-in/extend, bids, models)
are queued for the cycle; the handler awaits the answer, which the cycle
gives only after the commit that made the change durable. Reads answer from
committed state directly (the cycle never awaits between applying and
committing, so a handler cannot see a half-done cycle).

Bad input gets a 4xx with ``{"error", "where"}`` and changes nothing; every
refusal is counted: by status in ``/v1/stats`` (``bad_requests``), by route
and reason in the Prometheus counter ``fogpark_requests_refused_total`` and
in ``GET /v1/lots/{lot}/engine``. Statuses: 400 malformed, 401 operator
token, 404 unknown lot/reservation/auction, 409 conflicts with the lot's
state (lot full, wrong status, availability), 422 a well-formed value a rule
refuses (lead time, bid outside floor..cap, hours).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from aiohttp import web

from fog.http_errors import http_error
from fog.lot_engine import LotEngine, Outcome, engine_metrics

if TYPE_CHECKING:
    from fog.daemon import FogDaemon

DAEMON: web.AppKey[FogDaemon] = web.AppKey("engine_daemon")
ANSWER_TIMEOUT_S = 10.0
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_PLATE = re.compile(r"^[A-Z0-9-]{1,16}$")


def add_routes(app: web.Application, daemon: FogDaemon) -> None:
    """The engine's routes (see the module docstring and fog/examples/README.md for the shapes)."""
    app[DAEMON] = daemon
    engine_metrics(daemon.metrics)  # registered before the first scrape
    r = app.router
    r.add_post("/v1/lots/{lot}/select", select)
    r.add_get("/v1/lots/{lot}/availability", availability)
    r.add_get("/v1/lots/{lot}/quote", quote)
    r.add_post("/v1/lots/{lot}/reservations", create_reservation)
    r.add_get("/v1/lots/{lot}/reservations", list_reservations)
    r.add_get("/v1/lots/{lot}/reservations/{id}", get_reservation)
    r.add_post("/v1/lots/{lot}/reservations/{id}/cancel", cancel_reservation)
    r.add_post("/v1/lots/{lot}/reservations/{id}/checkin", checkin_reservation)
    r.add_post("/v1/lots/{lot}/reservations/{id}/extend", extend_reservation)
    r.add_post("/v1/lots/{lot}/auction/bids", bid)
    r.add_get("/v1/lots/{lot}/auction", auction)
    r.add_get("/v1/lots/{lot}/statistics", statistics)
    r.add_post("/v1/lots/{lot}/models", model)
    r.add_get("/v1/lots/{lot}/engine", engine_stats)


# ---------------------------------------------------------------- helpers
def refuse(request: web.Request, status: int, error: str, where: str, reason: str) -> NoReturn:
    """Count and raise a JSON 4xx (the app's middleware counts it by status in /v1/stats)."""
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else request.path
    engine_metrics(request.app[DAEMON].metrics).refuse(route, reason)
    raise http_error(status, error, where)


def _engine(request: web.Request) -> LotEngine:
    daemon = request.app[DAEMON]
    lot = request.match_info.get("lot")
    if lot != daemon.cfg.lot.id:
        refuse(request, 404, f"unknown lot {lot!r}", "path.lot", "unknown_lot")
    return daemon.engine.lot_engine


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json() if request.can_read_body else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        refuse(request, 400, "the body is not JSON", "body", "bad_json")
    if not isinstance(body, dict):
        refuse(request, 400, "the body must be a JSON object", "body", "bad_json")
    return body


def _string(request: web.Request, body: dict[str, Any], key: str, required: bool = False,
            max_len: int = 64) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            refuse(request, 400, f"{key} is required", f"body.{key}", "missing")
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        refuse(request, 400, f"{key} must be a non-empty string of at most {max_len} characters",
               f"body.{key}", "bad_value")
    return value.strip()


def _integer(request: web.Request, raw: Any, where: str, lo: int, hi: int, required: bool = True) -> int | None:
    if raw is None:
        if required:
            refuse(request, 400, f"{where.split('.')[-1]} is required", where, "missing")
        return None
    if isinstance(raw, str):
        try:
            raw = int(raw)
        except ValueError:
            refuse(request, 400, f"expected an integer, got {raw!r}", where, "bad_value")
    if isinstance(raw, bool) or not isinstance(raw, int):
        refuse(request, 400, f"expected an integer, got {raw!r}", where, "bad_value")
    if not lo <= raw <= hi:
        refuse(request, 422, f"must be in {lo}..{hi}, got {raw}", where, "out_of_range")
    return raw


def _time_ms(request: web.Request, raw: Any, where: str, engine: LotEngine) -> int:
    """Epoch milliseconds, or ISO 8601 (a time without an offset is the lot's local time)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        if raw.isdigit():
            return int(raw)
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=engine.tz)
            return int(parsed.timestamp() * 1000)
    refuse(request, 400, f"expected epoch milliseconds or an ISO 8601 time, got {raw!r}", where, "bad_time")


async def _ask(request: web.Request, engine: LotEngine, kind: str, body: dict[str, Any]) -> web.Response:
    """Queue for the cycle; answer once it has committed."""
    future = engine.submit(kind, body)
    try:
        outcome: Outcome = await asyncio.wait_for(future, ANSWER_TIMEOUT_S)
    except TimeoutError:
        refuse(request, 503, f"the cycle did not answer within {ANSWER_TIMEOUT_S:g} s (see /healthz)", "cycle",
               "timeout")
    if outcome.status >= 400:
        refuse(request, outcome.status, outcome.body["error"], outcome.body["where"], outcome.reason)
    return web.json_response(outcome.body, status=outcome.status)


# ---------------------------------------------------------------- selection
async def select(request: web.Request) -> web.Response:
    """``{"entrance", "vehicle"?, "reservation"?}`` → spot, path, ETA, congestion, exit time."""
    engine = _engine(request)
    body = await _body(request)
    entrance = _string(request, body, "entrance", required=True)
    if entrance not in engine.entrances:
        shown = ", ".join(engine.entrances[:20]) + (" ..." if len(engine.entrances) > 20 else "")
        refuse(request, 400, f"unknown entrance {entrance!r} (entrances: {shown or 'none'})", "body.entrance",
               "unknown_entrance")
    clean = {"entrance": entrance, "vehicle": _string(request, body, "vehicle"),
             "reservation": _string(request, body, "reservation")}
    return await _ask(request, engine, "select", clean)


# ---------------------------------------------------------------- reads
async def availability(request: web.Request) -> web.Response:
    """Now; with ``?at=`` (ms or ISO) also the §3 forecast for that time."""
    engine = _engine(request)
    now = _now_ms()
    out = engine.availability(now)
    at_raw = request.query.get("at")
    if at_raw is not None:
        at = _time_ms(request, at_raw, "query.at", engine)
        limit = now + int(engine.policy.max_advance_s * 1000)
        if not now - 60_000 <= at <= limit:
            refuse(request, 422, f"at must be between now and {engine.policy.max_advance_s:g} s ahead", "query.at",
                   "out_of_range")
        out["forecast"] = engine.forecast_at(at, now)
    return web.json_response(out)


async def quote(request: web.Request) -> web.Response:
    """``?hours=H[&late_occupied=N]`` → the charge with its breakdown at the current occupancy."""
    engine = _engine(request)
    raw = request.query.get("hours")
    try:
        hours = float(raw) if raw is not None else math.nan
    except ValueError:
        hours = math.nan
    if not 0 < hours <= engine.policy.max_hours:
        refuse(request, 400 if raw is None or math.isnan(hours) else 422,
               f"hours must be a number in (0, {engine.policy.max_hours}], got {raw!r}", "query.hours", "bad_hours")
    late = _integer(request, request.query.get("late_occupied"), "query.late_occupied", 0, engine.capacity,
                    required=False)
    return web.json_response(engine.quote(hours, _now_ms(), late))


async def auction(request: web.Request) -> web.Response:
    engine = _engine(request)
    terms = engine.tariff.auction
    if terms is None:
        refuse(request, 404, "this lot runs no subscription auction", "path.lot", "no_auction")
    return web.json_response(engine.auction())


async def statistics(request: web.Request) -> web.Response:
    """§1 history: ``?limit=96&since_ms=0``, newest first."""
    engine = _engine(request)
    limit = _integer(request, request.query.get("limit", "96"), "query.limit", 1, 10_000)
    since = _integer(request, request.query.get("since_ms", "0"), "query.since_ms", 0, 2**62)
    assert limit is not None and since is not None
    rows = engine.store.lot_stats_page(since, limit)
    return web.json_response({"window_s": engine.policy.stats_window_s, "rows": rows})


async def engine_stats(request: web.Request) -> web.Response:
    return web.json_response(_engine(request).stats())


# ---------------------------------------------------------------- reservations
def _card_uid(request: web.Request, body: dict[str, Any]) -> str | None:
    uid = _string(request, body, "card_uid", max_len=20)
    if uid is not None and (not _HEX.match(uid) or len(uid) not in (8, 14, 20)):
        refuse(request, 400, "card_uid is the card's UID in hex: 4, 7 or 10 bytes", "body.card_uid", "bad_value")
    return uid.lower() if uid else None


async def create_reservation(request: web.Request) -> web.Response:
    """``{"kind"?, "start"?, "hours", "entrance"?, "client"?, "card_uid"?, "plate"?}`` → 201 reservation."""
    engine = _engine(request)
    body = await _body(request)
    kind = body.get("kind") or ("reservation" if "start" in body else "booking")
    if kind not in ("reservation", "booking", "subscription"):
        refuse(request, 400, f"kind must be reservation, booking or subscription, got {kind!r}", "body.kind",
               "bad_value")
    clean: dict[str, Any] = {"kind": kind, "client": _string(request, body, "client", required=kind == "subscription"),
                             "card_uid": _card_uid(request, body)}
    plate = _string(request, body, "plate", max_len=20)
    if plate is not None:
        plate = plate.upper().replace(" ", "")
        if not _PLATE.match(plate):
            refuse(request, 400, "plate: letters, digits and '-' only", "body.plate", "bad_value")
    clean["plate"] = plate
    if kind != "subscription":
        clean["hours"] = _integer(request, body.get("hours"), "body.hours", 1, engine.policy.max_hours)
        entrance = _string(request, body, "entrance")
        if entrance is not None and entrance not in engine.entrances:
            refuse(request, 400, f"unknown entrance {entrance!r}", "body.entrance", "unknown_entrance")
        clean["entrance"] = entrance
    if kind == "reservation":
        if "start" not in body:
            refuse(request, 400, "start is required for a reservation (a booking starts now)", "body.start",
                   "missing")
        clean["start_ms"] = _time_ms(request, body["start"], "body.start", engine)
    return await _ask(request, engine, "reserve", clean)


async def list_reservations(request: web.Request) -> web.Response:
    engine = _engine(request)
    status = request.query.get("status")
    if status is not None and status not in ("admitted", "checked_in", "completed", "cancelled", "no_show"):
        refuse(request, 400, f"unknown status {status!r}", "query.status", "bad_value")
    limit = _integer(request, request.query.get("limit", "100"), "query.limit", 1, 1000)
    assert limit is not None
    from fog.reservations import Reservation

    rows = engine.store.reservations_page(status, limit)
    return web.json_response([Reservation.from_row(r).public() for r in rows])


async def get_reservation(request: web.Request) -> web.Response:
    engine = _engine(request)
    found = engine.reservation(request.match_info["id"])
    if found is None:
        refuse(request, 404, f"no reservation {request.match_info['id']!r}", "path.id", "unknown_reservation")
    return web.json_response(found)


async def cancel_reservation(request: web.Request) -> web.Response:
    engine = _engine(request)
    return await _ask(request, engine, "cancel", {"id": request.match_info["id"]})


async def checkin_reservation(request: web.Request) -> web.Response:
    """``{"plate"?, "spot"?}``: a plate reader or an operator checks a vehicle in."""
    engine = _engine(request)
    body = await _body(request)
    plate = _string(request, body, "plate", max_len=20)
    clean = {"id": request.match_info["id"], "plate": plate.upper().replace(" ", "") if plate else None,
             "spot": _string(request, body, "spot")}
    return await _ask(request, engine, "checkin", clean)


async def extend_reservation(request: web.Request) -> web.Response:
    """``{"hours": n}`` → the reservation with ``extension: {hours, charge}``."""
    engine = _engine(request)
    body = await _body(request)
    hours = _integer(request, body.get("hours", 1), "body.hours", 1, engine.policy.max_hours)
    return await _ask(request, engine, "extend", {"id": request.match_info["id"], "hours": hours})


# ---------------------------------------------------------------- auction, models
async def bid(request: web.Request) -> web.Response:
    """``{"client", "amount"}`` → 201 ``{client, amount, at_ms}``; 422 outside floor..cap."""
    engine = _engine(request)
    body = await _body(request)
    client = _string(request, body, "client", required=True)
    amount = body.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int | float) or not math.isfinite(amount):
        refuse(request, 400, f"amount must be a number, got {amount!r}", "body.amount", "bad_value")
    return await _ask(request, engine, "bid", {"client": client, "amount": amount})


async def model(request: web.Request) -> web.Response:
    """Operator: install a §3 transition matrix (what the cloud sends; for a fog running without one).

    ``Authorization: Bearer <[api].admin_token>``; body ``{"season_key": "weekday/0835", "matrix": [25
    numbers], "trained_ms"?, "brier"?, "brier_persistence"?}``.
    """
    engine = _engine(request)
    token = request.app[DAEMON].cfg.admin_token
    if request.headers.get("Authorization") != f"Bearer {token}":
        refuse(request, 401, "an operator token is required (Authorization: Bearer ...)", "header.Authorization",
               "unauthorized")
    body = await _body(request)
    _string(request, body, "season_key", required=True)
    for key in ("brier", "brier_persistence"):
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            refuse(request, 400, f"{key} must be a number", f"body.{key}", "bad_value")
    return await _ask(request, engine, "model", body)
