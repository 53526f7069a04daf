"""Start and stop a whole FogPark stack on this machine: cloud, fog, gateway, nodes.

Used by ``fogpark-hil demo`` and by the end-to-end tests, so the demo is the
tested path. The cloud and the fog run as their real console scripts in
their own process groups; the gateway is a pty; nodes are the real firmware
under the MicroPython unix port. ``stop()`` leaves no process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from fog.config import DEMO_FOG_CONFIG, NodeEntry, load_fog_config
from hil.node_process import EmulatedNode
from hil.pty_gateway import PtyGateway
from hil.radio_channel import Gateway, RadioChannel

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class StackPorts:
    fog_api: int = 8080
    cloud_grpc: int = 50051
    cloud_http: int = 8081

    @classmethod
    def ephemeral(cls) -> StackPorts:
        """Three distinct free ports: all held open while chosen (one after another, the kernel may
        hand the same port out twice, and the cloud then fails to bind its second listener)."""
        with contextlib.ExitStack() as held:
            socks = [held.enter_context(socket.socket()) for _ in range(3)]
            for s in socks:
                s.bind(("127.0.0.1", 0))
            a, b, c = (int(s.getsockname()[1]) for s in socks)
        return cls(a, b, c)


@dataclass
class Stack:
    workdir: Path
    ports: StackPorts = field(default_factory=StackPorts)
    fog_config: Path = DEMO_FOG_CONFIG
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    nodes: dict[str, EmulatedNode] = field(default_factory=dict)  # spot id -> node
    gateway: PtyGateway | None = None
    channel: RadioChannel | None = None
    pumps: list[asyncio.Task[None]] = field(default_factory=list)
    node_settings: dict[str, Any] = field(default_factory=dict)  # extra node.json keys for every node
    downlinks: int = 0
    fog_wrapper: list[str] = field(default_factory=list)  # argv prefix for the fog, e.g. ["faketime", ...]
    fog_env: dict[str, str] = field(default_factory=dict)  # extra environment for the fog only
    hardware: dict[str, str] = field(default_factory=dict)  # spot -> serial port of a real board (hil/BENCH.md)
    channels_hz: tuple[int, ...] = ()  # uplink channels dealt round-robin to nodes (default: the node's own)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir).resolve()  # the processes run in it: relative paths would nest
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cfg = load_fog_config(self.fog_config)
        self.lot_id = self.cfg.lot.id

    @property
    def fog_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.fog_api}"

    @property
    def cloud_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.cloud_http}"

    @property
    def cloud_db(self) -> Path:
        return self.workdir / "cloud.db"

    # --- processes ------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.workdir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, cwd=self.workdir,
                                            env={**os.environ, **env} if env else None)

    def check_ports(self) -> None:
        for name, port in vars(self.ports).items():
            if port_in_use(port):
                raise RuntimeError(f"port {port} ({name}) is already in use on 127.0.0.1: "
                                   "stop what holds it or choose other ports")

    def start_cloud(self) -> None:
        self._spawn("cloud", [str(BIN / "fogpark-cloud"), "serve", "--db", str(self.cloud_db),
                              "--grpc", f"127.0.0.1:{self.ports.cloud_grpc}",
                              "--http", f"127.0.0.1:{self.ports.cloud_http}"])

    def start_fog(self) -> None:
        assert self.gateway is not None
        self._spawn("fog", [*self.fog_wrapper, str(BIN / "fogpark-fog"), "run", "--config", str(self.fog_config),
                            "--data-dir", str(self.workdir / "fog"), "--api", f"127.0.0.1:{self.ports.fog_api}",
                            "--serial", str(self.gateway.port_path),
                            "--cloud", f"127.0.0.1:{self.ports.cloud_grpc}"], self.fog_env)

    def kill(self, name: str, sig: int = signal.SIGKILL, grace_s: float = 10.0) -> int | None:
        """Signal a tier's process group; escalate to SIGKILL after the grace. Returns its exit code."""
        proc = self.procs.get(name)
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        return proc.returncode

    async def wait_http(self, url: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                for name, proc in self.procs.items():
                    if proc.poll() is not None:
                        tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-2000:]
                        raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")
                try:
                    async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as r:
                        if r.status < 500:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")
                await asyncio.sleep(0.1)

    async def get_json(self, url: str) -> Any:
        async with aiohttp.ClientSession() as session, session.get(url) as r:
            r.raise_for_status()
            return await r.json()

    # --- radio side --------------------------------------------------------------

    def start_gateway(self) -> None:
        self.gateway = PtyGateway(self.workdir / "ttyGW0")
        gw = self.gateway
        positions = {s.id: (s.x_m, s.y_m) for s in self.cfg.lot.spots}
        xs = [p[0] for p in positions.values()] or [0.0]
        ys = [p[1] for p in positions.values()] or [0.0]
        self.channel = RadioChannel(
            [Gateway("gw0", (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2,
                     lambda frame, rssi, snr: gw.send_rx(frame, rssi, snr) if gw.master is not None else None)],
            positions,
        )

    async def start_nodes(self, spots: list[str] | None = None, parallel: int = 8) -> None:
        """Start the nodes (``parallel`` at a time: a node's start waits for its boot, mostly idle).

        Channels are dealt in spot order and ``nodes`` keeps that order, whatever order they boot in.
        """
        by_spot: dict[str, NodeEntry] = {n.spot: n for n in self.cfg.nodes.values()}
        order = spots if spots is not None else list(by_spot)
        first = len(self.nodes)
        made: dict[str, EmulatedNode] = {}
        for i, spot in enumerate(order):
            entry = by_spot[spot]
            settings = {**node_json(entry), **self.node_settings}
            if self.channels_hz:  # as a site spreads its nodes over the region's channels
                freq = self.channels_hz[(first + i) % len(self.channels_hz)]
                settings["radio"] = {**dict(settings.get("radio") or {}), "freq_hz": freq}
            if spot in self.hardware:
                from hil.hardware import HardwareNode

                made[spot] = HardwareNode(self.hardware[spot], settings, self.workdir / "nodes" / spot)
            else:
                made[spot] = EmulatedNode(settings, self.workdir / "nodes" / spot)
        gate = asyncio.Semaphore(parallel)

        async def start(spot: str, node: EmulatedNode) -> None:
            async with gate:
                await asyncio.sleep(random.uniform(0.0, 0.1))  # installers do not power every bay in one instant
                await asyncio.to_thread(node.start)
            self.pumps.append(asyncio.create_task(self._pump(spot, node), name=f"pump-{spot}"))

        items = list(made.items())
        if items:  # the first alone: it builds the .mpy tree the others share
            await start(*items[0])
        results = await asyncio.gather(*(start(s, n) for s, n in items[1:]), return_exceptions=True)
        for spot, node in items:
            self.nodes[spot] = node
        for r in results:
            if isinstance(r, BaseException):
                raise r

    async def _downlink_pump(self) -> None:
        """Carry the fog's downlinks (ACKs) from the gateway to the node they address.

        Decision: downlinks are not put through the collision model; the gateway
        transmits in the node's receive window, when the node's own uplink is over.
        """
        spot_of = {n.node_id: n.spot for n in self.cfg.nodes.values()}
        while True:
            await asyncio.sleep(0.005)
            if self.gateway is None:
                continue
            for pkt in self.gateway.read_tx():
                radio = pkt["frame"]
                if len(radio) < 5:
                    continue
                node = self.nodes.get(spot_of.get(int.from_bytes(radio[1:5], "little"), ""))
                if node is not None and node.running:
                    # With several uplink channels the gateway answers on the one the node used (RX1).
                    freq = None if self.channels_hz else pkt["freq_hz"]
                    node.inject_downlink(radio, freq_hz=freq, sf=pkt["sf"])
                    self.downlinks += 1

    async def _pump(self, spot: str, node: EmulatedNode) -> None:
        """Carry a node's transmissions through the channel to the gateway."""
        assert self.channel is not None
        queue = node.transmissions()
        loop = asyncio.get_running_loop()
        while True:
            tx = await queue.get()
            # On air from when the node's process said so (the reader thread's monotonic stamp, the
            # loop's clock too), not from when this task got round to it: a busy bench must not
            # bunch transmissions up into collisions that never happened.
            start = min(tx.t_monotonic, loop.time()) if tx.t_monotonic else loop.time()
            air = self.channel.transmit(spot, tx.payload, tx.freq_hz, tx.sf, tx.bw_hz, tx.cr, tx.power_dbm, start)
            loop.call_at(air.end_s, self.channel.finish, air)

    # --- whole stack ------------------------------------------------------------------

    async def start(self, spots: list[str] | None = None) -> None:
        self.check_ports()
        self.start_gateway()
        self.start_cloud()
        await self.wait_http(f"{self.cloud_url}/healthz")
        self.start_fog()
        await self.wait_http(f"{self.fog_url}/healthz")
        self.pumps.append(asyncio.create_task(self._downlink_pump(), name="downlinks"))
        await self.start_nodes(spots)

    async def stop(self) -> None:
        for task in self.pumps:
            task.cancel()
        await asyncio.gather(*self.pumps, return_exceptions=True)
        for node in self.nodes.values():
            node.stop()
        for name in ("fog", "cloud"):
            self.kill(name, signal.SIGTERM)
        if self.gateway:
            self.gateway.close()


def node_json(entry: NodeEntry) -> dict[str, Any]:
    """The node.json an installer's provisioning would write for this registry entry."""
    return {
        "node_id": entry.node_id,
        "key": entry.key.hex(),
        "spot": entry.spot,
        "board": "unix_emulated",
    }
