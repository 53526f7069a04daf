"""Multi-criteria parking recommendation, MCPR (ALGORITHMS.md §5).

Alternatives are the lots with at least one unreserved free spot. Each is
scored on three criteria, min–max normalised over the alternatives:

* C1 distance from the lot to the destination — a cost: ``(max − x)/(max − min)``;
* C2 price per hour — a cost;
* C3 free (unreserved) spots — a benefit: ``(x − min)/(max − min)``;

every score is 1 when all alternatives share the value (max = min). The
utility is ``U = Σ W_k·Z_k`` with the driver's weights normalised to sum 1
(default equal). Lots are ranked by U descending; ties go to the shorter
distance, then to the lower lot id.

Decision: utilities are computed in exact rational arithmetic on the values
as written (``Fraction(repr(x))``), so lots that tie mathematically tie in
the ranking too (``0.1 + 0.2`` is not allowed to beat ``0.3``); the float
shown to a person is the rounded exact value.

No-show release ("improved MCPR"): a booking whose vehicle has not checked
in within the waiting window (default 3 h from the booking's start) is
cancelled and its spot released at once; between the late-arrival grace
(§4.3, default 1 h) and the window the spot is still held and the late
charge applies. `booking_status` says which, `no_shows` lists the bookings
to cancel now.
Decision: the window is half-open: checking in at start + window exactly is
too late. Late means strictly more than the grace after the start, matching
`fog.engine.pricing.OccupancyTariff.late_arrival_charge`.

Standard library only: the cloud tier imports this module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction

__all__ = [
    "DEFAULT_GRACE_S",
    "DEFAULT_WAITING_WINDOW_S",
    "Booking",
    "BookingStatus",
    "LotOffer",
    "RankedLot",
    "Weights",
    "alternatives",
    "booking_status",
    "no_shows",
    "rank_lots",
    "recommend",
]

DEFAULT_WAITING_WINDOW_S = 3 * 3600.0
"""No-show window, measured from the booking's start (§5)."""
DEFAULT_GRACE_S = 3600.0
"""Late-arrival grace of §4.3."""


def _exact(value: float, name: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return Fraction(repr(float(value))) if isinstance(value, float) else Fraction(value)


@dataclass(frozen=True, slots=True)
class LotOffer:
    """What a lot offers a driver now: its distance to the destination, price and unreserved free spots."""

    lot_id: str
    distance_m: float
    price_per_hour: float
    free_spots: int

    def __post_init__(self) -> None:
        for name in ("distance_m", "price_per_hour"):
            value = getattr(self, name)
            if _exact(value, f"{self.lot_id}: {name}") < 0:
                raise ValueError(f"lot {self.lot_id!r}: {name} must be >= 0, got {value!r}")
        spots = self.free_spots
        if isinstance(spots, bool) or not isinstance(spots, int) or spots < 0:
            raise ValueError(f"lot {self.lot_id!r}: free_spots must be an integer >= 0, got {spots!r}")


@dataclass(frozen=True, slots=True)
class Weights:
    """The driver's weights for distance, price and free spots; any non-negative scale."""

    distance: float = 1.0
    price: float = 1.0
    free_spots: float = 1.0

    def normalised(self) -> tuple[Fraction, Fraction, Fraction]:
        """The weights scaled to sum 1; refused when negative or all zero."""
        raw = tuple(
            _exact(value, name) for value, name in
            ((self.distance, "distance weight"), (self.price, "price weight"), (self.free_spots, "free-spots weight"))
        )
        if any(w < 0 for w in raw):
            raise ValueError(f"weights must be >= 0, got {self}")
        total = sum(raw, Fraction(0))
        if total == 0:
            raise ValueError("at least one weight must be positive")
        d, p, f = (w / total for w in raw)
        return d, p, f


@dataclass(frozen=True, slots=True)
class RankedLot:
    """A lot with its normalised scores and utility, as ranked."""

    offer: LotOffer
    utility: float
    distance_score: float
    price_score: float
    free_spots_score: float


def alternatives(offers: Iterable[LotOffer]) -> list[LotOffer]:
    """Lots a driver may be sent to: at least one unreserved free spot."""
    return [o for o in offers if o.free_spots >= 1]


def _scores(values: Sequence[Fraction], benefit: bool) -> list[Fraction]:
    lo, hi = min(values), max(values)
    if hi == lo:
        return [Fraction(1)] * len(values)
    span = hi - lo
    return [((v - lo) if benefit else (hi - v)) / span for v in values]


def rank_lots(offers: Iterable[LotOffer], weights: Weights | None = None) -> list[RankedLot]:
    """Alternatives ranked by utility, best first (see the module docstring)."""
    candidates = alternatives(offers)
    ids = [o.lot_id for o in candidates]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate lot ids among the offers: {sorted(i for i in set(ids) if ids.count(i) > 1)}")
    if not candidates:
        return []
    w_d, w_p, w_f = (weights or Weights()).normalised()
    distance = [_exact(o.distance_m, "distance_m") for o in candidates]
    z_d = _scores(distance, benefit=False)
    z_p = _scores([_exact(o.price_per_hour, "price_per_hour") for o in candidates], benefit=False)
    z_f = _scores([Fraction(o.free_spots) for o in candidates], benefit=True)
    scored = [
        (w_d * z_d[i] + w_p * z_p[i] + w_f * z_f[i], distance[i], o.lot_id, i) for i, o in enumerate(candidates)
    ]
    scored.sort(key=lambda item: (-item[0], item[1], item[2]))
    return [
        RankedLot(candidates[i], float(u), float(z_d[i]), float(z_p[i]), float(z_f[i]))
        for u, _, _, i in scored
    ]


def recommend(offers: Iterable[LotOffer], weights: Weights | None = None) -> RankedLot | None:
    """The best-ranked alternative, or None when no lot has an unreserved free spot."""
    ranked = rank_lots(offers, weights)
    return ranked[0] if ranked else None


# ---------------------------------------------------------------- no-show release
class BookingStatus(StrEnum):
    """Where a booking stands at a given moment."""

    CHECKED_IN = "checked_in"
    PENDING = "pending"  # not checked in, within the grace
    LATE = "late"  # past the grace, still held; the late charge applies on arrival
    NO_SHOW = "no_show"  # past the waiting window: cancel and release the spot


@dataclass(frozen=True, slots=True)
class Booking:
    """A reservation as the release rule sees it."""

    booking_id: str
    lot_id: str
    start_s: float
    checked_in_s: float | None = None


def booking_status(
    booking: Booking,
    now_s: float,
    *,
    grace_s: float = DEFAULT_GRACE_S,
    window_s: float = DEFAULT_WAITING_WINDOW_S,
) -> BookingStatus:
    """The booking's status at ``now_s`` (a check-in after ``now_s`` has not happened yet)."""
    if not 0 <= grace_s <= window_s:
        raise ValueError(f"need 0 <= grace <= window, got grace {grace_s!r} and window {window_s!r}")
    checked_in = booking.checked_in_s
    if checked_in is not None and checked_in <= now_s and checked_in < booking.start_s + window_s:
        return BookingStatus.CHECKED_IN
    waited = now_s - booking.start_s
    if waited >= window_s:
        return BookingStatus.NO_SHOW
    if waited > grace_s:
        return BookingStatus.LATE
    return BookingStatus.PENDING


def no_shows(
    bookings: Iterable[Booking],
    now_s: float,
    *,
    grace_s: float = DEFAULT_GRACE_S,
    window_s: float = DEFAULT_WAITING_WINDOW_S,
) -> list[Booking]:
    """Bookings to cancel at ``now_s`` (their spots are released at once), in booking-id order."""
    return sorted(
        (b for b in bookings if booking_status(b, now_s, grace_s=grace_s, window_s=window_s) is BookingStatus.NO_SHOW),
        key=lambda b: b.booking_id,
    )
