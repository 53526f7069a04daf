"""What operators ask the cloud, answered once for the HTTP API, the dashboard and the CLI.

Every function takes the operator's words (strings such as ``since="1d"``),
validates them here — so both surfaces accept exactly the same spellings and
refuse bad ones with the same message — and returns a `Report`: rows with a
fixed column order (for CSV and tables) plus metadata (for JSON). A refusal is
a QueryError naming the parameter (``where``), the problem, and a short code
for the refusal counters; nothing is changed by a refused call.

Blocking (SQLite / InfluxDB calls): the HTTP API runs these in a thread.
"""

from __future__ import annotations

import csv
import io
import math
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from cloud import ngsi
from cloud.config import CloudConfig, LotPlace
from cloud.history import HistoryStore
from cloud.models import ModelError, push_models, train_lot
from cloud.store import CloudStore, now_ms
from cloud.timeparse import TimeParseError, format_ms, parse_duration_s, parse_instant_ms
from fog.engine import lot_stats, mcpr
from proto import parking_pb2

MAX_ROWS = 100_000
MAX_BUCKETS = 100_000
PLANS = ("hybrid_short", "occupancy", "subscription", "fixed")
RESERVATION_STATUSES = ("admitted", "checked_in", "completed", "cancelled", "no_show", "refused")
EARTH_RADIUS_M = 6_371_008.8
MAX_BOOKING_S = 366 * 86400
_PLATE = re.compile(r"[A-Z0-9][A-Z0-9 -]{0,15}")
_CARD = re.compile(r"(?:[0-9a-f]{2}){1,10}")
_SPOT = re.compile(r"[A-Za-z0-9._-]{1,32}")


class QueryError(ValueError):
    """A parameter that cannot be used; ``where`` names it, ``code`` is a fixed label for metrics."""

    def __init__(self, where: str, error: str, code: str | None = None) -> None:
        super().__init__(error)
        self.where = where
        self.error = error
        self.code = code or f"bad_{where}"


class NotFound(QueryError):
    """The thing asked for does not exist (HTTP 404)."""


@dataclass
class Report:
    """Rows with a fixed column order, and what they are about."""

    kind: str
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """``{**meta, <kind>: rows}``."""
        return {**self.meta, self.kind: self.rows}

    def write_csv(self, out: TextIO) -> None:
        """Header plus one line per row, in ``columns`` order; None is an empty cell."""
        writer = csv.DictWriter(out, self.columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})

    def csv_text(self) -> str:
        out = io.StringIO()
        self.write_csv(out)
        return out.getvalue()


def _iso(at_ms: int | None) -> str | None:
    return None if at_ms is None else format_ms(int(at_ms))


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres on the mean Earth sphere (good to ~0.5 % for a city)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class Destination:
    """Where the driver is going: lat/lon or x_m/y_m, like the lots in the config."""

    lat: float | None = None
    lon: float | None = None
    x_m: float | None = None
    y_m: float | None = None

    def distance_to(self, place: LotPlace) -> float | None:
        """Metres to the lot, or None when the two use different kinds of coordinates."""
        if self.lat is not None and self.lon is not None and place.lat is not None and place.lon is not None:
            return haversine_m(self.lat, self.lon, place.lat, place.lon)
        if self.x_m is not None and self.y_m is not None and place.x_m is not None and place.y_m is not None:
            return math.hypot(self.x_m - place.x_m, self.y_m - place.y_m)
        return None


class Operations:
    """The operator functions over one store, one history backend and the config."""

    def __init__(
        self, store: CloudStore, history: HistoryStore, config: CloudConfig, clock: Callable[[], int] = now_ms
    ) -> None:
        self.store = store
        self.history = history
        self.config = config
        self.clock = clock

    # ---- parameter parsing (shared spellings) ---------------------------------------------

    def window(self, since: str | None, until: str | None, default_since: str) -> tuple[int, int]:
        """since/until as Unix ms: 'now', a duration ago or ISO-8601; since must be before until."""
        now = self.clock()
        bounds = []
        for name, text, default in (("since", since, default_since), ("until", until, "now")):
            try:
                bounds.append(parse_instant_ms(text if text is not None else default, now))
            except TimeParseError as exc:
                raise QueryError(name, str(exc)) from None
        since_ms, until_ms = bounds
        if since_ms >= until_ms:
            raise QueryError("since", f"since ({format_ms(since_ms)}) must be before until ({format_ms(until_ms)})")
        return since_ms, until_ms

    @staticmethod
    def duration(where: str, text: str | None, default: str) -> int:
        try:
            return parse_duration_s(text if text is not None else default)
        except TimeParseError as exc:
            raise QueryError(where, str(exc)) from None

    @staticmethod
    def number(where: str, text: str | None, default: float | None = None, *, low: float | None = None,
               high: float | None = None) -> float | None:
        if text is None:
            return default
        try:
            value = float(text)
        except ValueError:
            raise QueryError(where, f"{where} must be a number, got {text!r}") from None
        if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
            raise QueryError(where, f"{where} must be a finite number within {low}..{high}, got {text!r}")
        return value

    @staticmethod
    def lot_id(text: str | None, where: str = "lot") -> str:
        if not text or len(text) > 64:
            raise QueryError(where, f"{where} must be a lot id of 1-64 characters")
        return text

    def _known_lot(self, lot_id: str) -> str:
        if lot_id not in self.config.known_lots() and not any(r["lot_id"] == lot_id for r in self.history.lots()):
            raise NotFound("lot", f"unknown lot {lot_id!r}; known: {', '.join(sorted(self.config.known_lots()))}",
                           "unknown_lot")
        return lot_id

    # ---- city view ----------------------------------------------------------------------

    def city(self) -> Report:
        """Every lot the cloud knows: where it is, its newest availability and price, and how fresh that is."""
        now = self.clock()
        latest = {row["lot_id"]: row for row in self.history.lots()}
        max_age_ms = self.config.mcpr.max_summary_age_s * 1000
        rows = []
        for lot_id in sorted(set(latest) | self.config.known_lots()):
            place = self.config.lots.get(lot_id)
            s = latest.get(lot_id)
            updated = s["window_start_ms"] + s["window_s"] * 1000 if s else None
            rows.append({
                "lot_id": lot_id, "name": place.name if place else lot_id,
                "lat": place.lat if place else None, "lon": place.lon if place else None,
                "x_m": place.x_m if place else None, "y_m": place.y_m if place else None,
                "capacity": s["capacity"] if s else None, "occupied": s["occupied"] if s else None,
                "free": s["free"] if s else None,
                "concentration": _rounded(s["concentration"]) if s else None,
                "price_per_hour": s["price_per_hour"] if s else None,
                "currency": place.currency if place else None,
                "updated_ms": updated, "updated": _iso(updated),
                "stale": updated is None or now - updated > max_age_ms,
                "fogs": " ".join(self.config.fogs_for_lot(lot_id)),
            })
        return Report("lots", ("lot_id", "name", "lat", "lon", "x_m", "y_m", "capacity", "occupied", "free",
                               "concentration", "price_per_hour", "currency", "updated", "updated_ms", "stale",
                               "fogs"),
                      rows, {"as_of_ms": now, "max_summary_age_s": self.config.mcpr.max_summary_age_s})

    # ---- occupancy, free spots, prices over time ----------------------------------------------

    def occupancy(self, lot: str, since: str | None = None, until: str | None = None, bucket: str | None = None,
                  zone: str | None = None) -> Report:
        """Mean occupied/free spots, concentration and price per bucket; arrivals/departures summed."""
        lot_id = self.lot_id(lot)
        since_ms, until_ms = self.window(since, until, "1d")
        bucket_s = self.duration("bucket", bucket, "1h")
        if (until_ms - since_ms) // (bucket_s * 1000) > MAX_BUCKETS:
            raise QueryError("bucket", f"window / bucket is more than {MAX_BUCKETS} buckets; use a larger bucket")
        rows = self.history.lot_summaries(lot_id, since_ms, until_ms, bucket_s, zone=zone or "")
        for row in rows:
            row["bucket_start"] = format_ms(row["bucket_start_ms"])
        return Report("buckets", ("bucket_start", "bucket_start_ms", "samples", "mean_occupied", "mean_free",
                                  "capacity", "mean_concentration", "mean_price_per_hour", "arrivals", "departures"),
                      rows, {"lot_id": lot_id, "zone": zone or "", "since_ms": since_ms, "until_ms": until_ms,
                             "bucket_s": bucket_s})

    def spot_history(self, lot: str, since: str | None = None, until: str | None = None,
                     limit: int = 10_000) -> Report:
        """A lot's spot events in the window, oldest first; ``truncated`` when more exist."""
        lot_id = self.lot_id(lot)
        since_ms, until_ms = self.window(since, until, "1h")
        if not 1 <= limit <= MAX_ROWS:
            raise QueryError("limit", f"limit must be a whole number from 1 to {MAX_ROWS}, got {limit}")
        rows = self.history.spot_history(lot_id, since_ms, until_ms, limit=limit + 1)
        truncated = len(rows) > limit
        rows = rows[:limit]
        for row in rows:
            row["at"] = format_ms(row["at_ms"])
        return Report("events", ("at", "at_ms", "spot_id", "state", "node_id", "fcnt", "rssi_dbm", "snr_db",
                                 "gateway_id", "prev_duration_s", "fog_id", "seq"),
                      rows, {"lot_id": lot_id, "since_ms": since_ms, "until_ms": until_ms, "count": len(rows),
                             "truncated": truncated})

    def stats(self, lot: str, since: str | None = None, until: str | None = None) -> Report:
        """§1 for a window: concentration index (now, mean, peak) and mean inter-arrival time.

        The inter-arrival time is computed from the spot events that turned a spot
        "occupied" in the window, with `fog.engine.lot_stats.mean_inter_arrival`
        (null, not 0, with fewer than two arrivals).
        """
        lot_id = self._known_lot(self.lot_id(lot))
        since_ms, until_ms = self.window(since, until, "15m")
        buckets = self.history.lot_summaries(lot_id, since_ms, until_ms, max(60, (until_ms - since_ms) // 1000))
        minutes = self.history.lot_summaries(lot_id, since_ms, until_ms, 60) if buckets else []
        events = self.history.spot_history(lot_id, since_ms, until_ms, limit=MAX_ROWS + 1)
        arrivals = [e["at_ms"] / 1000 for e in events[:MAX_ROWS] if e["state"] == "occupied"]
        latest = next((r for r in self.history.lots() if r["lot_id"] == lot_id), None)
        now_index = (lot_stats.concentration_index(latest["occupied"], latest["capacity"])
                     if latest and latest["capacity"] > 0 and 0 <= latest["occupied"] <= latest["capacity"] else None)
        samples = sum(b["samples"] for b in buckets)
        row = {
            "lot_id": lot_id, "since": format_ms(since_ms), "until": format_ms(until_ms),
            "concentration_now": _rounded(now_index),
            "concentration_mean": _rounded(sum(b["mean_concentration"] * b["samples"] for b in buckets) / samples)
            if samples else None,
            "concentration_peak": _rounded(max((m["mean_concentration"] for m in minutes), default=None)),
            "summary_minutes": samples, "arrivals_counted_by_fog": sum(b["arrivals"] for b in buckets),
            "spot_arrivals": len(arrivals),
            "mean_interarrival_s": _rounded(lot_stats.mean_inter_arrival(arrivals), 2),
            "events_truncated": len(events) > MAX_ROWS,
        }
        return Report("stats", tuple(row), [row], {"lot_id": lot_id, "since_ms": since_ms, "until_ms": until_ms})

    # ---- reservations, revenue, no-shows --------------------------------------------------------

    def _status(self, status: str | None) -> str | None:
        if status is not None and status not in RESERVATION_STATUSES:
            raise QueryError("status", f"status must be one of {', '.join(RESERVATION_STATUSES)}, got {status!r}")
        return status

    def reservations(self, lot: str | None = None, status: str | None = None, since: str | None = None,
                     until: str | None = None) -> Report:
        """The latest version of every reservation starting in the window (default: last 7 days)."""
        lot_id = self.lot_id(lot) if lot is not None else None
        since_ms, until_ms = self.window(since, until, "7d")
        rows = self.store.reservations(lot_id, status=self._status(status), since_ms=since_ms, until_ms=until_ms,
                                       limit=MAX_ROWS)
        for row in rows:
            row["start"], row["end"] = format_ms(row["start_ms"]), format_ms(row["end_ms"])
        return Report("reservations", ("lot_id", "reservation_id", "spot_id", "plan", "status", "source", "start",
                                       "end", "start_ms", "end_ms", "price_total", "late_charge", "updated_ms"),
                      rows, {"lot_id": lot_id, "status": status, "since_ms": since_ms, "until_ms": until_ms,
                             "count": len(rows)})

    def revenue(self, lot: str | None = None, since: str | None = None, until: str | None = None) -> Report:
        """Per plan: reservations by status, revenue realised (checked in or completed: price + late
        charges), revenue pending (admitted, not yet arrived), and the mean realised price."""
        report = self.reservations(lot, None, since, until)
        plans: dict[str, dict[str, Any]] = {}
        for r in report.rows:
            p = plans.setdefault(r["plan"] or "(none)", {"plan": r["plan"] or "(none)", "reservations": 0,
                                                         **{s: 0 for s in RESERVATION_STATUSES},
                                                         "revenue": 0.0, "pending": 0.0, "late_charges": 0.0})
            p["reservations"] += 1
            if r["status"] in p:
                p[r["status"]] += 1
            if r["status"] in ("checked_in", "completed"):
                p["revenue"] += (r["price_total"] or 0.0) + (r["late_charge"] or 0.0)
                p["late_charges"] += r["late_charge"] or 0.0
            elif r["status"] == "admitted":
                p["pending"] += r["price_total"] or 0.0
        rows = []
        for p in sorted(plans.values(), key=lambda p: p["plan"]):
            realised = p["checked_in"] + p["completed"]
            p["mean_price"] = round(p["revenue"] / realised, 2) if realised else None
            for key in ("revenue", "pending", "late_charges"):
                p[key] = round(p[key], 2)
            rows.append(p)
        meta = {k: report.meta[k] for k in ("lot_id", "since_ms", "until_ms")}
        meta["revenue_total"] = round(sum(p["revenue"] for p in rows), 2)
        place = self.config.lots.get(meta["lot_id"] or "")
        meta["currency"] = place.currency if place else None
        return Report("plans", ("plan", "reservations", *RESERVATION_STATUSES, "revenue", "pending", "late_charges",
                                "mean_price"), rows, meta)

    def no_shows(self, lot: str | None = None, since: str | None = None, until: str | None = None) -> Report:
        """No-shows the fogs recorded, and admitted bookings already past §5's waiting window that no fog has
        reported on yet (``overdue``: the fog is behind or offline; it remains the authority)."""
        report = self.reservations(lot, None, since, until)
        now_s = self.clock() / 1000
        rows = []
        for r in report.rows:
            if r["status"] == "no_show":
                rows.append({**r, "no_show": "recorded"})
            elif r["status"] == "admitted":
                booking = mcpr.Booking(r["reservation_id"], r["lot_id"], r["start_ms"] / 1000)
                if mcpr.booking_status(booking, now_s) is mcpr.BookingStatus.NO_SHOW:
                    rows.append({**r, "no_show": "overdue"})
        kinds = Counter(r["no_show"] for r in rows)
        meta = {k: report.meta[k] for k in ("lot_id", "since_ms", "until_ms")}
        meta.update(recorded=kinds["recorded"], overdue=kinds["overdue"],
                    waiting_window_s=mcpr.DEFAULT_WAITING_WINDOW_S)
        return Report("no_shows", ("lot_id", "reservation_id", "spot_id", "plan", "no_show", "status", "start",
                                   "start_ms", "price_total"), rows, meta)

    def alerts(self, lot: str | None = None, active: str | None = None, since: str | None = None) -> Report:
        """The latest version of each alert; ``active=true`` only those not cleared."""
        lot_id = self.lot_id(lot) if lot is not None else None
        if active not in (None, "true", "false"):
            raise QueryError("active", f"active must be true or false, got {active!r}")
        since_ms = self.window(since, None, "30d")[0] if since is not None else None
        rows = self.store.alerts(lot_id, active_only=active == "true", since_ms=since_ms, limit=MAX_ROWS)
        for row in rows:
            row["first_seen"], row["last_seen"] = format_ms(row["first_seen_ms"]), format_ms(row["last_seen_ms"])
            row["cleared"] = _iso(row["cleared_ms"]) if row["cleared_ms"] else None
        return Report("alerts", ("lot_id", "alert_id", "kind", "spot_id", "node_id", "first_seen", "last_seen",
                                 "cleared", "detail", "first_seen_ms", "last_seen_ms", "cleared_ms"),
                      rows, {"lot_id": lot_id, "active_only": active == "true", "count": len(rows)})

    # ---- node health --------------------------------------------------------------------------

    def nodes(self, lot: str | None = None) -> Report:
        """Every node's newest health report across the city, flagged silent / low battery."""
        lot_id = self.lot_id(lot) if lot is not None else None
        now = self.clock()
        settings = self.config.nodes
        rows = []
        for h in self.store.node_health(lot_id):
            age_s = max(0, (now - h["last_seen_ms"]) // 1000)
            rows.append({**h, "last_seen": format_ms(h["last_seen_ms"]), "age_s": age_s,
                         "silent": age_s > settings.silent_after_s,
                         "battery_low": 0 < h["battery_mv"] < settings.battery_low_mv, "tamper": bool(h["tamper"])})
        return Report("nodes", ("lot_id", "node_id", "spot_id", "battery_mv", "battery_low", "last_seen", "age_s",
                                "silent", "tamper", "temp_c", "uptime_s", "last_seen_ms"),
                      rows, {"lot_id": lot_id, "as_of_ms": now, "count": len(rows),
                             "silent": sum(r["silent"] for r in rows),
                             "battery_low": sum(r["battery_low"] for r in rows),
                             "silent_after_s": settings.silent_after_s, "battery_low_mv": settings.battery_low_mv})

    # ---- MCPR and bookings ----------------------------------------------------------------------

    def recommend(self, *, lat: str | None = None, lon: str | None = None, x_m: str | None = None,
                  y_m: str | None = None, w_distance: str | None = None, w_price: str | None = None,
                  w_free: str | None = None) -> Report:
        """§5 across the city's lots for a destination and the driver's weights (default equal).

        Offers use each lot's newest summary (free spots, price per hour); a lot
        without a position in [lots], without a fresh summary, or with coordinates
        of the other kind is left out and listed in ``excluded`` with the reason.
        """
        geo = (lat is not None, lon is not None)
        local = (x_m is not None, y_m is not None)
        if geo == (True, True) and local == (False, False):
            dest = Destination(lat=self.number("lat", lat, low=-90, high=90),
                               lon=self.number("lon", lon, low=-180, high=180))
        elif local == (True, True) and geo == (False, False):
            dest = Destination(x_m=self.number("x_m", x_m), y_m=self.number("y_m", y_m))
        else:
            raise QueryError("destination", "give the destination as lat and lon, or as x_m and y_m", "bad_destination")
        weights = mcpr.Weights(*(self.number(name, text, 1.0, low=0) or 0.0
                                 for name, text in (("w_distance", w_distance), ("w_price", w_price),
                                                    ("w_free", w_free))))
        try:
            weights.normalised()
        except ValueError as exc:
            raise QueryError("weights", str(exc), "bad_weights") from None
        offers, excluded, places = [], [], {}
        for lot in self.city().rows:
            place = self.config.lots.get(lot["lot_id"])
            distance = dest.distance_to(place) if place else None
            reason = ("no position in the cloud config" if place is None
                      else "position uses the other kind of coordinates" if distance is None
                      else "no summary yet" if lot["free"] is None
                      else "summary older than max_summary_age" if lot["stale"] else None)
            if reason:
                excluded.append({"lot_id": lot["lot_id"], "reason": reason})
                continue
            assert distance is not None
            offers.append(mcpr.LotOffer(lot["lot_id"], distance, float(lot["price_per_hour"] or 0.0),
                                        max(0, int(lot["free"]))))
            places[lot["lot_id"]] = lot
        excluded += [{"lot_id": o.lot_id, "reason": "no free spot"} for o in offers if o.free_spots < 1]
        ranked = mcpr.rank_lots(offers, weights)
        rows = [{"rank": i + 1, "lot_id": r.offer.lot_id, "name": places[r.offer.lot_id]["name"],
                 "utility": round(r.utility, 6), "distance_m": round(r.offer.distance_m, 1),
                 "price_per_hour": r.offer.price_per_hour, "free_spots": r.offer.free_spots,
                 "currency": places[r.offer.lot_id]["currency"], "distance_score": round(r.distance_score, 6),
                 "price_score": round(r.price_score, 6), "free_spots_score": round(r.free_spots_score, 6)}
                for i, r in enumerate(ranked)]
        w = weights.normalised()
        return Report("ranking", ("rank", "lot_id", "name", "utility", "distance_m", "price_per_hour", "free_spots",
                                  "currency", "distance_score", "price_score", "free_spots_score"), rows,
                      {"destination": {k: v for k, v in vars(dest).items() if v is not None},
                       "weights": {"distance": float(w[0]), "price": float(w[1]), "free_spots": float(w[2])},
                       "excluded": sorted(excluded, key=lambda e: e["lot_id"])})

    def book(self, body: dict[str, Any], created_by: str) -> dict[str, Any]:
        """Make an online booking and forward it to the lot's fog (CloudUpdate.booking).

        The fog is the authority: it admits or refuses (§3 admission), and says so
        with a Reservation record carrying this booking's id; until then the
        booking's status is "forwarded".
        """
        if not isinstance(body, dict):
            raise QueryError("body", "the booking must be a JSON object")
        known = {"lot_id", "plan", "start", "end", "spot_id", "plate", "card_uid_hex"}
        for key in body:
            if key not in known:
                raise QueryError(key, f"unknown booking field {key!r}; known: {', '.join(sorted(known))}",
                                 "unknown_field")
        lot_id = self.lot_id(body.get("lot_id") if isinstance(body.get("lot_id"), str) else None, "lot_id")
        fogs = self.config.fogs_for_lot(lot_id)
        if not fogs:
            raise NotFound("lot_id", f"no registered fog serves lot {lot_id!r}; a booking needs the lot's fog",
                           "unknown_lot")
        plan = body.get("plan", "occupancy")
        if plan not in PLANS:
            raise QueryError("plan", f"plan must be one of {', '.join(PLANS)}, got {plan!r}")
        now = self.clock()
        times = []
        for name in ("start", "end"):
            text = body.get(name)
            if not isinstance(text, str):
                raise QueryError(name, f"{name} must be an ISO-8601 time such as 2024-05-01T08:00:00Z")
            try:
                times.append(parse_instant_ms(text, now))
            except TimeParseError as exc:
                raise QueryError(name, str(exc)) from None
        start_ms, end_ms = times
        if start_ms < now - 60_000:
            raise QueryError("start", f"start ({format_ms(start_ms)}) is in the past")
        if not start_ms < end_ms <= start_ms + MAX_BOOKING_S * 1000:
            raise QueryError("end", "end must be after start and at most 366 days later")
        spot = body.get("spot_id", "")
        plate = body.get("plate", "")
        card = body.get("card_uid_hex", "")
        if not isinstance(spot, str) or (spot and not _SPOT.fullmatch(spot)):
            raise QueryError("spot_id", "spot_id must be 1-32 of A-Z a-z 0-9 . _ - (or absent: the fog chooses)")
        if not isinstance(plate, str) or (plate and not _PLATE.fullmatch(plate)):
            raise QueryError("plate", "plate must be 1-16 of A-Z 0-9, space and - (upper case)")
        if not isinstance(card, str) or (card and not _CARD.fullmatch(card)):
            raise QueryError("card_uid_hex", "card_uid_hex must be 1-10 bytes as lower-case hex")
        booking = parking_pb2.Booking(lot_id=lot_id, booking_id=f"cb-{uuid.uuid4().hex[:20]}", plan=plan,
                                      start_ms=start_ms, end_ms=end_ms, spot_id=spot, plate=plate,
                                      card_uid_hex=card)
        version = self.store.create_booking(booking, fogs[0], created_by)
        return {"booking_id": booking.booking_id, "lot_id": lot_id, "fog_id": fogs[0], "plan": plan,
                "start": format_ms(start_ms), "end": format_ms(end_ms), "start_ms": start_ms, "end_ms": end_ms,
                "spot_id": spot, "status": "forwarded", "update_version": version}

    def bookings(self, lot: str | None = None) -> Report:
        """Cloud bookings, newest first, with the fog's verdict (forwarded → admitted / refused / ...)."""
        lot_id = self.lot_id(lot) if lot is not None else None
        rows = self.store.bookings(lot_id, limit=MAX_ROWS)
        for row in rows:
            row["start"], row["end"] = format_ms(row["start_ms"]), format_ms(row["end_ms"])
            row["created"] = format_ms(row["created_ms"])
        counts = Counter(r["status"] for r in rows)
        return Report("bookings", ("booking_id", "lot_id", "status", "plan", "start", "end", "spot_id",
                                   "requested_spot", "price_total", "created", "created_by", "fog_id",
                                   "update_version"), rows, {"lot_id": lot_id, "count": len(rows),
                                                             "by_status": dict(sorted(counts.items()))})

    def spots(self, lot: str) -> Report:
        """Each spot's newest state in a lot."""
        return spots_report(self.store, self.lot_id(lot))

    def ngsi_ld(self, entity_type: str | None = None, lot: str | None = None) -> dict[str, Any]:
        """Lots and spots as NGSI-LD entities (see cloud.ngsi), with the lots that could not be exported."""
        if entity_type is not None and entity_type not in ngsi.TYPES:
            raise QueryError("type", f"type must be one of {', '.join(ngsi.TYPES)}, got {entity_type!r}")
        lot_id = self.lot_id(lot) if lot is not None else None
        found, skipped = ngsi.entities(self.config, self.city().rows, self.store.spot_states(lot_id),
                                       entity_type=entity_type, lot_id=lot_id)
        return {"entities": found, "skipped": skipped}

    # ---- Markov models ----------------------------------------------------------------------

    def _lots_to_model(self, lot: str | None) -> list[str]:
        if lot is not None:
            return [self._known_lot(self.lot_id(lot))]
        return sorted({row["lot_id"] for row in self.history.lots()} | self.config.known_lots())

    def train(self, lot: str | None = None, push: bool = False) -> Report:
        """Train (and optionally push) the models of one lot or of every lot; a lot without history is
        reported with its reason instead of failing the others."""
        now = self.clock()
        rows = []
        for lot_id in self._lots_to_model(lot):
            try:
                _, report = train_lot(self.store, self.history, self.config, lot_id, now)
                if push:
                    report["pushed"] = push_models(self.store, self.config, lot_id)["fogs"]
                rows.append(report)
            except ModelError as exc:
                if lot is not None:
                    raise QueryError("lot", str(exc), "cannot_train") from None
                rows.append({"lot_id": lot_id, "error": str(exc)})
        return _model_report(rows, now)

    def model_report(self, lot: str | None = None) -> Report:
        """The newest quality report per lot (Brier score against persistence on held-out days)."""
        lot_id = self.lot_id(lot) if lot is not None else None
        return _model_report(self.store.model_reports(lot_id), self.clock())

    def push_config(self, lot: str, kind: str, path: Path) -> dict[str, Any]:
        """Queue a lot file or a tariff for the lot's fog(s) (CloudUpdate.lot_config_toml / tariff_toml).

        Checked here as the fog will check it (fog.config's validation), so a wrong file is refused
        before it is queued; the fog checks again against what it holds (registered nodes, live
        reservations), applies it live or refuses it with a ``config_refused`` alert.
        """
        from fog import cloud_config
        from fog.config import ConfigError, load_lot

        lot_id = self._known_lot(self.lot_id(lot))
        fogs = self.config.fogs_for_lot(lot_id)
        if not fogs:
            raise NotFound("lot", f"no registered fog serves lot {lot_id!r}; nothing to push to", "unknown_lot")
        try:
            if kind == "lot":
                cloud_config.require_lot_id(load_lot(path), lot_id, path)
            else:
                from fog.tariffs import parse_tariff

                raw = cloud_config.tariff_table(path)
                if "auction" not in raw:  # an auction names zones of spots only the fog knows: it checks those
                    parse_tariff(path, raw)
        except ConfigError as exc:
            raise QueryError(f"{kind}_file", str(exc), "bad_config") from None
        text = path.read_text(encoding="utf-8")
        update = (parking_pb2.CloudUpdate(lot_config_toml=text) if kind == "lot"
                  else parking_pb2.CloudUpdate(tariff_toml=text))
        versions = {fog: self.store.enqueue_update(fog, update) for fog in fogs}
        return {"lot_id": lot_id, "kind": kind, "file": str(path), "fogs": versions}

    def push(self, lot: str) -> dict[str, Any]:
        """Queue the lot's stored models for its fog(s)."""
        try:
            return push_models(self.store, self.config, self._known_lot(self.lot_id(lot)))
        except ModelError as exc:
            raise QueryError("lot", str(exc), "cannot_push") from None


def _model_report(rows: Iterable[dict[str, Any]], now: int) -> Report:
    out = []
    for row in rows:
        shown = dict(row)
        if "trained_ms" in shown:
            shown["trained"] = format_ms(shown["trained_ms"])
        for key in ("brier", "brier_persistence", "skill"):
            shown[key] = _rounded(shown.get(key))
        out.append(shown)
    return Report("models", ("lot_id", "trained", "calendar", "samples", "held_out_from", "held_out_days",
                             "horizon_s", "evaluated_forecasts", "brier", "brier_persistence", "skill", "helps",
                             "season_keys", "error"), out, {"as_of_ms": now})


def spots_report(store: CloudStore, lot_id: str) -> Report:
    """Each spot's newest state as the cloud knows it (from spot events)."""
    rows = store.spot_states(lot_id)
    for row in rows:
        row["at"] = format_ms(row["at_ms"])
    return Report("spots", ("spot_id", "state", "at", "at_ms", "node_id"), rows,
                  {"lot_id": lot_id, "count": len(rows),
                   "occupied": sum(1 for r in rows if r["state"] == "occupied")})
