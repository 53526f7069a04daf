"""Disk nearly full (a quota on the store): compaction and an alert, never a crash."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

from fog.config import DEMO_FOG_CONFIG, DiskPolicy, SerialIngest, load_fog_config
from fog.daemon import FogDaemon
from fog.store import FogStore
from hil.pty_gateway import PtyGateway
from proto import frame as fr

DAY_MS = 86400 * 1000


def _fill_with_old_history(path: Path, events: int) -> None:
    """Months-old spot-level history, as a box that ran since spring has."""
    store = FogStore(path, synchronous="OFF")
    old = int(time.time() * 1000) - 40 * DAY_MS
    rows = [{"at_ms": old + i * 1000, "kind": "occupancy", "spot_id": f"A{i % 12 + 1:02d}",
             "node_id": 0x00D30001 + i % 12, "fcnt": i, "state": "occupied" if i % 2 else "empty",
             "prev_duration_s": 600, "rssi_dbm": -90, "snr_db": 5.0, "gateway": "gw0",
             "detail": "x" * 80} for i in range(events)]
    store.db.table("events").insert_all(rows, batch_size=2000)
    store.close()


def _fresh(daemon: FogDaemon, node_id: int) -> int:
    recent = int(time.time() * 1000) - DAY_MS  # not the months-old rows of the same node
    return int(daemon.store.db.execute(
        "SELECT COUNT(DISTINCT fcnt) FROM events WHERE node_id=? AND fcnt BETWEEN 1 AND 1000 AND at_ms > ?",
        [node_id, recent]).fetchone()[0])


async def test_quota_pressure_compacts_old_history_alerts_and_keeps_serving(tmp_path: Path) -> None:
    data = tmp_path / "fog"
    _fill_with_old_history(data / "demo-fog.db", 12_000)
    before = FogStore(data / "demo-fog.db")
    used_mb = before.db_bytes() / 2**20
    before.close()
    gw = PtyGateway(tmp_path / "ttyGW0")
    cfg = dataclasses.replace(
        load_fog_config(DEMO_FOG_CONFIG), data_dir=data, api_port=0, cloud=None,
        serial=(SerialIngest(str(gw.port_path), 115200, "gw0"),),
        disk=DiskPolicy(min_free_mb=0, max_db_mb=used_mb / 0.89, events_retention_days=30, check_s=0.2,
                        ballast_mb=0))
    daemon = FogDaemon(cfg)
    task = asyncio.create_task(daemon.run(install_signals=False))
    try:
        while not all(g.connected for g in daemon.gateways):  # the burst starts with the gateway up
            await asyncio.sleep(0.01)
        node = cfg.nodes[0x00D30001]
        for fcnt in range(1, 1001):  # fresh traffic pushes the store over 90 % of its quota
            payload = fr.occupancy_payload(fcnt % 2, 0, 30, 40, 20)
            gw.send_rx(fr.encode_frame(fr.OCCUPANCY, node.node_id, fcnt, payload, node.key))
            if fcnt % 50 == 0:
                await asyncio.sleep(0.05)
        deadline = time.monotonic() + 20
        while daemon.engine.disk.compacted_events == 0 or _fresh(daemon, node.node_id) < 1000:
            assert time.monotonic() < deadline, (daemon.engine.disk.compacted_events, daemon.engine.degraded,
                                                 _fresh(daemon, node.node_id), gw.dropped, daemon.engine.refusals)
            await asyncio.sleep(0.1)
        assert task.done() is False  # still running
        alerts = daemon.engine.alerts
        assert "disk_pressure:00000000" in alerts and "quota" in alerts["disk_pressure:00000000"]["detail"]
        # Old history folded into daily summaries, every new frame kept.
        daily = daemon.store.db.execute("SELECT SUM(frames), SUM(arrivals) FROM spot_daily").fetchone()
        assert daily[0] == daemon.engine.disk.compacted_events and daily[1] > 0
        assert _fresh(daemon, node.node_id) == 1000
        assert daemon.store.db_bytes() < cfg.disk.max_db_mb * 2**20
    finally:
        daemon.stop_event.set()
        await asyncio.wait_for(task, 10)
        gw.close()
