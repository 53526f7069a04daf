"""Sweep (c): a simulated month of revenue under the engine's tariffs (`fog.engine.pricing`).

The lot of the publication: 150 spots, 50 for subscriptions and 100 for
short stays. Three plans are priced on the *same* simulated demand:

* fixed: subscriptions at 2000/month, short stays at 10/h (`FixedTariff`,
  every started hour billed);
* hybrid: subscriptions auctioned (`run_auction`, k = 50), short stays
  first hour 10, later hours 10 % off (`HybridTariff(10, 10, 0.1, 1, 1)`);
* occupancy-priced: subscriptions at the fixed 2000, short stays booked at
  ``P = OC·(1 + k·O)`` (`OccupancyTariff`), with the late-arrival and
  extension charges of ALGORITHMS.md §4.3.

How occupancy maps to what is sold (the whole demand model, all of it
configurable in `RevenueAssumptions`):

* short stays at occupancy x: ``round(100·x)`` short-stay spots are occupied
  around the clock by back-to-back stays, so the hours sold are exactly
  ``round(100·x) × 720`` (a 30-day month). Stay lengths are log-normal
  (median 2 h, σ = 0.7, clipped to 15 min – 12 h); the last stay of a spot
  is cut at the month's end. Every stay is billed under each plan. An
  occupancy-priced booking sees ``O = (round(100·x) − 1)/100`` (the other
  stays). 5 % of bookings arrive after the grace (late charge, occupancy at
  arrival the same) and 10 % extend by one hour (the extension hour is part
  of the same stay, so the hours sold do not change).
* subscriptions at occupancy x: ``round(100·x)`` clients are interested,
  with willingness to pay ~ Normal(2000, 300) — the fixed rate is their
  median, so under the fixed plan ``≈ 50·x`` of them subscribe (capped at
  50): that is what occupancy x means for the subscription zone. In the
  auction every client whose willingness reaches the floor (1500) bids it
  (capped at 2000 × 1.5); the seasonal rate is the 50th highest bid, or the
  lowest when fewer than 50 bid.

No price elasticity: the same stays and clients under every plan, so the
difference is the tariff alone. Decision: OC = 8 makes the occupancy-priced
hour cost the fixed 10 at 50 % occupancy (cheaper below, dearer above).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from fog.engine.pricing import Bid, FixedTariff, HybridTariff, OccupancyTariff, run_auction

__all__ = ["MonthRevenue", "RevenueAssumptions", "month_revenue"]

HOURS_PER_MONTH = 30 * 24


@dataclass(frozen=True)
class RevenueAssumptions:
    """The publication's lot and prices, and the demand model (see the module docstring)."""

    subscription_spots: int = 50
    short_spots: int = 100
    subscription_fixed: float = 2000.0
    short_fixed: FixedTariff = field(default_factory=lambda: FixedTariff(10.0))
    hybrid: HybridTariff = field(default_factory=lambda: HybridTariff(10.0, 10.0, 0.1, 1, 1))
    occupancy: OccupancyTariff = field(default_factory=lambda: OccupancyTariff(8.0, 0.5))
    willingness_mean: float = 2000.0
    willingness_sd: float = 300.0
    auction_floor: float = 1500.0
    auction_cap: float = 3000.0
    stay_median_h: float = 2.0
    stay_sigma: float = 0.7
    stay_min_h: float = 0.25
    stay_max_h: float = 12.0
    late_share: float = 0.05
    extension_share: float = 0.10


@dataclass(frozen=True)
class MonthRevenue:
    """One simulated month at one occupancy: revenue per plan and part."""

    occupancy: float
    seed: int
    hours_sold: float
    stays: int
    short_fixed: float
    short_hybrid: float
    short_occupancy: float
    subscribers_fixed: int
    subscription_fixed: float
    auction_rate: float | None
    auction_winners: int
    subscription_auction: float

    @property
    def fixed(self) -> float:
        return self.subscription_fixed + self.short_fixed

    @property
    def hybrid(self) -> float:
        return self.subscription_auction + self.short_hybrid

    @property
    def occupancy_priced(self) -> float:
        return self.subscription_fixed + self.short_occupancy


def _stay_hours(rng: random.Random, a: RevenueAssumptions) -> float:
    hours = a.stay_median_h * math.exp(a.stay_sigma * rng.gauss(0.0, 1.0))
    return min(max(hours, a.stay_min_h), a.stay_max_h)


def month_revenue(occupancy: float, seed: int, assumptions: RevenueAssumptions | None = None) -> MonthRevenue:
    """Revenue of one simulated month at ``occupancy`` (0..1) under the three plans."""
    a = assumptions or RevenueAssumptions()
    if not 0.0 <= occupancy <= 1.0:
        raise ValueError(f"occupancy must be within 0..1, got {occupancy!r}")
    rng = random.Random(f"revenue|{occupancy!r}|{seed}")
    busy = round(a.short_spots * occupancy)
    others = max(busy - 1, 0)
    price = a.occupancy.price_per_hour(others, a.short_spots)
    fixed = hybrid = occ = 0.0
    hours_sold = 0.0
    stays = 0
    for _spot in range(busy):
        t = 0.0
        while t < HOURS_PER_MONTH:
            hours = min(_stay_hours(rng, a), HOURS_PER_MONTH - t)
            t += hours
            hours_sold += hours
            stays += 1
            fixed += a.short_fixed.charge(hours)
            hybrid += a.hybrid.charge(hours).total
            billed = math.ceil(hours)
            late = rng.random() < a.late_share
            extends = rng.random() < a.extension_share and billed >= 2
            booked = billed - 1 if extends else billed
            occ += a.occupancy.booking_total(booked, price)
            if extends:
                occ += a.occupancy.extension_hour_price(price, others, a.short_spots)
            if late:
                occ += a.occupancy.late_arrival_charge(price, 0.0, a.occupancy.grace_s + 1.0, others, a.short_spots)

    clients = round(a.subscription_spots * occupancy / _share_above(a.subscription_fixed, a))
    willingness = [rng.gauss(a.willingness_mean, a.willingness_sd) for _ in range(clients)]
    subscribers = min(a.subscription_spots, sum(w >= a.subscription_fixed for w in willingness))
    bids = [
        Bid(f"client{i}", min(w, a.auction_cap), float(i))
        for i, w in enumerate(willingness)
        if w >= a.auction_floor
    ]
    auction = run_auction(bids, a.subscription_spots, a.auction_floor, a.auction_cap) if bids else None
    return MonthRevenue(
        occupancy=occupancy,
        seed=seed,
        hours_sold=hours_sold,
        stays=stays,
        short_fixed=fixed,
        short_hybrid=hybrid,
        short_occupancy=occ,
        subscribers_fixed=subscribers,
        subscription_fixed=subscribers * a.subscription_fixed,
        auction_rate=auction.rate if auction else None,
        auction_winners=len(auction.winners) if auction else 0,
        subscription_auction=auction.revenue if auction else 0.0,
    )


def _share_above(price: float, a: RevenueAssumptions) -> float:
    """P(willingness ≥ price) under the normal willingness model."""
    z = (price - a.willingness_mean) / a.willingness_sd
    return 0.5 * math.erfc(z / math.sqrt(2.0))
