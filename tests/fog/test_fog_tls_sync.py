"""Fog -> cloud over TLS (certificates from deploy/gen_tls.py), plaintext refused, failover."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fog.config import DEMO_FOG_CONFIG, SerialIngest, load_fog_config
from fog.daemon import FogDaemon
from hil.pty_gateway import PtyGateway
from hil.stack import free_port, port_in_use
from proto import frame as fr

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy"))
import gen_tls  # noqa: E402

pytestmark = pytest.mark.xdist_group("e2e")
CLOUD = str(Path(sys.executable).with_name("fogpark-cloud"))


def _start_cloud(tmp: Path, grpc_port: int, tls: bool) -> subprocess.Popen[bytes]:
    argv = [CLOUD, "serve", "--db", str(tmp / "cloud.db"), "--grpc", f"127.0.0.1:{grpc_port}",
            "--http", f"127.0.0.1:{free_port()}"]
    if tls:
        argv += ["--tls-cert", str(tmp / "tls/server.pem"), "--tls-key", str(tmp / "tls/server.key")]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not port_in_use(grpc_port):
        assert proc.poll() is None and time.monotonic() < deadline, "cloud did not start"
        time.sleep(0.05)
    return proc


async def _run_fog(tmp: Path, targets: tuple[str, ...], tls_ca: Path | None, seconds: float,
                   records_wanted: int) -> tuple[FogDaemon, int]:
    gw = PtyGateway(tmp / f"tty{time.monotonic_ns()}")
    base = load_fog_config(DEMO_FOG_CONFIG)
    assert base.cloud is not None
    cloud = dataclasses.replace(base.cloud, targets=targets, tls_ca=tls_ca)
    cfg = dataclasses.replace(base, data_dir=tmp / f"fog{time.monotonic_ns()}", api_port=0, cloud=cloud,
                              serial=(SerialIngest(str(gw.port_path), 115200, "gw0"),))
    daemon = FogDaemon(cfg)
    task = asyncio.create_task(daemon.run(install_signals=False))
    try:
        while not all(g.connected for g in daemon.gateways):
            await asyncio.sleep(0.01)
        node = cfg.nodes[0x00D30002]
        gw.send_rx(fr.encode_frame(fr.OCCUPANCY, node.node_id, 1, fr.occupancy_payload(1, 0, 5, 40, 30), node.key))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if daemon.store.acked_seq() >= records_wanted:
                break
            await asyncio.sleep(0.1)
        return daemon, daemon.store.acked_seq()
    finally:
        daemon.stop_event.set()
        await asyncio.wait_for(task, 10)
        gw.close()


async def test_sync_over_tls_and_plaintext_is_refused(tmp_path: Path) -> None:
    gen_tls.generate(tmp_path / "tls", ["localhost", "127.0.0.1"], [])
    port = free_port()
    cloud = _start_cloud(tmp_path, port, tls=True)
    try:
        daemon, acked = await _run_fog(tmp_path, (f"127.0.0.1:{port}",), tmp_path / "tls/ca.pem", 20, 1)
        assert acked >= 1
        db = sqlite3.connect(tmp_path / "cloud.db")
        assert db.execute("SELECT COUNT(*) FROM spot_events WHERE spot_id='A02'").fetchone()[0] == 1
        # The same fog without the CA (plaintext) gets nothing through and says so.
        daemon, acked = await _run_fog(tmp_path, (f"127.0.0.1:{port}",), None, 3, 1)
        assert acked == 0
        assert "cloud" in daemon.health()["problems"]
    finally:
        cloud.terminate()
        cloud.wait(10)


async def test_fog_fails_over_to_the_next_cloud_address(tmp_path: Path) -> None:
    dead, live = free_port(), free_port()
    cloud = _start_cloud(tmp_path, live, tls=False)
    try:
        daemon, acked = await _run_fog(tmp_path, (f"127.0.0.1:{dead}", f"127.0.0.1:{live}"), None, 20, 1)
        assert acked >= 1 and daemon.sync is not None and daemon.sync.target_index >= 1
    finally:
        cloud.terminate()
        cloud.wait(10)

