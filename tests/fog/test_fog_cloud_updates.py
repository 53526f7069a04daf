"""The cloud's update stream reaches the fog: a Markov model installs, an online booking is
admitted (or refused) by the fog under the cloud's id, and the answer comes back to the cloud."""

from __future__ import annotations

import asyncio
import sqlite3
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
