"""Reservations, bookings and subscriptions as the fog keeps them (ALGORITHMS.md §3, §4, §5).

Three kinds share one record:

* ``reservation`` — made at least the lead time ahead (§3 admission); a spot
  is held for it from ``start − hold_before_s``;
* ``booking`` — immediate: a spot is chosen and held when it is made;
* ``subscription`` — a season in a zone won at auction (§4.2); the zone's
  subscriber spots are held for subscribers all season, never routed.

Life: ``admitted`` → ``checked_in`` → ``completed``; or ``cancelled``
(by the driver before check-in) or ``no_show`` (not checked in within the
waiting window, §5 — `fog.engine.mcpr.booking_status` decides). Prices are
locked into the record when it is made. Every change is stored (the
``reservations`` table) and synced (a ``Reservation`` outbox record).

`ReservationBook` keeps only the live records (admitted, checked in) in
memory, with the indexes the cycle needs, so each operation costs
O(log R) or O(1), never a scan of the lot or of history.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any

from fog.engine.mcpr import Booking
from fog.tariffs import money
from proto import parking_pb2 as pb

__all__ = ["FINAL", "KINDS", "LIVE", "Reservation", "ReservationBook", "reservation_record"]

KINDS = ("reservation", "booking", "subscription")
LIVE = ("admitted", "checked_in")
FINAL = ("completed", "cancelled", "no_show")


@dataclass
class Reservation:
    """One reservation, booking or subscription; field names are the ``reservations`` columns."""

    reservation_id: str
    kind: str
    plan: str
    status: str
    start_ms: int
    end_ms: int
    hours: int
    price_per_hour: float  # locked at booking
    price_total: float  # locked at booking (the booked hours)
    created_ms: int
    updated_ms: int
    spot_id: str | None = None
    zone: str | None = None
    client: str = ""
    card_uid: str = ""  # lower-case hex
    plate: str = ""
    entrance: str | None = None
    late_charge: float = 0.0
    extension_hours: int = 0
    extension_charge: float = 0.0
    final_charge: float | None = None
    occupancy_at_booking: float | None = None
    probability: float | None = None
    checked_in_ms: int | None = None
    departed_ms: int | None = None
    detail: str = ""

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Reservation:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})

    def row(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def owner(self) -> str:
        """The hold owner the spot selector knows this reservation by."""
        return f"res:{self.reservation_id}"

    @property
    def needs_credential(self) -> bool:
        """With a card or a plate, occupancy alone is not a check-in (§8 watches the gap)."""
        return bool(self.card_uid or self.plate)

    @property
    def charged(self) -> float:
        """What the driver owes so far (the final charge once departed)."""
        if self.final_charge is not None:
            return self.final_charge
        return self.price_total + self.late_charge + self.extension_charge

    def release_view(self, lot_id: str) -> Booking:
        """As `fog.engine.mcpr` sees it, for the no-show rule."""
        checked = self.checked_in_ms / 1000 if self.checked_in_ms is not None else None
        return Booking(self.reservation_id, lot_id, self.start_ms / 1000, checked)

    def public(self) -> dict[str, Any]:
        """The API's JSON shape: money rounded for people."""
        out = self.row()
        for key in ("price_total", "late_charge", "extension_charge"):
            out[key] = money(out[key])
        out["price_per_hour"] = money(self.price_per_hour)
        if self.final_charge is not None:
            out["final_charge"] = money(self.final_charge)
        out["charged"] = money(self.charged)
        out["id"] = out.pop("reservation_id")
        return out


def reservation_record(lot_id: str, r: Reservation) -> tuple[str, bytes]:
    """The outbox record of a reservation's current state."""
    msg = pb.Reservation(
        lot_id=lot_id, reservation_id=r.reservation_id, spot_id=r.spot_id or r.zone or "",
        plan="subscription" if r.kind == "subscription" else r.plan, status=r.status, start_ms=r.start_ms,
        end_ms=r.end_ms, price_total=money(r.charged), late_charge=money(r.late_charge), updated_ms=r.updated_ms,
        source="fog",
    )
    return "reservation", msg.SerializeToString()


class ReservationBook:
    """The live reservations with their indexes and deadlines.

    Indexes: by held spot, by card UID, subscriptions by zone, and two sorted
    lists (starts, ends) of the live reservations and bookings, so the count
    of those overlapping a time — §3's "reservations already admitted that
    overlap t₁" — is two binary searches. Deadlines (hold, no-show, end of
    season) sit in a heap with lazy invalidation: the cycle pops what is due
    and checks it still applies.
    """

    def __init__(self, rows: Iterable[dict[str, Any]] = ()) -> None:
        self.live: dict[str, Reservation] = {}
        self.by_spot: dict[str, str] = {}
        self.by_card: dict[str, set[str]] = {}
        self.by_zone: dict[str, set[str]] = {}
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._deadlines: list[tuple[int, int, str, str]] = []
        self._seq = itertools.count()
        for row in rows:
            self.add(Reservation.from_row(row))

    def __len__(self) -> int:
        return len(self.live)

    def get(self, reservation_id: str) -> Reservation | None:
        return self.live.get(reservation_id)

    def add(self, r: Reservation) -> None:
        self.live[r.reservation_id] = r
        if r.spot_id and r.kind != "subscription":
            self.by_spot[r.spot_id] = r.reservation_id
        if r.card_uid:
            self.by_card.setdefault(r.card_uid, set()).add(r.reservation_id)
        if r.kind == "subscription" and r.zone:
            self.by_zone.setdefault(r.zone, set()).add(r.reservation_id)
        else:
            bisect.insort(self._starts, r.start_ms)
            bisect.insort(self._ends, r.end_ms)

    def finish(self, r: Reservation) -> None:
        """Drop a reservation that reached a final status from every index."""
        self.live.pop(r.reservation_id, None)
        if r.spot_id and self.by_spot.get(r.spot_id) == r.reservation_id:
            del self.by_spot[r.spot_id]
        if r.card_uid:
            ids = self.by_card.get(r.card_uid, set())
            ids.discard(r.reservation_id)
            if not ids:
                self.by_card.pop(r.card_uid, None)
        if r.kind == "subscription" and r.zone:
            self.by_zone.get(r.zone, set()).discard(r.reservation_id)
        else:
            _remove_sorted(self._starts, r.start_ms)
            _remove_sorted(self._ends, r.end_ms)

    def move(self, r: Reservation, spot: str | None) -> None:
        """Point a reservation at another held spot (or none)."""
        if r.spot_id and self.by_spot.get(r.spot_id) == r.reservation_id:
            del self.by_spot[r.spot_id]
        r.spot_id = spot
        if spot:
            self.by_spot[spot] = r.reservation_id

    def set_end(self, r: Reservation, end_ms: int) -> None:
        if r.kind != "subscription":
            _remove_sorted(self._ends, r.end_ms)
            bisect.insort(self._ends, end_ms)
        r.end_ms = end_ms

    def overlapping(self, t_ms: int) -> int:
        """Live reservations and bookings whose [start, end) contains ``t_ms``."""
        return bisect.bisect_right(self._starts, t_ms) - bisect.bisect_right(self._ends, t_ms)

    def at_spot(self, spot: str) -> Reservation | None:
        rid = self.by_spot.get(spot)
        return self.live.get(rid) if rid else None

    def for_card(self, uid: str) -> list[Reservation]:
        return [self.live[i] for i in sorted(self.by_card.get(uid, ())) if i in self.live]

    def subscribers(self, zone: str) -> list[Reservation]:
        return [self.live[i] for i in sorted(self.by_zone.get(zone, ())) if i in self.live]

    def schedule(self, at_ms: int, reservation_id: str, what: str) -> None:
        heapq.heappush(self._deadlines, (at_ms, next(self._seq), reservation_id, what))

    def due(self, now_ms: int, limit: int) -> list[tuple[str, str]]:
        """Deadlines reached by ``now_ms`` (at most ``limit``; the rest wait for the next cycle)."""
        out: list[tuple[str, str]] = []
        heap = self._deadlines
        while heap and heap[0][0] <= now_ms and len(out) < limit:
            _, _, rid, what = heapq.heappop(heap)
            if rid in self.live:
                out.append((rid, what))
        return out


def _remove_sorted(values: list[int], value: int) -> None:
    i = bisect.bisect_left(values, value)
    if i < len(values) and values[i] == value:
        del values[i]
