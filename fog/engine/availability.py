"""Availability estimation with a seasonal Markov chain (ALGORITHMS.md §3).

The availability ratio ``a = free / capacity`` is cut into five equal-width
states (index 0 is S1 = [0, 0.2) "highly occupied", index 4 is
S5 = [0.8, 1.0] "highly available"). The cloud trains one 5×5 transition
matrix per season key from per-minute history (`train_matrices`); the fog
chains them to forecast (`forecast`), admits reservations from the
forecast (`admit_reservation`) and reports its own quality against the
persistence baseline (`brier_score`, `evaluate_forecasts`).

States are 0-based indices everywhere in code; ``state_name`` gives the
spec's S1..S5 labels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import TypeVar, cast

__all__ = [
    "DEFAULT_LEAD_S",
    "DEFAULT_MIN_OBS",
    "DEFAULT_THETA",
    "N_STATES",
    "SAMPLE_PERIOD_S",
    "SLOT_S",
    "AdmissionResult",
    "Distribution",
    "ForecastQuality",
    "Matrix",
    "admit_reservation",
    "brier_score",
    "default_season_key",
    "evaluate_forecasts",
    "forecast",
    "identity_matrix",
    "persistence_brier_score",
    "persistence_forecast",
    "probability_unreserved_free",
    "state_name",
    "state_of",
    "state_range",
    "train_matrices",
]

N_STATES = 5
"""Number of equal-width availability states (§3)."""
SLOT_S = 300.0
"""Forecast step and season-slot width: 5 minutes (§3)."""
SAMPLE_PERIOD_S = 60.0
"""History is sampled every minute (§3)."""
DEFAULT_LEAD_S = 3 * 3600.0
"""Reservation lead rule (a): at least 3 h ahead (§3)."""
DEFAULT_THETA = 0.9
"""Reservation rule (b): admit when the probability is at least 0.9 (§3)."""
DEFAULT_MIN_OBS = 10
"""Observations a matrix row needs before it stops falling back.

Decision: the spec leaves the number to configuration; 10 keeps a row from
being dominated by its Laplace +1 prior (5 pseudo-counts).
"""

Matrix = tuple[tuple[float, ...], ...]
Distribution = tuple[float, ...]
K = TypeVar("K", bound=Hashable)


# ---------------------------------------------------------------- states
def state_of(ratio: float, n_states: int = N_STATES) -> int:
    """0-based state of an availability ratio; the top state includes 1.0."""
    if not 0.0 <= ratio <= 1.0:  # also refuses NaN
        raise ValueError(f"availability ratio must be within 0..1, got {ratio!r}")
    return min(int(ratio * n_states), n_states - 1)


def state_range(state: int, n_states: int = N_STATES) -> tuple[float, float]:
    """``(lo, hi)`` of a state's ratio range (``hi`` inclusive only for the top state)."""
    if not 0 <= state < n_states:
        raise ValueError(f"state must be within 0..{n_states - 1}, got {state!r}")
    return state / n_states, (state + 1) / n_states


def state_name(state: int) -> str:
    """The spec's label: index 0 is "S1"."""
    return f"S{state + 1}"


def identity_matrix(n_states: int = N_STATES) -> Matrix:
    """The persistence model: every state stays as it is."""
    return tuple(tuple(1.0 if i == j else 0.0 for j in range(n_states)) for i in range(n_states))


def persistence_forecast(state: int, n_states: int = N_STATES) -> Distribution:
    """``e_s``: all mass on the current state."""
    state_range(state, n_states)
    return tuple(1.0 if j == state else 0.0 for j in range(n_states))


# ---------------------------------------------------------------- forecast
def forecast(
    state: int,
    matrices_by_key: Mapping[K, Matrix],
    key_fn: Callable[[float], K],
    t: float,
    horizon_s: float,
    *,
    step_s: float = SLOT_S,
    fallback: Matrix | None = None,
) -> Distribution:
    """``p = e_s · T_k(t) · T_k(t+5m) · …`` over ⌈horizon/5 min⌉ windows.

    A key without a trained matrix uses ``fallback``, by default the
    identity: with no model the forecast is persistence. Horizon 0 gives
    ``e_s``.
    """
    if not horizon_s >= 0:
        raise ValueError(f"horizon_s must be >= 0, got {horizon_s!r}")
    if not step_s > 0:
        raise ValueError(f"step_s must be positive, got {step_s!r}")
    p = list(persistence_forecast(state))
    n = len(p)
    default = fallback if fallback is not None else identity_matrix(n)
    for window in range(math.ceil(horizon_s / step_s)):
        matrix = matrices_by_key.get(key_fn(t + window * step_s), default)
        if len(matrix) != n or any(len(row) != n for row in matrix):
            raise ValueError(f"transition matrices must be {n}x{n}")
        p = [sum(p[i] * matrix[i][j] for i in range(n)) for j in range(n)]
    return tuple(p)


# ---------------------------------------------------------------- training
def default_season_key(
    ts: float,
    holidays: Collection[date] = frozenset(),
    *,
    tz: tzinfo = UTC,
    weekend_days: Collection[int] = (5, 6),
    slot_s: float = SLOT_S,
) -> tuple[str, int]:
    """``(day type, slot of day)``: day type is "holiday", "weekend" or "weekday".

    ``ts`` is UNIX time; the date and slot are taken in ``tz`` (the lot's
    zone). ``weekend_days`` uses `date.weekday` numbering (Monday 0), so a
    Friday–Saturday weekend is ``(4, 5)``. A holiday wins over a weekend.
    """
    local = datetime.fromtimestamp(ts, tz)
    if local.date() in holidays:
        day_type = "holiday"
    elif local.weekday() in weekend_days:
        day_type = "weekend"
    else:
        day_type = "weekday"
    seconds = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    return day_type, int(seconds // slot_s)


def _slot_neighbours(key: Hashable, slots_per_day: int) -> tuple[Hashable, ...]:
    """Default neighbours of a ``(day type, slot)`` key: the slot before and after."""
    if isinstance(key, tuple) and len(key) == 2 and isinstance(key[1], int):
        day_type, slot = key
        return (day_type, (slot - 1) % slots_per_day), (day_type, (slot + 1) % slots_per_day)
    return ()


def _day_pool(key: Hashable) -> Hashable:
    """Default all-day pool of a ``(day type, slot)`` key: its day type."""
    if isinstance(key, tuple) and len(key) == 2:
        return cast(Hashable, key[0])
    return None


def train_matrices(
    samples: Iterable[tuple[float, float]],
    key_fn: Callable[[float], K],
    *,
    min_obs: int = DEFAULT_MIN_OBS,
    step_s: float = SLOT_S,
    sample_period_s: float = SAMPLE_PERIOD_S,
    neighbours: Callable[[K], Iterable[K]] | None = None,
    pool_key: Callable[[K], Hashable] | None = None,
    n_states: int = N_STATES,
) -> dict[K, Matrix]:
    """One row-stochastic matrix per season key, from ``(ts, ratio)`` samples.

    Pairs: a sample and the sample ``step_s`` later (both snapped to the
    ``sample_period_s`` grid by rounding; a later duplicate in the same
    minute replaces the earlier). The pair counts under the key of the
    earlier sample. Each row gets +1 per cell (Laplace) and is normalised.

    Fallback for a row with fewer than ``min_obs`` observed transitions:

    1. *neighbouring slots*: the row's counts pooled with the same row of
       ``neighbours(key)``; by default, for ``(day type, slot)`` keys, the
       slot just before and just after in the same day type (±5 min,
       wrapping at midnight);
    2. if still short, the *all-day matrix*: the row pooled over every key
       with the same ``pool_key(key)``; by default all slots of the same day
       type. This level is used whatever its count (with no data at all the
       Laplace prior makes the row uniform).

    Decision: matrices are produced only for keys with at least one observed
    pair; `forecast` treats any other key as "no model" (persistence).
    Custom keys that are not ``(day type, slot)`` tuples need their own
    ``neighbours`` and ``pool_key``; without them those levels are skipped
    (level 2 then pools every key).
    """
    if min_obs < 0:
        raise ValueError(f"min_obs must be >= 0, got {min_obs!r}")
    if not step_s > 0 or not sample_period_s > 0:
        raise ValueError("step_s and sample_period_s must be positive")
    lag = round(step_s / sample_period_s)
    if lag < 1:
        raise ValueError("step_s must be at least one sample period")
    slots_per_day = max(1, round(86400.0 / step_s))

    by_tick: dict[int, tuple[float, int]] = {}
    for ts, ratio in samples:
        by_tick[round(ts / sample_period_s)] = (ts, state_of(ratio, n_states))

    counts: dict[K, list[list[int]]] = {}
    for tick, (ts, s0) in by_tick.items():
        later = by_tick.get(tick + lag)
        if later is None:
            continue
        key = key_fn(ts)
        table = counts.get(key)
        if table is None:
            table = counts[key] = [[0] * n_states for _ in range(n_states)]
        table[s0][later[1]] += 1

    def neighbour_keys(key: K) -> Iterable[Hashable]:
        if neighbours is not None:
            return neighbours(key)
        return _slot_neighbours(key, slots_per_day)

    def pool_of(key: K) -> Hashable:
        return pool_key(key) if pool_key is not None else _day_pool(key)

    pooled: dict[Hashable, list[list[int]]] = {}
    for key, table in counts.items():
        into = pooled.setdefault(pool_of(key), [[0] * n_states for _ in range(n_states)])
        for i in range(n_states):
            for j in range(n_states):
                into[i][j] += table[i][j]

    empty = [0] * n_states
    counts_by_any = cast("dict[Hashable, list[list[int]]]", counts)
    matrices: dict[K, Matrix] = {}
    for key, table in counts.items():
        rows = []
        for i in range(n_states):
            row = table[i]
            if sum(row) < min_obs:
                widened = list(row)
                for other in neighbour_keys(key):
                    other_table = counts_by_any.get(other)
                    other_row = other_table[i] if other_table is not None else empty
                    widened = [x + y for x, y in zip(widened, other_row, strict=True)]
                row = widened if sum(widened) >= min_obs else pooled[pool_of(key)][i]
            total = sum(row) + n_states
            rows.append(tuple((x + 1) / total for x in row))
        matrices[key] = tuple(rows)
    return matrices


# ---------------------------------------------------------------- admission
@dataclass(frozen=True, slots=True)
class AdmissionResult:
    """Whether a reservation is admitted, the probability behind it, and why."""

    admitted: bool
    probability: float
    reason: str


def probability_unreserved_free(p: Sequence[float], capacity: int, reserved: int) -> float:
    """P(free − reserved ≥ 1) at the forecast time.

    Within state *i* the free count is taken as uniformly distributed over
    ``[lo_i·C, hi_i·C)`` (continuous). The fraction of that interval with
    ``free ≥ reserved + 1`` is ``clamp((hi_i·C − (reserved + 1)) /
    ((hi_i − lo_i)·C), 0, 1)``, and the answer is ``Σ p_i·fraction_i``.
    Example: C = 10, nothing reserved, all mass in S1 = [0, 2) free spots:
    half of that range has at least one free spot, so 0.5.
    """
    _check_distribution(p)
    if capacity <= 0:
        raise ValueError(f"capacity must be positive, got {capacity!r}")
    if reserved < 0:
        raise ValueError(f"reserved must be >= 0, got {reserved!r}")
    n = len(p)
    need = reserved + 1
    total = 0.0
    for i, mass in enumerate(p):
        lo, hi = state_range(i, n)
        lo_free, hi_free = lo * capacity, hi * capacity
        fraction = (hi_free - need) / (hi_free - lo_free)
        total += mass * min(1.0, max(0.0, fraction))
    return total


def admit_reservation(
    now: float,
    t1: float,
    p: Sequence[float],
    capacity: int,
    reserved_overlapping: int,
    *,
    lead_s: float = DEFAULT_LEAD_S,
    theta: float = DEFAULT_THETA,
) -> AdmissionResult:
    """§3 admission of a reservation starting at ``t1``.

    ``p`` is the forecast distribution at ``t1``; ``reserved_overlapping``
    counts reservations already admitted whose interval contains ``t1``.
    Rule (a): ``t1 ≥ now + lead_s``. Rule (b):
    `probability_unreserved_free` ≥ ``theta``. The probability is reported
    even when rule (a) already refuses.
    """
    probability = probability_unreserved_free(p, capacity, reserved_overlapping)
    if t1 < now + lead_s:
        return AdmissionResult(
            False,
            probability,
            f"lead: start is {t1 - now:.0f} s ahead, at least {lead_s:.0f} s required",
        )
    if probability < theta:
        return AdmissionResult(
            False,
            probability,
            f"availability: P(unreserved spot free) = {probability:.3f} < theta {theta}",
        )
    return AdmissionResult(
        True, probability, f"admitted: P(unreserved spot free) = {probability:.3f} >= theta {theta}"
    )


# ---------------------------------------------------------------- quality
def _check_distribution(p: Sequence[float]) -> None:
    if not p:
        raise ValueError("a distribution needs at least one state")
    if any(not x >= 0.0 for x in p) or abs(sum(p) - 1.0) > 1e-6:
        raise ValueError(f"not a probability distribution: {list(p)!r}")


def brier_score(forecasts: Sequence[Sequence[float]], outcomes: Sequence[int]) -> float:
    """Mean multi-category Brier score ``Σ_j (p_j − o_j)²``: 0 is perfect, 2 is worst."""
    if len(forecasts) != len(outcomes):
        raise ValueError(f"{len(forecasts)} forecasts but {len(outcomes)} outcomes")
    if not forecasts:
        raise ValueError("no forecasts to score")
    total = 0.0
    for p, outcome in zip(forecasts, outcomes, strict=True):
        if not 0 <= outcome < len(p):
            raise ValueError(f"outcome state {outcome!r} outside 0..{len(p) - 1}")
        total += sum((x - (1.0 if j == outcome else 0.0)) ** 2 for j, x in enumerate(p))
    return total / len(forecasts)


def persistence_brier_score(
    start_states: Sequence[int], outcomes: Sequence[int], n_states: int = N_STATES
) -> float:
    """Brier score of "the state stays as it is": 0 per hit, 2 per miss."""
    return brier_score([persistence_forecast(s, n_states) for s in start_states], outcomes)


@dataclass(frozen=True, slots=True)
class ForecastQuality:
    """What an operator needs to judge the model: its score, the baseline's, the skill."""

    brier: float
    persistence_brier: float
    skill: float | None  # 1 − brier/persistence; None when persistence is perfect


def evaluate_forecasts(
    forecasts: Sequence[Sequence[float]],
    start_states: Sequence[int],
    outcomes: Sequence[int],
) -> ForecastQuality:
    """Score held-out forecasts against persistence from the same start states."""
    if len(start_states) != len(outcomes):
        raise ValueError(f"{len(start_states)} start states but {len(outcomes)} outcomes")
    n_states = len(forecasts[0]) if forecasts else N_STATES
    model = brier_score(forecasts, outcomes)
    baseline = persistence_brier_score(start_states, outcomes, n_states)
    skill = None if baseline == 0.0 else 1.0 - model / baseline
    return ForecastQuality(model, baseline, skill)
