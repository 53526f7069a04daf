"""MQTT ingest against a real Mosquitto: Wi-Fi node frames in, retained lot state out, broker restarts.

One broker per test session (per xdist worker) on a free 127.0.0.1 port, with
a password file and persistence in a temporary folder. Each test uses its own
client id and topic prefix, so persistent sessions and retained messages of
one test never reach another. Nodes are paho clients, as a Wi-Fi node's
MQTT stack would be.
"""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import itertools
import json
import os
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fog.config import DEMO_FOG_CONFIG, ConfigError, MqttIngest, load_fog_config
from fog.daemon import FogDaemon
from fog.ingest.mqtt import MqttBrokerLink
from hil.stack import free_port, port_in_use
from proto import frame as fr

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
FOG_USER, FOG_PASSWORD = "fog", "fog-secret"
NODE_USER, NODE_PASSWORD = "node", "node-secret"
NODE_A01 = 0x00D30001
_ids = itertools.count(1)


class Broker:
    """A Mosquitto process that can be stopped and started again on the same port and data."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        passwd = folder / "passwd"
        subprocess.run([MOSQUITTO_PASSWD, "-b", "-c", str(passwd), FOG_USER, FOG_PASSWORD], check=True, timeout=10)
        subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwd), NODE_USER, NODE_PASSWORD], check=True, timeout=10)
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous false\n"
            f"password_file {passwd}\n"
            "persistence true\n"
            f"persistence_location {folder}/\n"
            f"log_dest file {folder}/mosquitto.log\n"
            f"user {getpass.getuser()}\n"  # as root, Mosquitto would otherwise switch to a 'mosquitto' user
        )

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not port_in_use(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.folder / "mosquitto.log").read_text() if (self.folder / "mosquitto.log").exists() else ""
                raise RuntimeError(f"mosquitto did not start: {log[-2000:]}")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM: Mosquitto saves sessions, subscriptions, queued and retained messages, then exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    if not (os.access(MOSQUITTO, os.X_OK) and os.access(MOSQUITTO_PASSWD, os.X_OK)):
        pytest.fail("Mosquitto is not installed: run `make setup` (deploy/install-system-packages.sh)")
    b = Broker(tmp_path_factory.mktemp("mosquitto"))
    b.start()
    yield b
    b.stop()


def _mqtt_cfg(broker: Broker, **changes: Any) -> MqttIngest:
    n = next(_ids)
    cfg = MqttIngest(host="127.0.0.1", port=broker.port, username=FOG_USER, password=FOG_PASSWORD,
                     client_id=f"fog-test-{os.getpid()}-{n}", lot_topic_prefix=f"t{os.getpid()}-{n}/fogpark/demo",
                     reconnect_min_s=1, reconnect_max_s=1)
    return dataclasses.replace(cfg, **changes)


class MqttFog:
    def __init__(self, daemon: FogDaemon, task: asyncio.Task[None]) -> None:
        self.daemon = daemon
        self.task = task
        self.link = daemon.mqtt
        self.url = f"http://127.0.0.1:{daemon.api_port}"
        self.prefix = self.link.prefix

    async def get(self, path: str) -> Any:
        async with aiohttp.ClientSession() as s, s.get(self.url + path) as r:
            return await r.json()

    async def until(self, predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = predicate()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("condition not reached in time")
            await asyncio.sleep(0.02)

    async def spot(self, spot: str) -> dict[str, Any]:
        return next(s for s in await self.get("/v1/lots/demo/spots") if s["spot"] == spot)

    def frame(self, fcnt: int, state: int, node_id: int = NODE_A01) -> bytes:
        payload = fr.occupancy_payload(state, fr.FLAG_RANGE_CONFIRMED, 30, 40, 25)
        return fr.encode_frame(fr.OCCUPANCY, node_id, fcnt, payload, self.daemon.cfg.nodes[node_id].key)


@pytest.fixture
async def start_fog(tmp_path: Path) -> AsyncIterator[Callable[[MqttIngest], Any]]:
    running: list[MqttFog] = []

    async def start(mqtt_cfg: MqttIngest) -> MqttFog:
        cfg = dataclasses.replace(load_fog_config(DEMO_FOG_CONFIG), data_dir=tmp_path / f"fog{len(running)}",
                                  api_port=0, cloud=None, serial=(), mqtt=mqtt_cfg)
        daemon = FogDaemon(cfg)
        task = asyncio.create_task(daemon.run(install_signals=False))
        while daemon.api_port is None:
            await asyncio.sleep(0.01)
        fog = MqttFog(daemon, task)
        running.append(fog)
        return fog

    yield start
    for fog in running:
        fog.daemon.stop_event.set()
        await asyncio.wait_for(fog.task, 15)


class Node:
    """A Wi-Fi node's MQTT side: QoS 1 publications of radio frames on <prefix>/up/<node id>."""

    def __init__(self, broker: Broker, prefix: str, node_id: int = NODE_A01) -> None:
        self.topic = f"{prefix}/up/{node_id:08x}"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"node-{node_id:08x}-{next(_ids)}",
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set(NODE_USER, NODE_PASSWORD)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def publish(self, frame: bytes, rssi_dbm: int | None = None, snr_db: float | None = None) -> None:
        props = Properties(PacketTypes.PUBLISH)
        if rssi_dbm is not None and snr_db is not None:
            props.UserProperty = [("rssi_dbm", str(rssi_dbm)), ("snr_db", str(snr_db))]
        info = self.client.publish(self.topic, frame, qos=1, properties=props)
        info.wait_for_publish(timeout=20)  # PUBACK: the broker has it
        assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Watcher:
    """A late subscriber (an entrance display board): retained state and live updates."""

    def __init__(self, broker: Broker, topics: list[str]) -> None:
        self.got: dict[str, Any] = {}
        self.changed = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"board-{next(_ids)}",
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set(NODE_USER, NODE_PASSWORD)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        body = msg.payload.decode()
        with self.changed:
            self.got[msg.topic] = json.loads(body) if body.startswith("{") else body
            self.changed.notify_all()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def test_node_frame_is_accepted_and_lot_state_is_retained(broker: Broker, start_fog: Any) -> None:
    fog: MqttFog = await start_fog(_mqtt_cfg(broker))
    await fog.until(lambda: fog.link.connected)
    assert (await fog.get("/healthz"))["status"] == "ok"
    node = await asyncio.to_thread(Node, broker, fog.prefix)
    try:
        await asyncio.to_thread(node.publish, fog.frame(1, fr.OCCUPIED), -61, 12.5)

        async def occupied() -> dict[str, Any] | None:
            spot = await fog.spot("A01")
            return spot if spot["state"] == "occupied" else None

        spot = await fog.until(occupied)
        assert (spot["rssi_dbm"], spot["snr_db"]) == (-61, 12.5)  # from the node's MQTT 5 user properties
        events = (await fog.get("/v1/lots/demo/events"))["events"]
        assert [(e["fcnt"], e["gateway"]) for e in events] == [(1, "mqtt")]

        # A display board subscribing now gets the counts at once (retained), then each change.
        await fog.until(lambda: fog.link.states_published >= 3 + 2)  # at connect: lot, zones A and B; then 2
        topics = [f"{fog.prefix}/state", f"{fog.prefix}/zones/+/state", f"{fog.prefix}/fog"]
        board = await asyncio.to_thread(Watcher, broker, topics)
        try:
            lot_topic, zone_a = f"{fog.prefix}/state", f"{fog.prefix}/zones/A/state"
            # states_published counts what the fog handed to its client; the broker may still hold the
            # previous retained state when the board subscribes: the change then follows as a live message.
            await fog.until(lambda: board.got.get(lot_topic, {}).get("occupied") == 1
                            and board.got.get(zone_a, {}).get("occupied") == 1)
            lot, a = board.got[lot_topic], board.got[zone_a]
            assert {k: lot[k] for k in ("lot", "capacity", "occupied", "free", "unknown")} == {
                "lot": "demo", "capacity": 24, "occupied": 1, "free": 0, "unknown": 23}
            zone_a_spots = sum(1 for s in fog.daemon.cfg.lot.spots if s.zone == "A")
            assert (a["zone"], a["capacity"], a["occupied"], a["unknown"]) == ("A", zone_a_spots, 1, zone_a_spots - 1)
            assert lot["updated_ms"] > 0
            assert board.got[f"{fog.prefix}/fog"] == "online"

            # A change is published (live to the board, retained for the next one) ...
            await asyncio.to_thread(node.publish, fog.frame(2, fr.EMPTY))
            await fog.until(lambda: board.got[lot_topic]["free"] == 1)
            assert board.got[lot_topic]["occupied"] == 0 and board.got[zone_a]["free"] == 1
            published = fog.link.states_published
            # ... a report that changes no count is not.
            await asyncio.to_thread(node.publish, fog.frame(3, fr.EMPTY))
            await fog.until(lambda: fog.daemon.store.count("events") == 3)
            await asyncio.sleep(0.2)
            assert fog.link.states_published == published
        finally:
            await asyncio.to_thread(board.close)
    finally:
        await asyncio.to_thread(node.close)


async def test_wrong_password_is_reported_as_degraded(broker: Broker, start_fog: Any) -> None:
    fog: MqttFog = await start_fog(_mqtt_cfg(broker, password="not-the-password"))

    async def degraded() -> dict[str, Any] | None:
        health = await fog.get("/healthz")
        problem = health["problems"].get("ingest:mqtt", "")
        return health if "refused" in problem else None

    health = await fog.until(degraded)
    problem = health["problems"]["ingest:mqtt"]
    assert health["status"] == "degraded"
    assert "Not authorized" in problem and "'fog'" in problem and "username and password" in problem
    assert not fog.link.connected and fog.link.alive()  # still trying, with paho's backoff


async def test_broker_restart_reconnects_and_delivers_what_was_queued(broker: Broker, start_fog: Any) -> None:
    fog: MqttFog = await start_fog(_mqtt_cfg(broker, reconnect_min_s=3, reconnect_max_s=3))
    await fog.until(lambda: fog.link.connected)
    try:
        await asyncio.to_thread(broker.stop)

        async def degraded() -> dict[str, Any] | None:
            health = await fog.get("/healthz")
            return health if health["status"] == "degraded" else None

        health = await fog.until(degraded)
        assert "broker" in health["problems"]["ingest:mqtt"]
        # Restart just after a reconnection attempt failed: the next one is 3 s away, time enough for a node
        # to publish while the broker is up and the fog is not connected.
        failures = fog.link.connect_failures
        await fog.until(lambda: fog.link.connect_failures > failures)
        assert "cannot reach the broker" in (await fog.get("/healthz"))["problems"]["ingest:mqtt"]
    finally:
        await asyncio.to_thread(broker.start)
    node = await asyncio.to_thread(Node, broker, fog.prefix)
    try:
        await asyncio.to_thread(node.publish, fog.frame(1, fr.OCCUPIED))
        assert not fog.link.connected, "precondition: published while the fog was away"

        async def occupied() -> bool:
            return (await fog.spot("A01"))["state"] == "occupied"

        await fog.until(occupied)  # the broker kept it for the fog's persistent session
        await fog.until(lambda: fog.link.connected)
        assert (await fog.get("/healthz"))["status"] == "ok"
        assert (fog.link.connects, fog.link.disconnects) == (2, 1)
    finally:
        await asyncio.to_thread(node.close)


def _link(**changes: Any) -> tuple[MqttBrokerLink, list[Any], list[str]]:
    cfg = load_fog_config(DEMO_FOG_CONFIG)
    got: list[Any] = []
    errors: list[str] = []
    from fog.lot_state import LotState

    state = LotState(cfg.lot, {})
    mcfg = MqttIngest(host="127.0.0.1", port=1, username=None, password=None, client_id="c",
                      lot_topic_prefix="p/demo", **changes)
    return MqttBrokerLink(mcfg, cfg.lot, got.append, lambda: state, lambda gw, r: errors.append(r)), got, errors


def _message(payload: bytes, dup: bool = False, retain: bool = False, props: list[tuple[str, str]] | None = None
             ) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(mid=1, topic=b"p/demo/up/00d30001")
    msg.payload, msg.dup, msg.retain = payload, dup, retain
    if props is not None:
        msg.properties = Properties(PacketTypes.PUBLISH)
        msg.properties.UserProperty = props
    return msg


class _AckRecorder:
    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, mid: int, qos: int) -> None:
        self.acked.append(mid)


def test_redelivery_retained_oversize_and_bad_properties_are_handled_at_the_edge() -> None:
    link, got, errors = _link()
    client = _AckRecorder()
    frame = b"\x11" + bytes(15)
    first = _message(frame)
    link._on_message(client, None, first)  # type: ignore[arg-type]
    assert client.acked == []  # not before the cycle committed it
    link._on_message(client, None, _message(frame, dup=True))  # type: ignore[arg-type]  # QoS 1 redelivery
    assert len(got) == 1 and link.redeliveries == 1 and client.acked == []
    assert got[0].on_commit is not None
    got[0].on_commit()  # the cycle committed: now the PUBACK goes out
    assert client.acked == [first.mid]
    link._on_message(client, None, _message(frame, dup=True))  # type: ignore[arg-type]  # PUBACK was lost
    assert client.acked == [first.mid, first.mid] and len(got) == 1
    link._on_message(client, None, _message(frame))  # type: ignore[arg-type]  # not DUP: the cycle decides
    assert len(got) == 2
    link._on_message(client, None, _message(b"\x12" * 16, retain=True))  # type: ignore[arg-type]
    link._on_message(client, None, _message(bytes(300)))  # type: ignore[arg-type]
    link._on_message(client, None, _message(b"\x13" * 16, props=[("rssi_dbm", "-300"), ("snr_db", "7.5")]))  # type: ignore[arg-type]
    foreign = _message(b"\x14" * 16)
    foreign.topic = b"fogpark/old-prefix/up/00d30001"  # type: ignore[misc]
    link._on_message(client, None, foreign)  # type: ignore[arg-type]
    assert errors == ["retained_uplink", "oversize", "bad_user_property", "foreign_topic"]
    assert len(client.acked) == 2 + 3  # the refused ones are acknowledged at once: nothing to wait for
    assert (got[-1].rssi_dbm, got[-1].snr_db, got[-1].gateway) == (None, 7.5, "mqtt")


def test_state_is_published_only_for_counts_that_changed() -> None:
    link, _, _ = _link()
    sent: list[tuple[str, dict[str, Any]]] = []

    class Client:
        def publish(self, topic: str, payload: str, qos: int, retain: bool) -> None:
            assert qos == 1 and retain
            sent.append((topic, json.loads(payload)))

    link._client, link._session_up = Client(), True  # type: ignore[assignment]
    link._publish_all()  # as at connect: the lot and every zone
    assert {t for t, _ in sent} == {"p/demo/state", "p/demo/zones/A/state", "p/demo/zones/B/state"}
    sent.clear()
    link.publish_changes([{"type": "spot", "spot": "A01", "state": "occupied", "at_ms": 1},
                          {"type": "spot", "spot": "A02", "state": "empty", "at_ms": 1}])
    assert sorted((t, d["occupied"], d["free"]) for t, d in sent) == [("p/demo/state", 1, 1),
                                                                      ("p/demo/zones/A/state", 1, 1)]
    sent.clear()
    # One bay leaves and another in the same zone fills in the same cycle: no count changed, nothing is sent.
    link.publish_changes([{"type": "spot", "spot": "A01", "state": "empty", "at_ms": 2},
                          {"type": "spot", "spot": "A02", "state": "occupied", "at_ms": 2}])
    link.publish_changes([{"type": "reservation", "spot": "A02"}])  # not a spot state change
    assert sent == []


def test_zone_names_are_escaped_into_one_topic_level() -> None:
    link, _, _ = _link()
    topic, doc = link.state_document("A")
    assert topic == "p/demo/zones/A/state" and doc["capacity"] == doc["unknown"]
    from fog.ingest.mqtt import zone_topic_level

    assert zone_topic_level("level 2/east+#") == "level%202%2Feast%2B%23"


def _fog_file(tmp_path: Path, mqtt_table: str) -> Path:
    path = tmp_path / "fog.toml"
    path.write_text(f'[fog]\nid = "north"\nlot = "{DEMO_FOG_CONFIG.parent / "demo-lot.toml"}"\n\n'
                    f"[ingest.mqtt]\n{mqtt_table}\n")
    return path


@pytest.mark.parametrize(
    ("table", "where", "words"),
    [
        ('username = "f"\npassword = "x"\npassword_file = "pw"', "ingest.mqtt.password_file", "not both"),
        ('username = "f"\npassword_file = "missing"', "ingest.mqtt.password_file", "cannot read"),
        ('password = "x"', "ingest.mqtt.username", "needs a username"),
        ('lot_topic_prefix = "fogpark/+/x"', "ingest.mqtt.lot_topic_prefix", "wildcards"),
        ('lot_topic_prefix = "fogpark/demo/"', "ingest.mqtt.lot_topic_prefix", "empty levels"),
        ("port = 70000", "ingest.mqtt.port", "maximum"),
        ('protocol = "3.1"', "ingest.mqtt.protocol", "not one of"),
        ("reconnect_min_s = 10\nreconnect_max_s = 5", "ingest.mqtt.reconnect_max_s", "minimum"),
        ('hostname = "broker"', "ingest.mqtt.hostname", "unknown key"),
    ],
)
def test_mqtt_config_is_validated(tmp_path: Path, table: str, where: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_fog_config(_fog_file(tmp_path, table))
    assert err.value.where == where and words in err.value.problem


def test_mqtt_config_defaults_and_password_file(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    cfg = load_fog_config(_fog_file(tmp_path, 'username = "fogpark"\npassword_file = "pw"'))
    m = cfg.mqtt
    assert m is not None
    assert (m.host, m.port, m.username, m.password, m.client_id, m.lot_topic_prefix, m.protocol) == (
        "127.0.0.1", 1883, "fogpark", "s3cret", "fogpark-fog-north", "fogpark/demo", "5")
    assert "s3cret" not in repr(m)
