"""ALGORITHMS.md §1: concentration index and average inter-arrival time."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fog.engine.lot_stats import ArrivalWindow, concentration_index, mean_inter_arrival


def test_concentration_index_worked_example() -> None:
    assert concentration_index(15, 20) == 0.75


@pytest.mark.parametrize(("occupied", "capacity"), [(21, 20), (-1, 20), (0, 0), (1, -5)])
def test_concentration_index_refuses_impossible_counts(occupied: int, capacity: int) -> None:
    with pytest.raises(ValueError):
        concentration_index(occupied, capacity)


def test_mean_inter_arrival_worked_example() -> None:
    assert mean_inter_arrival([0, 60, 180, 300]) == 100.0


def test_mean_inter_arrival_does_not_need_sorted_input() -> None:
    assert mean_inter_arrival([180, 0, 300, 60]) == 100.0


@pytest.mark.parametrize("arrivals", [[], [42.0]])
def test_mean_inter_arrival_is_none_not_zero_below_two(arrivals: list[float]) -> None:
    assert mean_inter_arrival(arrivals) is None


def test_window_worked_example_and_expiry_boundary() -> None:
    window = ArrivalWindow(window_s=900)
    for t in (0, 60, 180, 300):
        window.append(t)
    assert window.mean_inter_arrival() == 100.0
    window.expire(899.5)
    assert len(window) == 4  # the arrival at 0 is 899.5 s old: still inside
    window.expire(900)
    assert len(window) == 3  # exactly window_s old: gone, (now - w, now]
    assert window.mean_inter_arrival() == 120.0
    window.expire(10_000)
    assert len(window) == 0
    assert window.mean_inter_arrival() is None


def test_window_refuses_out_of_order_and_non_finite() -> None:
    window = ArrivalWindow()
    window.append(100)
    with pytest.raises(ValueError, match="earlier"):
        window.append(99)
    with pytest.raises(ValueError, match="finite"):
        window.append(math.nan)
    with pytest.raises(ValueError):
        ArrivalWindow(window_s=0)


def test_window_stats_reports_both_figures() -> None:
    window = ArrivalWindow(window_s=900)
    for t in (1000, 1060, 1180, 1300):
        window.append(t)
    stats = window.stats(now=1400, occupied=15, capacity=20)
    assert stats.concentration == 0.75
    assert stats.arrivals == 4
    assert stats.mean_inter_arrival_s == 100.0
    assert stats.window_end == 1400


@settings(max_examples=80, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0, max_value=400, allow_nan=False), max_size=40),
    window_s=st.floats(min_value=1, max_value=2000),
    extra=st.floats(min_value=0, max_value=2000),
)
def test_window_matches_batch_definition(gaps: list[float], window_s: float, extra: float) -> None:
    times = []
    t = 0.0
    for gap in gaps:
        t += gap
        times.append(t)
    window = ArrivalWindow(window_s)
    for t in times:
        window.append(t)
    now = (times[-1] if times else 0.0) + extra
    window.expire(now)
    inside = [a for a in times if now - window_s < a <= now]
    assert len(window) == len(inside)
    expected = mean_inter_arrival(inside)
    got = window.mean_inter_arrival()
    assert (got is None) == (expected is None)
    if got is not None and expected is not None:
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-9)
