"""A lot's ``[tariff]`` table → the pricing engine's objects (ALGORITHMS.md §4), and quotes.

Validated at load (`fog.config.load_lot` calls `parse_tariff`): a wrong tariff
raises `ConfigError` naming the key (``tariff.discount_per_range``) and the
problem, before anything runs. The formulas live in `fog.engine.pricing`;
this module only chooses, combines and explains them. The schema is in
fog/examples/README.md.

Decision: §4.3 defines the late-arrival charge ``LC = P·O_arrival`` for the
occupancy-priced plan only; FogPark applies the same rule to every plan, with
``P`` the booking's locked hourly rate (hybrid: the first-hour price P_F;
fixed and demand: the hourly rate; occupancy: P_t), so a late vehicle pays
the same kind of surcharge whatever the lot's plan.
Decision: an extension under the hybrid plan costs the difference of the
plan's (rounded) charges for the longer and the booked stay, so a stay
booked for h hours and extended by e pays exactly what an (h + e)-hour
booking would (range discounts keep applying); under the fixed and demand
plans, the locked rate per hour. Every charge component is rounded to the
cent when it is stored; a final charge is the sum of the stored components.
Decision: the hourly price a lot advertises (LotSummary.price_per_hour, MCPR's
C2) is P_F for hybrid, P_t at the current occupancy for occupancy, the
current band's rate for demand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from fog.config import ConfigError, Spot, parse_hours
from fog.engine.pricing import (
    DemandResponsiveRule,
    FixedTariff,
    HybridTariff,
    OccupancyTariff,
    TariffError,
    billed_hours,
    round_money,
)

__all__ = ["PLANS", "AuctionTerms", "DemandBand", "Quote", "TariffConfig", "parse_tariff", "quote"]

PLANS = ("hybrid", "occupancy", "fixed", "demand")
PROTO_PLAN = {"hybrid": "hybrid_short", "occupancy": "occupancy", "fixed": "fixed", "demand": "demand"}
_COMMON_KEYS = ("plan", "currency", "auction")
_PLAN_KEYS = {
    "hybrid": ("first_hour", "per_hour", "discount_per_range", "hours_per_range", "max_ranges"),
    "occupancy": ("operating_cost", "k"),
    "fixed": ("rate_per_hour",),
    "demand": ("rate_per_hour", "floor", "cap", "target_low", "target_high", "step", "period_days", "bands"),
}
_AUCTION_KEYS = ("spots", "zone", "floor", "cap", "season_days")
_BAND_KEYS = ("id", "hours", "rate_per_hour")


@dataclass(frozen=True)
class DemandBand:
    """A time band of the demand-responsive plan, with its starting rate."""

    id: str
    minutes: tuple[tuple[int, int], ...]
    rate_per_hour: float


@dataclass(frozen=True)
class AuctionTerms:
    """``[tariff.auction]``: the long plan — ``spots`` subscriber spots of ``zone`` for a season (§4.2)."""

    spots: int
    zone: str
    floor: float
    cap: float
    season_days: float


@dataclass(frozen=True)
class TariffConfig:
    """A validated tariff: the plan's engine object plus the optional auction."""

    plan: str
    currency: str = ""
    hybrid: HybridTariff | None = None
    occupancy: OccupancyTariff | None = None
    fixed: FixedTariff | None = None
    demand: DemandResponsiveRule | None = None
    bands: tuple[DemandBand, ...] = ()
    auction: AuctionTerms | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def proto_plan(self) -> str:
        return PROTO_PLAN[self.plan]

    def band_at(self, at_s: float, tz: tzinfo) -> DemandBand:
        """The demand band covering local time ``at_s`` (the last band is the catch-all "rest")."""
        local = datetime.fromtimestamp(at_s, tz)
        minute = local.hour * 60 + local.minute
        for band in self.bands[:-1]:
            if any(lo <= minute < hi for lo, hi in band.minutes):
                return band
        return self.bands[-1]

    def hourly_rate(self, occupied: int, capacity: int, at_s: float, tz: tzinfo,
                    rates: Mapping[str, float] | None = None) -> float:
        """The advertised price per hour now (see the module docstring)."""
        if self.hybrid is not None:
            return self.hybrid.first_hour_price
        if self.occupancy is not None:
            return self.occupancy.price_per_hour(occupied, capacity)
        if self.fixed is not None:
            return self.fixed.rate_per_hour
        band = self.band_at(at_s, tz)
        return (rates or {}).get(band.id, band.rate_per_hour)

    def lock(self, hours: int, occupied: int, capacity: int, at_s: float, tz: tzinfo,
             rates: Mapping[str, float] | None = None) -> tuple[float, float]:
        """(locked hourly rate, total) of a booking of ``hours`` made now: prices are locked at booking."""
        rate = self.hourly_rate(occupied, capacity, at_s, tz, rates)
        if self.hybrid is not None:
            return rate, self.hybrid.charge(hours).total
        if self.occupancy is not None:
            return rate, self.occupancy.booking_total(hours, rate)
        return rate, hours * rate

    def extension(self, locked_rate: float, booked_hours: int, extra_hours: int, occupied: int,
                  capacity: int) -> float:
        """Charge for ``extra_hours`` more on a booking of ``booked_hours`` (§4.3 for occupancy)."""
        if self.occupancy is not None:
            return extra_hours * self.occupancy.extension_hour_price(locked_rate, occupied, capacity)
        if self.hybrid is not None:  # so that booked + extension = the longer stay's charge, both rounded
            longer, booked = self.hybrid.charge(booked_hours + extra_hours), self.hybrid.charge(booked_hours)
            return money(longer.total) - money(booked.total)
        return extra_hours * locked_rate


# ---------------------------------------------------------------- parsing
def _fail(path: Path | str, key: str, problem: str) -> ConfigError:
    return ConfigError(path, f"tariff.{key}", problem)


def _number(path: Path | str, raw: Mapping[str, Any], key: str, default: float | None = None,
            minimum: float = 0.0, maximum: float = math.inf, unit: str = "") -> float:
    value = raw.get(key, default)
    unit_text = f" ({unit})" if unit else ""
    if value is None:
        raise _fail(path, key, f"missing (a number{unit_text} is required)")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(path, key, f"expected a number{unit_text}, got {value!r}")
    if value < minimum:
        what = "negative: a price must be 0 or more" if minimum == 0 and unit.startswith("money") \
            else f"below the minimum {minimum}"
        raise _fail(path, key, f"{value} is {what}")
    if value > maximum:
        raise _fail(path, key, f"{value} is above the maximum {maximum}")
    return float(value)


def _integer(path: Path | str, raw: Mapping[str, Any], key: str, default: int | None = None,
             minimum: int = 0) -> int:
    value = raw.get(key, default)
    if value is None:
        raise _fail(path, key, "missing (an integer is required)")
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, key, f"expected an integer, got {value!r}")
    if value < minimum:
        raise _fail(path, key, f"{value} is below the minimum {minimum}")
    return value


def _check_keys(path: Path | str, raw: Mapping[str, Any], prefix: str, known: tuple[str, ...], why: str) -> None:
    for key in raw:
        if key not in known:
            raise ConfigError(path, f"{prefix}.{key}", f"unknown key: {why} ({', '.join(known)})")


def parse_tariff(path: Path | str, raw: Mapping[str, Any], spots: Iterable[Spot] = ()) -> TariffConfig:
    """Validate a ``[tariff]`` table and build its engine objects; an empty table is "no tariff" (fixed 0)."""
    raw = dict(raw)
    if not raw:
        return TariffConfig("fixed", fixed=FixedTariff(0.0))
    plan = raw.get("plan")
    if plan not in PLANS:
        raise _fail(path, "plan", f"{plan!r} is not one of {', '.join(PLANS)}")
    known = _COMMON_KEYS + _PLAN_KEYS[plan]
    _check_keys(path, raw, "tariff", known, f"plan {plan!r} takes")
    currency = raw.get("currency", "")
    if not isinstance(currency, str):
        raise _fail(path, "currency", f"expected a string such as \"EUR\", got {currency!r}")
    money = "money per hour"
    auction = _auction(path, raw.get("auction"), list(spots))
    try:
        if plan == "hybrid":
            d = _number(path, raw, "discount_per_range", 0.0, maximum=1.0)
            n = _integer(path, raw, "max_ranges", 0)
            if n * d >= 1:
                raise _fail(path, "discount_per_range",
                            f"max_ranges × discount_per_range = {n} × {d} >= 1 would make later hours free or "
                            "negative")
            hybrid = HybridTariff(
                first_hour_price=_number(path, raw, "first_hour", unit=money),
                later_hour_price=_number(path, raw, "per_hour", unit=money),
                discount_per_range=d,
                hours_per_range=_number(path, raw, "hours_per_range", 1.0, minimum=1e-9, unit="h"),
                max_ranges=n,
            )
            return TariffConfig(plan, currency, hybrid=hybrid, auction=auction, raw=raw)
        if plan == "occupancy":
            occ = OccupancyTariff(_number(path, raw, "operating_cost", unit=money), _number(path, raw, "k", 0.5))
            return TariffConfig(plan, currency, occupancy=occ, auction=auction, raw=raw)
        if plan == "fixed":
            return TariffConfig(plan, currency, fixed=FixedTariff(_number(path, raw, "rate_per_hour", unit=money)),
                                auction=auction, raw=raw)
        rate = _number(path, raw, "rate_per_hour", unit=money)
        rule = DemandResponsiveRule(
            floor=_number(path, raw, "floor", 0.0, unit=money),
            cap=_number(path, raw, "cap", unit=money),
            target_low=_number(path, raw, "target_low", 0.6, maximum=1.0),
            target_high=_number(path, raw, "target_high", 0.8, maximum=1.0),
            step=_number(path, raw, "step", 0.25, unit="money"),
            period_s=_number(path, raw, "period_days", 28.0, minimum=1 / 24, unit="days") * 86400.0,
        )
        if not rule.floor <= rate <= rule.cap:
            raise _fail(path, "rate_per_hour", f"{rate} is outside floor..cap ({rule.floor}..{rule.cap})")
        bands = _bands(path, raw.get("bands", []), rate, rule)
        return TariffConfig(plan, currency, demand=rule, bands=bands, auction=auction, raw=raw)
    except TariffError as err:  # the engine's own checks (e.g. a discount making longer stays cheaper)
        key = str(err).split(" ", 1)[0]
        key = {"first_hour_price": "first_hour", "later_hour_price": "per_hour",
               "operating_cost_per_hour": "operating_cost"}.get(key, key)
        if key not in known:
            key = "discount_per_range" if plan == "hybrid" else "plan"
        raise _fail(path, key, str(err)) from None


def _bands(path: Path | str, raw: Any, rate: float, rule: DemandResponsiveRule) -> tuple[DemandBand, ...]:
    if not isinstance(raw, list):
        raise _fail(path, "bands", "expected an array of tables ([[tariff.bands]])")
    bands: list[DemandBand] = []
    taken: list[tuple[int, int, str]] = []
    for i, item in enumerate(raw):
        where = f"bands[{i}]"
        if not isinstance(item, dict):
            raise _fail(path, where, "expected a table with id, hours and rate_per_hour")
        _check_keys(path, item, f"tariff.{where}", _BAND_KEYS, "a band takes")
        band_id = item.get("id")
        if not isinstance(band_id, str) or not band_id or band_id == "rest" or band_id in {b.id for b in bands}:
            raise _fail(path, f"{where}.id", f"expected a unique name other than 'rest', got {band_id!r}")
        hours = item.get("hours")
        try:
            minutes = parse_hours(hours) if isinstance(hours, str) else None
        except ValueError as err:
            raise _fail(path, f"{where}.hours", str(err)) from None
        if minutes is None:
            raise _fail(path, f"{where}.hours", f"expected \"HH:MM-HH:MM\", got {hours!r}")
        for lo, hi in minutes:
            for lo2, hi2, other in taken:
                if lo < hi2 and lo2 < hi:
                    raise _fail(path, f"{where}.hours", f"overlaps band {other!r}")
            taken.append((lo, hi, band_id))
        band_rate = _number(path, item, "rate_per_hour", rate, unit="money per hour")
        if not rule.floor <= band_rate <= rule.cap:
            raise _fail(path, f"{where}.rate_per_hour", f"{band_rate} is outside floor..cap")
        bands.append(DemandBand(band_id, minutes, band_rate))
    bands.append(DemandBand("rest", ((0, 1440),), rate))  # whatever no band covers
    return tuple(bands)


def _auction(path: Path | str, raw: Any, spots: list[Spot]) -> AuctionTerms | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _fail(path, "auction", "expected a table ([tariff.auction])")
    _check_keys(path, raw, "tariff.auction", _AUCTION_KEYS, "an auction takes")
    sub_zones = sorted({s.zone for s in spots if s.kind == "subscriber"})
    zone = raw.get("zone", sub_zones[0] if len(sub_zones) == 1 else None)
    if not isinstance(zone, str) or not zone:
        raise _fail(path, "auction.zone", f"name the zone whose subscriber spots are auctioned "
                                          f"(zones with subscriber spots: {', '.join(sub_zones) or 'none'})")
    offered = sum(1 for s in spots if s.kind == "subscriber" and s.zone == zone)
    if offered == 0:
        raise _fail(path, "auction.zone", f"zone {zone!r} has no spot of kind \"subscriber\"")
    k = _integer(path, raw, "spots", offered, minimum=1)
    if k > offered:
        raise _fail(path, "auction.spots", f"{k} spots offered but zone {zone!r} has {offered} subscriber spots")
    floor = _number(path, raw, "floor", 0.0, unit="money")
    cap = _number(path, raw, "cap", unit="money")
    if cap < floor:
        raise _fail(path, "auction.cap", f"{cap} is below the floor {floor}")
    season = _number(path, raw, "season_days", 90.0, minimum=1.0, unit="days")
    return AuctionTerms(k, zone, floor, cap, season)


# ---------------------------------------------------------------- quotes
@dataclass(frozen=True)
class Quote:
    """A charge with the lines that make it up (amounts unrounded; `as_dict`/`text` round for people)."""

    plan: str
    currency: str
    hours: float
    billed_hours: int
    price_per_hour: float
    lines: tuple[tuple[str, float], ...]
    total: float

    def as_dict(self) -> dict[str, Any]:
        return {"plan": self.plan, "currency": self.currency, "hours": self.hours,
                "billed_hours": self.billed_hours, "price_per_hour": money(self.price_per_hour),
                "breakdown": [{"item": item, "amount": money(amount)} for item, amount in self.lines],
                "total": money(self.total)}

    def text(self) -> str:
        cur = f" {self.currency}" if self.currency else ""
        width = max(len(item) for item, _ in self.lines) if self.lines else 10
        rows = [f"plan {self.plan}: {self.hours:g} h, billed {self.billed_hours} h"]
        rows += [f"  {item:<{width}}  {round_money(amount):>10}{cur}" for item, amount in self.lines]
        rows.append(f"  {'total':<{width}}  {round_money(self.total):>10}{cur}")
        return "\n".join(rows)


def money(amount: float) -> float:
    """An amount as shown to a person or stored as a charge: 2 decimals, half-up (`round_money`)."""
    return float(round_money(amount))


def quote(t: TariffConfig, hours: float, occupied: int, capacity: int, *, at_s: float, tz: tzinfo,
          late_occupied: int | None = None, rates: Mapping[str, float] | None = None) -> Quote:
    """What a stay of ``hours`` booked now costs, with its breakdown; ``late_occupied`` adds the
    late-arrival charge for a vehicle arriving after the grace when that many spots are occupied."""
    h = billed_hours(hours)
    if h < 1:
        raise ValueError(f"hours must be more than 0, got {hours!r}")
    rate, total = t.lock(h, occupied, capacity, at_s, tz, rates)
    lines: list[tuple[str, float]] = []
    if t.hybrid is not None:
        c = t.hybrid.charge(h)
        lines.append(("first hour", c.first_hour))
        if h > 1:
            lines.append((f"{h - 1} later hours x {t.hybrid.later_hour_price:g}", c.later_hours))
        if c.discount:
            lines.append((f"discount {c.ranges} ranges x {t.hybrid.discount_per_range:g}", -c.discount))
    elif t.occupancy is not None:
        o = OccupancyTariff.occupancy(occupied, capacity)
        lines.append((f"{h} h x P_t {money(rate):.2f} (OC {t.occupancy.operating_cost_per_hour:g} x "
                      f"(1 + {t.occupancy.k:g} x O {o:.2f}))", total))
    else:
        what = "fixed rate" if t.fixed is not None else f"band {t.band_at(at_s, tz).id} rate"
        lines.append((f"{h} h x {what} {money(rate):.2f}", total))
    if late_occupied is not None:
        late = late_rule(0.0).late_arrival_charge(rate, 0.0, 1.0, late_occupied, capacity)
        lines.append((f"late arrival: P {money(rate):.2f} x O {late_occupied / capacity:.2f}", late))
        total += late
    return Quote(t.plan, t.currency, float(hours), h, rate, tuple(lines), total)


def late_rule(grace_s: float) -> OccupancyTariff:
    """§4.3's late-arrival rule with the lot's grace (only its `late_arrival_charge` is used)."""
    return OccupancyTariff(operating_cost_per_hour=0.0, k=0.0, grace_s=grace_s)
