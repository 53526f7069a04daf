"""The cycle's commits on the store writer's thread: nothing acknowledged before it is durable.

A real ``CycleEngine`` and a real SQLite store; the writer's commit is held
at a gate (a ``threading.Event`` in front of the real ``commit_cycles``) so
the test can look at the world between "applied" and "durable".
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from fog_engine_harness import Harness

from fog.admission import Reception
from fog.store import CycleWrite
from proto import frame as fr


class GatedCommits:
    """Holds every commit until ``open`` is set; can fail the next one."""

    def __init__(self, h: Harness) -> None:
        self.real = h.store.commit_cycles
        self.open = threading.Event()
        self.entered = threading.Event()
        self.fail_next = False
        self.groups: list[int] = []
        h.store.commit_cycles = self  # type: ignore[method-assign]

    def __call__(self, writes: list[CycleWrite]) -> None:
        self.entered.set()
        assert self.open.wait(10), "the test never opened the gate"
        if self.fail_next:
            self.fail_next = False
            raise sqlite3.OperationalError("database or disk is full")
        self.groups.append(len(writes))
        self.real(writes)


def durable_events(h: Harness) -> list[tuple[str, int]]:
    """What another process would find on disk: (spot, fcnt) of every committed event."""
    conn = sqlite3.connect(str(h.tmp_path / h.db))
    try:
        return [(r[0], r[1]) for r in conn.execute("SELECT spot_id, fcnt FROM events ORDER BY id")]
    finally:
        conn.close()


def submit(h: Harness, spot: str, acked: list[tuple[str, int]], state: int = fr.OCCUPIED) -> None:
    """One occupancy frame whose transport ack (as MQTT's PUBACK) records (spot, fcnt)."""
    node = h.node_of[spot]
    h.fcnt[node.node_id] += 1
    fcnt = h.fcnt[node.node_id]
    raw = fr.encode_frame(fr.OCCUPANCY, node.node_id, fcnt,
                          fr.occupancy_payload(state, fr.FLAG_RANGE_CONFIRMED, 30, 40, 25), node.key)
    h.engine.submit(Reception(raw, "test", received_ms=h.now, on_commit=lambda: acked.append((spot, fcnt))))


@pytest.fixture
def h(tmp_path: Path) -> Any:
    harness = Harness(tmp_path)
    harness.set_states(set())  # every bay reported empty, committed inline
    harness.engine.start_writer()
    yield harness
    harness.engine.stop_writer()


def test_acks_wait_for_the_commit_but_the_cycle_does_not(h: Harness) -> None:
    gate = GatedCommits(h)
    acked: list[tuple[str, int]] = []
    before = len(durable_events(h))
    submit(h, "A01", acked)
    assert h.engine.run_once(h.now) == 1  # returns while the commit is still held
    assert gate.entered.wait(5)
    assert h.engine.state.spots["A01"].state == "occupied"  # applied in memory
    assert acked == [] and len(durable_events(h)) == before  # not acknowledged, not on disk
    gate.open.set()
    assert h.engine.flush()
    assert acked == [("A01", h.fcnt[h.node_of["A01"].node_id])]
    assert durable_events(h)[-1] == acked[0]


def test_a_failed_commit_puts_back_every_batch_in_flight_in_order(h: Harness) -> None:
    gate = GatedCommits(h)
    gate.fail_next = True
    acked: list[tuple[str, int]] = []
    before = durable_events(h)
    submit(h, "A01", acked)
    h.engine.run_once(h.now)
    assert gate.entered.wait(5)
    submit(h, "A02", acked)
    submit(h, "A01", acked, state=fr.EMPTY)
    h.engine.run_once(h.now)  # applied on top of the first, which is about to fail
    assert len(h.engine.inflight) == 2
    gate.open.set()
    h.engine.flush()
    assert acked == [] and durable_events(h) == before
    assert "store" in h.engine.degraded
    assert [rx.raw for rx in h.engine.queue] and len(h.engine.queue) == 3  # all three, back at the head
    assert h.engine.state.spots["A01"].state == "empty"  # rebuilt from the store
    h.engine.run_once(h.now)
    assert h.engine.flush()
    a01 = h.node_of["A01"].node_id
    expected = [("A01", h.fcnt[a01] - 1), ("A02", h.fcnt[h.node_of["A02"].node_id]), ("A01", h.fcnt[a01])]
    assert durable_events(h)[len(before):] == expected  # each once, in arrival order
    assert acked == expected
    assert "store" not in h.engine.degraded and h.engine.state.spots["A01"].state == "empty"


def test_what_waits_is_committed_as_one_group(h: Harness) -> None:
    gate = GatedCommits(h)
    acked: list[tuple[str, int]] = []
    submit(h, "A01", acked)
    h.engine.run_once(h.now)
    assert gate.entered.wait(5)  # the writer holds the first; the next three queue behind it
    for spot in ("A02", "A03", "A04"):
        submit(h, spot, acked)
        h.engine.run_once(h.now)
    gate.open.set()
    assert h.engine.flush()
    assert gate.groups == [1, 3]
    assert [a[0] for a in acked] == ["A01", "A02", "A03", "A04"]


def test_too_many_commits_in_flight_hold_the_frames_in_the_queue(h: Harness) -> None:
    gate = GatedCommits(h)
    acked: list[tuple[str, int]] = []
    h.engine.max_inflight = 2
    for spot in ("A01", "A02"):
        submit(h, spot, acked)
        h.engine.run_once(h.now)
    submit(h, "A03", acked)
    assert h.engine.run_once(h.now) == 0 and len(h.engine.queue) == 1  # waits; nothing is dropped
    assert h.metrics.commit_backpressure._value.get() == 1
    gate.open.set()
    assert h.engine.flush()
    h.engine.run_once(h.now)
    assert h.engine.flush()
    assert [a[0] for a in acked] == ["A01", "A02", "A03"]


def test_api_answers_wait_for_their_commit(h: Harness) -> None:
    import asyncio

    async def scenario() -> None:
        gate = GatedCommits(h)
        future = h.lot_engine.submit("reserve", {"kind": "booking", "hours": 1}, now_ms=h.now)
        h.engine.run_once(h.now)
        assert gate.entered.wait(5)
        await asyncio.sleep(0)
        assert not future.done()  # the booking is held in memory, not yet promised to the client
        gate.open.set()
        assert h.engine.flush()
        assert future.done() and future.result().status == 201
        assert h.count("reservations") == 1

    asyncio.run(scenario())


def test_reads_settle_only_when_nothing_applied_is_uncommitted(h: Harness) -> None:
    import asyncio

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        h.engine.writer.wake = lambda: loop.call_soon_threadsafe(h.engine.reap)  # as the daemon wires it
        gate = GatedCommits(h)
        acked: list[tuple[str, int]] = []
        assert await h.engine.settled(0.01)  # nothing in flight
        submit(h, "A01", acked)
        h.engine.run_once(h.now)
        assert gate.entered.wait(5)
        assert not await h.engine.settled(0.05)  # the commit is held: a read would show uncommitted state
        loop.call_later(0.05, gate.open.set)
        assert await h.engine.settled(5.0)
        assert not h.engine.inflight and acked  # settled means committed and acknowledged
        assert ("A01", acked[0][1]) in durable_events(h)

    asyncio.run(scenario())
