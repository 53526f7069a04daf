"""The fog's 10 ms cycle under load: duration p50/p99/max, overruns, selection latency, peak RSS.

Usage: ``python bench/bench_cycle.py [--seconds 60] [--sizes 2500,45000] [--synchronous FULL]``

Per lot size, a child process (so each peak RSS is that lot's alone) runs the
real `fog.cycle.CycleEngine` — admission with AES-CMAC, lot state, the lot
engine, and its store writer thread committing each cycle (group commits)
as the daemon runs it — on its fixed-rate asyncio loop,
for ``--seconds`` after a 3 s warm-up, with:

* a generated lot (`generate_lot`), built in memory as the loader builds it
  from the `fogpark-fog lotgen` file; one registered node per spot; the
  store seeded with every spot reported, 70 % occupied;
* 100 sensor frames/s (one per cycle slot): a guided vehicle arriving at its
  spot when one is due; else a departure (always while occupancy is above
  85 %, else with probability 0.1); else a heartbeat restating a bay;
* 10 selection requests/s through the engine's request queue from random
  entrances; each answered vehicle is counted on its path, its spot held,
  and it arrives 2–8 s after its ETA.

Printed per size: cycle duration p50/p99/max over every cycle (the cycle's
own work: the commit runs beside it), overruns (cycles longer than the
period), skipped slots, the SQLite commit (per group) and the durability lag
(a cycle's changes applied → committed, which is when anything is
acknowledged), selection time inside the cycle and request latency (queued →
answered after its commit), peak RSS, and ratios to the
targets (p99 ≤ 1 ms at 2,500 spots, ≤ 10 ms at 45,000; RSS ≤ 300 MB at
45,000). Numbers, not a pass/fail test. Selection against a per-request
networkx Dijkstra is bench/bench_selection.py.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fog.admission import Reception  # noqa: E402
from fog.cli_tools import DEFAULT_TARIFFS, lot_config_from_generated  # noqa: E402
from fog.config import FogConfig, NodeEntry  # noqa: E402
from fog.cycle import CycleEngine  # noqa: E402
from fog.engine.lot_generator import generate_lot  # noqa: E402
from fog.metrics import FogMetrics  # noqa: E402
from fog.store import FogStore  # noqa: E402
from proto import frame as fr  # noqa: E402

TARGET_P99_MS = {2500: 1.0, 45000: 10.0}
TARGET_RSS_MB = {45000: 300.0}
CHILD_OVERHEAD_S = 50  # build, warm-up and teardown on top of the measured time
WARMUP_S = 3.0


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _Indexed:
    """A set with O(1) random choice and removal."""

    def __init__(self, items: list[str]) -> None:
        self.items = list(items)
        self.pos = {x: i for i, x in enumerate(self.items)}

    def add(self, x: str) -> None:
        if x not in self.pos:
            self.pos[x] = len(self.items)
            self.items.append(x)

    def discard(self, x: str) -> None:
        i = self.pos.pop(x, None)
        if i is None:
            return
        last = self.items.pop()
        if i < len(self.items):
            self.items[i] = last
            self.pos[last] = i

    def __len__(self) -> int:
        return len(self.items)


async def _measure(spots: int, seconds: float, synchronous: str, seed: int) -> dict[str, float | int | str]:
    rng = random.Random(seed)
    t_build = time.perf_counter()
    lot = lot_config_from_generated(generate_lot(spots, seed=seed), f"bench{spots}", DEFAULT_TARIFFS["occupancy"])
    nodes = {0x20000000 + i: NodeEntry(0x20000000 + i, s.id, hashlib.blake2s(s.id.encode(), digest_size=16).digest())
             for i, s in enumerate(lot.spots)}
    node_of = {n.spot: n for n in nodes.values()}
    tmp = Path(tempfile.mkdtemp(prefix="fogpark-bench-"))
    cfg = FogConfig(fog_id="bench", lot=lot, nodes=nodes, data_dir=tmp, cycle_ms=10, api_host="127.0.0.1", api_port=0,
                    admin_token="x", serial=(), cloud=None, dedup_window_s=10, source=tmp / "bench.toml")
    store = FogStore(tmp / "bench.db", synchronous=synchronous)
    now_ms = int(time.time() * 1000)
    occupied = {s.id for s in lot.spots if rng.random() < 0.7}
    with store._transaction():
        store.db.conn.executemany(
            "INSERT INTO spots (spot_id, state, since_ms, node_id, last_seen_ms) VALUES (?,?,?,?,?)",
            [(s.id, "occupied" if s.id in occupied else "empty", now_ms, node_of[s.id].node_id, now_ms)
             for s in lot.spots])
    metrics = FogMetrics()
    engine = CycleEngine(cfg, store, metrics)
    build_s = time.perf_counter() - t_build

    cycle_s: list[float] = []
    commit_s: list[float] = []
    select_s: list[float] = []
    latency_s: list[float] = []
    run_once, commit = engine.run_once, store.commit_cycles

    def timed_run_once(now_ms: int | None = None) -> int:
        t = time.perf_counter()
        n = run_once(now_ms)
        cycle_s.append(time.perf_counter() - t)
        return n

    def timed_commit(writes):  # type: ignore[no-untyped-def]  # on the writer thread
        t = time.perf_counter()
        commit(writes)
        commit_s.append(time.perf_counter() - t)

    engine.run_once = timed_run_once  # type: ignore[method-assign]
    store.commit_cycles = timed_commit  # type: ignore[method-assign]
    lag_s = metrics.commit_lag_seconds
    selector = engine.lot_engine.selector
    assert selector is not None
    select = selector.select

    def timed_select(*args, **kwargs):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        result = select(*args, **kwargs)
        select_s.append(time.perf_counter() - t)
        return result

    selector.select = timed_select  # type: ignore[method-assign]

    occ = _Indexed(sorted(occupied))
    fcnt = dict.fromkeys(nodes, 0)
    arrivals: list[tuple[float, str]] = []
    counts = {"frames": 0, "answered": 0, "full": 0}
    entrances = lot.entrances
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def frame(spot: str, msg_type: int, state: int) -> None:
        node = node_of[spot]
        fcnt[node.node_id] += 1
        if msg_type == fr.OCCUPANCY:
            payload = fr.occupancy_payload(state, fr.FLAG_RANGE_CONFIRMED, 60, 40 if state else 200, 30)
        else:
            payload = fr.heartbeat_payload(3300, 20.0, 3600, -95, 4.0, state, 0)
        raw = fr.encode_frame(msg_type, node.node_id, fcnt[node.node_id], payload, node.key)
        engine.submit(Reception(raw, "bench", rssi_dbm=-95, snr_db=4.0, received_ms=int(time.time() * 1000)))
        counts["frames"] += 1

    async def sensors() -> None:
        next_t = loop.time()
        while not stop.is_set():
            now = loop.time()
            if arrivals and arrivals[0][0] <= now:
                _, spot = arrivals.pop(0)
                frame(spot, fr.OCCUPANCY, fr.OCCUPIED)
                occ.add(spot)
            elif len(occ) and (len(occ) > 0.85 * spots or rng.random() < 0.1):
                spot = occ.items[rng.randrange(len(occ))]
                frame(spot, fr.OCCUPANCY, fr.EMPTY)
                occ.discard(spot)
            else:
                spot = lot.spots[rng.randrange(spots)].id
                frame(spot, fr.HEARTBEAT, fr.OCCUPIED if spot in occ.pos else fr.EMPTY)
            next_t += 0.01
            await asyncio.sleep(max(0.0, next_t - loop.time()))

    async def one_request() -> None:
        t = time.perf_counter()
        outcome = await engine.lot_engine.submit("select", {"entrance": rng.choice(entrances)})
        latency_s.append(time.perf_counter() - t)
        if outcome.status == 200:
            counts["answered"] += 1
            arrivals.append((loop.time() + min(outcome.body["eta_s"], 120) + rng.uniform(2, 8), outcome.body["spot"]))
            arrivals.sort()
        else:
            counts["full"] += 1

    async def requests() -> None:
        pending: set[asyncio.Task[None]] = set()
        next_t = loop.time()
        while not stop.is_set():
            task = asyncio.create_task(one_request())
            pending.add(task)
            task.add_done_callback(pending.discard)
            next_t += 0.1
            await asyncio.sleep(max(0.0, next_t - loop.time()))
        await asyncio.gather(*pending, return_exceptions=True)

    engine.start_writer(lambda: loop.call_soon_threadsafe(engine.reap))  # as the daemon does
    lags: list[float] = []
    observe_lag = lag_s.observe

    def timed_lag(amount: float, exemplar: dict[str, str] | None = None) -> None:
        lags.append(amount)
        observe_lag(amount, exemplar)

    lag_s.observe = timed_lag  # type: ignore[method-assign]
    cycle_task = asyncio.create_task(engine.run(stop))
    producers = [asyncio.create_task(sensors()), asyncio.create_task(requests())]
    await asyncio.sleep(WARMUP_S)
    for series in (cycle_s, commit_s, select_s, latency_s, lags):
        series.clear()
    overruns0 = metrics.cycle_overruns._value.get()
    skipped0 = metrics.cycles_skipped._value.get()
    counts.update(frames=0, answered=0, full=0)
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - t0
    overruns = metrics.cycle_overruns._value.get() - overruns0
    skipped = metrics.cycles_skipped._value.get() - skipped0
    measured = list(cycle_s), list(commit_s), list(select_s), list(latency_s), list(lags)
    stop.set()
    await asyncio.gather(cycle_task, *producers, return_exceptions=True)
    engine.stop_writer()
    store.close()
    cycles, commits, selects, latencies, durable = measured
    return {
        "spots": spots, "nodes": len(lot.graph_nodes), "lanes": len(lot.edges), "entrances": len(entrances),
        "synchronous": synchronous, "build_s": build_s, "load_avg": os.getloadavg()[0], "seconds": elapsed, "cycles": len(cycles),
        "frames_per_s": counts["frames"] / elapsed, "requests_per_s": (counts["answered"] + counts["full"]) / elapsed,
        "lot_full": counts["full"], "occupancy": len(occ) / spots,
        "p50_ms": _pct(cycles, 0.5) * 1e3, "p99_ms": _pct(cycles, 0.99) * 1e3, "max_ms": max(cycles) * 1e3,
        "overruns": int(overruns), "skipped": int(skipped),
        "commit_p50_ms": _pct(commits, 0.5) * 1e3, "commit_p99_ms": _pct(commits, 0.99) * 1e3,
        "commits": len(commits), "lag_p50_ms": _pct(durable, 0.5) * 1e3, "lag_p99_ms": _pct(durable, 0.99) * 1e3,
        "select_p50_ms": _pct(selects, 0.5) * 1e3, "select_p99_ms": _pct(selects, 0.99) * 1e3,
        "latency_p50_ms": _pct(latencies, 0.5) * 1e3, "latency_p99_ms": _pct(latencies, 0.99) * 1e3,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _report(r: dict[str, float | int | str]) -> None:
    spots = int(r["spots"])
    print(f"-- {spots} spots ({r['nodes']} graph nodes, {r['lanes']} lanes, {r['entrances']} entrances); "
          f"engine built in {float(r['build_s']):.1f} s; SQLite synchronous={r['synchronous']}; "
          f"host load average {float(r['load_avg']):.1f}")
    print(f"   load: {float(r['frames_per_s']):.0f} frames/s, {float(r['requests_per_s']):.1f} selections/s "
          f"({r['lot_full']} lot full), occupancy at end {float(r['occupancy']):.0%}, "
          f"{r['cycles']} cycles in {float(r['seconds']):.0f} s")
    target = TARGET_P99_MS.get(spots)
    ratio = f"  (p99 / target {target:g} ms = {float(r['p99_ms']) / target:.2f})" if target else ""
    print(f"   cycle      p50 {float(r['p50_ms']):7.3f} ms  p99 {float(r['p99_ms']):7.3f} ms  "
          f"max {float(r['max_ms']):7.2f} ms{ratio}")
    print(f"   overruns {r['overruns']} of {r['cycles']} cycles (> 10 ms), skipped slots {r['skipped']}")
    print(f"   commit     p50 {float(r['commit_p50_ms']):7.3f} ms  p99 {float(r['commit_p99_ms']):7.3f} ms  "
          f"({r['commits']} group commits on the writer thread, beside the cycle)")
    print(f"   durable    p50 {float(r['lag_p50_ms']):7.3f} ms  p99 {float(r['lag_p99_ms']):7.3f} ms  "
          "(a cycle's changes applied -> committed: when they are acknowledged)")
    print(f"   selection  p50 {float(r['select_p50_ms']):7.3f} ms  p99 {float(r['select_p99_ms']):7.3f} ms  (inside the cycle)")
    print(f"   request    p50 {float(r['latency_p50_ms']):7.3f} ms  p99 {float(r['latency_p99_ms']):7.3f} ms  "
          "(queued -> answered after its commit)")
    rss_target = TARGET_RSS_MB.get(spots)
    rss_ratio = f"  (/ target {rss_target:g} MB = {float(r['rss_mb']) / rss_target:.2f})" if rss_target else ""
    print(f"   peak RSS {float(r['rss_mb']):.0f} MB{rss_ratio}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured time per lot size (default 60)")
    parser.add_argument("--sizes", default="2500,45000", help="lot sizes, comma-separated")
    parser.add_argument("--synchronous", default="FULL", choices=("FULL", "NORMAL", "OFF"),
                        help="SQLite synchronous mode (the daemon uses [fog] durability, FULL by default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        result = asyncio.run(_measure(args.child, args.seconds, args.synchronous, args.seed))
        print(json.dumps(result))
        return 0
    started = time.perf_counter()
    for size in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--child", str(size), "--seconds", str(args.seconds),
               "--synchronous", args.synchronous, "--seed", str(args.seed)]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + CHILD_OVERHEAD_S)
        except subprocess.TimeoutExpired:
            print(f"-- {size} spots: did not finish within its time budget")
            continue
        if out.returncode != 0:
            print(f"-- {size} spots: failed\n{out.stderr[-2000:]}")
            return 1
        _report(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
