"""kill -9 the fog again and again while emulated nodes send: nothing exposed is lost, nothing doubled.

The fog runs as its real console script; ten nodes run the real firmware under
the MicroPython unix port; the cloud is the real gRPC service on SQLite. After
every SIGKILL the fog restarts on the same store. At the end: every event the
fog's API ever exposed is in its store, the cloud holds every record the fog
produced exactly once, and no node counter was rejected as a replay.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
from pathlib import Path

import pytest

from hil.stack import Stack, StackPorts
from proto import parking_pb2 as pb

pytestmark = pytest.mark.xdist_group("e2e")
KILLS = 20


async def _poll_exposed(stack: Stack, seen: set[tuple[int, int]], stop: asyncio.Event) -> None:
    """Record every event the fog's API shows, as (node, fcnt); the fog may be down at any moment."""
    after = 0
    while not stop.is_set():
        try:
            page = await stack.get_json(f"{stack.fog_url}/v1/lots/demo/events?after={after}&limit=1000")
            for e in page["events"]:
                seen.add((e["node_id"], e["fcnt"]))
            after = page["next_after"]
        except Exception:  # noqa: BLE001 - the fog is being killed on purpose
            pass
        await asyncio.sleep(0.05)


async def _drive(stack: Stack, spots: list[str], stop: asyncio.Event, rng: random.Random) -> None:
    """Vehicles come and go on every bay, each staying long enough to be detected (~1.5 s)."""
    loop = asyncio.get_running_loop()
    due = {s: loop.time() + rng.uniform(0.0, 2.0) for s in spots}
    parked = {s: False for s in spots}
    while not stop.is_set():
        now = loop.time()
        for spot in spots:
            if now >= due[spot]:
                node = stack.nodes[spot]
                node.leave() if parked[spot] else node.park()
                parked[spot] = not parked[spot]
                due[spot] = now + rng.uniform(2.0, 3.0)
        await asyncio.sleep(0.05)


async def test_kill_9_twenty_times_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    rng = random.Random(20261121)
    spots = [f"A{i:02d}" for i in range(1, 11)]
    stack = Stack(tmp_path, StackPorts.ephemeral(), node_settings={"boot_jitter_s": 2})
    await stack.start(spots=spots)
    seen: set[tuple[int, int]] = set()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_poll_exposed(stack, seen, stop)), asyncio.create_task(_drive(stack, spots, stop, rng))]
    try:
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(0.2, 0.8))
            assert stack.kill("fog", signal.SIGKILL) == -signal.SIGKILL
            stack.start_fog()
            await stack.wait_http(f"{stack.fog_url}/healthz")
        await asyncio.sleep(2)
        stop.set()
        await asyncio.gather(*tasks)
        for node in stack.nodes.values():
            node.stop()  # no new frames: let the outbox drain

        async def drained() -> dict:
            stats = await stack.get_json(f"{stack.fog_url}/v1/stats")
            return stats if stats["outbox_waiting"] == 0 else {}

        deadline = asyncio.get_running_loop().time() + 30
        stats: dict = {}
        while not stats:
            stats = await drained()
            assert asyncio.get_running_loop().time() < deadline, "outbox did not drain"
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await stack.stop()

    fog = sqlite3.connect(tmp_path / "fog" / "demo-fog.db")
    stored = set(fog.execute("SELECT node_id, fcnt FROM events"))
    assert len(seen) > 30, "too little traffic to mean anything"
    assert seen <= stored, f"exposed but lost: {sorted(seen - stored)[:5]}"
    produced = fog.execute("SELECT seq FROM sqlite_sequence WHERE name='outbox'").fetchone()[0]
    fog_acked = fog.execute("SELECT value FROM sync_state WHERE key='acked_seq'").fetchone()[0]
    cloud = sqlite3.connect(stack.cloud_db)
    # The cloud holds 1..acked once each; whatever came after (a last summary at shutdown) waits in the outbox.
    assert cloud.execute("SELECT acked_seq FROM cursors WHERE fog_id='demo-fog'").fetchone()[0] == fog_acked
    assert cloud.execute("SELECT COUNT(*) FROM records WHERE fog_id='demo-fog'").fetchone()[0] == fog_acked
    waiting = [r[0] for r in fog.execute("SELECT seq FROM outbox ORDER BY seq")]
    assert waiting == list(range(fog_acked + 1, produced + 1))
    assert produced - fog_acked <= 2
    pairs = cloud.execute("SELECT node_id, fcnt, COUNT(*) FROM spot_events GROUP BY node_id, fcnt").fetchall()
    assert all(n == 1 for _, _, n in pairs), "a spot event reached the cloud twice"
    fog_spot_events = {(n, f) for n, f in fog.execute(
        "SELECT node_id, fcnt FROM events WHERE kind='occupancy'")}
    still_waiting = set()
    for kind, body in fog.execute("SELECT kind, body FROM outbox"):
        if kind == "spot_event":
            ev = pb.SpotEvent.FromString(body)
            still_waiting.add((ev.node_id, ev.fcnt))
    assert fog_spot_events <= {(n, f) for n, f, _ in pairs} | still_waiting
    assert "replay" not in stats["frames_refused"], stats["frames_refused"]
