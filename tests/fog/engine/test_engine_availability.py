"""ALGORITHMS.md §3: availability states, Markov forecast, training, admission, quality."""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fog.engine.availability import (
    Matrix,
    admit_reservation,
    brier_score,
    default_season_key,
    evaluate_forecasts,
    forecast,
    persistence_brier_score,
    probability_unreserved_free,
    state_name,
    state_of,
    state_range,
    train_matrices,
)


# ---------------------------------------------------------------- states
@pytest.mark.parametrize(
    ("ratio", "state"),
    [(0.0, 0), (0.1999, 0), (0.2, 1), (0.39, 1), (0.4, 2), (0.6, 3), (0.7999, 3), (0.8, 4), (1.0, 4)],
)
def test_five_equal_width_states_top_one_closed(ratio: float, state: int) -> None:
    assert state_of(ratio) == state


@pytest.mark.parametrize("ratio", [-0.01, 1.01, math.nan])
def test_ratio_outside_0_1_is_refused(ratio: float) -> None:
    with pytest.raises(ValueError):
        state_of(ratio)


def test_state_ranges_and_names() -> None:
    assert state_range(0) == (0.0, 0.2)
    assert state_range(4) == (0.8, 1.0)
    assert state_name(0) == "S1" and state_name(4) == "S5"
    with pytest.raises(ValueError):
        state_range(5)


# ---------------------------------------------------------------- forecast
_SHIFT_UP: Matrix = tuple(tuple(1.0 if j == min(i + 1, 4) else 0.0 for j in range(5)) for i in range(5))
_TO_ZERO: Matrix = tuple(tuple(1.0 if j == 0 else 0.0 for j in range(5)) for _ in range(5))


def _by_slot(t: float) -> int:
    return int(t // 300)


def test_horizon_zero_is_the_current_state() -> None:
    assert forecast(2, {0: _SHIFT_UP}, _by_slot, t=0.0, horizon_s=0.0) == (0.0, 0.0, 1.0, 0.0, 0.0)


def test_no_model_means_persistence() -> None:
    assert forecast(3, {}, _by_slot, t=0.0, horizon_s=3600.0) == (0.0, 0.0, 0.0, 1.0, 0.0)


def test_windows_are_ceil_of_horizon_over_5_minutes() -> None:
    matrices = {k: _SHIFT_UP for k in range(10)}
    assert forecast(0, matrices, _by_slot, 0.0, 1.0) == (0.0, 1.0, 0.0, 0.0, 0.0)  # 1 window
    assert forecast(0, matrices, _by_slot, 0.0, 300.0) == (0.0, 1.0, 0.0, 0.0, 0.0)  # 1 window
    assert forecast(0, matrices, _by_slot, 0.0, 301.0) == (0.0, 0.0, 1.0, 0.0, 0.0)  # 2 windows


def test_matrices_are_chained_in_time_order() -> None:
    # Slot 0 resets to S1, slot 1 shifts up: S3 -> S1 -> S2. The other order would give S1.
    p = forecast(2, {0: _TO_ZERO, 1: _SHIFT_UP}, _by_slot, t=0.0, horizon_s=600.0)
    assert p == (0.0, 1.0, 0.0, 0.0, 0.0)
    q = forecast(2, {0: _SHIFT_UP, 1: _TO_ZERO}, _by_slot, t=0.0, horizon_s=600.0)
    assert q == (1.0, 0.0, 0.0, 0.0, 0.0)


def test_forecast_refuses_negative_horizon_and_bad_matrices() -> None:
    with pytest.raises(ValueError):
        forecast(0, {}, _by_slot, 0.0, -1.0)
    with pytest.raises(ValueError):
        forecast(0, {0: ((1.0,),)}, _by_slot, 0.0, 10.0)


def _stochastic_matrix(draw: st.DrawFn) -> Matrix:
    rows = []
    for _ in range(5):
        weights = draw(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=5, max_size=5))
        if sum(weights) == 0.0:
            weights = [1.0] * 5
        rows.append(tuple(w / sum(weights) for w in weights))
    return tuple(rows)


@settings(max_examples=80, deadline=None)
@given(data=st.data(), state=st.integers(0, 4), horizon=st.floats(0, 6 * 3600), t=st.floats(0, 86400))
def test_forecast_is_a_probability_distribution(
    data: st.DataObject, state: int, horizon: float, t: float
) -> None:
    matrices = {k: data.draw(st.composite(_stochastic_matrix)()) for k in range(4)}
    p = forecast(state, matrices, lambda ts: int(ts // 300) % 6, t, horizon)
    assert len(p) == 5
    assert all(x >= 0.0 for x in p)
    assert sum(p) == pytest.approx(1.0, abs=1e-9)


# ---------------------------------------------------------------- training
def _samples(pairs_per_key: dict[tuple[str, int], list[tuple[float, float]]]) -> list[tuple[float, float]]:
    """Per-minute samples that produce exactly the given (from ratio, to ratio) pairs under a key.

    Each pair gets its own 2-sample episode 5 minutes apart, in its own week
    so that episodes never pair with each other.
    """
    samples = []
    episode = 0
    for (day_type, slot), pairs in pairs_per_key.items():
        for a, b in pairs:
            base = _ts(day_type, slot, week=episode)
            samples += [(base, a), (base + 300.0, b)]
            episode += 1
    return samples


_MONDAY = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday
_SATURDAY = datetime(2024, 1, 6, tzinfo=UTC)


def _ts(day_type: str, slot: int, week: int = 0) -> float:
    day = _MONDAY if day_type == "weekday" else _SATURDAY
    return (day + timedelta(weeks=week, seconds=slot * 300)).timestamp()


def _key(ts: float) -> tuple[str, int]:
    return default_season_key(ts)


def test_training_counts_with_laplace_and_row_normalises() -> None:
    samples = _samples({("weekday", 100): [(0.1, 0.3)] * 20})
    matrices = train_matrices(samples, _key, min_obs=10)
    assert set(matrices) == {("weekday", 100)}
    row = matrices[("weekday", 100)][0]
    assert row == pytest.approx((1 / 25, 21 / 25, 1 / 25, 1 / 25, 1 / 25))
    for row in matrices[("weekday", 100)]:
        assert sum(row) == pytest.approx(1.0)


def test_sparse_row_falls_back_to_neighbouring_slots_then_all_day() -> None:
    samples = _samples(
        {
            ("weekday", 100): [(0.1, 0.9)] * 2,  # 2 obs in row S1: too few
            ("weekday", 101): [(0.1, 0.5)] * 9,  # neighbour: 2 + 9 = 11 >= 10
            ("weekday", 200): [(0.1, 0.1)] * 3,  # neighbours 199/201 empty: all-day weekday
            ("weekend", 100): [(0.1, 0.1)] * 50,  # another day type: never pooled with weekdays
        }
    )
    matrices = train_matrices(samples, _key, min_obs=10)
    # Slot 100: own 2×(S1->S5) + neighbour 101's 9×(S1->S3), +1 each, over 11 + 5.
    assert matrices[("weekday", 100)][0] == pytest.approx((1 / 16, 1 / 16, 10 / 16, 1 / 16, 3 / 16))
    # Slot 200: all weekday S1 rows pooled: 2×S5 + 9×S3 + 3×S1 = 14 obs, +5.
    assert matrices[("weekday", 200)][0] == pytest.approx((4 / 19, 1 / 19, 10 / 19, 1 / 19, 3 / 19))
    # Slot 101 has 9 < 10 of its own: its neighbours are 100 (2 obs) and 102: 11 obs.
    assert matrices[("weekday", 101)][0] == pytest.approx((1 / 16, 1 / 16, 10 / 16, 1 / 16, 3 / 16))
    # A row nobody observed falls all the way back; with no data at all it is uniform.
    assert matrices[("weekday", 100)][3] == pytest.approx((0.2,) * 5)
    assert matrices[("weekend", 100)][0] == pytest.approx((51 / 55, 1 / 55, 1 / 55, 1 / 55, 1 / 55))


def test_neighbouring_slots_wrap_at_midnight() -> None:
    samples = _samples({("weekday", 0): [(0.1, 0.9)] * 1, ("weekday", 287): [(0.1, 0.9)] * 9})
    matrices = train_matrices(samples, _key, min_obs=10)
    assert matrices[("weekday", 0)][0] == pytest.approx((1 / 15, 1 / 15, 1 / 15, 1 / 15, 11 / 15))


def test_only_samples_exactly_5_minutes_apart_pair_up() -> None:
    t0 = _ts("weekday", 10)
    samples = [(t0, 0.1), (t0 + 240.0, 0.9), (t0 + 600.0, 0.9)]  # 4 min and 10 min gaps
    assert train_matrices(samples, _key) == {}
    samples.append((t0 + 302.0, 0.5))  # 5 min after t0, 2 s jitter snaps to the minute
    matrices = train_matrices(samples, _key, min_obs=0)
    assert matrices[("weekday", 10)][0] == pytest.approx((1 / 6, 1 / 6, 2 / 6, 1 / 6, 1 / 6))


def test_default_season_key() -> None:
    monday_1007 = datetime(2024, 1, 8, 10, 7, tzinfo=UTC).timestamp()
    assert default_season_key(monday_1007) == ("weekday", 121)
    assert default_season_key(monday_1007, holidays={date(2024, 1, 8)}) == ("holiday", 121)
    saturday = datetime(2024, 1, 6, 0, 0, tzinfo=UTC).timestamp()
    assert default_season_key(saturday) == ("weekend", 0)
    friday = datetime(2024, 1, 5, 23, 59, tzinfo=UTC).timestamp()
    assert default_season_key(friday) == ("weekday", 287)
    assert default_season_key(friday, weekend_days=(4, 5)) == ("weekend", 287)
    # In Makkah (UTC+3) that Friday 23:59 UTC is already Saturday 02:59.
    assert default_season_key(friday, tz=timezone(timedelta(hours=3))) == ("weekend", 35)


# ---------------------------------------------------------------- admission
def test_probability_assumes_uniform_availability_within_a_state() -> None:
    s1 = (1.0, 0.0, 0.0, 0.0, 0.0)
    s5 = (0.0, 0.0, 0.0, 0.0, 1.0)
    assert probability_unreserved_free(s5, capacity=100, reserved=0) == 1.0
    assert probability_unreserved_free(s1, capacity=10, reserved=0) == 0.5  # free ~ U[0, 2)
    # S5 with C = 100: free ~ U[80, 100]; need free >= 91: 9/20.
    assert probability_unreserved_free(s5, capacity=100, reserved=90) == pytest.approx(0.45)
    assert probability_unreserved_free(s5, capacity=100, reserved=100) == 0.0
    mixed = (0.5, 0.0, 0.0, 0.0, 0.5)
    assert probability_unreserved_free(mixed, capacity=10, reserved=0) == pytest.approx(0.75)
    with pytest.raises(ValueError):
        probability_unreserved_free((0.5, 0.5, 0.5, 0.0, 0.0), capacity=10, reserved=0)


def test_admission_rules() -> None:
    s5 = (0.0, 0.0, 0.0, 0.0, 1.0)
    now = 1_000_000.0
    early = admit_reservation(now, now + 3600, s5, capacity=100, reserved_overlapping=0)
    assert not early.admitted and early.reason.startswith("lead") and early.probability == 1.0
    ok = admit_reservation(now, now + 3 * 3600, s5, capacity=100, reserved_overlapping=0)
    assert ok.admitted and ok.probability == 1.0
    crowded = admit_reservation(now, now + 4 * 3600, s5, capacity=100, reserved_overlapping=90)
    assert not crowded.admitted and crowded.reason.startswith("availability")
    assert crowded.probability == pytest.approx(0.45)
    lenient = admit_reservation(now, now + 4 * 3600, s5, 100, 90, theta=0.4)
    assert lenient.admitted
    short_lead = admit_reservation(now, now + 3600, s5, 100, 0, lead_s=1800)
    assert short_lead.admitted


# ---------------------------------------------------------------- quality
def test_brier_score_values() -> None:
    assert brier_score([(0, 0, 1.0, 0, 0)], [2]) == 0.0
    assert brier_score([(1.0, 0, 0, 0, 0)], [4]) == 2.0
    assert brier_score([(0.2,) * 5], [0]) == pytest.approx(0.8)
    assert persistence_brier_score([1, 1, 3], [1, 2, 3]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        brier_score([], [])
    with pytest.raises(ValueError):
        brier_score([(0.2,) * 5], [5])


def test_trained_model_beats_persistence_on_a_held_out_day() -> None:
    """A shift-change lot: availability swings 0.05 <-> 0.95 every 2 h, with noise.

    The pattern moves about two states per hour, so "stays as it is" is
    often wrong an hour ahead and the seasonal chain should know better.
    (With slow drift and heavy noise a first-order chain can lose to
    persistence, which is why the quality report exists.)
    """
    rng = random.Random(5)

    def ratio(ts: float) -> float:
        phase = (ts % (4 * 3600)) / (2 * 3600)  # 0..2
        base = 0.05 + 0.9 * (phase if phase <= 1 else 2 - phase)
        return min(1.0, max(0.0, base + rng.uniform(-0.03, 0.03)))

    start = datetime(2024, 1, 1, tzinfo=UTC).timestamp()  # Monday
    train = [(start + m * 60.0, ratio(start + m * 60.0)) for m in range(5 * 1440) if m // 1440 < 5]
    weekdays = [s for s in train if default_season_key(s[0])[0] == "weekday"]
    matrices = train_matrices(weekdays, _key, min_obs=5)
    test_day = start + 7 * 86400  # the next Monday
    forecasts, starts, outcomes = [], [], []
    for minute in range(0, 1440 - 60, 7):
        t = test_day + minute * 60
        s0 = state_of(ratio(t))
        forecasts.append(forecast(s0, matrices, _key, t, 3600.0))
        starts.append(s0)
        outcomes.append(state_of(ratio(t + 3600.0)))
    quality = evaluate_forecasts(forecasts, starts, outcomes)
    assert quality.brier < quality.persistence_brier
    assert quality.skill is not None and quality.skill > 0.1
