"""Fault injection on a scenario's timeline: how each fault of ``hil/scenario.FAULT_KINDS`` is done.

Every fault acts on the real parts a real failure would hit: the fog and the
cloud are SIGKILLed in their process groups and restarted on the same stores;
the serial link is the pty pulled from under the fog; radio loss is the
channel's burst; battery, tamper are the emulated node's physical world;
spoofed and replayed frames go through the gateway as if heard on air. Each
fault writes down what it expects the fog to notice (an alert, a refusal),
so the verdict can compare expected against raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from hil.node_process import EmulatedNode
from hil.scenario import Fault
from hil.stack import Stack
from proto import frame as fr

FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


@dataclass
class FaultLog:
    """What the faults did and what they expect: the verdict's input."""

    done: list[dict[str, Any]] = field(default_factory=list)
    expected_alerts: list[tuple[str, int]] = field(default_factory=list)  # (kind, node_id)
    expected_refusals: dict[str, int] = field(default_factory=dict)  # reason -> at least this many
    expected_battery: dict[str, int] = field(default_factory=dict)  # spot -> mV the fog should show
    clock_offset_ms: list[tuple[float, int]] = field(default_factory=list)  # (wall s epoch, fog clock offset)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    unplugged_frames: int = 0


def faketime_available() -> bool:
    """libfaketime (Debian package ``faketime``) is what the clock jump needs."""
    return FAKETIME_LIB.exists() or shutil.which("faketime") is not None


def prepare_clock(stack: Stack, workdir: Path) -> Path | None:
    """Run the fog under libfaketime with a timestamp file the clock-jump fault rewrites.

    ``FAKETIME_TIMESTAMP_FILE`` is re-read on every call (``FAKETIME_NO_CACHE``),
    so writing ``+3600s`` into it jumps the fog's wall clock while it runs;
    monotonic clocks are left alone (``FAKETIME_DONT_FAKE_MONOTONIC``), as NTP
    stepping the clock leaves CLOCK_MONOTONIC alone.
    """
    if not FAKETIME_LIB.exists():
        return None
    ts = workdir / "fog-faketime.rc"
    ts.write_text("+0s\n")
    stack.fog_env.update({"LD_PRELOAD": str(FAKETIME_LIB), "FAKETIME_TIMESTAMP_FILE": str(ts),
                          "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    return ts


async def wait_up(stack: Stack, name: str, url: str, timeout: float = 30.0) -> None:
    """Like Stack.wait_http, but only minds the tier being waited for (another may be down on purpose)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            proc = stack.procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} while restarting")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as r:
                    if r.status < 500:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


class FaultInjector:
    """Applies a scenario's faults to a running Stack at their (wall) times."""

    def __init__(self, stack: Stack, acceleration: float, reserved: dict[str, str],
                 faketime_file: Path | None) -> None:
        self.stack = stack
        self.acc = acceleration
        self.reserved = reserved  # fault index key -> spot kept out of the traffic
        self.faketime_file = faketime_file
        self.log = FaultLog()
        self.acked: set[tuple[int, int]] = set()  # (node, fcnt) the fog's API showed; the runner fills it
        self.tasks: list[asyncio.Task[None]] = []

    def spot_for(self, idx: int, f: Fault) -> str:
        return str(f.args.get("spot") or self.reserved[f"{idx}"])

    def start(self, faults: list[Fault], t0: float) -> None:
        """Schedule every fault; ``t0`` is the loop time the traffic phase started."""
        for i, f in enumerate(faults):
            self.tasks.append(asyncio.create_task(self._at(i, f, t0 + f.at_s / self.acc), name=f"fault-{f.kind}"))

    async def _at(self, idx: int, f: Fault, when: float) -> None:
        await asyncio.sleep(max(0.0, when - asyncio.get_running_loop().time()))
        entry: dict[str, Any] = {"kind": f.kind, "at_s": f.at_s, "wall_epoch": time.time(), **f.args}
        try:
            await getattr(self, "_" + f.kind)(idx, f, entry)
            entry["ok"] = True
        except asyncio.CancelledError:
            entry["ok"] = False
            entry["error"] = "the run ended before this fault finished"
            self.log.done.append(entry)
            raise
        except Exception as err:  # noqa: BLE001 - a fault that could not be applied is reported, not fatal
            entry["ok"] = False
            entry["error"] = f"{type(err).__name__}: {err}"
        self.log.done.append(entry)

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    # --- the faults ----------------------------------------------------------------

    async def _fog_kill(self, idx: int, f: Fault, e: dict[str, Any]) -> None:
        e["exit"] = self.stack.kill("fog", signal.SIGKILL)
        await asyncio.sleep(float(f.args["restart_after_s"]) / self.acc)
        self.stack.start_fog()
        await wait_up(self.stack, "fog", f"{self.stack.fog_url}/healthz")

    async def _cloud_down(self, idx: int, f: Fault, e: dict[str, Any]) -> None:
        e["exit"] = self.stack.kill("cloud", signal.SIGKILL)
        await asyncio.sleep(float(f.args["duration_s"]) / self.acc)
        self.stack.start_cloud()
        await wait_up(self.stack, "cloud", f"{self.stack.cloud_url}/healthz")

    async def _serial_unplug(self, idx: int, f: Fault, e: dict[str, Any]) -> None:
        gw = self.stack.gateway
        assert gw is not None
        sent_before = sum(self.stack.channel.stats.delivered.values()) if self.stack.channel else 0
        gw.unplug()
        await asyncio.sleep(float(f.args["duration_s"]) / self.acc)
        gw.plug()
        if self.stack.channel:
            # Frames heard on air while the cable was out never reached the fog: a loss cause of its own.
            self.log.unplugged_frames += sum(self.stack.channel.stats.delivered.values()) - sent_before

    async def _radio_burst(self, idx: int, f: Fault, e: dict[str, Any]) -> None:
        assert self.stack.channel is not None
        self.stack.channel.start_burst(asyncio.get_running_loop().time(), float(f.args["duration_s"]) / self.acc)

    async def _battery_sag(self, idx: int, f: Fault, e: dict[str, Any]) -> None:
        """The cell sags; with ``brownout`` the MCU resets on it, as a sagging cell under TX load does.

        The fog learns the voltage from heartbeats only, so the reset's boot
        heartbeat is what makes a sag visible before the next periodic one.
        """
        spot = self.spot_for(idx, f)
        e["spot"] = spot
        node = self.stack.nodes[spot]
        node.set_world(battery_mv=int(f.args["battery_mv"]))
        if f.args.get("brownout"):
            await asyncio.to_thread(node.restart)  # the world (and its battery) survives the reset
        self.log.expected_battery[spot] = int(f.args["battery_mv"])

    async def _tamper(self, idx: int, f: Fault, e: dict[str, Any]) -> None:
        """Something stuck on the sensor (a few cm over the ranger) for a while; the node calls it tamper."""
        spot = self.spot_for(idx, f)
        e["spot"] = spot
        node = self.stack.nodes[spot]
        self.log.expected_alerts.append(("tamper", int(node.node_json["node_id"])))
        node.set_world(distance_cm=3.0)
        await asyncio.sleep(float(f.args["duration_s"]) / self.acc)
        node.set_world(distance_cm=None)

    async def _spoof(self, idx: int, f: Fault, e: dict[str, Any]) -> None:
        """Frames claiming a registered node's id, signed with a wrong key."""
        spot = self.spot_for(idx, f)
        e["spot"] = spot
        node_id = int(self.stack.nodes[spot].node_json["node_id"])
        gw = self.stack.gateway
        assert gw is not None
        wrong = os.urandom(16)
        for i in range(int(f.args["count"])):
            payload = bytes([fr.OCCUPIED, 0, 0, 0xFF, 40])  # state, prev duration (u16), no range, deviation
            with contextlib.suppress(fr.FrameError):
                gw.send_rx(fr.encode_frame(fr.OCCUPANCY, node_id, 60000 + i, payload, wrong), -80, 7.0)
            await asyncio.sleep(0.3)
        self.log.expected_alerts.append(("bad_mic", node_id))
        self.log.expected_refusals["bad_mic"] = self.log.expected_refusals.get("bad_mic", 0) + 1

    async def _replay(self, idx: int, f: Fault, e: dict[str, Any]) -> None:
        """A recorder re-sends a node's earlier frames, byte for byte.

        Only frames the fog is known to have accepted are replayed (a frame lost
        on air would be news, not a replay), older than the fog's duplicate
        window (inside it a copy is a second gateway's). The fault's bay first;
        if none of its frames qualifies (its heartbeats were lost on air), any
        emulated bay's.
        """
        first = self.spot_for(idx, f)
        gw = self.stack.gateway
        assert gw is not None
        count = int(f.args["count"])
        deadline = time.monotonic() + 30
        while True:
            for spot in [first] + sorted(s for s in self.stack.nodes if s != first):
                node = self.stack.nodes[spot]
                if not isinstance(node, EmulatedNode):
                    continue
                node_id = int(node.node_json["node_id"])
                acked16 = {fc & 0xFFFF for n, fc in self.acked if n == node_id}
                old = [tx.payload for tx in node.tx_log if time.monotonic() - tx.t_monotonic > 12
                       and int.from_bytes(tx.payload[5:7], "little") in acked16][-count:]
                if old:
                    break
            if old or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
        if not old:
            raise RuntimeError("no emulated node has an accepted frame older than 12 s to replay")
        e["spot"] = spot
        for payload in old:
            gw.send_rx(payload, -80, 7.0)
            await asyncio.sleep(0.3)
        e["frames"] = len(old)
        self.log.expected_alerts.append(("replay", node_id))
        self.log.expected_refusals["replay"] = self.log.expected_refusals.get("replay", 0) + 1

    async def _clock_jump(self, idx: int, f: Fault, e: dict[str, Any]) -> None:
        if self.faketime_file is None:
            self.log.skipped.append({"kind": "clock_jump", "why": "libfaketime not installed (apt install faketime)"})
            raise RuntimeError("libfaketime not installed")
        jump = float(f.args["jump_s"])
        prev = self.log.clock_offset_ms[-1][1] if self.log.clock_offset_ms else 0
        offset = prev + int(jump * 1000)
        self.faketime_file.write_text(f"{offset / 1000:+.0f}s\n")
        self.log.clock_offset_ms.append((time.time(), offset))

    async def _broker_restart(self, idx: int, f: Fault, e: dict[str, Any]) -> None:
        self.log.skipped.append({"kind": "broker_restart",
                                 "why": "the bench's nodes use LoRa through the serial gateway; no broker in the path"})
        raise RuntimeError("not applicable: no MQTT broker in this stack")
