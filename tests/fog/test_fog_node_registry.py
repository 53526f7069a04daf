"""The node registry API: an installer's provisioning registers a node, the fog accepts its frames
at once and after a restart; retiring stops them; bad calls are refused and change nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from pathlib import Path

import aiohttp

from fog.config import EXAMPLES, SerialIngest, load_fog_config
from fog.daemon import FogDaemon
from hil.pty_gateway import PtyGateway
from proto import frame as fr

KEY = "00112233445566778899aabbccddeeff"
NEW = 0x0BADCAFE


async def _start(tmp: Path, gw: PtyGateway) -> tuple[FogDaemon, asyncio.Task[None], str]:
    cfg = load_fog_config(tmp / "demo-fog.toml")
    cfg = dataclasses.replace(cfg, data_dir=tmp / "data", api_port=0, cloud=None,
                              serial=(SerialIngest(str(gw.port_path), 115200, "gw0"),))
    daemon = FogDaemon(cfg)
    task = asyncio.create_task(daemon.run(install_signals=False))
    while daemon.api_port is None or not all(g.connected for g in daemon.gateways):
        await asyncio.sleep(0.01)
    return daemon, task, f"http://127.0.0.1:{daemon.api_port}"


async def _occupied_after(daemon: FogDaemon, gw: PtyGateway, fcnt: int, spot: str) -> bool:
    gw.send_rx(fr.encode_frame(fr.OCCUPANCY, NEW, fcnt, fr.occupancy_payload(fcnt % 2, 0, 5, 40, 30),
                               bytes.fromhex(KEY)))
    for _ in range(100):
        await asyncio.sleep(0.02)
        if daemon.store.db.execute("SELECT COUNT(*) FROM events WHERE node_id=? AND fcnt=?",
                                   [NEW, fcnt]).fetchone()[0]:
            return True
    return False


async def test_register_use_restart_and_retire(tmp_path: Path) -> None:
    for name in ("demo-fog.toml", "demo-lot.toml", "demo-nodes.toml"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    gw = PtyGateway(tmp_path / "tty")
    daemon, task, url = await _start(tmp_path, gw)
    admin = {"Authorization": "Bearer demo-admin"}
    try:
        async with aiohttp.ClientSession() as s:
            # A24 is watched already: retire its node first, as an installer replacing a sensor does.
            async with s.delete(f"{url}/v1/nodes/0x00D3010C", headers=admin) as r:
                assert r.status == 200 and (await r.json())["spot"] == "B12"
            body = {"node_id": NEW, "spot": "B12", "key": KEY}
            async with s.post(f"{url}/v1/nodes", json=body) as r:
                assert r.status == 401  # no token: refused, nothing changed
            for bad, where in (({**body, "key": "xyz"}, "body.key"), ({**body, "spot": "Z99"}, "body.spot"),
                               ({**body, "node_id": 0x00D30001}, "body.node_id"),
                               ({**body, "spot": "A01"}, "body.spot")):
                async with s.post(f"{url}/v1/nodes", json=bad, headers=admin) as r:
                    assert r.status in (400, 409) and (await r.json())["where"] == where
            assert NEW not in daemon.cfg.nodes
            assert not await _occupied_after(daemon, gw, 1, "B12")  # unknown node: refused
            async with s.post(f"{url}/v1/nodes", json=body, headers=admin) as r:
                assert r.status == 201
            assert await _occupied_after(daemon, gw, 2, "B12")
            async with s.get(f"{url}/v1/nodes") as r:
                listed = await r.json()
            assert any(n["node_id"] == NEW and n["spot"] == "B12" for n in listed)
            assert all("key" not in n for n in listed)  # keys never leave the box
            text = (tmp_path / "demo-nodes.toml").read_text()
            assert "0x0BADCAFE" in text and "0x00D3010C" not in text
    finally:
        daemon.stop_event.set()
        await asyncio.wait_for(task, 10)
    # The registry file holds the change: a restarted fog still accepts the node.
    daemon, task, url = await _start(tmp_path, gw)
    try:
        assert await _occupied_after(daemon, gw, 3, "B12")
        async with aiohttp.ClientSession() as s, s.delete(
                f"{url}/v1/nodes/{NEW}", headers={"Authorization": "Bearer demo-admin"}) as r:
            assert r.status == 200
        assert not await _occupied_after(daemon, gw, 4, "B12")
        assert daemon.engine.refusals.get("unknown_node", 0) >= 2
    finally:
        daemon.stop_event.set()
        await asyncio.wait_for(task, 10)
        gw.close()
    assert "0x0BADCAFE" not in (tmp_path / "demo-nodes.toml").read_text()


async def test_installer_provisions_a_node_straight_into_the_fog(tmp_path: Path) -> None:
    import json

    from device.cli import main as node_main

    for name in ("demo-fog.toml", "demo-lot.toml", "demo-nodes.toml"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    gw = PtyGateway(tmp_path / "tty")
    daemon, task, url = await _start(tmp_path, gw)
    try:
        argv = ["provision", "--board", "unix_emulated", "--spot", "B11", "--out", str(tmp_path / "node.json"),
                "--fog", url, "--token", "demo-admin"]
        assert await asyncio.to_thread(node_main, argv) == 2  # B11 is watched: refused, nothing written
        assert not (tmp_path / "node.json").exists()
        async with aiohttp.ClientSession() as s, s.delete(
                f"{url}/v1/nodes/0x00D3010B", headers={"Authorization": "Bearer demo-admin"}) as r:
            assert r.status == 200
        assert await asyncio.to_thread(node_main, argv) == 0
        node = json.loads((tmp_path / "node.json").read_text())
        entry = daemon.cfg.nodes[node["node_id"]]
        assert entry.spot == "B11" and entry.key.hex() == node["key"]
        assert node["node_id"] in {int(line.split("=")[1], 16) for line in
                                   (tmp_path / "demo-nodes.toml").read_text().splitlines()
                                   if line.startswith("node_id")}
    finally:
        daemon.stop_event.set()
        await asyncio.wait_for(task, 10)
        gw.close()
