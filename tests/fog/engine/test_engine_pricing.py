"""ALGORITHMS.md §4: tariffs, the subscription auction and money rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fog.engine.pricing import (
    Bid,
    BidError,
    DemandResponsiveRule,
    FixedTariff,
    HybridTariff,
    OccupancyTariff,
    TariffError,
    billed_hours,
    round_money,
    run_auction,
    validate_bid,
)


# ---------------------------------------------------------------- money
@pytest.mark.parametrize(
    ("amount", "shown"),
    [(38.6, "38.60"), (2.675, "2.68"), (0.125, "0.13"), (1.005, "1.01"), (-1.005, "-1.01"), (7, "7.00")],
)
def test_round_money_is_half_up_on_the_decimal_form(amount: float, shown: str) -> None:
    assert round_money(amount) == Decimal(shown)


# ---------------------------------------------------------------- 4.1 hybrid
def test_hybrid_worked_example() -> None:
    tariff = HybridTariff(
        first_hour_price=8, later_hour_price=4, discount_per_range=0.05, hours_per_range=2, max_ranges=3
    )
    charge = tariff.charge(10)
    assert (charge.billed_hours, charge.ranges) == (10, 3)
    assert charge.first_hour == 8 and charge.later_hours == 36
    assert charge.discount == pytest.approx(5.4)
    assert round_money(charge.total) == Decimal("38.60")


@pytest.mark.parametrize(("hours", "billed"), [(0, 0), (0.01, 1), (1.0, 1), (1.01, 2), (9.5, 10)])
def test_every_started_hour_counts(hours: float, billed: int) -> None:
    assert billed_hours(hours) == billed
    tariff = HybridTariff(8, 4, 0.05, 2, 3)
    assert tariff.charge(hours).billed_hours == billed


def test_zero_stay_costs_nothing_and_negative_is_refused() -> None:
    assert HybridTariff(8, 4, 0.05, 2, 3).charge(0).total == 0.0
    with pytest.raises(ValueError):
        billed_hours(-0.5)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"first_hour_price": -1}, "first_hour_price"),
        ({"later_hour_price": -0.5}, "later_hour_price"),
        ({"discount_per_range": -0.1}, "discount_per_range"),
        ({"hours_per_range": 0}, "hours_per_range"),
        ({"max_ranges": 2.5}, "max_ranges"),
        ({"max_ranges": 4, "discount_per_range": 0.25}, "max_ranges × discount_per_range"),
        ({"max_ranges": 20, "discount_per_range": 0.05}, "max_ranges × discount_per_range"),
        ({"hours_per_range": 10}, "discount_per_range 0.05 is too large"),
    ],
)
def test_bad_hybrid_tariffs_are_refused_naming_the_field(kwargs: dict[str, float], field: str) -> None:
    params: dict[str, float] = {
        "first_hour_price": 8,
        "later_hour_price": 4,
        "discount_per_range": 0.05,
        "hours_per_range": 2,
        "max_ranges": 3,
    }
    params.update(kwargs)
    with pytest.raises(TariffError, match=field):
        HybridTariff(**params)  # type: ignore[arg-type]


def test_zero_increment_at_a_range_start_is_allowed() -> None:
    # d·(h − 1 + X_prev) = 0.05·(19 + 1) = 1 exactly at h = 20: the total stays flat there.
    tariff = HybridTariff(8, 4, 0.05, 10, 2)
    assert round_money(tariff.charge(20).total) == round_money(tariff.charge(19).total)


@settings(max_examples=100, deadline=None)
@given(
    p_f=st.floats(0, 50),
    p_s=st.floats(0, 50),
    d=st.floats(0, 0.5),
    r=st.integers(1, 12) | st.floats(0.25, 12),
    n=st.integers(0, 10),
    hours=st.floats(0, 200),
)
def test_hybrid_prices_never_negative_and_non_decreasing(
    p_f: float, p_s: float, d: float, r: float, n: int, hours: float
) -> None:
    try:
        tariff = HybridTariff(p_f, p_s, d, r, n)
    except TariffError:
        assume(False)
        raise
    now = tariff.charge(hours).total
    assert now >= -1e-9
    assert tariff.charge(hours + 1).total >= now - 1e-9
    assert tariff.charge(hours + 0.5).total >= now - 1e-9


# ---------------------------------------------------------------- 4.2 auction
def test_auction_example() -> None:
    bids = [
        Bid("ana", 50, timestamp=1),
        Bid("ben", 70, timestamp=2),
        Bid("cho", 60, timestamp=3),
        Bid("dan", 60, timestamp=0),  # same amount as cho, earlier
        Bid("ana", 80, timestamp=5),  # ana's latest bid counts
        Bid("eve", 200, timestamp=6),  # above the cap: refused
        Bid("fay", 5, timestamp=7),  # below the floor: refused
        Bid("ben", 300, timestamp=8),  # refused; ben's 70 still stands
    ]
    result = run_auction(bids, k=3, floor=10, cap=150)
    assert [b.client_id for b in result.winners] == ["ana", "ben", "dan"]
    assert result.rate == 60
    assert result.revenue == 180
    assert [(e.client_id, e.amount) for e in result.refused] == [("eve", 200), ("fay", 5), ("ben", 300)]


def test_fewer_bidders_than_spots_all_win_at_the_lowest_bid() -> None:
    bids = [Bid("a", 40, 1), Bid("b", 90, 2), Bid("c", 55, 3)]
    result = run_auction(bids, k=5, floor=10, cap=100)
    assert result.rate == 40
    assert result.revenue == 120
    assert {b.client_id for b in result.winners} == {"a", "b", "c"}
    empty = run_auction([], k=2, floor=10, cap=100)
    assert (empty.rate, empty.winners, empty.revenue) == (None, (), 0.0)


def test_validate_bid_names_client_and_amount() -> None:
    validate_bid(Bid("ok", 10, 0), floor=10, cap=100)  # bounds are inclusive
    validate_bid(Bid("ok", 100, 0), floor=10, cap=100)
    with pytest.raises(BidError, match=r"101.*'zoe'.*above the cap of 100") as above:
        validate_bid(Bid("zoe", 101, 0), floor=10, cap=100)
    assert (above.value.client_id, above.value.amount) == ("zoe", 101)
    with pytest.raises(BidError, match="below the floor"):
        validate_bid(Bid("zoe", 9.99, 0), floor=10, cap=100)
    with pytest.raises(ValueError):
        run_auction([], k=0, floor=0, cap=1)


_bid = st.builds(
    Bid,
    client_id=st.sampled_from(["a", "b", "c", "d", "e", "f", "g"]),
    amount=st.integers(0, 120).map(float),
    timestamp=st.integers(0, 20).map(float),
)


@settings(max_examples=100, deadline=None)
@given(bids=st.lists(_bid, max_size=25), k=st.integers(1, 5))
def test_auction_winners_are_exactly_the_top_k(bids: list[Bid], k: int) -> None:
    floor, cap = 10.0, 100.0
    latest: dict[str, Bid] = {}
    for bid in bids:  # later in the list wins a timestamp tie
        if floor <= bid.amount <= cap and (
            bid.client_id not in latest or bid.timestamp >= latest[bid.client_id].timestamp
        ):
            latest[bid.client_id] = bid
    result = run_auction(bids, k, floor, cap)
    counted = list(latest.values())
    assert len(result.winners) == min(k, len(counted))
    assert {b.client_id for b in result.winners} <= set(latest)
    assert all(latest[b.client_id] == b for b in result.winners)
    losers = [b for b in counted if b not in result.winners]
    for winner in result.winners:
        for loser in losers:
            assert (winner.amount, -winner.timestamp) >= (loser.amount, -loser.timestamp)
    if counted:
        assert result.rate == min(b.amount for b in result.winners)
        assert result.revenue == result.rate * len(result.winners)
        assert result.rate == sorted((b.amount for b in counted), reverse=True)[min(k, len(counted)) - 1]
    else:
        assert result.rate is None


# ---------------------------------------------------------------- 4.3 occupancy-priced
def test_occupancy_tariff_worked_examples() -> None:
    tariff = OccupancyTariff(operating_cost_per_hour=20)  # k = 0.5
    price = tariff.price_per_hour(occupied=40, capacity=100)
    assert round_money(price) == Decimal("24.00")
    late = tariff.late_arrival_charge(
        price, booked_start=0, arrival=3601, occupied_at_arrival=50, capacity=100
    )
    assert round_money(late) == Decimal("12.00")
    assert round_money(price + late) == Decimal("36.00")
    assert round_money(tariff.extension_hour_price(price, occupied=60, capacity=100)) == Decimal("38.40")
    assert round_money(tariff.booking_total(3, price)) == Decimal("72.00")


def test_late_charge_only_after_the_grace() -> None:
    tariff = OccupancyTariff(20)
    assert tariff.late_arrival_charge(24.0, 0, 3600, 50, 100) == 0.0  # exactly the grace: on time
    assert tariff.late_arrival_charge(24.0, 0, 3600.5, 50, 100) == 12.0
    assert OccupancyTariff(20, grace_s=600).late_arrival_charge(24.0, 0, 601, 50, 100) == 12.0


def test_occupancy_tariff_refuses_bad_input() -> None:
    with pytest.raises(TariffError, match="operating_cost_per_hour"):
        OccupancyTariff(-1)
    with pytest.raises(ValueError):
        OccupancyTariff(20).price_per_hour(101, 100)
    with pytest.raises(ValueError):
        OccupancyTariff(20).booking_total(0, 24.0)


# ---------------------------------------------------------------- 4.4 fixed and demand-responsive
def test_fixed_tariff_bills_started_hours() -> None:
    assert FixedTariff(3.0).charge(2.5) == 9.0
    with pytest.raises(TariffError, match="rate_per_hour"):
        FixedTariff(-3.0)


def test_demand_responsive_rule_moves_one_step_within_floor_and_cap() -> None:
    rule = DemandResponsiveRule(floor=1.0, cap=4.0)  # band 0.6..0.8, step 0.25
    assert rule.next_rate(2.0, 0.85) == 2.25
    assert rule.next_rate(2.0, 0.5) == 1.75
    assert rule.next_rate(2.0, 0.7) == 2.0
    assert rule.next_rate(2.0, 0.8) == 2.0 and rule.next_rate(2.0, 0.6) == 2.0  # band is inclusive
    assert rule.next_rate(3.9, 0.95) == 4.0
    assert rule.next_rate(1.1, 0.1) == 1.0
    assert rule.next_rates(
        {"morning": 2.0, "evening": 3.0, "night": 1.5}, {"morning": 0.9, "evening": 0.3}
    ) == {
        "morning": 2.25,
        "evening": 2.75,
        "night": 1.5,
    }
    assert not rule.is_due(0, 27 * 86400) and rule.is_due(0, 28 * 86400)
    with pytest.raises(TariffError, match="floor"):
        DemandResponsiveRule(floor=5.0, cap=4.0)
    with pytest.raises(TariffError, match="target band"):
        DemandResponsiveRule(floor=1.0, cap=4.0, target_low=0.9, target_high=0.8)
