"""The fog as systemd runs it: notify protocol, watchdog pings, SIGHUP reload, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from hil.stack import free_port

FOG = str(Path(sys.executable).with_name("fogpark-fog"))


def _recv_until(sock: socket.socket, wanted: bytes, timeout: float = 15.0) -> list[bytes]:
    sock.settimeout(timeout)
    got: list[bytes] = []
    while True:
        msg = sock.recv(4096)
        got.append(msg)
        if wanted in msg:
            return got


def test_notify_watchdog_reload_and_clean_stop(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")
    proc = subprocess.Popen([FOG, "run", "--no-cloud", "--data-dir", str(tmp_path / "data"),
                             "--api", f"127.0.0.1:{free_port()}"], env=env, stderr=subprocess.PIPE)
    try:
        _recv_until(sock, b"READY=1")
        pings = _recv_until(sock, b"WATCHDOG=1", timeout=5)
        assert pings[-1] == b"WATCHDOG=1"
        proc.send_signal(signal.SIGHUP)
        got = _recv_until(sock, b"READY=1")
        assert any(b"RELOADING=1" in m for m in got)
        proc.send_signal(signal.SIGTERM)
        _recv_until(sock, b"STOPPING=1")
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert "reloaded: 24 nodes registered" in err
    assert "fog stopped cleanly" in err


def test_bad_config_refuses_to_start(tmp_path: Path) -> None:
    lot = tmp_path / "lot.toml"
    lot.write_text('[lot]\nid = "x"\n[[spots]]\nid = "S1"\nkind = "golf-cart"\n')
    cfg = tmp_path / "fog.toml"
    cfg.write_text('[fog]\nid = "f"\nlot = "lot.toml"\n')
    out = subprocess.run([FOG, "run", "--config", str(cfg)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert str(lot) in out.stderr and "spots[0].kind" in out.stderr and "golf-cart" in out.stderr
    out = subprocess.run([FOG, "check", str(cfg)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "spots[0].kind" in out.stderr
