"""The lot engine: what the 10 ms cycle runs besides frame admission (ALGORITHMS.md §1-5, §8).

`fog.cycle.CycleEngine` builds one `LotEngine` from the lot config and the
store (at start, and again after a failed commit so memory always equals
the store) and calls it at three points:

* `on_frame` — after each accepted frame: spot occupancy and health go to
  the spot selector, arrivals to the §1 window, RFID check-ins and
  departures to the reservation book, node activity to the silence watch;
* `tick` — once per cycle, before the commit: due deadlines (no-shows,
  holds, guidance timeouts, check-in graces), silent nodes, the queued API
  requests, the §1 statistics window, the SFpark price adjustment;
* `after_commit` — answers the requests the cycle handled, only now that
  their effects are durable: nothing is acknowledged before its commit.

Everything the engine changes goes into the cycle's `CycleWrite`; nothing
writes to the store on its own. Work per cycle is proportional to what
changed: every structure here is indexed or ordered so no step scans the lot.

Decisions (ALGORITHMS.md is silent on these):

* A selection holds the chosen spot for the guided vehicle (owner
  ``guide:<vehicle>``) until its spot reports occupied or the guidance
  times out (``[reservations].guidance_timeout_s``); guidance is not
  stored — after a restart vehicles are simply no longer counted.
* A reservation's spot is chosen when its hold starts (``start −
  hold_before_s``) as the best spot from its entrance; when its vehicle asks
  for a selection and a better free spot exists, the hold moves there. When
  no spot is free at hold time, the engine retries every minute until the
  no-show window closes.
* Check-in: with a card UID or a plate on the reservation, occupancy of its
  spot is only an arrival; the card frame (or an API check-in with the
  plate) confirms it, and the arrival time is the occupancy's. Without a
  credential, the occupancy of the held spot is the check-in.
* A stay past the booked end is billed at departure as automatic
  extension hours (every started hour), priced like an extension.
* The §3 forecast for a new reservation is computed when the request is
  queued (a pure read of committed state and the model); the cycle then
  applies the admission rule with the overlap count as it is at that cycle.
* Requests are answered while the cycle's time budget lasts (half the
  period; at least one request per cycle); the rest wait for the next cycle.
* With 1,000 spots or more the static routing structures are moved out of
  the cyclic garbage collector's view (`gc.freeze`): they never form garbage,
  and a full collection walking millions of them stalls the cycle for
  100 ms and more.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import math
import time
import uuid
import weakref
import zoneinfo
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from fog.alert_rules import AlertBook, Deadlines, OpeningHours, SilenceWatch
from fog.config import FogConfig
from fog.engine.availability import (
    N_STATES,
    Distribution,
    Matrix,
    admit_reservation,
    default_season_key,
    forecast,
    persistence_forecast,
    probability_unreserved_free,
    state_name,
    state_of,
)
from fog.engine.lot_stats import ArrivalWindow
from fog.engine.mcpr import BookingStatus, booking_status
from fog.engine.pricing import Bid, BidError, run_auction, validate_bid
from fog.engine.selection import SpotSelector
from fog.lot_state import LotState, SpotState
from fog.metrics import FogMetrics
from fog.reservations import Reservation, ReservationBook, reservation_record
from fog.store import CycleWrite, FogStore
from fog.tariffs import TariffConfig, late_rule, money, parse_tariff, quote
from proto import frame as fr
from proto import parking_pb2 as pb

log = logging.getLogger("fogpark.fog.engine")

__all__ = ["EngineError", "LotEngine", "Outcome", "engine_metrics"]

GC_FREEZE_MIN_SPOTS = 1000
MAX_REQUESTS_PER_CYCLE = 64
MAX_DUE_PER_CYCLE = 256  # deadlines / silent nodes handled per cycle; the rest next cycle
HOLD_RETRY_MS = 60_000
HOUR_MS = 3_600_000


# ---------------------------------------------------------------- requests and answers
class EngineError(Exception):
    """A request refused with nothing changed: HTTP status, message, where, and a short reason code."""

    def __init__(self, status: int, error: str, where: str, reason: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.where = where
        self.reason = reason


@dataclass(frozen=True)
class Outcome:
    """What the cycle answers a request with (after its commit)."""

    status: int
    body: dict[str, Any]
    reason: str = ""


@dataclass
class EngineRequest:
    kind: str
    body: dict[str, Any]
    future: asyncio.Future[Outcome]
    prepared: dict[str, Any] = field(default_factory=dict)


class EngineMetrics:
    """The engine's Prometheus series, one set per daemon registry (engines are rebuilt, metrics are not)."""

    def __init__(self, metrics: FogMetrics) -> None:
        r = metrics.registry
        self.requests = Counter("fogpark_engine_requests", "Engine requests answered, by kind and outcome",
                                ["kind", "outcome"], registry=r)
        self.refused = Counter("fogpark_requests_refused", "API requests refused with a 4xx, by route and reason",
                               ["route", "reason"], registry=r)
        self.selection_seconds = Histogram("fogpark_selection_seconds", "Spot selection time inside the cycle",
                                           buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                    0.05), registry=r)
        self.queue = Gauge("fogpark_engine_request_queue", "API requests waiting for the next cycle", registry=r)
        self.alerts = Counter("fogpark_alerts_raised", "Alerts raised by the engine's rules", ["kind"], registry=r)
        self.refusal_counts: dict[str, int] = {}

    def refuse(self, route: str, reason: str) -> None:
        self.refused.labels(route, reason).inc()
        self.refusal_counts[reason] = self.refusal_counts.get(reason, 0) + 1


_METRICS: weakref.WeakKeyDictionary[FogMetrics, EngineMetrics] = weakref.WeakKeyDictionary()


def engine_metrics(metrics: FogMetrics) -> EngineMetrics:
    """The engine series registered on ``metrics`` (created once per registry)."""
    em = _METRICS.get(metrics)
    if em is None:
        em = _METRICS[metrics] = EngineMetrics(metrics)
    return em


# ---------------------------------------------------------------- Markov models (§3)
DAY_TYPES = ("weekday", "weekend", "holiday")


def parse_season_key(text: str) -> tuple[str, int]:
    """The cloud's ``"weekday/0835"`` → `default_season_key`'s ``("weekday", 103)`` (5-minute slots).

    Decision: the wire form of a season key is ``<day type>/<HHMM of the slot start>``.
    """
    day, sep, hhmm = text.partition("/")
    if not sep or day not in DAY_TYPES or len(hhmm) != 4 or not hhmm.isdigit():
        raise ValueError(f"season key {text!r} is not <weekday|weekend|holiday>/HHMM")
    hh, mm = int(hhmm[:2]), int(hhmm[2:])
    if hh > 23 or mm > 59 or mm % 5:
        raise ValueError(f"season key {text!r}: HHMM must be a 5-minute slot start")
    return day, (hh * 60 + mm) // 5


def parse_matrix(values: Any) -> Matrix:
    """25 numbers, row-major, each row a distribution (sums to 1 within 1e-6)."""
    if not isinstance(values, list | tuple) or len(values) != N_STATES * N_STATES:
        raise ValueError(f"matrix must be {N_STATES * N_STATES} numbers (5 x 5, row-major)")
    nums = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise ValueError(f"matrix entries must be finite numbers >= 0, got {v!r}")
        nums.append(float(v))
    rows = tuple(tuple(nums[i * N_STATES:(i + 1) * N_STATES]) for i in range(N_STATES))
    for i, row in enumerate(rows):
        if abs(sum(row) - 1.0) > 1e-6:
            raise ValueError(f"matrix row {i + 1} sums to {sum(row):.6f}, not 1")
    return rows


class ModelStore:
    """Transition matrices from the cloud by season key; with none, the forecast is persistence."""

    def __init__(self, rows: list[dict[str, Any]], tz: zoneinfo.ZoneInfo, holidays: tuple[Any, ...]) -> None:
        self.tz = tz
        self.holidays = frozenset(holidays)
        self.matrices: dict[tuple[str, int], Matrix] = {}
        self.meta: dict[str, dict[str, Any]] = {}
        for row in rows:
            try:
                self.put(row["season_key"], json.loads(row["matrix"]), row["trained_ms"], row["brier"],
                         row["brier_persistence"])
            except ValueError as err:
                log.warning("stored model %s ignored: %s", row.get("season_key"), err)

    def put(self, season_key: str, matrix: Any, trained_ms: int, brier: float | None,
            brier_persistence: float | None) -> None:
        key = parse_season_key(season_key)
        self.matrices[key] = parse_matrix(matrix)
        self.meta[season_key] = {"trained_ms": trained_ms, "brier": brier, "brier_persistence": brier_persistence}

    def key_of(self, ts: float) -> tuple[str, int]:
        return default_season_key(ts, self.holidays, tz=self.tz)

    def distribution(self, state: int, now_s: float, at_s: float) -> Distribution:
        """§3 forecast from ``state`` now to ``at_s``; identical to persistence when no model has arrived."""
        if not self.matrices:
            return persistence_forecast(state)
        return forecast(state, self.matrices, self.key_of, now_s, max(0.0, at_s - now_s))

    def info(self) -> dict[str, Any]:
        if not self.meta:
            return {"source": "persistence", "season_keys": 0,
                    "note": "no model from the cloud yet: the forecast is 'the state stays as it is'"}
        trained = max(m["trained_ms"] for m in self.meta.values())
        briers = [m["brier"] for m in self.meta.values() if m["brier"] is not None]
        base = [m["brier_persistence"] for m in self.meta.values() if m["brier_persistence"] is not None]
        return {"source": "cloud", "season_keys": len(self.meta), "trained_ms": trained,
                "brier": sum(briers) / len(briers) if briers else None,
                "brier_persistence": sum(base) / len(base) if base else None}


# ---------------------------------------------------------------- the engine
class LotEngine:
    """Selection, availability, pricing, reservations and §8 rules of one lot, driven by the cycle."""

    def __init__(self, cfg: FogConfig, store: FogStore, state: LotState, alerts: dict[str, dict[str, Any]],
                 metrics: FogMetrics, previous: LotEngine | None = None, now_ms: int | None = None) -> None:
        started = time.perf_counter()
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        self.cfg = cfg
        self.lot = cfg.lot
        self.policy = cfg.lot.policy
        self.store = store
        self.state = state
        self.metrics = engine_metrics(metrics)
        self.period_s = cfg.cycle_ms / 1000
        self.tz = zoneinfo.ZoneInfo(self.policy.timezone)
        self.tariff: TariffConfig = parse_tariff(cfg.lot.source, cfg.lot.tariff, cfg.lot.spots)
        self.late = late_rule(self.policy.grace_s)
        self.hours = OpeningHours(self.policy.open_minutes, self.tz)
        self.alerts = AlertBook(cfg.lot.id, alerts)
        self.entrances = cfg.lot.entrances
        self.default_entrance = self.policy.default_entrance or (self.entrances[0] if self.entrances else "")
        self.capacity = cfg.lot.capacity
        self.zone_of = {s.id: s.zone for s in cfg.lot.spots}
        self.subscriber_spots = {s.id: s.zone for s in cfg.lot.spots if s.kind == "subscriber"}
        self.spot_node = {n.spot: n.node_id for n in cfg.nodes.values()}

        # Requests: the queue survives a rebuild; what a failed cycle took goes back to its head.
        self._queue: deque[EngineRequest] = previous._queue if previous else deque()
        if previous:
            self._queue.extendleft(reversed(previous._taken))
        self._taken: list[EngineRequest] = []
        self._answers: list[tuple[EngineRequest, Outcome]] = []
        self._vehicle_seq: int = previous._vehicle_seq if previous else 0

        # Stored state.
        engine_state = store.load_engine_state()
        self.book = ReservationBook(store.load_reservations(("admitted", "checked_in")))
        self.bids = [Bid(c, a, t / 1000) for c, a, t in store.load_bids()]
        self.models = ModelStore(store.load_models(), self.tz, self.policy.holidays)
        # Adjusted band rates carry on from the store, unless the tariff since changed that band's rate.
        demand = json.loads(engine_state.get("demand", "{}"))
        stored, based_on = demand.get("rates", {}), demand.get("base", {})
        self.demand_rates: dict[str, float] = {
            b.id: float(stored[b.id]) if b.id in stored and based_on.get(b.id, b.rate_per_hour) == b.rate_per_hour
            else b.rate_per_hour for b in self.tariff.bands}
        self.demand_adjusted_ms: int = int(demand.get("adjusted_ms", 0))

        # Spot flags; eligible = free, healthy, not held.
        self.silence = SilenceWatch(
            int(2 * self.policy.heartbeat_s * 1000),
            ((n, max(state.spots[e.spot].last_seen_ms or 0, now_ms)) for n, e in cfg.nodes.items()
             if e.spot in state.spots),
            silent=(row["node_id"] for row in alerts.values()
                    if row["kind"] == "node_silent" and not row["cleared_ms"] and row["node_id"] is not None),
        )
        self._occupied: set[str] = set()
        self._unhealthy: set[str] = set()
        self.holder: dict[str, str] = {s: f"zone:{z}" for s, z in self.subscriber_spots.items()}
        for r in self.book.live.values():
            if r.spot_id and r.kind != "subscription" and r.spot_id in state.spots:
                self.holder[r.spot_id] = r.owner
        for spot in state.spots.values():
            if spot.state == "occupied":
                self._occupied.add(spot.spot_id)
            if not self._healthy(spot):
                self._unhealthy.add(spot.spot_id)
        self.eligible = sum(1 for s in state.spots if self._is_eligible(s))
        graph = cfg.lot.lane_graph
        self.selector = SpotSelector(graph, occupied=self._occupied, unhealthy=self._unhealthy,
                                     holds=self.holder) if graph is not None else None

        # Timers.
        self.guided: dict[str, str] = {}  # vehicle -> spot
        self.guided_to: dict[str, str] = {}  # spot -> vehicle
        self.guidance: Deadlines[str] = Deadlines()
        self.unverified: Deadlines[str] = Deadlines()  # spot -> end of its check-in grace
        self.arrived_ms: dict[str, int] = {}  # held spot -> when it became occupied, awaiting check-in
        for r in self.book.live.values():
            self._schedule(r, now_ms)

        # §1 statistics.
        self.window = ArrivalWindow(self.policy.stats_window_s)
        self._window_ms = int(self.policy.stats_window_s * 1000)
        self._stats_due = (now_ms // self._window_ms + 1) * self._window_ms
        self._last_arrival_s = 0.0
        self.faults = 0
        self.build_s = time.perf_counter() - started
        if self.capacity >= GC_FREEZE_MIN_SPOTS:
            gc.collect()
            gc.freeze()

    # ============================================================ spot flags
    def _healthy(self, spot: SpotState) -> bool:
        node = spot.node_id
        return spot.state != "unknown" and not spot.tamper and (node is None or node not in self.silence.silent)

    def _is_eligible(self, spot_id: str) -> bool:
        return spot_id not in self._occupied and spot_id not in self._unhealthy and spot_id not in self.holder

    def _update(self, spot_id: str, *, occupied: bool | None = None, healthy: bool | None = None,
                owner: str | None = None, clear_hold: bool = False) -> None:
        """Change one spot's flags in the selector and the eligible count (O(groups the spot hangs on))."""
        before = self._is_eligible(spot_id)
        sel = self.selector
        if occupied is not None and occupied != (spot_id in self._occupied):
            (self._occupied.add if occupied else self._occupied.discard)(spot_id)
            if sel:
                sel.set_occupied(spot_id, occupied)
        if healthy is not None and healthy == (spot_id in self._unhealthy):
            (self._unhealthy.discard if healthy else self._unhealthy.add)(spot_id)
            if sel:
                sel.set_healthy(spot_id, healthy)
        if owner is not None and self.holder.get(spot_id) != owner:
            self.holder[spot_id] = owner
            if sel:
                sel.hold(spot_id, owner)
        elif clear_hold and spot_id in self.holder and spot_id not in self.subscriber_spots:
            del self.holder[spot_id]
            if sel:
                sel.clear_hold(spot_id)
        self.eligible += self._is_eligible(spot_id) - before

    # ============================================================ cycle hooks
    def on_frame(self, node_id: int, spot: SpotState, msg_type: int, fields: Mapping[str, Any], at_ms: int,
                 w: CycleWrite) -> None:
        """An accepted frame's effects on selection, bookings, statistics and alerts."""
        try:
            self._on_frame(node_id, spot, msg_type, fields, at_ms, w)
        except Exception:  # noqa: BLE001 - an engine fault must not stop the cycle (it is logged and counted)
            self._fault("frame")

    def _fault(self, where: str) -> None:
        self.faults += 1
        if self.faults <= 10 or self.faults % 1000 == 0:
            log.exception("lot engine fault in %s (%d so far)", where, self.faults)

    def _on_frame(self, node_id: int, spot: SpotState, msg_type: int, fields: Mapping[str, Any], at_ms: int,
                  w: CycleWrite) -> None:
        spot_id = spot.spot_id
        if self.silence.heard(node_id, at_ms):
            self.alerts.clear(w, f"node_silent:{node_id:08x}", at_ms, "heard again")
        occupied = spot.state == "occupied"
        was_occupied = spot_id in self._occupied
        self._update(spot_id, occupied=occupied, healthy=self._healthy(spot))
        if occupied and not was_occupied:
            self._arrived(spot_id, at_ms, w)
        elif was_occupied and not occupied:
            self._departed(spot_id, at_ms, w)
        if msg_type == fr.CHECKIN:
            self._card(spot_id, bytes(fields["uid"]).hex(), at_ms, w)

    def _arrived(self, spot_id: str, at_ms: int, w: CycleWrite) -> None:
        t = max(at_ms / 1000, self._last_arrival_s)  # the window refuses time running backwards
        self._last_arrival_s = t
        self.window.append(t)
        vehicle = self.guided_to.get(spot_id)
        if vehicle is not None:
            self._end_guidance(vehicle)
        r = self.book.at_spot(spot_id)
        if r is not None and r.status == "admitted":
            if r.needs_credential:
                self._await_checkin(spot_id, at_ms)
            else:
                self._check_in(r, at_ms, w, "occupancy", at_ms)
        elif spot_id in self.subscriber_spots:
            self._await_checkin(spot_id, at_ms)
        elif vehicle is None and spot_id not in self.holder and not self.hours.is_open(at_ms):
            self._raise(w, f"closed_occupancy:{spot_id}", "closed_occupancy", at_ms, spot_id,
                        "occupied while the lot is closed, no vehicle guided or expected")

    def _await_checkin(self, spot_id: str, at_ms: int) -> None:
        self.arrived_ms[spot_id] = at_ms
        self.unverified.set(spot_id, at_ms + int(self.policy.checkin_grace_s * 1000))

    def _departed(self, spot_id: str, at_ms: int, w: CycleWrite) -> None:
        self.unverified.cancel(spot_id)
        self.arrived_ms.pop(spot_id, None)
        self.alerts.clear(w, f"unverified_occupancy:{spot_id}", at_ms, "spot empty")
        self.alerts.clear(w, f"closed_occupancy:{spot_id}", at_ms, "spot empty")
        r = self.book.at_spot(spot_id)
        if r is not None and r.status == "checked_in":
            self._complete(r, at_ms, w)

    def _card(self, spot_id: str, uid: str, at_ms: int, w: CycleWrite) -> None:
        """An RFID card read at a spot: check in the reservation (or subscription) it belongs to."""
        for r in self.book.for_card(uid):
            if r.kind == "subscription":
                if self.subscriber_spots.get(spot_id) == r.zone:
                    self._subscriber_visit(r, spot_id, at_ms, w, "card")
                    return
            elif r.status == "admitted":
                self._move_to(r, spot_id, w)
                self._check_in(r, self.arrived_ms.get(spot_id, at_ms), w, "card", at_ms)
                return

    def tick(self, now_ms: int, w: CycleWrite) -> None:
        """Once per cycle, before the commit: due timers, silent nodes, queued requests, statistics."""
        try:
            self._tick(now_ms, w)
        except Exception:  # noqa: BLE001 - an engine fault must not stop the cycle (it is logged and counted)
            self._fault("tick")

    def _tick(self, now_ms: int, w: CycleWrite) -> None:
        t0 = time.perf_counter()
        for node_id, last in self.silence.due(now_ms, MAX_DUE_PER_CYCLE):
            spot_id = self.cfg.nodes[node_id].spot if node_id in self.cfg.nodes else None
            if spot_id is None:
                self.silence.forget(node_id)  # removed from the registry since
                continue
            self._raise(w, f"node_silent:{node_id:08x}", "node_silent", now_ms, spot_id,
                        f"no frame for {(now_ms - last) / 1000:.0f} s (heartbeat every {self.policy.heartbeat_s:g} s)",
                        node_id=node_id)
            self._update(spot_id, healthy=False)
        for vehicle in self.guidance.due(now_ms, MAX_DUE_PER_CYCLE):
            self._end_guidance(vehicle)
        for spot_id in self.unverified.due(now_ms, MAX_DUE_PER_CYCLE):
            since = self.arrived_ms.pop(spot_id, now_ms)
            r = self.book.at_spot(spot_id)
            held_for = f"reservation {r.reservation_id}" if r else f"subscribers of zone {self.subscriber_spots.get(spot_id)}"
            self._raise(w, f"unverified_occupancy:{spot_id}", "unverified_occupancy", now_ms, spot_id,
                        f"held for {held_for}; occupied {(now_ms - since) / 1000:.0f} s without a matching check-in")
        for rid, what in self.book.due(now_ms, MAX_DUE_PER_CYCLE):
            self._deadline(self.book.live[rid], what, now_ms, w)
        self._answer_requests(now_ms, w, t0)
        if now_ms >= self._stats_due:
            self._write_stats(now_ms, w)

    def take_requests(self) -> tuple[list[EngineRequest], list[tuple[EngineRequest, Outcome]]]:
        """What this cycle took and answered; the answers go out when its commit is durable."""
        taken, answers, self._taken, self._answers = self._taken, self._answers, [], []
        return taken, answers

    def requeue(self, taken: list[EngineRequest]) -> None:
        """Requests whose cycle's commit failed: back to the head of the queue, in order."""
        self._taken = taken + self._taken

    def after_commit(self, answers: list[tuple[EngineRequest, Outcome]] | None = None) -> None:
        """A commit is durable: answer what its cycle handled (by default, what this cycle holds)."""
        if answers is None:
            _, answers = self.take_requests()
        for req, outcome in answers:
            self.metrics.requests.labels(req.kind, "ok" if outcome.status < 400 else "refused").inc()
            if not req.future.done():
                req.future.set_result(outcome)
        self.metrics.queue.set(len(self._queue))

    # ============================================================ requests
    def submit(self, kind: str, body: dict[str, Any], now_ms: int | None = None) -> asyncio.Future[Outcome]:
        """Queue a request for the next cycle; the future resolves after that cycle's commit."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        req = EngineRequest(kind, body, future)
        at = body.get("start_ms")
        if kind == "reserve" and body.get("kind") == "reservation" and isinstance(at, int):
            now = time.time() * 1000 if now_ms is None else now_ms
            if now <= at <= now + self.policy.max_advance_s * 1000:  # otherwise the cycle refuses it anyway
                req.prepared["p"] = self.models.distribution(self.current_state(), now / 1000, at / 1000)
        self._queue.append(req)
        return future

    def _answer_requests(self, now_ms: int, w: CycleWrite, t0: float) -> None:
        budget = self.period_s / 2
        handled = 0
        while self._queue and handled < MAX_REQUESTS_PER_CYCLE:
            if handled and time.perf_counter() - t0 > budget:
                break
            req = self._queue.popleft()
            if req.future.done():  # the client gave up before we got to it
                continue
            handled += 1
            self._taken.append(req)
            try:
                body = self._handle(req, now_ms, w)
                outcome = Outcome(201 if req.kind in ("reserve", "bid") else 200, body)
            except EngineError as err:
                outcome = Outcome(err.status, {"error": err.error, "where": err.where}, err.reason)
            except Exception:  # noqa: BLE001 - answered as a server error; the cycle goes on
                self._fault(f"request {req.kind}")
                outcome = Outcome(500, {"error": "internal error in the lot engine (logged)", "where": req.kind},
                                  "fault")
            self._answers.append((req, outcome))

    def _handle(self, req: EngineRequest, now_ms: int, w: CycleWrite) -> dict[str, Any]:
        body = req.body
        if req.kind == "select":
            return self._select(body, now_ms, w)
        if req.kind == "reserve":
            if not body.get("id"):
                return self._reserve(body, req.prepared, now_ms, w)
            return self._reserve_from_cloud(body, req.prepared, now_ms, w)
        if req.kind in ("cancel", "checkin", "extend"):
            r = self._live(body["id"])
            if req.kind == "cancel":
                return self._cancel(r, now_ms, w)
            if req.kind == "checkin":
                return self._api_checkin(r, body, now_ms, w)
            return self._extend(r, body["hours"], now_ms, w)
        if req.kind == "bid":
            return self._bid(body, now_ms, w)
        if req.kind == "model":
            return self._model(body, now_ms, w)
        if req.kind == "config_outcome":
            return self._config_outcome(body, now_ms, w)
        raise EngineError(400, f"unknown request kind {req.kind!r}", "kind", "bad_kind")

    def _config_outcome(self, body: dict[str, Any], now_ms: int, w: CycleWrite) -> dict[str, Any]:
        """A cloud lot/tariff file was refused (raise ``config_refused``) or applied (clear it)."""
        alert_id = f"config_refused:{body['kind']}"
        if body["error"]:
            self.alerts.raise_alert(w, alert_id, "config_refused", now_ms,
                                    detail=f"{body['kind']} v{body['version']}: {body['error']}"[:500])
        else:
            self.alerts.clear(w, alert_id, now_ms, f"{body['kind']} v{body['version']} applied")
        return {"kind": body["kind"], "version": body["version"], "applied": not body["error"]}

    # ---------------------------------------------------------------- selection
    def _select(self, body: dict[str, Any], now_ms: int, w: CycleWrite) -> dict[str, Any]:
        if self.selector is None:
            raise EngineError(409, "this lot has no lane graph: selection is not available", "lot", "no_graph")
        entrance = body["entrance"]
        if entrance not in self.entrances:
            raise EngineError(400, f"unknown entrance {entrance!r}", "body.entrance", "unknown_entrance")
        owner = None
        r: Reservation | None = None
        if body.get("reservation"):
            r = self._live(body["reservation"], where="body.reservation")
            if r.kind == "subscription":
                raise EngineError(409, f"subscribers are not routed: they park in zone {r.zone!r}",
                                  "body.reservation", "subscriber")
            owner = r.owner
        vehicle = str(body.get("vehicle") or "")
        if not vehicle:
            self._vehicle_seq += 1
            vehicle = f"v{now_ms:x}-{self._vehicle_seq}"
        t = time.perf_counter()
        result = self.selector.select(entrance, hold_owner=owner)
        self.metrics.selection_seconds.observe(time.perf_counter() - t)
        if result is None:
            raise EngineError(409, "no eligible spot: the lot is full", "lot", "lot_full")
        self._end_guidance(vehicle)  # a vehicle asking again gives up its previous answer
        self.selector.guide(vehicle, result.path)
        self.guided[vehicle] = result.spot_id
        until = now_ms + int(self.policy.guidance_timeout_s * 1000)
        self.guidance.set(vehicle, until)
        if r is not None:
            self._move_to(r, result.spot_id, w)
        else:
            self._update(result.spot_id, owner=f"guide:{vehicle}")
        self.guided_to[result.spot_id] = vehicle
        return {"spot": result.spot_id, "path": list(result.path), "eta_s": result.eta_s,
                "congestion": result.congestion, "exit_time_s": result.exit_time_s, "entrance": entrance,
                "vehicle": vehicle, "guided_until_ms": until, "reservation": r.reservation_id if r else None}

    def _end_guidance(self, vehicle: str) -> None:
        spot = self.guided.pop(vehicle, None)
        if spot is None:
            return
        self.guidance.cancel(vehicle)
        if self.selector:
            self.selector.release(vehicle)
        if self.guided_to.get(spot) == vehicle:
            del self.guided_to[spot]
            if self.holder.get(spot) == f"guide:{vehicle}":
                self._update(spot, clear_hold=True)

    # ---------------------------------------------------------------- reservations
    def _live(self, rid: str, where: str = "path.id") -> Reservation:
        r = self.book.get(rid)
        if r is not None:
            return r
        row = self.store.reservation(rid)
        if row is None:
            raise EngineError(404, f"no reservation {rid!r}", where, "unknown_reservation")
        raise EngineError(409, f"reservation {rid!r} is {row['status']}", where, "not_live")

    def _save(self, r: Reservation, now_ms: int, w: CycleWrite) -> None:
        r.updated_ms = now_ms
        w.reservations[r.reservation_id] = r.row()
        w.outbox.append((*reservation_record(self.lot.id, r), now_ms))
        if r.status not in ("admitted", "checked_in"):
            self.book.finish(r)

    def _schedule(self, r: Reservation, now_ms: int) -> None:
        if r.kind == "subscription":
            self.book.schedule(r.end_ms, r.reservation_id, "expire")
            return
        if r.status == "admitted":
            if not r.spot_id:
                self.book.schedule(max(now_ms, r.start_ms - int(self.policy.hold_before_s * 1000)),
                                   r.reservation_id, "hold")
            self.book.schedule(r.start_ms + int(self.policy.waiting_window_s * 1000), r.reservation_id, "no_show")

    def _deadline(self, r: Reservation, what: str, now_ms: int, w: CycleWrite) -> None:
        if what == "expire" and now_ms >= r.end_ms:
            r.status = "completed"
            r.detail = "season ended"
            self._save(r, now_ms, w)
        elif what == "no_show" and r.status == "admitted":
            status = booking_status(r.release_view(self.lot.id), now_ms / 1000, grace_s=self.policy.grace_s,
                                    window_s=self.policy.waiting_window_s)
            if status is BookingStatus.NO_SHOW:
                r.status = "no_show"
                r.detail = f"not checked in within {self.policy.waiting_window_s:g} s of the start; spot released"
                if r.spot_id:
                    self._update(r.spot_id, clear_hold=True)
                self._save(r, now_ms, w)
        elif what == "hold" and r.status == "admitted" and not r.spot_id:
            result = self.selector.select(r.entrance or self.default_entrance) if self.selector else None
            if result is None:
                r.detail = "waiting for a free spot to hold"
                self.book.schedule(now_ms + HOLD_RETRY_MS, r.reservation_id, "hold")
                return
            self._move_to(r, result.spot_id, w)
            r.detail = "spot held"
            self._save(r, now_ms, w)

    def _move_to(self, r: Reservation, spot_id: str, w: CycleWrite) -> None:
        """Hold ``spot_id`` for ``r`` (releasing its previous spot), unless another owner holds it."""
        if r.spot_id == spot_id:
            return
        current = self.holder.get(spot_id)
        if current is not None and current != r.owner and not current.startswith("guide:"):
            return  # held for someone else: the reservation keeps its own spot
        if current is not None and current.startswith("guide:"):
            self._end_guidance(current[len("guide:"):])
        if r.spot_id and self.holder.get(r.spot_id) == r.owner:
            self._update(r.spot_id, clear_hold=True)
        self.book.move(r, spot_id)
        self._update(spot_id, owner=r.owner)

    def _reserve(self, body: dict[str, Any], prepared: dict[str, Any], now_ms: int, w: CycleWrite,
                 rid: str | None = None) -> dict[str, Any]:
        kind = body["kind"]
        if kind == "subscription":
            return self._subscribe(body, now_ms, w)
        hours = int(body["hours"])
        if not 1 <= hours <= self.policy.max_hours:
            raise EngineError(422, f"hours must be 1..{self.policy.max_hours}", "body.hours", "bad_hours")
        entrance = body.get("entrance") or self.default_entrance
        if self.selector is None:
            raise EngineError(409, "this lot has no lane graph: spots cannot be held", "lot", "no_graph")
        if entrance not in self.entrances:
            raise EngineError(400, f"unknown entrance {entrance!r}", "body.entrance", "unknown_entrance")
        occupied = self.state.occupied
        rid = rid or f"{kind[0]}-{uuid.uuid4().hex[:12]}"
        probability = None
        spot: str | None = None
        if kind == "booking":
            start = now_ms
            result = self.selector.select(entrance)
            if result is None:
                raise EngineError(409, "no eligible spot: the lot is full", "lot", "lot_full")
            spot = result.spot_id
        else:
            requested = body.get("start_ms")
            if not isinstance(requested, int):
                raise EngineError(400, "start is required for a reservation (a booking starts now)", "body.start",
                                  "missing")
            start = requested
            if start > now_ms + self.policy.max_advance_s * 1000:
                raise EngineError(422, f"a reservation may start at most {self.policy.max_advance_s:g} s ahead",
                                  "body.start", "too_far_ahead")
            p = prepared.get("p") or self.models.distribution(self.current_state(), now_ms / 1000, start / 1000)
            verdict = admit_reservation(now_ms / 1000, start / 1000, p, self.capacity, self.book.overlapping(start),
                                        lead_s=self.policy.lead_s, theta=self.policy.theta)
            probability = verdict.probability
            if not verdict.admitted:
                lead = verdict.reason.startswith("lead")
                raise EngineError(422 if lead else 409, f"refused: {verdict.reason}", "body.start",
                                  "lead_time" if lead else "availability")
        rate, total = self.tariff.lock(hours, occupied, self.capacity, start / 1000, self.tz, self.demand_rates)
        r = Reservation(
            reservation_id=rid, kind=kind, plan=self.tariff.proto_plan, status="admitted", start_ms=start,
            end_ms=start + hours * HOUR_MS, hours=hours, price_per_hour=rate, price_total=money(total),
            created_ms=now_ms, updated_ms=now_ms, zone=None, client=str(body.get("client") or ""),
            card_uid=str(body.get("card_uid") or "").lower(), plate=str(body.get("plate") or ""),
            entrance=entrance, occupancy_at_booking=occupied / self.capacity, probability=probability,
            detail="admitted",
        )
        self.book.add(r)
        if spot is not None:
            self._move_to(r, spot, w)
        self._schedule(r, now_ms)
        self._save(r, now_ms, w)
        return r.public()

    def _reserve_from_cloud(self, body: dict[str, Any], prepared: dict[str, Any], now_ms: int,
                            w: CycleWrite) -> dict[str, Any]:
        """A booking made online, forwarded by the cloud under its own id.

        The fog stays the authority: it admits or refuses by the same rules as a
        local request, and answers the cloud with a Reservation record under that
        id either way. Applying the same update twice (a resumed stream) changes
        nothing: a known id is answered as it stands.
        """
        rid = str(body["id"])
        known = self.book.get(rid)
        if known is not None:
            return known.public()
        row = self.store.db.execute("SELECT status FROM reservations WHERE reservation_id=?", [rid]).fetchone()
        if row is not None:
            return {"reservation": rid, "status": row[0]}
        try:
            result = self._reserve(body, prepared, now_ms, w, rid=rid)
        except EngineError as err:
            start = int(body.get("start_ms") or now_ms)
            hours = int(body.get("hours") or 1)
            msg = pb.Reservation(lot_id=self.lot.id, reservation_id=rid, status="refused", start_ms=start,
                                 end_ms=start + hours * HOUR_MS, updated_ms=now_ms, source="fog",
                                 plan=self.tariff.proto_plan)
            w.outbox.append(("reservation", msg.SerializeToString(), now_ms))
            w.reservations[rid] = {
                "reservation_id": rid, "kind": str(body.get("kind") or "booking"), "plan": self.tariff.proto_plan,
                "status": "refused", "client": "", "card_uid": "", "plate": "", "start_ms": start,
                "end_ms": start + hours * HOUR_MS, "hours": hours, "price_per_hour": 0.0, "price_total": 0.0,
                "late_charge": 0.0, "extension_hours": 0, "extension_charge": 0.0, "created_ms": now_ms,
                "updated_ms": now_ms, "detail": f"cloud booking refused: {err.error}"}
            raise
        return result

    def _subscribe(self, body: dict[str, Any], now_ms: int, w: CycleWrite) -> dict[str, Any]:
        terms = self.tariff.auction
        if terms is None:
            raise EngineError(409, "this lot runs no subscription auction", "body.kind", "no_auction")
        client = str(body.get("client") or "")
        result = run_auction(self.bids, terms.spots, terms.floor, terms.cap)
        if client not in {b.client_id for b in result.winners}:
            raise EngineError(409, f"client {client!r} is not among the auction's winners", "body.client",
                              "not_a_winner")
        if any(s.client == client for s in self.book.subscribers(terms.zone)):
            raise EngineError(409, f"client {client!r} already holds a subscription", "body.client",
                              "already_subscribed")
        assert result.rate is not None
        r = Reservation(
            reservation_id=f"s-{uuid.uuid4().hex[:12]}", kind="subscription", plan="subscription", status="admitted",
            start_ms=now_ms, end_ms=now_ms + int(terms.season_days * 86400_000), hours=0,
            price_per_hour=0.0, price_total=money(result.rate), created_ms=now_ms, updated_ms=now_ms,
            zone=terms.zone, client=client, card_uid=str(body.get("card_uid") or "").lower(),
            plate=str(body.get("plate") or ""), detail=f"season rate {money(result.rate)} (auction)",
        )
        self.book.add(r)
        self._schedule(r, now_ms)
        self._save(r, now_ms, w)
        return r.public()

    def _check_in(self, r: Reservation, arrival_ms: int, w: CycleWrite, how: str, now_ms: int) -> None:
        late = self.late.late_arrival_charge(r.price_per_hour, r.start_ms / 1000, arrival_ms / 1000,
                                             self.state.occupied, self.capacity)
        r.status = "checked_in"
        r.checked_in_ms = arrival_ms
        r.late_charge = money(late)
        r.detail = f"checked in by {how}" + (" (late)" if late else "")
        if r.spot_id:
            self.unverified.cancel(r.spot_id)
            self.arrived_ms.pop(r.spot_id, None)
            self.alerts.clear(w, f"unverified_occupancy:{r.spot_id}", now_ms, f"checked in by {how}")
        self._save(r, now_ms, w)

    def _subscriber_visit(self, r: Reservation, spot_id: str, now_ms: int, w: CycleWrite, how: str) -> None:
        self.unverified.cancel(spot_id)
        self.arrived_ms.pop(spot_id, None)
        self.alerts.clear(w, f"unverified_occupancy:{spot_id}", now_ms, f"subscriber checked in by {how}")
        r.checked_in_ms = now_ms
        r.detail = f"last visit at {spot_id} (checked in by {how})"
        self._save(r, now_ms, w)

    def _complete(self, r: Reservation, at_ms: int, w: CycleWrite) -> None:
        r.status = "completed"
        r.departed_ms = at_ms
        over_h = math.ceil((at_ms - r.end_ms) / HOUR_MS) if at_ms > r.end_ms else 0
        overstay = self.tariff.extension(r.price_per_hour, r.hours + r.extension_hours, over_h,
                                         self.state.occupied, self.capacity) if over_h else 0.0
        r.final_charge = money(r.price_total + r.late_charge + r.extension_charge + money(overstay))
        r.detail = "departed" + (f"; {over_h} h past the booked end, charged {money(overstay)}" if over_h else "")
        if r.spot_id:
            self._update(r.spot_id, clear_hold=True)
        self._save(r, at_ms, w)

    def _cancel(self, r: Reservation, now_ms: int, w: CycleWrite) -> dict[str, Any]:
        if r.status != "admitted" or r.kind == "subscription":
            raise EngineError(409, f"a {r.status} {r.kind} cannot be cancelled", "path.id", "not_cancellable")
        r.status = "cancelled"
        r.detail = "cancelled by the driver"
        if r.spot_id:
            self._update(r.spot_id, clear_hold=True)
        self._save(r, now_ms, w)
        return r.public()

    def _api_checkin(self, r: Reservation, body: dict[str, Any], now_ms: int, w: CycleWrite) -> dict[str, Any]:
        spot = body.get("spot") or r.spot_id
        if spot is not None and spot not in self.zone_of:
            raise EngineError(400, f"unknown spot {spot!r}", "body.spot", "unknown_spot")
        plate = body.get("plate")
        if r.plate and plate != r.plate:
            raise EngineError(409, "the plate does not match the reservation's", "body.plate", "plate_mismatch")
        how = "plate" if plate else "operator"
        if r.kind == "subscription":
            if spot is None or self.subscriber_spots.get(spot) != r.zone:
                raise EngineError(409, f"a subscriber checks in at a subscriber spot of zone {r.zone!r}",
                                  "body.spot", "wrong_zone")
            self._subscriber_visit(r, spot, now_ms, w, how)
            return r.public()
        if r.status != "admitted":
            raise EngineError(409, f"reservation is {r.status}", "path.id", "not_admitted")
        if spot is not None:
            self._move_to(r, spot, w)
        self._check_in(r, self.arrived_ms.get(r.spot_id or "", now_ms), w, how, now_ms)
        return r.public()

    def _extend(self, r: Reservation, hours: int, now_ms: int, w: CycleWrite) -> dict[str, Any]:
        if r.kind == "subscription":
            raise EngineError(409, "a subscription runs for its season", "path.id", "not_extendable")
        if not 1 <= hours <= self.policy.max_hours:
            raise EngineError(422, f"hours must be 1..{self.policy.max_hours}", "body.hours", "bad_hours")
        charge = self.tariff.extension(r.price_per_hour, r.hours + r.extension_hours, hours, self.state.occupied,
                                       self.capacity)
        r.extension_hours += hours
        r.extension_charge = money(r.extension_charge + charge)
        self.book.set_end(r, r.end_ms + hours * HOUR_MS)
        r.detail = f"extended by {hours} h for {money(charge)}"
        self._save(r, now_ms, w)
        return dict(r.public(), extension={"hours": hours, "charge": money(charge)})

    # ---------------------------------------------------------------- auction and models
    def _bid(self, body: dict[str, Any], now_ms: int, w: CycleWrite) -> dict[str, Any]:
        terms = self.tariff.auction
        if terms is None:
            raise EngineError(409, "this lot runs no subscription auction", "lot", "no_auction")
        bid = Bid(str(body["client"]), body["amount"], now_ms / 1000)
        try:
            validate_bid(bid, terms.floor, terms.cap)
        except BidError as err:
            raise EngineError(422, str(err), "body.amount", "bid_out_of_range") from None
        self.bids.append(bid)
        w.bids.append((bid.client_id, float(bid.amount), now_ms))
        return {"client": bid.client_id, "amount": money(bid.amount), "at_ms": now_ms}

    def _model(self, body: dict[str, Any], now_ms: int, w: CycleWrite) -> dict[str, Any]:
        try:
            self.models.put(body["season_key"], body["matrix"], int(body.get("trained_ms") or now_ms),
                            body.get("brier"), body.get("brier_persistence"))
        except ValueError as err:
            raise EngineError(400, str(err), "body", "bad_model") from None
        key = body["season_key"]
        meta = self.models.meta[key]
        w.models[key] = (json.dumps(list(body["matrix"])), meta["trained_ms"], meta["brier"],
                         meta["brier_persistence"], now_ms)
        return {"season_key": key, **meta}

    # ============================================================ statistics, prices
    def _write_stats(self, now_ms: int, w: CycleWrite) -> None:
        """§1 for the window just ended, kept as history; then the SFpark step when due."""
        end = self._stats_due
        st = self.window.stats(end / 1000, self.state.occupied, self.capacity)
        w.lot_stats.append({
            "window_end_ms": end, "window_s": int(self.window.window_s), "capacity": self.capacity,
            "occupied": self.state.occupied, "concentration": st.concentration, "arrivals": st.arrivals,
            "mean_interarrival_s": st.mean_inter_arrival_s, "price_per_hour": self.price_per_hour(now_ms),
            "unreserved_free": self.eligible,
        })
        self._stats_due = (now_ms // self._window_ms + 1) * self._window_ms
        rule = self.tariff.demand
        if rule is None:
            return
        if not self.demand_adjusted_ms:
            self.demand_adjusted_ms = now_ms
        elif rule.is_due(self.demand_adjusted_ms / 1000, now_ms / 1000):
            samples: dict[str, list[float]] = {}
            for row in self.store.lot_stats_page(self.demand_adjusted_ms, 1_000_000):
                band = self.tariff.band_at(row["window_end_ms"] / 1000, self.tz).id
                samples.setdefault(band, []).append(row["concentration"])
            means = {band: sum(v) / len(v) for band, v in samples.items()}
            self.demand_rates = rule.next_rates(self.demand_rates, means)
            self.demand_adjusted_ms = now_ms
            log.info("demand-responsive rates now %s (mean occupancy %s)", self.demand_rates, means)
        w.engine_state["demand"] = json.dumps({"rates": self.demand_rates, "adjusted_ms": self.demand_adjusted_ms,
                                               "base": {b.id: b.rate_per_hour for b in self.tariff.bands}})

    def price_per_hour(self, now_ms: int | None = None) -> float:
        now = time.time() if now_ms is None else now_ms / 1000
        return self.tariff.hourly_rate(self.state.occupied, self.capacity, now, self.tz, self.demand_rates)

    @property
    def unhealthy_count(self) -> int:
        return len(self._unhealthy)

    def _raise(self, w: CycleWrite, alert_id: str, kind: str, at_ms: int, spot: str, detail: str,
               node_id: int | None = None) -> None:
        if self.alerts.raise_alert(w, alert_id, kind, at_ms, node_id=node_id or self.spot_node.get(spot),
                                   spot=spot, detail=detail):
            self.metrics.alerts.labels(kind).inc()

    # ============================================================ reads (committed state)
    def current_state(self) -> int:
        return state_of(self.state.free / self.capacity)

    def availability(self, now_ms: int) -> dict[str, Any]:
        s = self.state
        return {"lot": self.lot.id, "at_ms": now_ms, "capacity": s.capacity, "free": s.free,
                "occupied": s.occupied, "unknown": s.counts.get("unknown", 0), "unhealthy": len(self._unhealthy),
                "held": len(self.holder), "unreserved_free": self.eligible, "ratio": s.free / s.capacity,
                "state": state_name(self.current_state()), "open": self.hours.is_open(now_ms),
                "price_per_hour": money(self.price_per_hour(now_ms)), "currency": self.tariff.currency}

    def forecast_at(self, at_ms: int, now_ms: int) -> dict[str, Any]:
        """§3: the state distribution at ``at_ms`` and P(an unreserved spot is free) then."""
        state = self.current_state()
        p = self.models.distribution(state, now_ms / 1000, at_ms / 1000)
        reserved = self.book.overlapping(at_ms)
        best = max(range(len(p)), key=lambda i: p[i])
        return {"at_ms": at_ms, "horizon_s": max(0.0, (at_ms - now_ms) / 1000), "from_state": state_name(state),
                "distribution": {state_name(i): x for i, x in enumerate(p)}, "most_likely": state_name(best),
                "reserved_overlapping": reserved,
                "p_unreserved_free": probability_unreserved_free(p, self.capacity, reserved),
                "model": self.models.info()}

    def quote(self, hours: float, now_ms: int, late_occupied: int | None = None) -> dict[str, Any]:
        q = quote(self.tariff, hours, self.state.occupied, self.capacity, at_s=now_ms / 1000, tz=self.tz,
                  late_occupied=late_occupied, rates=self.demand_rates)
        return dict(q.as_dict(), occupied=self.state.occupied, capacity=self.capacity)

    def auction(self) -> dict[str, Any]:
        terms = self.tariff.auction
        if terms is None:
            raise EngineError(404, "this lot runs no subscription auction", "lot", "no_auction")
        result = run_auction(self.bids, terms.spots, terms.floor, terms.cap)
        return {"zone": terms.zone, "spots": terms.spots, "floor": terms.floor, "cap": terms.cap,
                "season_days": terms.season_days, "bids": len(self.bids), "bidders": len({b.client_id for b in self.bids}),
                "rate": money(result.rate) if result.rate is not None else None,
                "winners": [{"client": b.client_id, "amount": money(b.amount), "at_ms": int(b.timestamp * 1000)}
                            for b in result.winners],
                "revenue": money(result.revenue), "currency": self.tariff.currency}

    def reservation(self, rid: str) -> dict[str, Any] | None:
        r = self.book.get(rid)
        if r is not None:
            return r.public()
        row = self.store.reservation(rid)
        return Reservation.from_row(row).public() if row else None

    def stats(self) -> dict[str, Any]:
        by_status: dict[str, int] = {}
        for r in self.book.live.values():
            by_status[f"{r.kind}:{r.status}"] = by_status.get(f"{r.kind}:{r.status}", 0) + 1
        return {"queue": len(self._queue), "guided_vehicles": len(self.guided), "held_spots": len(self.holder),
                "unreserved_free": self.eligible, "unhealthy_spots": len(self._unhealthy),
                "silent_nodes": len(self.silence.silent), "live_reservations": by_status,
                "refused": dict(self.metrics.refusal_counts), "alerts_raised": self.alerts.raised,
                "alerts_cleared": self.alerts.cleared, "model": self.models.info(),
                "price_per_hour": money(self.price_per_hour()), "plan": self.tariff.plan,
                "build_s": round(self.build_s, 3), "faults": self.faults}
