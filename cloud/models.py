"""Markov availability models trained from stored history, with their quality report (ALGORITHMS.md §3).

Pipeline per lot: per-minute summaries from the history backend (60 s buckets,
so SQLite and InfluxDB feed the same samples) → availability ratio
``free / capacity`` per minute → `fog.engine.availability.train_matrices`
keyed by the configured season calendar → matrices stored and, on request,
queued for the lot's fog as ``CloudUpdate.model`` messages.

Quality: the newest ``held_out_days`` local days are kept out of a first
training run; that model forecasts each held-out 5-minute point ``horizon``
ahead and is scored with the Brier score against persistence ("the state stays
as it is") from the same start states (`evaluate_forecasts`). The model that
is stored and pushed is then retrained on every day, held-out ones included:
the report says how well the method does on days it has not seen, and the
fog gets the model with the most data. ``skill`` > 0 means the model beats
persistence; an operator should not rely on a lot whose skill is ≤ 0.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cloud.calendar import SeasonKey, calendar_from, key_text, season_key_fn
from cloud.config import CloudConfig
from cloud.history import HistoryStore
from cloud.store import CloudStore
from fog.engine.availability import (
    SLOT_S,
    Matrix,
    evaluate_forecasts,
    forecast,
    state_of,
    train_matrices,
)
from proto import parking_pb2

MINUTE_MS = 60_000


class ModelError(ValueError):
    """Training cannot run for this lot (no or too little history); the message says what is missing."""


def lot_timezone(config: CloudConfig, lot_id: str) -> str:
    """The lot's own zone if configured, else the calendar's."""
    place = config.lots.get(lot_id)
    return place.timezone if place and place.timezone else config.calendar.timezone


def availability_samples(history: HistoryStore, lot_id: str, since_ms: int, until_ms: int) -> list[tuple[float, float]]:
    """``(Unix s, free / capacity)`` per stored minute of the whole lot, oldest first."""
    samples = []
    for bucket in history.lot_summaries(lot_id, since_ms, until_ms, 60):
        capacity = bucket["capacity"]
        if capacity > 0:
            ratio = min(1.0, max(0.0, bucket["mean_free"] / capacity))
            samples.append((bucket["bucket_start_ms"] / 1000, ratio))
    return samples


def _score(
    matrices: dict[SeasonKey, Matrix], key_fn: Any, held_out: list[tuple[float, float]], horizon_s: int
) -> tuple[int, dict[str, Any]]:
    """Forecast each held-out 5-minute point ``horizon_s`` ahead; Brier against persistence."""
    by_minute = {round(ts / 60): ratio for ts, ratio in held_out}
    forecasts, starts, outcomes = [], [], []
    lag = horizon_s // 60
    for ts, ratio in held_out:
        minute = round(ts / 60)
        if minute % round(SLOT_S / 60) or minute + lag not in by_minute:
            continue
        start = state_of(ratio)
        forecasts.append(forecast(start, matrices, key_fn, ts, horizon_s))
        starts.append(start)
        outcomes.append(state_of(by_minute[minute + lag]))
    if not forecasts:
        return 0, {"brier": None, "brier_persistence": None, "skill": None}
    quality = evaluate_forecasts(forecasts, starts, outcomes)
    return len(forecasts), {"brier": quality.brier, "brier_persistence": quality.persistence_brier,
                            "skill": quality.skill}


def train_lot(
    store: CloudStore, history: HistoryStore, config: CloudConfig, lot_id: str, now_ms: int
) -> tuple[dict[str, Matrix], dict[str, Any]]:
    """Train, score and store one lot's models; returns (matrices by season-key text, report)."""
    settings = config.models
    until_ms = now_ms // MINUTE_MS * MINUTE_MS
    since_ms = until_ms - settings.history_s * 1000
    samples = availability_samples(history, lot_id, since_ms, until_ms)
    if not samples:
        raise ModelError(f"lot {lot_id!r}: no per-minute summaries between "
                         f"{datetime.fromtimestamp(since_ms / 1000):%Y-%m-%d} and now; nothing to train on")
    timezone = lot_timezone(config, lot_id)
    tz = ZoneInfo(timezone)
    key_fn = season_key_fn(calendar_from(config.calendar), timezone)
    last_day = datetime.fromtimestamp(samples[-1][0], tz).date()
    first_held_out = last_day - timedelta(days=settings.held_out_days - 1)
    train = [s for s in samples if datetime.fromtimestamp(s[0], tz).date() < first_held_out]
    held_out = [s for s in samples if datetime.fromtimestamp(s[0], tz).date() >= first_held_out]
    if not train:
        days = (last_day - datetime.fromtimestamp(samples[0][0], tz).date()).days + 1
        raise ModelError(f"lot {lot_id!r}: {days} day(s) of history, all of them held out "
                         f"(held_out_days = {settings.held_out_days}); need more history or fewer held-out days")
    scored_on = train_matrices(train, key_fn, min_obs=settings.min_obs)
    evaluated, quality = _score(scored_on, key_fn, held_out, settings.horizon_s)
    matrices = train_matrices(samples, key_fn, min_obs=settings.min_obs)
    by_text = {key_text(key): matrix for key, matrix in sorted(matrices.items())}
    report: dict[str, Any] = {
        "lot_id": lot_id, "trained_ms": now_ms, "calendar": config.calendar.kind, "timezone": timezone,
        "history_from_ms": int(samples[0][0] * 1000), "history_until_ms": int(samples[-1][0] * 1000) + MINUTE_MS,
        "samples": len(samples), "training_samples": len(train), "held_out_samples": len(held_out),
        "held_out_from": first_held_out.isoformat(), "held_out_days": settings.held_out_days,
        "horizon_s": settings.horizon_s, "evaluated_forecasts": evaluated, **quality,
        "helps": quality["skill"] is not None and quality["skill"] > 0,
        "season_keys": len(by_text), "day_types": sorted({key[0] for key in matrices}),
        "min_obs": settings.min_obs,
    }
    store.save_models(lot_id, by_text, report, now_ms)
    return by_text, report


def model_updates(lot_id: str, matrices: dict[str, Any], report: dict[str, Any]) -> list[parking_pb2.CloudUpdate]:
    """One CloudUpdate.model per season key (row-major 5×5), carrying the lot's quality figures."""
    brier, persistence = report.get("brier"), report.get("brier_persistence")
    return [
        parking_pb2.CloudUpdate(model=parking_pb2.MarkovModel(
            lot_id=lot_id, season_key=key, matrix=[x for row in matrix for x in row],
            trained_ms=int(report["trained_ms"]),
            brier=float("nan") if brier is None else brier,
            brier_persistence=float("nan") if persistence is None else persistence,
        ))
        for key, matrix in sorted(matrices.items())
    ]


def push_models(store: CloudStore, config: CloudConfig, lot_id: str) -> dict[str, Any]:
    """Queue the lot's stored models for every fog serving it; says how many went to whom."""
    matrices = store.models(lot_id)
    reports = store.model_reports(lot_id)
    if not matrices or not reports:
        raise ModelError(f"lot {lot_id!r}: no trained model to push; train it first")
    fogs = config.fogs_for_lot(lot_id)
    if not fogs:
        raise ModelError(f"lot {lot_id!r}: no registered fog serves this lot; nothing to push to")
    updates = model_updates(lot_id, matrices, reports[0])
    versions = {fog: store.enqueue_updates(fog, updates) for fog in fogs}
    return {"lot_id": lot_id, "season_keys": len(updates),
            "fogs": {fog: {"first_version": v[0], "last_version": v[-1]} for fog, v in versions.items()}}
