"""The pure parts of the evaluation: t intervals, the simulated month (c) and the MCPR day."""

from __future__ import annotations

import math

import pytest

from fog.engine.pricing import FixedTariff, HybridTariff
from fog.evaluation.mcpr_eval import POLICIES, DayAssumptions, Lot, hourly_means, simulate_day
from fog.evaluation.revenue import HOURS_PER_MONTH, RevenueAssumptions, month_revenue
from fog.evaluation.stats import mean_ci, paired_difference, t_cdf, t_quantile


# ---------------------------------------------------------------- stats
@pytest.mark.parametrize(
    ("df", "table"),
    [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (5, 2.571), (9, 2.262), (10, 2.228), (19, 2.093),
     (29, 2.045), (30, 2.042), (60, 2.000), (120, 1.980)],
)
def test_t_quantile_matches_the_printed_table(df: int, table: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(table, abs=6e-4)
    assert t_cdf(t_quantile(0.975, df), df) == pytest.approx(0.975, abs=1e-10)
    assert t_quantile(0.025, df) == pytest.approx(-table, abs=6e-4)


def test_t_quantile_tends_to_the_normal() -> None:
    assert t_quantile(0.975, 1e6) == pytest.approx(1.95996, abs=1e-4)


def test_mean_ci_by_hand() -> None:
    # 1..5: mean 3, s = sqrt(2.5), half width t(0.975, 4)·s/sqrt(5) = 2.776·0.7071 = 1.963.
    ci = mean_ci([1, 2, 3, 4, 5])
    assert ci.mean == 3.0 and ci.n == 5
    assert ci.half_width == pytest.approx(2.7764451 * math.sqrt(2.5 / 5), rel=1e-6)
    assert ci.text() == "3.0 ± 2.0"
    single = mean_ci([4.0, math.nan])
    assert single.n == 1 and math.isnan(single.low) and single.text() == "4.0"
    assert mean_ci([]).text() == "n/a"


def test_paired_difference_drops_incomplete_pairs() -> None:
    d = paired_difference([10.0, 12.0, math.nan, 14.0], [8.0, 9.0, 1.0, 10.0])
    assert d.n == 3 and d.mean == pytest.approx(3.0)
    assert d.excludes_zero()
    with pytest.raises(ValueError):
        paired_difference([1.0], [1.0, 2.0])


# ---------------------------------------------------------------- sweep (c)
def test_occupancy_maps_to_hours_sold_exactly() -> None:
    for x in (0.0, 0.1, 0.37, 1.0):
        month = month_revenue(x, seed=1)
        assert month.hours_sold == pytest.approx(round(100 * x) * HOURS_PER_MONTH)
    empty = month_revenue(0.0, seed=1)
    assert empty.fixed == empty.hybrid == 0.0


def test_plans_price_the_same_stays_with_the_engine_tariffs() -> None:
    a = RevenueAssumptions(late_share=0.0, extension_share=0.0)
    month = month_revenue(0.5, seed=7, assumptions=a)
    # Hybrid short stays: 10 for the first hour, 9 for each later one, so between 90 % and 100 % of fixed.
    assert 0.9 * month.short_fixed <= month.short_hybrid <= month.short_fixed
    # At 50 % occupancy the occupancy-priced hour (OC 8, k 0.5, O = 49/100) is just under 10.
    price = 8.0 * (1 + 0.5 * 0.49)
    assert month.short_occupancy == pytest.approx(month.short_fixed * price / 10.0)
    assert month.subscription_fixed == 2000.0 * month.subscribers_fixed
    assert month.auction_rate is not None and 1500.0 <= month.auction_rate <= 3000.0
    assert month.subscription_auction == pytest.approx(month.auction_rate * month.auction_winners)
    assert month_revenue(0.5, seed=7, assumptions=a) == month  # same seed, same month


def test_tariffs_are_the_publication_s() -> None:
    a = RevenueAssumptions()
    assert a.short_fixed == FixedTariff(10.0)
    assert a.hybrid.charge(1).total == 10.0
    assert a.hybrid.charge(3).total == pytest.approx(28.0)  # 10 + 2 × 9
    assert isinstance(a.hybrid, HybridTariff)
    assert (a.subscription_spots, a.short_spots, a.subscription_fixed) == (50, 100, 2000.0)


# ---------------------------------------------------------------- MCPR day
def _small_day() -> DayAssumptions:
    lots = (Lot("near", 100, 0, 4.0, capacity=40), Lot("mid", 0, 300, 3.0, capacity=40), Lot("far", -500, 0, 2.0, capacity=400))
    return DayAssumptions(lots=lots, visitors_per_h=20.0, commuters_per_h=120.0)


def test_every_policy_sees_the_same_drivers() -> None:
    days = {p: simulate_day(p, seed=3, assumptions=_small_day()) for p in POLICIES}
    counts = {p: len(d.drivers) + d.no_shows for p, d in days.items()}
    # nearest-first has no bookings, so its no-shows simply never come
    assert counts["mcpr"] == counts["reserve-nearest"] == counts["nearest"] + days["mcpr"].no_shows
    assert days["mcpr"].no_shows == days["reserve-nearest"].no_shows > 0


def test_nearest_first_redirects_in_the_rush_and_reservations_never_do() -> None:
    a = _small_day()
    nearest = simulate_day("nearest", 3, a)
    assert any(o.redirections > 0 for o in nearest.drivers)
    for o in nearest.drivers:
        if o.parked and o.redirections == 0:
            assert o.walking_m == 100.0  # parked in the nearest lot
    for policy in ("mcpr", "reserve-nearest"):
        assert all(o.redirections == 0 for o in simulate_day(policy, 3, a).drivers)
    rush = hourly_means([nearest])
    assert max(v["extra_driving_m"] for v in rush.values()) > 300.0  # near -> mid -> far hops


def test_lots_never_overflow() -> None:
    for policy in POLICIES:
        day = simulate_day(policy, 5, _small_day())
        assert day.peak_occupancy <= 1.0


def test_mcpr_releases_no_shows_and_reserve_nearest_does_not() -> None:
    # One small lot, long stays, many no-shows: releasing at the 3 h window frees spots for later drivers.
    lots = (Lot("only", 100, 0, 3.0, capacity=60),)
    a = DayAssumptions(lots=lots, visitors_per_h=30.0, commuters_per_h=0.0, visitor_stay_median_h=6.0,
                       no_show_share=0.3)
    mcpr, plain = simulate_day("mcpr", 2, a), simulate_day("reserve-nearest", 2, a)
    assert mcpr.turned_away < plain.turned_away
