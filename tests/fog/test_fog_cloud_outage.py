"""Cloud down for a while, then back: the backlog drains in order, nothing lost or doubled.

A real cloud process is stopped while a burst of frames (as many as a lot
sends in several minutes) flows into the fog through its pty gateway; the fog
keeps serving, says the cloud is down on /healthz, and when the same cloud
comes back on the same store the outbox drains in sequence order.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import pytest

from hil.stack import Stack, StackPorts
from proto import frame as fr

pytestmark = pytest.mark.xdist_group("e2e")


async def _wait(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_backlog_after_an_outage_drains_in_order(tmp_path: Path) -> None:
    stack = Stack(tmp_path, StackPorts.ephemeral())
    await stack.start(spots=[])
    nodes = sorted(stack.cfg.nodes.values(), key=lambda n: n.node_id)
    try:
        assert stack.kill("cloud", signal.SIGTERM) == 0

        async def cloud_down() -> bool:
            health = await stack.get_json(f"{stack.fog_url}/healthz")
            return health["status"] == "degraded" and "cloud" in health["problems"]

        await _wait(cloud_down, 15, "/healthz to report the cloud down")
        # Each of the 24 nodes reports 60 state changes: what a busy lot sends in several minutes.
        assert stack.gateway is not None
        for fcnt in range(1, 61):
            for node in nodes:
                payload = fr.occupancy_payload(fcnt % 2, 0, 60, 40 if fcnt % 2 else 250, 30 * (fcnt % 2))
                stack.gateway.send_rx(fr.encode_frame(fr.OCCUPANCY, node.node_id, fcnt, payload, node.key))
            await asyncio.sleep(0.01)

        async def all_stored() -> dict:
            stats = await stack.get_json(f"{stack.fog_url}/v1/stats")
            return stats if stats["events_stored"] == 60 * len(nodes) else {}

        stats = await _wait(all_stored, 30, "the fog to store every frame while the cloud is down")
        assert stats["outbox_waiting"] >= 60 * len(nodes)
        assert stack.gateway.dropped == 0
        stack.start_cloud()

        async def drained() -> dict:
            s = await stack.get_json(f"{stack.fog_url}/v1/stats")
            return s if s["outbox_waiting"] == 0 else {}

        stats = await _wait(drained, 60, "the backlog to drain")
        health = await stack.get_json(f"{stack.fog_url}/healthz")
        assert "cloud" not in health["problems"]
    finally:
        await stack.stop()
    cloud = sqlite3.connect(stack.cloud_db)
    rows = cloud.execute("SELECT seq, received_ms FROM records WHERE fog_id='demo-fog' ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))  # contiguous: nothing lost
    assert all(a[1] <= b[1] for a, b in zip(rows, rows[1:], strict=False))  # stored in sequence order
    pairs = cloud.execute("SELECT node_id, fcnt, COUNT(*) FROM spot_events GROUP BY node_id, fcnt").fetchall()
    assert len(pairs) == 60 * len(nodes) and all(n == 1 for *_, n in pairs)
