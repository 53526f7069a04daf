"""One vehicle through every tier, with every part real but the hardware.

firmware (MicroPython unix port, emulated HC-SR04 + magnetometer + SX1276)
→ frame with MIC → emulated radio channel → pty gateway → pyserial ingest
→ MIC + counter check → lot state → SQLite (WAL) → outbox → gRPC → cloud
store → ``fogpark-cloud history``. The same Stack runs ``make demo``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hil.stack import Stack, StackPorts

pytestmark = pytest.mark.xdist_group("e2e")
BIN = Path(sys.executable).parent


async def _until(predicate, timeout: float = 20.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def _cloud_history(stack: Stack) -> str:
    out = subprocess.run([str(BIN / "fogpark-cloud"), "history", "--lot", "demo", "--since", "10m",
                          "--db", str(stack.cloud_db), "--format", "json"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


async def test_one_vehicle_in_and_out_through_every_tier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A relative working folder, as `make demo` passes (var/demo): every process must find its files.
    monkeypatch.chdir(tmp_path)
    # Two channels, as a site spreads its nodes: the two bays' frames cannot collide and make the test flaky.
    stack = Stack(Path("stack"), StackPorts.ephemeral(), node_settings={"boot_jitter_s": 1},
                  channels_hz=(868_100_000, 868_300_000))
    await stack.start(spots=["A01", "A02"])
    try:
        spots_url = f"{stack.fog_url}/v1/lots/demo/spots"

        async def spot_state(spot: str) -> str:
            return str(next(s for s in await stack.get_json(spots_url) if s["spot"] == spot)["state"])

        async def fog_says_empty() -> bool:
            return await spot_state("A01") == "empty"

        # After boot the node's first heartbeat tells the fog the bay's state.
        await _until(fog_says_empty, what="the fog API to show A01 empty after boot")
        node = stack.nodes["A01"]
        node.park()

        async def fog_says_occupied() -> bool:
            return await spot_state("A01") == "occupied"

        await _until(fog_says_occupied, what="the fog API to show A01 occupied")
        assert stack.channel is not None and stack.channel.stats.delivered["A01"] >= 1  # the radio hop
        assert stack.gateway is not None and stack.gateway.sent >= 1  # the serial hop
        assert await spot_state("A02") != "occupied"  # the neighbour did not flip

        node.leave()
        await _until(fog_says_empty, what="the fog API to show A01 empty")

        async def cloud_has_both() -> str | None:
            text = _cloud_history(stack)
            return text if '"occupied"' in text and '"empty"' in text and "A01" in text else None

        history = await _until(cloud_has_both, what="the cloud history to hold arrival and departure")
        assert '"A01"' in history
        events = await stack.get_json(f"{stack.fog_url}/v1/lots/demo/events?limit=1000")
        # State reports: occupancy frames, or a heartbeat restating the bay when a frame was lost on air.
        a01 = [e for e in events["events"] if e["spot_id"] == "A01" and e["state"] in ("occupied", "empty")]
        changes = [e for i, e in enumerate(a01) if i == 0 or e["state"] != a01[i - 1]["state"]]
        assert [e["state"] for e in changes][-2:] == ["occupied", "empty"]
        assert changes[-1]["fcnt"] > changes[-2]["fcnt"]  # counters only move forward
        stats = await stack.get_json(f"{stack.fog_url}/v1/stats")
        assert stats["frames_refused"] == {}
    finally:
        await stack.stop()
    # Every frame the fog committed is in its SQLite file, and the cloud acknowledged it.
    fog_db = sqlite3.connect(tmp_path / "stack" / "fog" / "demo-fog.db")  # where the relative folder is
    stored = [r[0] for r in fog_db.execute(
        "SELECT state FROM events WHERE spot_id='A01' AND state IS NOT NULL ORDER BY id")]
    assert stored[-1] == "empty" and "occupied" in stored
    # Nothing left running.
    assert all(p.poll() is not None for p in stack.procs.values())
    assert all(not n.running for n in stack.nodes.values())
