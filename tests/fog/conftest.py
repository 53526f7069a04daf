"""Fixtures for fog tests: a fog daemon in the test's loop with a pty gateway."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from fog.config import DEMO_FOG_CONFIG, SerialIngest, load_fog_config
from fog.daemon import FogDaemon
from hil.pty_gateway import PtyGateway


class RunningFog:
    def __init__(self, daemon: FogDaemon, gateway: PtyGateway, task: asyncio.Task[None]) -> None:
        self.daemon = daemon
        self.gateway = gateway
        self.task = task
        self.url = f"http://127.0.0.1:{daemon.api_port}"

    async def get(self, path: str) -> tuple[int, object]:
        async with aiohttp.ClientSession() as s, s.get(self.url + path) as r:
            body = await r.json() if r.content_type == "application/json" else await r.text()
            return r.status, body

    async def wait_for(self, predicate, timeout: float = 5.0):  # type: ignore[no-untyped-def]
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = await predicate()
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("condition not reached in time")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.daemon.stop_event.set()
        await asyncio.wait_for(self.task, 10)


@pytest.fixture
async def fog(tmp_path: Path) -> AsyncIterator[RunningFog]:
    gw = PtyGateway(tmp_path / "ttyGW0")
    cfg = load_fog_config(DEMO_FOG_CONFIG)
    cfg = dataclasses.replace(cfg, data_dir=tmp_path / "fog", api_port=0, cloud=None,
                              serial=(SerialIngest(str(gw.port_path), 115200, "gw0"),))
    daemon = FogDaemon(cfg)
    task = asyncio.create_task(daemon.run(install_signals=False))
    while daemon.api_port is None:
        await asyncio.sleep(0.01)
    running = RunningFog(daemon, gw, task)
    await running.wait_for(lambda: _connected(daemon))
    yield running
    if not task.done():
        await running.stop()
    gw.close()


async def _connected(daemon: FogDaemon) -> bool:
    return all(g.connected for g in daemon.gateways)
