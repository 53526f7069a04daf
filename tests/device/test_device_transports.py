"""Transports other than LoRa: Wi-Fi + MQTT through a real Mosquitto, and the UART (SLIP) link of wired rigs.

The unix port has no ``network``: hil/emu/network.py emulates only the
Wi-Fi association; the MQTT session is the firmware's own client
(device/firmware/mqtt.py) on the unix port's real sockets, talking to a
real broker on 127.0.0.1, observed with paho-mqtt.
"""

from __future__ import annotations

import os
import pty
import queue
import select
import shutil
import socket
import subprocess
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from proto import frame, serial_link

NODE_ID = 0x1234ABCD
AP = {"ssid": "lot-ap", "password": "s3cret-pass", "rssi": -57}


def _mosquitto() -> str | None:
    return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    exe = _mosquitto()
    if exe is None:
        pytest.skip("mosquitto is not installed (make setup installs it)")
    port = _free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("mosquitto did not start")
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(timeout=5)


class Subscriber:
    """paho-mqtt on the lot's topics: what the fog's MQTT ingest would see."""

    def __init__(self, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt

        self.msgs: queue.Queue[tuple[str, bytes, int]] = queue.Queue()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-fog")
        self.c.on_message = lambda _c, _u, m: self.msgs.put((m.topic, bytes(m.payload), m.qos))
        self.c.connect("127.0.0.1", port)
        self.c.subscribe(topic, qos=1)
        self.c.loop_start()
        time.sleep(0.2)

    def next(self, timeout: float = 8.0) -> tuple[str, bytes, int]:
        return self.msgs.get(timeout=timeout)

    def publish(self, topic: str, payload: bytes) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def _wifi_node(node_json: Callable[..., dict[str, Any]], port: int, **over: Any) -> dict[str, Any]:
    return node_json(
        sample_ms=200,
        transport="wifi",
        wifi={"ssid": AP["ssid"], "password": AP["password"], "broker": "127.0.0.1", "port": port, "lot": "lot1"},
        detect={"calib_samples": 2},
        **over,
    )


def test_wifi_node_publishes_raw_frames_at_qos1_and_takes_downlinks(
    broker: int, emulated_node: Callable[..., Any], node_json: Callable[..., dict[str, Any]], key: bytes
) -> None:
    sub = Subscriber(broker, "fogpark/lot1/up/#")
    try:
        node = emulated_node(_wifi_node(node_json, broker), world={"wifi": AP})
        topic, payload, qos = sub.next()
        assert topic == "fogpark/lot1/up/1234abcd" and qos == 1
        hb = frame.parse_frame(payload)  # the raw frame bytes, nothing around them
        assert hb.msg_type == frame.HEARTBEAT and hb.verify(key, 0)
        assert hb.fields()["rssi_dbm"] == -57  # the station's RSSI
        assert node.wait_console(r"^wifi: joined lot-ap as 10\.42\.0\.23", timeout=1)
        assert node.tx_log == []  # nothing went out on LoRa
        node.park()
        _, payload, _ = sub.next()
        occ = frame.parse_frame(payload)
        assert occ.verify(key, 1) and occ.fields()["state"] == frame.OCCUPIED
        # a downlink published by the fog arrives without a receive window: the node polls every sample
        cfg = frame.encode_frame(frame.CONFIG, NODE_ID, 1, frame.config_payload(9, [(2, b"\x02\x00")]), key)
        sub.publish("fogpark/lot1/down/1234abcd", cfg)
        _, payload, _ = sub.next()
        ack = frame.parse_frame(payload)
        assert ack.msg_type == frame.CONFIG_ACK and ack.verify(key, 2)
        assert ack.fields() == {"config_version": 9, "status": 0}
    finally:
        sub.close()


def test_wifi_wrong_password_is_reported_and_nothing_is_sent(
    broker: int, emulated_node: Callable[..., Any], node_json: Callable[..., dict[str, Any]]
) -> None:
    sub = Subscriber(broker, "fogpark/#")
    try:
        node = emulated_node(_wifi_node(node_json, broker), world={"wifi": dict(AP, password="other")})
        assert node.wait_console(r"wifi: cannot join 'lot-ap' \(status 202\)", timeout=5)
        with pytest.raises(queue.Empty):
            sub.next(timeout=1.0)
    finally:
        sub.close()


def test_mqtt_packets_as_the_spec_lays_them_out() -> None:
    """The encoders, byte for byte (MQTT 3.1.1 sections 3.1, 3.3, 3.8)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fw_mqtt", Path(__file__).parents[2] / "device" / "firmware" / "mqtt.py")
    assert spec is not None and spec.loader is not None
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    assert m.connect_packet("n1", 60) == b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02n1"
    assert m.publish_packet("a/b", b"\x01\x02", 7, 1) == b"\x32\x09\x00\x03a/b\x00\x07\x01\x02"
    assert m.publish_packet("a/b", b"", 7, 1, dup=True)[0] == 0x3A
    assert m.subscribe_packet(3, "a/#", 1) == b"\x82\x08\x00\x03\x00\x03a/#\x01"
    assert m._varint(321) == b"\xc1\x02"  # remaining length over 127: two bytes


def test_uart_link_speaks_the_gateway_serial_protocol(
    emulated_node: Callable[..., Any], node_json: Callable[..., dict[str, Any]], key: bytes
) -> None:
    master, slave = pty.openpty()
    tty.setraw(slave)
    try:
        node = emulated_node(
            node_json(sample_ms=200, transport="uart", detect={"calib_samples": 2}), uart=os.ttyname(slave)
        )
        dec = serial_link.SlipDecoder()
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + 8
        while not got and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                got += [p for p in dec.feed(os.read(master, 512)) if isinstance(p, dict)]
        assert got, node.console_lines()
        rx = got[0]
        assert rx["kind"] == serial_link.RX and rx["sf"] == 7 and rx["freq_hz"] == 868100000
        hb = frame.parse_frame(rx["frame"])
        assert hb.msg_type == frame.HEARTBEAT and hb.verify(key, 0)
        # a downlink from the fog comes back as a TX packet
        cmd = frame.encode_frame(frame.COMMAND, NODE_ID, 1, frame.command_payload(frame.CMD_SELFTEST, b""), key)
        os.write(master, serial_link.encode_tx(cmd, 7, 868100000))
        assert node.wait_console(r"^self-test: magnetometer ok, ranger ok", timeout=3)
        assert node.tx_log == []
    finally:
        os.close(master)
        os.close(slave)
