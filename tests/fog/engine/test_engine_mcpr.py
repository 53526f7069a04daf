"""ALGORITHMS.md §5: multi-criteria lot recommendation and the no-show release."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fog.engine.mcpr import (
    DEFAULT_GRACE_S,
    DEFAULT_WAITING_WINDOW_S,
    Booking,
    BookingStatus,
    LotOffer,
    Weights,
    alternatives,
    booking_status,
    no_shows,
    rank_lots,
    recommend,
)


# ---------------------------------------------------------------- worked example
def _example() -> list[LotOffer]:
    """Four lots; C has no unreserved free spot and is not an alternative."""
    return [
        LotOffer("A", 200.0, 3.0, 10),
        LotOffer("B", 400.0, 2.0, 50),
        LotOffer("C", 100.0, 1.0, 0),
        LotOffer("D", 300.0, 4.0, 30),
    ]


def test_worked_example_with_equal_weights() -> None:
    # Over A, B, D: distance 200..400 (cost) -> Z_d = 1, 0, 0.5; price 2..4 (cost) -> Z_p = 0.5, 1, 0;
    # free 10..50 (benefit) -> Z_f = 0, 1, 0.5. U = mean: A 0.5, B 2/3, D 1/3.
    ranked = rank_lots(_example())
    assert [r.offer.lot_id for r in ranked] == ["B", "A", "D"]
    by_id = {r.offer.lot_id: r for r in ranked}
    assert by_id["A"].utility == pytest.approx(0.5)
    assert by_id["B"].utility == pytest.approx(2 / 3)
    assert by_id["D"].utility == pytest.approx(1 / 3)
    assert (by_id["D"].distance_score, by_id["D"].price_score, by_id["D"].free_spots_score) == (0.5, 0.0, 0.5)


def test_worked_example_with_a_driver_who_hates_walking() -> None:
    # Weights 2:1:1 -> 0.5, 0.25, 0.25: A 0.5 + 0.125 + 0 = 0.625, B 0 + 0.25 + 0.25 = 0.5, D 0.25 + 0 + 0.125.
    ranked = rank_lots(_example(), Weights(distance=2, price=1, free_spots=1))
    assert [r.offer.lot_id for r in ranked] == ["A", "B", "D"]
    assert [r.utility for r in ranked] == [0.625, 0.5, 0.375]
    assert recommend(_example(), Weights(2, 1, 1)) == ranked[0]


def test_only_lots_with_an_unreserved_free_spot_are_alternatives() -> None:
    assert [o.lot_id for o in alternatives(_example())] == ["A", "B", "D"]
    assert recommend([LotOffer("C", 100.0, 1.0, 0)]) is None
    assert rank_lots([]) == []


def test_a_single_alternative_scores_one_everywhere() -> None:
    (only,) = rank_lots([LotOffer("A", 500.0, 9.0, 1)])
    assert (only.utility, only.distance_score, only.price_score, only.free_spots_score) == (1.0, 1.0, 1.0, 1.0)


def test_ties_go_to_the_shorter_distance_then_the_lower_id() -> None:
    # Mirror images: A is near and dear, B far and cheap; equal weights over distance and price tie them.
    offers = [LotOffer("B", 400.0, 1.0, 5), LotOffer("A", 100.0, 2.0, 5)]
    ranked = rank_lots(offers, Weights(1, 1, 0))
    assert [r.offer.lot_id for r in ranked] == ["A", "B"]
    assert ranked[0].utility == ranked[1].utility == 0.5
    same = [LotOffer("Z", 100.0, 2.0, 5), LotOffer("Y", 100.0, 2.0, 5)]
    assert [r.offer.lot_id for r in rank_lots(same)] == ["Y", "Z"]


def test_utilities_tie_exactly_when_they_tie_mathematically() -> None:
    # 0.1 + 0.2 != 0.3 in floats; the ranking works on the written values, so these tie on utility
    # and the distance tie-break decides.
    offers = [LotOffer("far", 0.3, 0.0, 1), LotOffer("near", 0.1, 0.0, 1), LotOffer("mid", 0.2, 0.0, 1)]
    ranked = rank_lots(offers, Weights(0, 1, 1))
    assert [r.offer.lot_id for r in ranked] == ["near", "mid", "far"]


def test_bad_input_is_refused_with_the_lot_named() -> None:
    with pytest.raises(ValueError, match="lot 'A'.*price_per_hour"):
        LotOffer("A", 10.0, -1.0, 3)
    with pytest.raises(ValueError, match="free_spots"):
        LotOffer("A", 10.0, 1.0, -1)
    with pytest.raises(ValueError, match="finite"):
        LotOffer("A", math.nan, 1.0, 1)
    with pytest.raises(ValueError, match=">= 0"):
        rank_lots(_example(), Weights(-1, 1, 1))
    with pytest.raises(ValueError, match="positive"):
        rank_lots(_example(), Weights(0, 0, 0))
    with pytest.raises(ValueError, match="duplicate"):
        rank_lots([LotOffer("A", 1.0, 1.0, 1), LotOffer("A", 2.0, 1.0, 1)])


# ---------------------------------------------------------------- properties
_offer = st.builds(
    LotOffer,
    lot_id=st.text(alphabet="ABCDEFGH", min_size=1, max_size=3),
    distance_m=st.floats(0, 5000, allow_nan=False),
    price_per_hour=st.floats(0, 20, allow_nan=False),
    free_spots=st.integers(0, 600),
)
_offers = st.lists(_offer, max_size=8, unique_by=lambda o: o.lot_id)
_weights = st.builds(
    Weights, st.floats(0, 10, allow_nan=False), st.floats(0, 10, allow_nan=False), st.floats(0, 10, allow_nan=False)
).filter(lambda w: w.distance + w.price + w.free_spots > 0)


@settings(max_examples=150, deadline=None)
@given(_offers, _weights)
def test_ranking_is_the_alternatives_sorted_by_utility_then_distance(offers: list[LotOffer], weights: Weights) -> None:
    ranked = rank_lots(offers, weights)
    assert sorted(r.offer.lot_id for r in ranked) == sorted(o.lot_id for o in offers if o.free_spots >= 1)
    for r in ranked:
        assert -1e-12 <= r.utility <= 1 + 1e-12
        for z in (r.distance_score, r.price_score, r.free_spots_score):
            assert 0.0 <= z <= 1.0
    for a, b in zip(ranked, ranked[1:], strict=False):
        assert a.utility >= b.utility  # the floats shown may tie where the exact values do not
    assert [r.offer.lot_id for r in ranked] == _reference_ranking(offers, weights)


def _reference_ranking(offers: list[LotOffer], weights: Weights) -> list[str]:
    """ALGORITHMS.md §5 written out directly, in exact arithmetic."""
    alts = [o for o in offers if o.free_spots >= 1]
    if not alts:
        return []

    def exact(x: float) -> Fraction:
        return Fraction(repr(float(x)))

    def scores(values: list[Fraction], benefit: bool) -> list[Fraction]:
        lo, hi = min(values), max(values)
        if lo == hi:
            return [Fraction(1)] * len(values)
        return [((v - lo) if benefit else (hi - v)) / (hi - lo) for v in values]

    w = [exact(weights.distance), exact(weights.price), exact(weights.free_spots)]
    total = sum(w, Fraction(0))
    zd = scores([exact(o.distance_m) for o in alts], benefit=False)
    zp = scores([exact(o.price_per_hour) for o in alts], benefit=False)
    zf = scores([Fraction(o.free_spots) for o in alts], benefit=True)
    utility = [(w[0] * zd[i] + w[1] * zp[i] + w[2] * zf[i]) / total for i in range(len(alts))]
    order = sorted(range(len(alts)), key=lambda i: (-utility[i], exact(alts[i].distance_m), alts[i].lot_id))
    return [alts[i].lot_id for i in order]


@settings(max_examples=100, deadline=None)
@given(_offers, _weights, st.integers(1, 50))
def test_scaling_the_weights_changes_nothing(offers: list[LotOffer], weights: Weights, k: int) -> None:
    scaled = Weights(weights.distance * k, weights.price * k, weights.free_spots * k)
    assert [r.offer.lot_id for r in rank_lots(offers, weights)] == [r.offer.lot_id for r in rank_lots(offers, scaled)]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 2000), st.integers(0, 600)), max_size=8),
    _weights,
    st.integers(0, 100),
)
def test_min_max_normalisation_ignores_a_common_price_offset(
    lots: list[tuple[int, int, int]], weights: Weights, extra: int
) -> None:
    # Prices in cents, so that the shifted price is written exactly (a float shift would round).
    offers = [LotOffer(f"L{i}", float(d), cents / 100, free) for i, (d, cents, free) in enumerate(lots)]
    shifted = [LotOffer(f"L{i}", float(d), (cents + 100 * extra) / 100, free) for i, (d, cents, free) in enumerate(lots)]
    before = [(r.offer.lot_id, r.utility) for r in rank_lots(offers, weights)]
    after = [(r.offer.lot_id, r.utility) for r in rank_lots(shifted, weights)]
    assert [i for i, _ in before] == [i for i, _ in after]
    for (_, u), (_, v) in zip(before, after, strict=True):
        assert u == pytest.approx(v, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(_offers, _weights)
def test_a_dominating_lot_never_ranks_below_the_lot_it_dominates(offers: list[LotOffer], weights: Weights) -> None:
    ranked = rank_lots(offers, weights)
    position = {r.offer.lot_id: i for i, r in enumerate(ranked)}
    for a in ranked:
        for b in ranked:
            x, y = a.offer, b.offer
            better_or_equal = x.distance_m <= y.distance_m and x.price_per_hour <= y.price_per_hour and x.free_spots >= y.free_spots
            if better_or_equal and (x.distance_m, x.lot_id) < (y.distance_m, y.lot_id):
                assert position[x.lot_id] < position[y.lot_id]


# ---------------------------------------------------------------- no-show release
def test_booking_moves_from_pending_to_late_to_no_show() -> None:
    b = Booking("b1", "L1", start_s=1000.0)
    assert booking_status(b, 0.0) is BookingStatus.PENDING  # before the start
    assert booking_status(b, 1000.0 + DEFAULT_GRACE_S) is BookingStatus.PENDING  # late means strictly after the grace
    assert booking_status(b, 1000.0 + DEFAULT_GRACE_S + 1) is BookingStatus.LATE
    assert booking_status(b, 1000.0 + DEFAULT_WAITING_WINDOW_S - 1) is BookingStatus.LATE
    assert booking_status(b, 1000.0 + DEFAULT_WAITING_WINDOW_S) is BookingStatus.NO_SHOW  # half-open window


def test_a_check_in_inside_the_window_keeps_the_booking() -> None:
    b = Booking("b1", "L1", start_s=0.0, checked_in_s=7000.0)
    assert booking_status(b, 6999.0) is BookingStatus.LATE  # not yet arrived
    assert booking_status(b, 7000.0) is BookingStatus.CHECKED_IN
    assert booking_status(b, 50_000.0) is BookingStatus.CHECKED_IN
    too_late = Booking("b2", "L1", start_s=0.0, checked_in_s=DEFAULT_WAITING_WINDOW_S)
    assert booking_status(too_late, DEFAULT_WAITING_WINDOW_S) is BookingStatus.NO_SHOW


def test_no_shows_lists_exactly_the_bookings_to_cancel_now() -> None:
    now = 20_000.0
    bookings = [
        Booking("c", "L1", start_s=now - DEFAULT_WAITING_WINDOW_S),  # window just over
        Booking("a", "L2", start_s=now - 5 * 3600.0),
        Booking("b", "L2", start_s=now - 5 * 3600.0, checked_in_s=now - 4 * 3600.0),  # came in time
        Booking("d", "L1", start_s=now - 3600.0),  # still inside the window
    ]
    assert [b.booking_id for b in no_shows(bookings, now)] == ["a", "c"]
    # A 30-minute window: b's check-in an hour after its start came too late, d is over too.
    assert [b.booking_id for b in no_shows(bookings, now, window_s=30 * 60.0, grace_s=0.0)] == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="grace"):
        no_shows(bookings, now, grace_s=4 * 3600.0)


@settings(max_examples=100, deadline=None)
@given(st.floats(0, 1e6), st.floats(0, 1e6), st.one_of(st.none(), st.floats(0, 1e6)))
def test_once_a_no_show_always_a_no_show(start: float, now: float, checked_in: float | None) -> None:
    b = Booking("x", "L", start, checked_in)
    if booking_status(b, now) is BookingStatus.NO_SHOW:
        assert booking_status(b, now + 1.0) is BookingStatus.NO_SHOW
