"""The cloud's update stream reaches the fog: a Markov model installs, an online booking is
admitted (or refused) by the fog under the cloud's id, and the answer comes back to the cloud."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from cloud.store import CloudStore
from hil.stack import Stack, StackPorts
from proto import frame as fr
from proto import parking_pb2 as pb

pytestmark = pytest.mark.xdist_group("e2e")


async def _wait(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def test_models_and_bookings_flow_from_cloud_to_fog_and_answers_back(tmp_path: Path) -> None:
    stack = Stack(tmp_path, StackPorts.ephemeral())
    await stack.start(spots=[])
    try:
        # Four bays report empty (their sensors' heartbeats): a booking has somewhere to go.
        assert stack.gateway is not None
        for node in sorted(stack.cfg.nodes.values(), key=lambda n: n.node_id)[:4]:
            hb = fr.heartbeat_payload(3600, 20.0, 100, None, None, fr.EMPTY, 0)
            stack.gateway.send_rx(fr.encode_frame(fr.HEARTBEAT, node.node_id, 1, hb, node.key))

        async def four_free() -> bool:
            return bool((await stack.get_json(f"{stack.fog_url}/v1/lots/demo"))["free"] == 4)

        await _wait(four_free, 15, "four bays to report empty")
        cloud = CloudStore(stack.cloud_db)
        matrix = [0.6, 0.4, 0, 0, 0, 0.1, 0.8, 0.1, 0, 0, 0, 0.1, 0.8, 0.1, 0, 0, 0, 0.1, 0.8, 0.1, 0, 0, 0, 0.3, 0.7]
        cloud.enqueue_update("demo-fog", pb.CloudUpdate(model=pb.MarkovModel(
            lot_id="demo", season_key="weekday/0835", matrix=matrix, trained_ms=1, brier=0.2,
            brier_persistence=0.3)))
        now = int(time.time() * 1000)
        cloud.enqueue_update("demo-fog", pb.CloudUpdate(booking=pb.Booking(
            lot_id="demo", booking_id="cloud-b-1", plan="hybrid", start_ms=now, end_ms=now + 2 * 3_600_000,
            plate="FP-123")))
        cloud.enqueue_update("demo-fog", pb.CloudUpdate(booking=pb.Booking(
            lot_id="demo", booking_id="cloud-r-too-soon", plan="hybrid", start_ms=now + 30 * 60_000,
            end_ms=now + 90 * 60_000)))  # inside the 3 h lead: the fog refuses it

        async def fog_has_booking() -> dict:
            rows = await stack.get_json(f"{stack.fog_url}/v1/lots/demo/reservations")
            items = rows if isinstance(rows, list) else rows.get("reservations", [])
            return next((r for r in items if r.get("id") == "cloud-b-1"), {})

        booking = await _wait(fog_has_booking, 30, "the fog to admit the cloud's booking")
        assert booking.get("status") == "admitted"

        def cloud_reservations() -> dict[str, str]:
            db = sqlite3.connect(stack.cloud_db)
            return dict(db.execute("SELECT reservation_id, status FROM reservations"))

        async def answered() -> dict[str, str]:
            got = cloud_reservations()
            return got if {"cloud-b-1", "cloud-r-too-soon"} <= set(got) else {}

        got = await _wait(answered, 30, "the fog's answers to reach the cloud")
        assert got["cloud-b-1"] == "admitted" and got["cloud-r-too-soon"] == "refused"
        fog_db = sqlite3.connect(tmp_path / "fog" / "demo-fog.db")
        assert fog_db.execute("SELECT value FROM sync_state WHERE key='cloud_version'").fetchone()[0] == 3
        keys = [r[0] for r in fog_db.execute("SELECT * FROM markov_models")]
        assert "weekday/0835" in keys
    finally:
        await stack.stop()


async def test_an_operator_pushes_a_lot_file_the_fog_applies_it_live_and_keeps_it(tmp_path: Path) -> None:
    """`fogpark-cloud push-config` -> gRPC stream -> the fog switches lots without a restart, refuses one that
    would orphan a node (alert reaches the cloud), and still runs the cloud's lot after a restart."""
    from hil.stack import BIN
    from tests.fog.test_fog_cloud_config import NEW_SPOT, _lot_with, _without_spot

    stack = Stack(tmp_path, StackPorts.ephemeral())
    await stack.start(spots=[])
    try:
        bigger = tmp_path / "lot-bigger.toml"
        bigger.write_text(_lot_with(NEW_SPOT))
        orphaning = tmp_path / "lot-orphaning.toml"
        orphaning.write_text(_without_spot("B12"))

        def push(path: Path) -> str:
            done = subprocess.run([str(BIN / "fogpark-cloud"), "push-config", "--db", str(stack.cloud_db),
                                   "--lot", "demo", "--lot-file", str(path)], capture_output=True, text=True,
                                  timeout=60)
            assert done.returncode == 0, done.stderr
            return done.stdout

        assert "queued for fog demo-fog as update version 1" in push(bigger)

        async def capacity(n: int) -> bool:
            return bool((await stack.get_json(f"{stack.fog_url}/v1/lots/demo"))["capacity"] == n)

        await _wait(lambda: capacity(25), 30, "the fog to run the cloud's lot")
        assert "version 2" in push(orphaning)

        def cloud_alerts() -> list[tuple[str, str, int]]:
            db = sqlite3.connect(stack.cloud_db)
            return db.execute("SELECT kind, detail, cleared_ms FROM alerts WHERE kind = 'config_refused'").fetchall()

        async def refused_reached_cloud() -> list[tuple[str, str, int]]:
            return cloud_alerts()

        (kind, detail, cleared), *_ = await _wait(refused_reached_cloud, 30, "the refusal to reach the cloud")
        assert "'B12'" in detail and cleared == 0
        assert await capacity(25)  # nothing changed

        stack.kill("fog", signal.SIGTERM)
        stack.start_fog()
        await stack.wait_http(f"{stack.fog_url}/healthz")
        assert await capacity(25)
        stats = await stack.get_json(f"{stack.fog_url}/v1/stats")
        assert stats["lot_config"]["origin"] == "cloud lot v1"
        fog_db = sqlite3.connect(tmp_path / "fog" / "demo-fog.db")
        assert fog_db.execute("SELECT value FROM sync_state WHERE key='cloud_version'").fetchone()[0] == 2

        bad = tmp_path / "not-a-lot.toml"
        bad.write_text(_lot_with(NEW_SPOT).replace('id = "demo"', 'id = "elsewhere"', 1))
        done = subprocess.run([str(BIN / "fogpark-cloud"), "push-config", "--db", str(stack.cloud_db), "--lot", "demo",
                               "--lot-file", str(bad)], capture_output=True, text=True, timeout=60)
        assert done.returncode != 0 and "--lot-file" in done.stderr and "'elsewhere'" in done.stderr
    finally:
        await stack.stop()
