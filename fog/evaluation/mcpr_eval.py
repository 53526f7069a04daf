"""Multi-lot recommendation (MCPR, ALGORITHMS.md §5) against two simpler policies, over a day.

Five lots of 500 spots around a destination on a street grid (Manhattan
distances: driving and walking both follow the streets). Drivers set out
from origins 2–5 km away; the day has a morning rush hour. Three policies
decide where each driver parks:

* ``nearest`` — nearest-lot-first with redirection on arrival: drive to the
  lot nearest the destination; if it is full on arrival, drive on to the
  next nearest, and so on (no reservations);
* ``reserve-nearest`` — reserve, when setting out, a spot in the nearest lot
  that still has an unreserved free spot; drive there;
* ``mcpr`` — when setting out, rank the lots with `fog.engine.mcpr.rank_lots`
  (distance to destination, price, unreserved free spots; equal weights),
  reserve in the best one and drive there, with the no-show release of
  "improved MCPR" (`fog.engine.mcpr.no_shows`).

Measured per driver, reported per hour of arrival: extra driving distance =
driven − the street distance from origin to destination (what a driver who
could park at the destination would drive); walking distance = street
distance from the lot to the destination; and the price per hour paid.

Demand (configurable in `DayAssumptions`): visitors arrive 06:00–22:00 at
120/h and stay a log-normal time (median 2 h); commuters add 800/h between
08:00 and 10:00 and stay 8 h ± 1 h. 5 % of reserving drivers never come:
``reserve-nearest`` holds their spot for the booked stay, ``mcpr`` releases
it at the end of the waiting window (3 h) or of the booking if sooner. A
driver who finds every lot full (``nearest``) or no lot with space
(reservations) is counted as turned away.
Decision: a reserving driver's booking starts when he sets out and his
stay is measured from his arrival; drivers travel at 8.3 m/s (30 km/h).
"""

from __future__ import annotations

import heapq
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field

from fog.engine.mcpr import DEFAULT_WAITING_WINDOW_S, Booking, LotOffer, Weights, no_shows, rank_lots

__all__ = ["POLICIES", "DayAssumptions", "DayResult", "DriverOutcome", "Lot", "hourly_means", "simulate_day"]

POLICIES = ("mcpr", "nearest", "reserve-nearest")


@dataclass(frozen=True)
class Lot:
    """A lot on the street grid (metres from the destination) with its hourly price."""

    lot_id: str
    x_m: float
    y_m: float
    price_per_hour: float
    capacity: int = 500


def _default_lots() -> tuple[Lot, ...]:
    return (
        Lot("L1", 150, 100, 4.0),
        Lot("L2", -250, 200, 3.5),
        Lot("L3", 300, -350, 3.0),
        Lot("L4", -450, -400, 2.5),
        Lot("L5", 650, 450, 2.0),
    )


@dataclass(frozen=True)
class DayAssumptions:
    """The day: lots, demand and behaviour (see the module docstring)."""

    lots: tuple[Lot, ...] = field(default_factory=_default_lots)
    visitors_per_h: float = 120.0
    visitor_hours: tuple[float, float] = (6.0, 22.0)
    visitor_stay_median_h: float = 2.0
    visitor_stay_sigma: float = 0.6
    commuters_per_h: float = 800.0
    rush_hours: tuple[float, float] = (8.0, 10.0)
    commuter_stay_h: float = 8.0
    commuter_stay_sd_h: float = 1.0
    origin_km: tuple[float, float] = (2.0, 5.0)
    speed_mps: float = 8.3
    no_show_share: float = 0.05
    weights: Weights = field(default_factory=Weights)
    waiting_window_s: float = DEFAULT_WAITING_WINDOW_S


@dataclass(frozen=True)
class DriverOutcome:
    """What happened to one driver under one policy."""

    arrival_hour: int
    parked: bool
    extra_driving_m: float
    walking_m: float
    price_per_hour: float
    redirections: int


@dataclass(frozen=True)
class DayResult:
    """One simulated day under one policy."""

    policy: str
    seed: int
    drivers: tuple[DriverOutcome, ...]
    turned_away: int
    no_shows: int
    peak_occupancy: float


@dataclass(frozen=True)
class _Driver:
    index: int
    set_out_s: float
    due_s: float  # when he would reach the destination driving straight there
    origin: tuple[float, float]
    stay_s: float
    no_show: bool


def _street(a: tuple[float, float], b: tuple[float, float]) -> float:
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def _drivers(seed: int, a: DayAssumptions) -> list[_Driver]:
    """The day's demand; identical for every policy with the same seed."""
    rng = random.Random(f"mcpr-day|{seed}")
    raw: list[tuple[float, float]] = []  # (arrival at the destination area, stay)
    t = a.visitor_hours[0] * 3600.0
    while a.visitors_per_h > 0:
        t += rng.expovariate(a.visitors_per_h / 3600.0)
        if t >= a.visitor_hours[1] * 3600.0:
            break
        stay = a.visitor_stay_median_h * math.exp(a.visitor_stay_sigma * rng.gauss(0.0, 1.0))
        raw.append((t, min(max(stay, 0.25), 10.0) * 3600.0))
    t = a.rush_hours[0] * 3600.0
    while a.commuters_per_h > 0:
        t += rng.expovariate(a.commuters_per_h / 3600.0)
        if t >= a.rush_hours[1] * 3600.0:
            break
        stay = rng.gauss(a.commuter_stay_h, a.commuter_stay_sd_h)
        raw.append((t, min(max(stay, 4.0), 11.0) * 3600.0))
    raw.sort()
    drivers = []
    for i, (arrive, stay) in enumerate(raw):
        angle = rng.uniform(0.0, 2.0 * math.pi)
        radius = rng.uniform(*a.origin_km) * 1000.0
        origin = (round(radius * math.cos(angle), -2), round(radius * math.sin(angle), -2))
        drive_s = _street(origin, (0.0, 0.0)) / a.speed_mps
        drivers.append(_Driver(i, arrive - drive_s, arrive, origin, stay, rng.random() < a.no_show_share))
    drivers.sort(key=lambda d: (d.set_out_s, d.index))
    return drivers


class _LotState:
    """Occupancy and reservations of the lots over the day (event-driven)."""

    def __init__(self, lots: tuple[Lot, ...]) -> None:
        self.lots = {lot.lot_id: lot for lot in lots}
        self.parked: dict[str, int] = {lot.lot_id: 0 for lot in lots}
        self.reserved: dict[str, int] = {lot.lot_id: 0 for lot in lots}
        self.events: list[tuple[float, int, str, str]] = []  # (time, seq, kind, lot)
        self._seq = 0
        self.peak = 0.0

    def schedule(self, at: float, kind: str, lot_id: str) -> None:
        self._seq += 1
        heapq.heappush(self.events, (at, self._seq, kind, lot_id))

    def advance(self, now: float) -> None:
        while self.events and self.events[0][0] <= now:
            _, _, kind, lot_id = heapq.heappop(self.events)
            if kind == "leave":
                self.parked[lot_id] -= 1
            elif kind == "unreserve":
                self.reserved[lot_id] -= 1
            elif kind == "park-reserved":
                self.reserved[lot_id] -= 1
                self.parked[lot_id] += 1
            self.note_peak()

    def note_peak(self) -> None:
        total = sum(lot.capacity for lot in self.lots.values())
        self.peak = max(self.peak, (sum(self.parked.values()) + sum(self.reserved.values())) / total)

    def unreserved_free(self, lot_id: str) -> int:
        return self.lots[lot_id].capacity - self.parked[lot_id] - self.reserved[lot_id]


def simulate_day(policy: str, seed: int, assumptions: DayAssumptions | None = None) -> DayResult:
    """One day of arrivals under ``policy``; same seed, same drivers for every policy."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; expected one of {', '.join(POLICIES)}")
    a = assumptions or DayAssumptions()
    if policy == "nearest":
        return _nearest_first(seed, a)
    return _reserving(policy, seed, a)


def _walks(a: DayAssumptions) -> tuple[dict[str, float], list[Lot]]:
    walk = {lot.lot_id: _street((lot.x_m, lot.y_m), (0.0, 0.0)) for lot in a.lots}
    return walk, sorted(a.lots, key=lambda lot: (walk[lot.lot_id], lot.lot_id))


def _nearest_first(seed: int, a: DayAssumptions) -> DayResult:
    """Drive to the nearest lot; if full on arrival, on to the next nearest (event-driven, exact order)."""
    state = _LotState(a.lots)
    walk, by_walk = _walks(a)
    outcomes: list[DriverOutcome] = []
    turned_away = 0
    queue: list[tuple[float, int, int, float]] = []  # (time at a lot, driver index, position in by_walk, driven)
    drivers = {d.index: d for d in _drivers(seed, a) if not d.no_show}  # nobody to not show: no bookings
    for d in drivers.values():
        first = by_walk[0]
        to_first = _street(d.origin, (first.x_m, first.y_m))
        heapq.heappush(queue, (d.set_out_s + to_first / a.speed_mps, d.index, 0, to_first))
    while queue:
        now, index, position, driven = heapq.heappop(queue)
        d = drivers[index]
        lot = by_walk[position]
        state.advance(now)
        direct = _street(d.origin, (0.0, 0.0))
        hour = int(d.due_s // 3600)
        if state.unreserved_free(lot.lot_id) > 0:
            state.parked[lot.lot_id] += 1
            state.note_peak()
            state.schedule(now + d.stay_s, "leave", lot.lot_id)
            outcomes.append(
                DriverOutcome(hour, True, driven - direct, walk[lot.lot_id], lot.price_per_hour, position)
            )
        elif position + 1 < len(by_walk):
            nxt = by_walk[position + 1]
            hop = _street((lot.x_m, lot.y_m), (nxt.x_m, nxt.y_m))
            heapq.heappush(queue, (now + hop / a.speed_mps, index, position + 1, driven + hop))
        else:
            turned_away += 1
            outcomes.append(DriverOutcome(hour, False, driven - direct, math.nan, math.nan, position))
    return DayResult("nearest", seed, tuple(outcomes), turned_away, 0, state.peak)


def _reserving(policy: str, seed: int, a: DayAssumptions) -> DayResult:
    """Reserve when setting out (MCPR's choice or the nearest lot with space), then drive there."""
    state = _LotState(a.lots)
    walk, by_walk = _walks(a)
    outcomes: list[DriverOutcome] = []
    turned_away = no_show_count = 0
    waiting: dict[str, Booking] = {}  # no-show bookings MCPR will release at the window
    for d in _drivers(seed, a):
        now = d.set_out_s
        state.advance(now)
        if policy == "mcpr":
            for booking in no_shows(waiting.values(), now, window_s=a.waiting_window_s):
                del waiting[booking.booking_id]
                state.reserved[booking.lot_id] -= 1
            offers = [
                LotOffer(lot.lot_id, walk[lot.lot_id], lot.price_per_hour, max(state.unreserved_free(lot.lot_id), 0))
                for lot in a.lots
            ]
            ranked = rank_lots(offers, a.weights)
            choice = ranked[0].offer.lot_id if ranked else None
        else:
            choice = next((lot.lot_id for lot in by_walk if state.unreserved_free(lot.lot_id) > 0), None)
        direct = _street(d.origin, (0.0, 0.0))
        hour = int(d.due_s // 3600)
        if choice is None:
            turned_away += 1
            outcomes.append(DriverOutcome(hour, False, 0.0, math.nan, math.nan, 0))
            continue
        lot = state.lots[choice]
        state.reserved[choice] += 1
        state.note_peak()
        to_lot = _street(d.origin, (lot.x_m, lot.y_m))
        arrive = now + to_lot / a.speed_mps
        if d.no_show:
            no_show_count += 1
            booked_end = arrive + d.stay_s
            if policy == "mcpr" and now + a.waiting_window_s < booked_end:
                waiting[f"b{d.index}"] = Booking(f"b{d.index}", choice, now)
            else:
                state.schedule(booked_end, "unreserve", choice)
            continue
        state.schedule(arrive, "park-reserved", choice)
        state.schedule(arrive + d.stay_s, "leave", choice)
        outcomes.append(DriverOutcome(hour, True, to_lot - direct, walk[choice], lot.price_per_hour, 0))
    return DayResult(policy, seed, tuple(outcomes), turned_away, no_show_count, state.peak)


def hourly_means(results: list[DayResult]) -> dict[int, dict[str, float]]:
    """Per hour of arrival: mean extra driving, walking and price over parked drivers of all seeds."""
    sums: dict[int, list[list[float]]] = defaultdict(lambda: [[], [], []])
    for result in results:
        for o in result.drivers:
            if o.parked:
                bucket = sums[o.arrival_hour]
                bucket[0].append(o.extra_driving_m)
                bucket[1].append(o.walking_m)
                bucket[2].append(o.price_per_hour)
    return {
        hour: {
            "extra_driving_m": sum(v[0]) / len(v[0]),
            "walking_m": sum(v[1]) / len(v[1]),
            "price_per_hour": sum(v[2]) / len(v[2]),
            "drivers": float(len(v[0])),
        }
        for hour, v in sorted(sums.items())
    }
