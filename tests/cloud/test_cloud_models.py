"""Markov training from stored history, the quality report, and the push to the fog over the stream."""

from __future__ import annotations

import asyncio
import math
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud.cli import main
from cloud.config import CloudConfig, parse_config
from cloud.queries import Operations, QueryError
from cloud.service import ServerHandle
from cloud.store import CloudStore
from proto import parking_pb2 as pb

DAY_MS = 86_400_000
DAYS = 14
START_MS = 1_714_521_600_000  # 2024-05-01T00:00:00Z, a Wednesday


def _free_ratio(minute_of_day: int, weekend: bool, rng: random.Random) -> float:
    """A lot that fills in the morning and empties in the evening (quieter at weekends), with noise."""
    busy = max(0.0, math.sin(math.pi * (minute_of_day - 420) / 720)) if 420 <= minute_of_day <= 1140 else 0.0
    base = 0.95 - (0.5 if weekend else 0.85) * busy
    return min(1.0, max(0.0, base + rng.gauss(0, 0.04)))


@pytest.fixture(scope="module")
def history_file(tmp_path_factory: pytest.TempPathFactory, kit: Any) -> Path:
    """Two weeks of per-minute summaries for lot-a (capacity 50), built once per module."""
    Kit = kit  # noqa: N806 - the helper class, from a session-scoped fixture (never `import conftest`)

    path = tmp_path_factory.mktemp("models") / "history.db"
    rng = random.Random(7)
    records = []
    for i in range(DAYS * 1440):
        weekend = ((i // 1440) + 2) % 7 >= 5  # day 0 is a Wednesday
        free = round(50 * _free_ratio(i % 1440, weekend, rng))
        records.append(pb.Record(seq=i + 1, summary=pb.LotSummary(
            lot_id=Kit.LOT_A, window_start_ms=START_MS + i * 60_000, window_s=60, capacity=50, occupied=50 - free,
            free=free, concentration=(50 - free) / 50)))
    store = CloudStore(path, synchronous="OFF")
    for start in range(0, len(records), 5000):
        store.ingest_batch(Kit.batch(Kit.FOG_A, records[start:start + 5000]))
    store.close()
    return path


@pytest.fixture
def history(history_file: Path, db_path: Path) -> Iterator[CloudStore]:
    """A copy of the two-week store at this test's db_path (list it before fixtures that open db_path)."""
    shutil.copyfile(history_file, db_path)
    store = CloudStore(db_path)
    yield store
    store.close()


def _ops(store: CloudStore, config: CloudConfig, now_ms: int) -> Operations:
    return Operations(store, store, config, clock=lambda: now_ms)


@pytest.fixture
def model_config(config_dict: dict[str, Any]) -> CloudConfig:
    """Three held-out days; every matrix row keeps its own slot's counts (min_obs = 0: no fallback)."""
    return parse_config({**config_dict, "models": {"held_out_days": 3, "history": "21d", "horizon": "1h",
                                                   "min_obs": 0}}, "tests", environ={})


def test_the_report_says_whether_the_model_beats_persistence(
    history: CloudStore, config_dict: dict[str, Any], model_config: CloudConfig, kit: Any
) -> None:
    now = START_MS + DAYS * DAY_MS
    # With the default min_obs = 10 and only eleven training days, rows short of observations fall back to
    # pooled counts and the model loses to persistence at 1 h: the report must say so, not hide it.
    default = parse_config({**config_dict, "models": {"held_out_days": 3, "history": "21d"}}, "tests", environ={})
    (weak,) = _ops(history, default, now).train(kit.LOT_A).rows
    assert weak["brier"] > weak["brier_persistence"] and weak["skill"] < 0 and weak["helps"] is False
    # Rows that keep their own slot's counts (no fallback) learn the daily drift and beat persistence clearly.
    report = _ops(history, model_config, now).train(kit.LOT_A)
    (row,) = report.rows
    assert row["samples"] == DAYS * 1440 and row["held_out_from"] == "2024-05-12"
    assert row["evaluated_forecasts"] == 3 * 288 - 12  # every 5-minute point whose +1 h outcome is stored
    assert row["brier"] < row["brier_persistence"] and row["skill"] > 0.3 and row["helps"] is True
    assert row["day_types"] == ["weekday", "weekend"] and row["season_keys"] == 2 * 288
    matrices = history.models(kit.LOT_A)
    assert len(matrices) == 576 and "weekday/0835" in matrices
    for matrix in matrices.values():
        assert len(matrix) == 5 and all(math.isclose(sum(r), 1.0) for r in matrix)
    assert history.model_reports(kit.LOT_A)[0]["brier"] == pytest.approx(report.rows[0]["brier"], abs=1e-4)


def test_lots_without_history_are_reported_not_fatal(history: CloudStore, model_config: CloudConfig, kit: Any) -> None:
    ops = _ops(history, model_config, START_MS + DAYS * DAY_MS)
    with pytest.raises(QueryError, match="no per-minute summaries") as caught:
        ops.train(kit.LOT_B)
    assert caught.value.where == "lot"
    with pytest.raises(QueryError, match="all of them held out"):
        _ops(history, model_config, START_MS + 2 * DAY_MS).train(kit.LOT_A)
    with pytest.raises(QueryError, match="unknown lot"):
        ops.train("nowhere")


async def test_models_reach_the_fog_on_its_stream(
    history: CloudStore, server: ServerHandle, fog_a: Any, model_config: CloudConfig, kit: Any
) -> None:
    ops = _ops(history, model_config, START_MS + DAYS * DAY_MS)
    ops.train(kit.LOT_A, push=True)
    stream = fog_a.subscribe(0)
    updates = [await asyncio.wait_for(stream.read(), 5) for _ in range(576)]
    stream.cancel()
    assert [u.version for u in updates] == list(range(1, 577))
    model = next(u.model for u in updates if u.model.season_key == "weekday/0835")
    assert model.lot_id == kit.LOT_A and len(model.matrix) == 25
    assert model.matrix == pytest.approx([x for row in history.models(kit.LOT_A)["weekday/0835"] for x in row])
    assert 0 < model.brier < model.brier_persistence
    # fog-b serves another lot: nothing for it.
    assert history.updates_after(kit.FOG_B, 0) == []
    with pytest.raises(QueryError, match="train it first"):
        ops.push(kit.LOT_B)


def test_cli_model_train_report_and_push(
    history: CloudStore, db_path: Path, tmp_path: Path, kit: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    history.close()
    config = tmp_path / "cloud.toml"
    config.write_text(f'[fogs.{kit.FOG_A}]\ntoken = "{kit.TOKEN_A}"\nlots = ["{kit.LOT_A}"]\n'
                      '[models]\nheld_out_days = 3\nhistory = "3650d"\nmin_obs = 0\n')
    args = ["--config", str(config), "--db", str(db_path)]
    assert main(["model", "train", "--lot", kit.LOT_A, *args]) == 0
    out = capsys.readouterr().out
    assert "brier_persistence" in out and "skill = 1 - brier / persistence" in out
    assert main(["model", "report", *args, "--format", "json"]) == 0
    assert '"helps": true' in capsys.readouterr().out
    assert main(["model", "push", "--lot", kit.LOT_A, *args]) == 0
    assert "576 season keys queued for fog fog-a (versions 1..576)" in capsys.readouterr().out
    assert main(["model", "push", *args]) == 2
    assert "--lot" in capsys.readouterr().err


def test_hijri_calendar_trains_ramadan_keys(store: CloudStore, config_dict: dict[str, Any], kit: Any) -> None:
    start = 1_710_028_800_000  # 2024-03-10T00:00:00Z: Sha'ban 29, the day before Ramadan 1445 (tabular)
    records = [pb.Record(seq=i + 1, summary=pb.LotSummary(
        lot_id=kit.LOT_A, window_start_ms=start + i * 60_000, window_s=60, capacity=10, occupied=i % 10,
        free=10 - i % 10)) for i in range(3 * 1440)]
    store.ingest_batch(kit.batch(kit.FOG_A, records))
    config = parse_config({**config_dict, "calendar": {"kind": "hijri", "timezone": "UTC"},
                           "models": {"held_out_days": 1, "history": "30d"}}, "tests", environ={})
    rows = {r["lot_id"]: r for r in _ops(store, config, start + 3 * DAY_MS).train().rows}  # every lot
    row = rows[kit.LOT_A]
    assert row["day_types"] == ["ramadan", "weekday"] and row["calendar"] == "hijri"
    assert "no per-minute summaries" in rows[kit.LOT_B]["error"]  # reported, not fatal to the others
    assert any(key.startswith("ramadan/") for key in store.models(kit.LOT_A))
