"""How many emulated nodes (one MicroPython process each) this machine runs in real time.

For N = 25, 50, 100, ... start N nodes (the real firmware, sample_ms 500,
heartbeat every 10 s), then for a window check that each keeps its schedule:

* stdin service: a ``PING`` answered within one sample period (500 ms) at p95 —
  the emulation reads stdin whenever the firmware samples or sleeps, so a late
  pong means a late sample;
* TX timing: consecutive heartbeats no later than the firmware's own schedule
  allows: heartbeat_s + its 0..10 % jitter + one sample period (+ 0.5 s slack).

The largest N that passes both is printed. Bounded: stops at the first failing
N, at 500 nodes, or after ~3 min in all. One process per node costs a
MicroPython interpreter each; what would scale further is many nodes per
interpreter (see the printout).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hil.node_process import EmulatedNode  # noqa: E402

STEPS = (50, 200, 500)
WINDOW_S = 22.0
HEARTBEAT_S = 10
SAMPLE_MS = 500
BUDGET_S = 180.0
LATE_OK_S = HEARTBEAT_S * 0.1 + SAMPLE_MS / 1000 + 0.5


def _cpu_s(pid: int) -> float:
    """CPU seconds of a process and its children (the venv's ``micropython`` may be a launcher)."""
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        kids = []
    return _own_cpu_s(pid) + sum(_cpu_s(int(k)) for k in kids)


def _own_cpu_s(pid: int) -> float:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def trial(n: int, root: Path) -> dict[str, float]:
    nodes = [EmulatedNode({"node_id": 0x00B00000 + i + 1, "key": f"{i + 1:032x}", "spot": f"B{i}",
                           "board": "unix_emulated", "heartbeat_s": HEARTBEAT_S, "boot_jitter_s": 5,
                           "sample_ms": SAMPLE_MS}, root / f"n{n}-{i}", seed=i) for i in range(n)]
    t0 = time.monotonic()
    try:
        with cf.ThreadPoolExecutor(max_workers=32) as ex:
            list(ex.map(lambda nd: nd.start(timeout=30), nodes))
        start_s = time.monotonic() - t0
        time.sleep(6)  # past the boot jitter: every node is in its steady loop
        cpu0 = {nd.pid: _cpu_s(nd.pid or 0) for nd in nodes}
        tx0 = {id(nd): len(nd.tx_log) for nd in nodes}
        rtts: list[float] = []
        w0 = time.monotonic()

        def ping(nd: EmulatedNode) -> float:
            t = time.monotonic()
            return time.monotonic() - t if nd.sync(timeout=3.0) else 3.0

        with cf.ThreadPoolExecutor(max_workers=min(n, 256)) as ex:
            while time.monotonic() - w0 < WINDOW_S:
                rtts += list(ex.map(ping, nodes))
                time.sleep(0.5)
        wall = time.monotonic() - w0
        cpu = sum(_cpu_s(nd.pid or 0) - cpu0.get(nd.pid, 0.0) for nd in nodes)
        late = []
        for nd in nodes:
            times = [tx.t_monotonic for tx in nd.tx_log[tx0[id(nd)]:]]
            late += [b - a - HEARTBEAT_S for a, b in zip(times, times[1:], strict=False)]
        silent = sum(1 for nd in nodes if len(nd.tx_log) == tx0[id(nd)])
        rtts.sort()
        return {"n": n, "start_s": start_s, "ping_p50_ms": 1000 * statistics.median(rtts),
                "ping_p95_ms": 1000 * rtts[int(0.95 * (len(rtts) - 1))],
                "hb_late_max_s": max(late) if late else float("inf"), "silent": silent,
                "cpu_per_node_pct": 100 * cpu / wall / n}
    finally:
        with cf.ThreadPoolExecutor(max_workers=32) as ex:
            list(ex.map(lambda nd: nd.stop(), nodes))


def main() -> int:
    began = time.monotonic()
    best = 0
    print(f"emulated nodes in real time on {os.cpu_count()} CPUs (sample {SAMPLE_MS} ms, heartbeat {HEARTBEAT_S} s)")
    print(f"keeps up: ping p95 <= {SAMPLE_MS} ms, heartbeat late <= {LATE_OK_S:.1f} s, no node silent")
    print(f"{'N':>5} {'start s':>8} {'ping p50':>9} {'ping p95':>9} {'hb late':>8} {'silent':>7} {'CPU/node':>9}  ok")
    with tempfile.TemporaryDirectory(prefix="bench-hil-") as tmp:
        for n in STEPS:
            if time.monotonic() - began > BUDGET_S - 40:
                print(f"(time budget of {BUDGET_S:.0f} s reached before N={n})")
                break
            r = trial(n, Path(tmp))
            ok = r["ping_p95_ms"] <= SAMPLE_MS and r["hb_late_max_s"] <= LATE_OK_S and r["silent"] == 0
            print(f"{n:5d} {r['start_s']:8.1f} {r['ping_p50_ms']:7.0f}ms {r['ping_p95_ms']:7.0f}ms "
                  f"{r['hb_late_max_s']:7.2f}s {r['silent']:7d} {r['cpu_per_node_pct']:8.2f}%  {'yes' if ok else 'NO'}",
                  flush=True)
            if not ok:
                break
            best = n
    print(f"largest N that keeps real time here: {best} (target 500)")
    if best < 500:
        print("one MicroPython process per node is the limit: what would reach 500+ is many nodes per interpreter "
              "(one process running K firmware instances as cooperative tasks) or more cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
