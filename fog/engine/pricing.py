"""Tariffs and the subscription auction of ALGORITHMS.md §4.

Money is float inside the formulas; `round_money` turns an amount into the
2-decimal `Decimal` that is shown to a person or stored as a charge.
Tariffs validate at construction so a bad tariff is refused at load time,
with the offending field named.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

__all__ = [
    "DEFAULT_GRACE_S",
    "DEFAULT_OCCUPANCY_K",
    "AuctionResult",
    "Bid",
    "BidError",
    "DemandResponsiveRule",
    "FixedTariff",
    "HybridCharge",
    "HybridTariff",
    "OccupancyTariff",
    "TariffError",
    "billed_hours",
    "round_money",
    "run_auction",
    "validate_bid",
]

DEFAULT_OCCUPANCY_K = 0.5
"""Owner's constant ``k`` of the occupancy-priced tariff (§4.3)."""
DEFAULT_GRACE_S = 3600.0
"""Late-arrival grace of §4.3 (1 h)."""


class TariffError(ValueError):
    """A tariff that must not be loaded; the message names the field."""


class BidError(ValueError):
    """A refused bid; carries the client and the amount."""

    def __init__(self, client_id: str, amount: float, reason: str) -> None:
        super().__init__(f"bid of {amount!r} by client {client_id!r} refused: {reason}")
        self.client_id = client_id
        self.amount = amount
        self.reason = reason


def round_money(amount: float, places: int = 2) -> Decimal:
    """Round for display or storage: half-up on the amount's shortest decimal form.

    Decision: the float is read through ``repr`` (``Decimal(str(x))``), so
    2.675 rounds to 2.68 as a person expects, not to 2.67 as its binary
    value (2.67499…) would.
    """
    if not math.isfinite(amount):
        raise ValueError(f"cannot round a non-finite amount {amount!r}")
    return Decimal(str(amount)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def billed_hours(hours: float) -> int:
    """Every started hour counts; a zero-length stay bills nothing.

    Decision: no tolerance: 2.0 h bills 2, 2.0001 h bills 3.
    """
    if not hours >= 0 or not math.isfinite(hours):
        raise ValueError(f"hours must be a finite number >= 0, got {hours!r}")
    return math.ceil(hours)


def _non_negative(value: float, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise TariffError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _decimal_fraction(value: float) -> Fraction:
    """The exact value the tariff author wrote (0.05 is 1/20, not its binary neighbour)."""
    return Fraction(repr(float(value)))


# ---------------------------------------------------------------- 4.1 hybrid short plan
@dataclass(frozen=True, slots=True)
class HybridCharge:
    """Breakdown of ``P_T = P_F + P_s·(h − 1) − X·d·P_s·(h − 1)``."""

    billed_hours: int
    first_hour: float
    later_hours: float
    ranges: int
    discount: float
    total: float


@dataclass(frozen=True, slots=True)
class HybridTariff:
    """Short-term hourly tariff with range discounts (§4.1).

    ``first_hour_price`` P_F, ``later_hour_price`` P_s, ``discount_per_range``
    d, ``hours_per_range`` r, ``max_ranges`` N.

    Refused at construction (`TariffError`): negative prices or discount,
    r ≤ 0, N not a non-negative integer, ``N·d ≥ 1``, and
    Decision: any tariff under which a longer stay would cost less than a
    shorter one. Because X multiplies the discount over *all* later hours,
    the total drops when a new range starts unless ``d`` is small enough
    (e.g. d = 0.05, r = 10, N = 3 drops from hour 29 to hour 30); a driver
    would stay longer to pay less. The check is exact (rational arithmetic)
    at the hour each range starts; every other hour adds ``P_s·(1 − X·d) > 0``.
    """

    first_hour_price: float
    later_hour_price: float
    discount_per_range: float
    hours_per_range: float
    max_ranges: int

    def __post_init__(self) -> None:
        _non_negative(self.first_hour_price, "first_hour_price")
        _non_negative(self.later_hour_price, "later_hour_price")
        _non_negative(self.discount_per_range, "discount_per_range")
        r = self.hours_per_range
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r) or r <= 0:
            raise TariffError(f"hours_per_range must be a positive number, got {r!r}")
        n = self.max_ranges
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise TariffError(f"max_ranges must be an integer >= 0, got {n!r}")
        if n * self.discount_per_range >= 1:
            raise TariffError(
                f"max_ranges × discount_per_range = {n} × {self.discount_per_range} >= 1 "
                "would make later hours free or negative"
            )
        self._check_monotone()

    def _exact_total(self, hours: int) -> Fraction:
        if hours == 0:
            return Fraction(0)
        p_f, p_s = _decimal_fraction(self.first_hour_price), _decimal_fraction(self.later_hour_price)
        d, r = _decimal_fraction(self.discount_per_range), _decimal_fraction(self.hours_per_range)
        ranges = min(math.floor(Fraction(hours) / r), self.max_ranges)
        later = p_s * (hours - 1)
        return p_f + later - ranges * d * later

    def _check_monotone(self) -> None:
        # Between range starts each hour adds P_s·(1 − X·d) > 0, so only the
        # hour at which each range starts can lower the total: O(N) checks.
        if self.discount_per_range == 0 or self.later_hour_price == 0:
            return
        for ranges in range(1, self.max_ranges + 1):
            hours = max(2, math.ceil(ranges * _decimal_fraction(self.hours_per_range)))
            before, after = self._exact_total(hours - 1), self._exact_total(hours)
            if after < before:
                raise TariffError(
                    f"discount_per_range {self.discount_per_range} is too large for hours_per_range "
                    f"{self.hours_per_range} and max_ranges {self.max_ranges}: {hours} h would cost "
                    f"{float(after):.2f}, less than {hours - 1} h at {float(before):.2f}"
                )

    def charge(self, hours: float) -> HybridCharge:
        """Price of a stay of ``hours`` (every started hour counts)."""
        h = billed_hours(hours)
        if h == 0:
            return HybridCharge(0, 0.0, 0.0, 0, 0.0, 0.0)
        # Exact floor: 3 / 0.3 is 10.000000000000002 in floats, and X must agree with validation.
        ranges = min(math.floor(h / _decimal_fraction(self.hours_per_range)), self.max_ranges)
        later = self.later_hour_price * (h - 1)
        discount = ranges * self.discount_per_range * later
        first = self.first_hour_price
        return HybridCharge(h, first, later, ranges, discount, first + later - discount)


# ---------------------------------------------------------------- 4.2 auction
@dataclass(frozen=True, slots=True)
class Bid:
    """One bid for a season subscription."""

    client_id: str
    amount: float
    timestamp: float


@dataclass(frozen=True, slots=True)
class AuctionResult:
    """Outcome: the seasonal rate, who won, revenue, and which bids were refused."""

    rate: float | None
    winners: tuple[Bid, ...]
    revenue: float
    refused: tuple[BidError, ...] = field(default=())


def validate_bid(bid: Bid, floor: float, cap: float) -> None:
    """Refuse a bid outside ``[floor, cap]`` (both inclusive) with `BidError`."""
    amount = bid.amount
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount):
        raise BidError(bid.client_id, amount, "amount must be a finite number")
    if amount < floor:
        raise BidError(bid.client_id, amount, f"below the floor of {floor}")
    if amount > cap:
        raise BidError(bid.client_id, amount, f"above the cap of {cap}")


def run_auction(bids: Iterable[Bid], k: int, floor: float, cap: float) -> AuctionResult:
    """Seasonal auction of ``k`` spots (§4.2).

    Each client's latest valid bid counts (latest by timestamp, then by
    position in ``bids``). The rate is the k-th highest counted amount, or
    the lowest when fewer than ``k`` clients bid; winners are the top k by
    amount descending, then earlier timestamp; revenue is rate × winners.
    Decision: refused bids never enter the book, so a client's earlier
    valid bid still stands after a refused one; the refusals are returned in
    ``refused`` (use `validate_bid` to refuse them at submission).
    Decision: a tie on amount and timestamp goes to the lower client id.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if not 0 <= floor <= cap:
        raise ValueError(f"need 0 <= floor <= cap, got floor {floor!r} and cap {cap!r}")
    latest: dict[str, tuple[float, int, Bid]] = {}
    refused: list[BidError] = []
    for position, bid in enumerate(bids):
        try:
            validate_bid(bid, floor, cap)
        except BidError as error:
            refused.append(error)
            continue
        order = (bid.timestamp, position)
        current = latest.get(bid.client_id)
        if current is None or order >= current[:2]:
            latest[bid.client_id] = (bid.timestamp, position, bid)
    ranked = sorted(
        (entry[2] for entry in latest.values()), key=lambda b: (-b.amount, b.timestamp, b.client_id)
    )
    winners = tuple(ranked[:k])
    if not winners:
        return AuctionResult(None, (), 0.0, tuple(refused))
    rate = winners[-1].amount
    return AuctionResult(rate, winners, rate * len(winners), tuple(refused))


# ---------------------------------------------------------------- 4.3 occupancy-priced
@dataclass(frozen=True, slots=True)
class OccupancyTariff:
    """``P_t = OC·(1 + k·O_t)``, locked at booking, plus late and extension rules (§4.3)."""

    operating_cost_per_hour: float
    k: float = DEFAULT_OCCUPANCY_K
    grace_s: float = DEFAULT_GRACE_S

    def __post_init__(self) -> None:
        _non_negative(self.operating_cost_per_hour, "operating_cost_per_hour")
        _non_negative(self.k, "k")
        _non_negative(self.grace_s, "grace_s")

    @staticmethod
    def occupancy(occupied: int, capacity: int) -> float:
        """``O = occupied / capacity``, refusing impossible counts."""
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity!r}")
        if not 0 <= occupied <= capacity:
            raise ValueError(f"occupied must be within 0..{capacity}, got {occupied!r}")
        return occupied / capacity

    def price_per_hour(self, occupied: int, capacity: int) -> float:
        """``P_t`` at the current occupancy (without LC)."""
        return self.operating_cost_per_hour * (1.0 + self.k * self.occupancy(occupied, capacity))

    def booking_total(self, hours: int, price_per_hour: float) -> float:
        """``TP = n·P_t`` with the price locked at booking.

        Decision: bookings are whole hours (n ≥ 1).
        """
        if isinstance(hours, bool) or not isinstance(hours, int) or hours < 1:
            raise ValueError(f"hours must be an integer >= 1, got {hours!r}")
        return hours * price_per_hour

    def late_arrival_charge(
        self,
        price_per_hour: float,
        booked_start: float,
        arrival: float,
        occupied_at_arrival: int,
        capacity: int,
    ) -> float:
        """``LC = P_t·O_{t+j}`` when arriving more than the grace after the start, else 0."""
        if arrival - booked_start > self.grace_s:
            return price_per_hour * self.occupancy(occupied_at_arrival, capacity)
        return 0.0

    def extension_hour_price(self, price_per_hour: float, occupied: int, capacity: int) -> float:
        """One extra hour at t+1: ``P_t·(1 + O_{t+1})``."""
        return price_per_hour * (1.0 + self.occupancy(occupied, capacity))


# ---------------------------------------------------------------- 4.4 fixed and demand-responsive
@dataclass(frozen=True, slots=True)
class FixedTariff:
    """A flat hourly rate, the comparison baseline (§4.4).

    Decision: billed like the hybrid tariff, every started hour.
    """

    rate_per_hour: float

    def __post_init__(self) -> None:
        _non_negative(self.rate_per_hour, "rate_per_hour")

    def charge(self, hours: float) -> float:
        """Price of a stay of ``hours``."""
        return billed_hours(hours) * self.rate_per_hour


@dataclass(frozen=True, slots=True)
class DemandResponsiveRule:
    """SFpark-style adjustment: one step per period towards the target band (§4.4).

    Above ``target_high`` the rate rises by ``step``, below ``target_low``
    it falls by ``step``; inside the band (bounds included) it stays. The
    result is kept within ``[floor, cap]``.
    """

    floor: float
    cap: float
    target_low: float = 0.6
    target_high: float = 0.8
    step: float = 0.25
    period_s: float = 28 * 86400.0

    def __post_init__(self) -> None:
        _non_negative(self.floor, "floor")
        _non_negative(self.cap, "cap")
        _non_negative(self.step, "step")
        if self.floor > self.cap:
            raise TariffError(f"floor {self.floor} is above cap {self.cap}")
        if not 0.0 <= self.target_low <= self.target_high <= 1.0:
            raise TariffError(
                f"target band must satisfy 0 <= target_low <= target_high <= 1, "
                f"got {self.target_low}..{self.target_high}"
            )
        if not self.period_s > 0:
            raise TariffError(f"period_s must be positive, got {self.period_s!r}")

    def next_rate(self, current_rate: float, mean_occupancy: float) -> float:
        """Rate for the next period given the band's mean occupancy over the last."""
        if not 0.0 <= mean_occupancy <= 1.0:
            raise ValueError(f"mean_occupancy must be within 0..1, got {mean_occupancy!r}")
        rate = current_rate
        if mean_occupancy > self.target_high:
            rate += self.step
        elif mean_occupancy < self.target_low:
            rate -= self.step
        return min(self.cap, max(self.floor, rate))

    def next_rates(self, rates: Mapping[str, float], mean_occupancy: Mapping[str, float]) -> dict[str, float]:
        """Adjust every time band; a band without occupancy data keeps its rate."""
        return {
            band: self.next_rate(rate, mean_occupancy[band]) if band in mean_occupancy else rate
            for band, rate in rates.items()
        }

    def is_due(self, last_adjusted: float, now: float) -> bool:
        """Whether a full adjustment period has passed."""
        return now - last_adjusted >= self.period_s
