"""Lot and tariff files from the cloud's stream: validated, applied live between two cycles, refused
with nothing changed, and still active after a restart (fog/cloud_config.py, FogDaemon.switch_lot)."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from pathlib import Path

import pytest

from fog import cloud_config
from fog.config import DEMO_FOG_CONFIG, EXAMPLES, ConfigError, load_fog_config, load_lot
from proto import frame as fr
from proto import parking_pb2 as pb

DEMO_LOT = (EXAMPLES / "demo-lot.toml").read_text()
NEW_SPOT = """
[[spots]]
id = "C01"
zone = "C"
kind = "normal"
x_m = 40.0
y_m = 0.0

[[graph.edges]]
from = "JA0"
to = "C01"
length_m = 40.0

[[graph.edges]]
from = "C01"
to = "JA13"
length_m = 8.0
"""
FIXED_TARIFF = """
[tariff]
plan = "fixed"
rate_per_hour = 4.5
currency = "EUR"
"""


def _lot_with(extra: str = NEW_SPOT, tariff: str | None = None) -> str:
    text = DEMO_LOT + extra
    if tariff is not None:  # replace the demo's [tariff] table (it ends at the next table)
        start = text.index("[tariff]")
        end = text.index("\n[", start + 1)
        text = text[:start] + tariff.strip() + "\n" + text[end:]
    return text


def _without_spot(spot: str) -> str:
    start = DEMO_LOT.index(f'[[spots]]\nid = "{spot}"')
    end = DEMO_LOT.index("\n[", start + 1)
    text = DEMO_LOT[:start] + DEMO_LOT[end + 1:]
    # and the lanes to it
    blocks = text.split("\n[[graph.edges]]\n")
    kept = [b for b in blocks if f'"{spot}"' not in b]
    return "\n[[graph.edges]]\n".join(kept)


# ------------------------------------------------------------------ staging and checks (no daemon)


def test_stage_validates_like_a_local_file_and_removes_what_it_refuses(tmp_path: Path) -> None:
    demo = load_lot(EXAMPLES / "demo-lot.toml")
    staged = cloud_config.stage(tmp_path, "lot", 4, _lot_with(), demo)
    assert staged.path == tmp_path / "cloud-config" / "lot-v4.toml" and staged.path.exists()
    assert staged.lot.capacity == demo.capacity + 1 and "C01" in staged.lot.spot_ids()

    with pytest.raises(ConfigError) as err:
        cloud_config.stage(tmp_path, "lot", 5, DEMO_LOT.replace('x_m = 2.5', 'x_m = "far"', 1), demo)
    assert "lot-v5.toml" in str(err.value) and err.value.where == "spots[0].x_m"
    assert not (tmp_path / "cloud-config" / "lot-v5.toml").exists()

    with pytest.raises(ConfigError) as err:
        cloud_config.stage(tmp_path, "lot", 6, DEMO_LOT.replace('id = "demo"', 'id = "other"', 1), demo)
    assert err.value.where == "lot.id" and "'other'" in err.value.problem

    with pytest.raises(ConfigError) as err:
        cloud_config.stage(tmp_path, "lot", 7, "[lot\nid=", demo)
    assert "not valid TOML" in str(err.value) and "line 1" in str(err.value)


def test_a_tariff_is_the_lot_files_tariff_table_with_or_without_its_header(tmp_path: Path) -> None:
    demo = load_lot(EXAMPLES / "demo-lot.toml")
    with_header = cloud_config.stage(tmp_path, "tariff", 1, FIXED_TARIFF, demo)
    bare = cloud_config.stage(tmp_path, "tariff", 2, FIXED_TARIFF.replace("[tariff]", ""), demo)
    assert with_header.lot.tariff == bare.lot.tariff == {"plan": "fixed", "rate_per_hour": 4.5, "currency": "EUR"}
    assert with_header.lot.spots == demo.spots and with_header.lot.tariff != demo.tariff
    with pytest.raises(ConfigError) as err:
        cloud_config.stage(tmp_path, "tariff", 3, FIXED_TARIFF.replace("rate_per_hour", "rate_per_hr"), demo)
    assert "rate_per_hr" in str(err.value) and "tariff-v3.toml" in str(err.value)


def test_a_lot_that_would_orphan_a_node_or_a_held_spot_is_refused(tmp_path: Path) -> None:
    cfg = load_fog_config(DEMO_FOG_CONFIG, tmp_path)
    smaller = cloud_config.stage(tmp_path, "lot", 1, _without_spot("B12"), cfg.lot).lot
    assert "B12" not in smaller.spot_ids()
    with pytest.raises(ConfigError) as err:
        cloud_config.check_replacement(cfg.lot, smaller, cfg.nodes, [], tmp_path / "x.toml")
    assert "'B12'" in err.value.problem and "retire the node first" in err.value.problem
    unwatched = {k: v for k, v in cfg.nodes.items() if v.spot != "B12"}
    cloud_config.check_replacement(cfg.lot, smaller, unwatched, [], tmp_path / "x.toml")  # no node, no hold: fine


def test_record_keeps_only_what_is_active_and_a_new_lot_drops_the_cloud_tariff(tmp_path: Path) -> None:
    demo = load_lot(EXAMPLES / "demo-lot.toml")
    t1 = cloud_config.stage(tmp_path, "tariff", 1, FIXED_TARIFF, demo)
    assert cloud_config.describe(cloud_config.record(tmp_path, t1)) == "cloud tariff v1"
    lot2 = cloud_config.stage(tmp_path, "lot", 2, _lot_with(), demo)
    active = cloud_config.record(tmp_path, lot2)
    assert active == {"lot": {"version": 2, "file": "lot-v2.toml"}}
    cloud_config.prune(tmp_path)
    assert sorted(p.name for p in (tmp_path / "cloud-config").iterdir()) == ["active.json", "lot-v2.toml"]
    t3 = cloud_config.stage(tmp_path, "tariff", 3, FIXED_TARIFF, lot2.lot)
    assert cloud_config.describe(cloud_config.record(tmp_path, t3)) == "cloud lot v2 + cloud tariff v3"
    lot, origin, problem = cloud_config.overlay(demo, tmp_path)
    assert (origin, problem) == ("cloud lot v2 + cloud tariff v3", "")
    assert lot.capacity == demo.capacity + 1 and lot.tariff["plan"] == "fixed"


def test_a_stored_cloud_config_that_no_longer_loads_is_ignored_and_said(tmp_path: Path) -> None:
    demo = load_lot(EXAMPLES / "demo-lot.toml")
    cloud_config.record(tmp_path, cloud_config.stage(tmp_path, "lot", 1, _lot_with(), demo))
    (tmp_path / "cloud-config" / "lot-v1.toml").write_text("[lot]\n")  # damaged behind the fog's back
    lot, origin, problem = cloud_config.overlay(demo, tmp_path)
    assert lot is demo and origin == "lot file"
    assert problem.startswith("stored cloud configuration ignored") and "lot-v1.toml" in problem
    (tmp_path / "cloud-config" / "active.json").write_text("{not json")
    assert "unreadable" in cloud_config.overlay(demo, tmp_path)[2]


# ------------------------------------------------------------------ live, in a running daemon


def _occ(fog, node_id: int, fcnt: int, state: int) -> bytes:  # type: ignore[no-untyped-def]
    key = fog.daemon.cfg.nodes[node_id].key
    return fr.encode_frame(fr.OCCUPANCY, node_id, fcnt, fr.occupancy_payload(state, 50, 120, 3000, 21.0), key)


async def _json(fog, path: str):  # type: ignore[no-untyped-def]
    status, body = await fog.get(path)
    assert status == 200, body
    return body


async def test_a_cloud_lot_applies_between_two_cycles_while_frames_flow(fog, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    daemon = fog.daemon
    node_ids = sorted(daemon.cfg.nodes)[:6]
    fcnt = 0

    async def sender(stop: asyncio.Event) -> int:
        nonlocal fcnt
        sent = 0
        while not stop.is_set():
            fcnt += 1
            for i, node in enumerate(node_ids):
                fog.gateway.send_rx(_occ(fog, node, fcnt, fr.OCCUPIED if (fcnt + i) % 2 else fr.EMPTY))
                sent += 1
            await asyncio.sleep(0.02)
        return sent

    stop = asyncio.Event()
    task = asyncio.create_task(sender(stop))
    await asyncio.sleep(0.5)
    before = await _json(fog, "/v1/lots/demo")
    applied = await daemon.apply_cloud_update(pb.CloudUpdate(version=1, lot_config_toml=_lot_with(
        tariff=FIXED_TARIFF)))
    await asyncio.sleep(0.5)
    stop.set()
    sent = await task
    assert applied and daemon.lot_switches == 1

    lot = await _json(fog, "/v1/lots/demo")
    assert lot["capacity"] == before["capacity"] + 1 == 25
    spots = await _json(fog, "/v1/lots/demo/spots")
    assert "C01" in {s["spot"] for s in spots}
    quote = await _json(fog, "/v1/lots/demo/quote?hours=2")
    assert quote["total"] == 9.0 and quote["currency"] == "EUR"
    assert (await _json(fog, "/healthz"))["status"] == "ok"
    stats = await _json(fog, "/v1/stats")
    assert stats["lot_config"]["origin"] == "cloud lot v1" and stats["lot_config"]["capacity"] == 25

    # Every frame sent around the switch was taken: each node's last counter is the store's.
    async def all_in() -> bool:
        return daemon.engine.queue == type(daemon.engine.queue)() and not daemon.engine.inflight
    await fog.wait_for(all_in, 5)
    db = sqlite3.connect(daemon.cfg.data_dir / "demo-fog.db")
    counters = dict(db.execute("SELECT node_id, last_fcnt FROM node_counters"))
    assert all(counters[n] == fcnt for n in node_ids), (counters, fcnt, sent)
    refused = {k: v for k, v in daemon.engine.refusals.items() if v}
    assert refused == {}, refused
    metrics = (await fog.get("/metrics"))[1]
    assert 'fogpark_cloud_configs_total{kind="lot",outcome="applied"} 1.0' in metrics


async def test_a_refused_cloud_lot_changes_nothing_is_alerted_and_cleared_by_the_next(fog) -> None:  # type: ignore[no-untyped-def]
    daemon = fog.daemon
    lot_before, engine_before = daemon.cfg.lot, daemon.engine.lot_engine
    ok = await daemon.apply_cloud_update(pb.CloudUpdate(version=1, lot_config_toml=_without_spot("B12")))
    assert ok  # refused for good: the stream moves on
    assert daemon.cfg.lot is lot_before and daemon.engine.lot_engine is engine_before
    assert not (daemon.cfg.data_dir / "cloud-config" / "lot-v1.toml").exists()
    rows = await _json(fog, "/v1/lots/demo/alerts")
    refused = [a for a in rows if a["kind"] == "config_refused"]
    assert len(refused) == 1 and "'B12'" in refused[0]["detail"] and not refused[0]["cleared_ms"]
    assert daemon.metrics.cloud_configs.labels("lot", "refused")._value.get() == 1

    assert await daemon.apply_cloud_update(pb.CloudUpdate(version=2, lot_config_toml=_lot_with()))
    rows = await _json(fog, "/v1/lots/demo/alerts")
    cleared = [a for a in rows if a["kind"] == "config_refused"]
    assert len(cleared) == 1 and cleared[0]["cleared_ms"] and "lot v2 applied" in cleared[0]["detail"]
    outbox = sqlite3.connect(daemon.cfg.data_dir / "demo-fog.db").execute(
        "SELECT count(*) FROM outbox WHERE kind = 'alert'").fetchone()[0]
    assert outbox >= 2  # raised and cleared both go to the cloud


async def test_the_cloud_config_survives_a_restart_and_sighup_keeps_it(fog, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    daemon = fog.daemon
    assert await daemon.apply_cloud_update(pb.CloudUpdate(version=3, lot_config_toml=_lot_with()))
    assert await daemon.apply_cloud_update(pb.CloudUpdate(version=4, tariff_toml=FIXED_TARIFF))
    assert daemon.cfg.lot_origin == "cloud lot v3 + cloud tariff v4"
    assert daemon.reload()  # SIGHUP re-reads the files: the cloud's lot is laid over the local one again
    assert daemon.cfg.lot.capacity == 25 and daemon.cfg.lot.tariff["plan"] == "fixed" and daemon.lot_switches == 2
    await fog.stop()
    again = load_fog_config(DEMO_FOG_CONFIG, daemon.cfg.data_dir)
    assert again.lot.capacity == 25 and again.lot.tariff["rate_per_hour"] == 4.5
    assert again.lot_origin == "cloud lot v3 + cloud tariff v4" and again.lot_problem == ""
    (daemon.cfg.data_dir / "cloud-config" / "active.json").unlink()  # the documented way back to the lot file
    assert load_fog_config(DEMO_FOG_CONFIG, daemon.cfg.data_dir).lot.capacity == 24


async def test_a_lot_the_engine_cannot_run_is_rolled_back_record_included(fog, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    daemon = fog.daemon
    assert await daemon.apply_cloud_update(pb.CloudUpdate(version=1, tariff_toml=FIXED_TARIFF))
    lot_before = daemon.cfg.lot
    rebuild = daemon.engine.rebuild

    def failing_rebuild() -> None:  # an engine fault planted for lots with spot C01
        if "C01" in daemon.engine.cfg.lot.spot_ids():
            raise RuntimeError("planted fault")
        rebuild()

    monkeypatch.setattr(daemon.engine, "rebuild", failing_rebuild)
    assert await daemon.apply_cloud_update(pb.CloudUpdate(version=2, lot_config_toml=_lot_with()))
    assert daemon.cfg.lot is lot_before  # the old lot, rebuilt
    assert daemon.cfg.lot_origin == "cloud tariff v1" and daemon.engine.state.capacity == 24
    assert cloud_config.read_active(daemon.cfg.data_dir) == {"tariff": {"version": 1, "file": "tariff-v1.toml"}}
    assert sorted(p.name for p in (daemon.cfg.data_dir / "cloud-config").iterdir()) == ["active.json",
                                                                                       "tariff-v1.toml"]
    rows = await _json(fog, "/v1/lots/demo/alerts")
    assert any(a["kind"] == "config_refused" and "planted fault" in a["detail"] for a in rows)


async def test_sighup_swaps_a_changed_local_lot_file_live_and_refuses_an_orphaning_one(tmp_path: Path) -> None:
    import shutil

    from fog.daemon import FogDaemon

    for name in ("demo-fog.toml", "demo-lot.toml", "demo-nodes.toml"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    cfg = load_fog_config(tmp_path / "demo-fog.toml", tmp_path / "data")
    cfg = dataclasses.replace(cfg, api_port=0, cloud=None)
    daemon = FogDaemon(cfg)
    task = asyncio.create_task(daemon.run(install_signals=False))
    try:
        while daemon.api_port is None:
            await asyncio.sleep(0.01)
        (tmp_path / "demo-lot.toml").write_text(_lot_with())
        assert daemon.reload() and daemon.cfg.lot.capacity == 25 and "C01" in daemon.engine.state.spots
        assert daemon.cfg.lot_origin == "lot file" and daemon.lot_switches == 1
        (tmp_path / "demo-lot.toml").write_text(_without_spot("B12"))
        assert not daemon.reload()
        assert daemon.cfg.lot.capacity == 25 and len(daemon.cfg.nodes) == 24 and daemon.lot_switches == 1
    finally:
        daemon.stop_event.set()
        await asyncio.wait_for(task, 10)
