"""Deployment material: the systemd unit verifies, TLS material chains, scripts parse."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from fog.sdnotify import SystemdNotifier

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy"))
import gen_tls  # noqa: E402


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "make setup installs systemd tools"
    unit = (ROOT / "deploy/fogpark-fog.service").read_text()
    # verify checks that ExecStart exists: point it at this checkout's console script.
    unit = unit.replace("/opt/fogpark/venv/bin/fogpark-fog", str(Path(sys.executable).with_name("fogpark-fog")))
    (tmp_path / "fogpark-fog.service").write_text(unit)
    out = subprocess.run([analyze, "verify", str(tmp_path / "fogpark-fog.service")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "fogpark-fog.service" not in out.stderr  # no warnings about our unit
    for line in ("Type=notify", "WatchdogSec=", "Restart=always", "ProtectSystem=strict", "StateDirectory="):
        assert line in unit


@pytest.mark.parametrize("script", ["install-pi.sh", "install-system-packages.sh"])
def test_shell_scripts_parse(script: str) -> None:
    assert subprocess.run(["bash", "-n", str(ROOT / "deploy" / script)]).returncode == 0


def test_tls_material_chains_to_the_ca(tmp_path: Path) -> None:
    gen_tls.generate(tmp_path, ["localhost", "127.0.0.1"], ["demo-fog"])
    ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    # The client certificate is signed by the same CA and is for client auth only.
    server.load_verify_locations(tmp_path / "ca.pem")
    assert (tmp_path / "server.key").stat().st_mode & 0o077 == 0
    a, b = socket.socketpair()
    import threading

    def serve() -> None:
        with server.wrap_socket(a, server_side=True) as s:
            s.recv(1)

    t = threading.Thread(target=serve)
    t.start()
    with ctx.wrap_socket(b, server_hostname="127.0.0.1") as c:
        assert c.version() is not None
        c.send(b"x")
    t.join(5)


def test_sd_notify_datagrams(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    n = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"})
    assert n.enabled and n.watchdog_s == 30.0
    assert n.ready("serving")
    assert sock.recv(100) == b"READY=1\nSTATUS=serving"
    assert n.watchdog()
    assert sock.recv(100) == b"WATCHDOG=1"
    assert not SystemdNotifier({}).ready()  # not under systemd: a no-op, not an error
