"""``fogpark-hil demo``: the whole stack on embedded defaults, with a live summary.

A cloud (SQLite store), a fog for the 24-spot demo lot, a gateway on a pty,
and one emulated node per bay running the real firmware under the MicroPython
unix port. Vehicles arrive (Poisson) and leave; the screen shows truth, what
the fog and the cloud hold, radio counters and sync lag. Ctrl-C stops it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from hil.stack import Stack, StackPorts
from hil.traffic import PoissonTraffic


def _metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            try:
                return float(line.rsplit(" ", 1)[1])
            except ValueError:
                return None
    return None


async def _fetch_text(url: str) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
        return await r.text()


async def run_demo(workdir: Path, ports: StackPorts, arrivals_per_min: float, mean_stay_s: float,
                   duration_s: float | None, seed: int, clear_screen: bool = True) -> int:
    if workdir.exists():
        shutil.rmtree(workdir)  # each demo starts from an empty lot and empty stores
    # Heartbeats every 30 s (3 h on a real site) keep the screen lively without jamming the channel;
    # a 15 s boot jitter spreads the 24 first heartbeats as a site's power-up would.
    stack = Stack(workdir, ports, node_settings={"heartbeat_s": 30, "boot_jitter_s": 15})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"starting FogPark demo in {workdir} ...", flush=True)
    try:
        await stack.start()
    except Exception as err:  # noqa: BLE001 - report and clean up whatever started
        print(f"demo could not start: {err}", file=sys.stderr)
        await stack.stop()
        return 1
    traffic = PoissonTraffic(sorted(stack.nodes), arrivals_per_min, mean_stay_s, seed)
    t0 = loop.time()
    last_sent, last_t = 0, t0
    try:
        while not stop.is_set():
            now = loop.time() - t0
            arrived, left = traffic.step(now)
            for spot in arrived:
                stack.nodes[spot].park()
            for spot in left:
                stack.nodes[spot].leave()
            assert stack.channel is not None
            sent = sum(stack.channel.stats.sent.values())
            rate = (sent - last_sent) / max(1e-6, loop.time() - last_t)
            last_sent, last_t = sent, loop.time()
            await _render(stack, traffic, now, rate, clear_screen)
            if duration_s is not None and now >= duration_s:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
    finally:
        print("\nstopping: nodes, fog, cloud ...", flush=True)
        await stack.stop()
        print("stopped; nothing left running. Logs and stores are in", workdir)
    return 0


async def _render(stack: Stack, traffic: PoissonTraffic, now: float, frames_per_s: float, clear: bool) -> None:
    try:
        lot = await stack.get_json(f"{stack.fog_url}/v1/lots/{stack.lot_id}")
        stats = await stack.get_json(f"{stack.fog_url}/v1/stats")
        metrics = await _fetch_text(f"{stack.fog_url}/metrics")
        health = await stack.get_json(f"{stack.fog_url}/healthz")
        cloud_lots = await stack.get_json(f"{stack.cloud_url}/v1/lots")
        history = await stack.get_json(f"{stack.cloud_url}/v1/lots/{stack.lot_id}/history?since=1d&limit=100000")
    except Exception as err:  # noqa: BLE001 - the screen must survive a tier restarting
        print(f"[{now:6.0f} s] waiting for the stack: {err}", flush=True)
        return
    ch = stack.channel
    assert ch is not None
    cloud: dict[str, Any] = next((c for c in cloud_lots if c.get("lot_id") == stack.lot_id), {})
    latest: dict[str, str] = {}
    for event in history["events"]:  # oldest first: the last word per spot wins
        latest[event["spot_id"]] = event["state"]
    cloud_occupied = sum(1 for s in latest.values() if s == "occupied")
    lag = _metric(metrics, "fogpark_sync_lag_seconds")
    p99 = _metric(metrics, "fogpark_cycle_overruns_total")
    lines = [
        f"FogPark demo — lot {stack.lot_id} — {time.strftime('%H:%M:%S')} — running {now:.0f} s (Ctrl-C stops)",
        "",
        f"  truth        occupied {len(traffic.occupied):3d}   turned away {traffic.turned_away}",
        f"  fog          occupied {lot['occupied']:3d}   free {lot['free']:3d}   unknown {lot['unknown']:3d}"
        f"   of {lot['capacity']}   health {health['status']}",
        f"  cloud        occupied {cloud_occupied:3d}   (from {history['count']} spot events synced)"
        f"   last per-minute summary: "
        f"{str(cloud['occupied']) + ' occupied' if cloud else 'none yet'}",
        "",
        f"  radio        frames/s {frames_per_s:5.2f}   sent {sum(ch.stats.sent.values())}"
        f"   delivered {sum(ch.stats.delivered.values())}   lost {dict(ch.stats.lost) or 0}",
        f"  fog          events stored {stats['events_stored']}   refused {stats['frames_refused'] or 0}"
        f"   cycle overruns {p99 or 0:.0f}",
        f"  sync         acked seq {stats['acked_seq']}   waiting {stats['outbox_waiting']}"
        f"   lag {lag if lag is not None else 0:.1f} s",
        "",
        f"  fog API      {stack.fog_url}/v1/lots/{stack.lot_id}/spots   {stack.fog_url}/metrics",
        f"  cloud API    {stack.cloud_url}/v1/lots   {stack.cloud_url}/v1/lots/{stack.lot_id}/history?since=10m",
        f"  cloud gRPC   127.0.0.1:{stack.ports.cloud_grpc}",
    ]
    if health["problems"]:
        lines.append(f"  degraded:    {health['problems']}")
    prefix = "\x1b[H\x1b[2J" if clear else ""
    print(prefix + "\n".join(lines), flush=True)
