"""MQTT ingest from Wi-Fi nodes, and the lot's retained state for entrance display boards.

Wi-Fi nodes publish the same radio frame a LoRa node sends (proto/FRAME.md) to
``<prefix>/up/<node>``; the fog subscribes with QoS 1 in a persistent session
(fixed client id, ``clean_start=False``), so frames a node published while the
fog was away are delivered when it comes back. MIC, replay and dedup checks
happen later, in the cycle: this module only delivers bytes and metadata.

The fog publishes, retained and QoS 1, the lot's counts on ``<prefix>/state``
and each zone's on ``<prefix>/zones/<zone>/state`` when they change, and
``online``/``offline`` on ``<prefix>/fog`` (the will says ``offline`` if the
fog dies). Topics and payloads: fog/ingest/MQTT.md.

paho's network thread runs every callback; it only appends to the cycle's
queue and counts. Reconnection is paho's (``reconnect_delay_set`` +
``loop_start``); ``connected``/``last_error`` feed ``/healthz``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from fog.admission import Reception, frame_digest
from fog.config import LotConfig, MqttIngest
from fog.lot_state import LotState

log = logging.getLogger("fogpark.fog.mqtt")

MAX_PAYLOAD = 255  # a LoRa PHY payload's limit; anything larger is not a frame and is not queued
RECENT_FRAMES = 4096  # digests kept to recognise a QoS 1 redelivery (DUP) of a frame already handed on
AUTH_REFUSALS = (134, 135)  # MQTT 5 "Bad user name or password", "Not authorized" (3.1.1 codes 4, 5 map here)
STATES = ("empty", "occupied", "unknown")


def zone_topic_level(zone: str) -> str:
    """A zone id as one topic level: '/', '+', '#' and other specials are %-escaped."""
    return quote(zone, safe="-_.~")


def _wall_ms() -> int:
    return int(time.time() * 1000)


class MqttBrokerLink:
    """The fog's client of the lot's broker: uplinks in, retained lot state out."""

    def __init__(
        self,
        cfg: MqttIngest,
        lot: LotConfig,
        submit: Callable[[Reception], None],
        lot_state: Callable[[], LotState],
        on_link_error: Callable[[str, str], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.name = cfg.gateway
        self.submit = submit
        self.on_link_error = on_link_error or (lambda gw, reason: None)
        self.prefix = cfg.lot_topic_prefix
        self.uplink_prefix = f"{self.prefix}/up/"
        self.uplink_topic = self.uplink_prefix + "+"
        self.status_topic = f"{self.prefix}/fog"
        self.connected = False  # connected AND subscribed: frames can arrive
        self.last_error = "not connected yet"
        self.messages = 0
        self.connects = 0
        self.disconnects = 0
        self.connect_failures = 0
        self.redeliveries = 0
        self.states_published = 0
        self._session_up = False  # CONNACK accepted: state can be published
        self._refused = False
        self._recent: OrderedDict[bytes, bool] = OrderedDict()  # frame digest -> acknowledged yet
        self._client: mqtt.Client | None = None
        self._lock = threading.Lock()  # the count shadow and the order of state publications
        self._published: dict[str | None, tuple[int, int, int]] = {}
        self._shadow(lot, lot_state())

    # --- lifecycle ----------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        v5 = self.cfg.protocol == "5"
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.cfg.client_id,
            clean_session=None if v5 else False,  # 3.1.1: a persistent session
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            manual_ack=True,  # PUBACK only after the cycle committed the frame (commit before ack)
        )
        client.suppress_exceptions = True  # a failing callback must not end the network thread
        if self.cfg.username is not None:
            client.username_pw_set(self.cfg.username, self.cfg.password)
        client.reconnect_delay_set(self.cfg.reconnect_min_s, self.cfg.reconnect_max_s)
        client.max_inflight_messages_set(20)
        client.max_queued_messages_set(1000)  # bounded while the broker is away; state is re-sent on connect
        client.will_set(self.status_topic, "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        client = self._client = self._make_client()
        if self.cfg.protocol == "5":
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.cfg.session_expiry_s  # v5 drops the session at once without it
            client.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive_s, clean_start=False,
                                 properties=props)
        else:
            client.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive_s)
        client.loop_start()  # paho's thread connects, and reconnects with its backoff, by itself

    def alive(self) -> bool:
        """The network thread runs (paho keeps it in ``_thread``; there is no public accessor)."""
        thread = getattr(self._client, "_thread", None)
        return isinstance(thread, threading.Thread) and thread.is_alive()

    def stop(self) -> None:
        client = self._client
        if client is None:
            return
        if self._session_up:
            info = client.publish(self.status_topic, "offline", qos=1, retain=True)  # a clean stop sends no will
            try:
                info.wait_for_publish(timeout=2)
            except (RuntimeError, ValueError):  # not sendable any more: the will covers it
                pass
        client.disconnect()
        client.loop_stop()
        self.connected = self._session_up = False

    def stats(self) -> dict[str, Any]:
        return {"connected": self.connected, "last_error": self.last_error, "messages": self.messages,
                "connects": self.connects, "disconnects": self.disconnects,
                "connect_failures": self.connect_failures, "redeliveries_dropped": self.redeliveries,
                "states_published": self.states_published}

    def _note_down(self, why: str) -> None:
        if why != self.last_error:
            log.warning("mqtt %s: %s", self.name, why)
        self.last_error = why
        self.connected = False

    # --- paho callbacks (network thread) -------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags, reason: ReasonCode,
                    properties: Properties | None) -> None:
        where = f"{self.cfg.host}:{self.cfg.port}"
        if reason.is_failure:
            self._refused = True
            hint = " (check [ingest.mqtt] username and password)" if reason.value in AUTH_REFUSALS else ""
            self._note_down(f"broker {where} refused the login as {self.cfg.username!r}: {reason}{hint}")
            return
        self._refused = False
        self.connects += 1
        with self._lock:
            self._session_up = True
            client.publish(self.status_topic, "online", qos=1, retain=True)
            self._publish_all()  # the broker may have lost its retained messages; boards need the counts now
        client.subscribe(self.uplink_topic, qos=1)
        log.info("mqtt %s: connected to %s as %s (session present: %s)", self.name, where, self.cfg.client_id,
                 flags.session_present)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[ReasonCode],
                      properties: Properties | None) -> None:
        bad = [r for r in reasons if r.is_failure]
        if bad:
            self._note_down(f"broker refused the subscription to {self.uplink_topic}: {bad[0]} (check its ACL)")
            return
        self.connected = True
        self.last_error = ""

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self.connect_failures += 1
        self._note_down(f"cannot reach the broker at {self.cfg.host}:{self.cfg.port}")

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags, reason: ReasonCode,
                       properties: Properties | None) -> None:
        self._session_up = False  # no lock: paho may hold its own locks here, and the flag is one store
        if self._refused:
            self.connected = False  # keep the refusal as the reason: it is what the operator must fix
            return
        self.disconnects += 1
        self._note_down(f"lost the broker at {self.cfg.host}:{self.cfg.port} ({reason}); reconnecting")

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        payload = bytes(msg.payload)
        refused = None
        if not msg.topic.startswith(self.uplink_prefix):  # an old subscription kept by the persistent session
            refused = "foreign_topic"
        elif msg.retain:  # a retained uplink is stale by definition and would replay at every subscribe
            refused = "retained_uplink"
        elif len(payload) > MAX_PAYLOAD:
            refused = "oversize"
        if refused:
            self.on_link_error(self.name, refused)
            client.ack(msg.mid, msg.qos)  # refused for good: nothing to wait for
            return
        digest = frame_digest(payload)
        if msg.dup and digest in self._recent:
            self.redeliveries += 1  # QoS 1 redelivery after a lost PUBACK: the cycle already has it
            if self._recent[digest]:
                client.ack(msg.mid, msg.qos)  # committed already: repeat the lost PUBACK
            return  # else the pending commit acknowledges this mid
        self._recent[digest] = False
        if len(self._recent) > RECENT_FRAMES:
            self._recent.popitem(last=False)
        rssi, snr = self._radio_properties(msg.properties)
        self.messages += 1
        mid, qos = msg.mid, msg.qos

        def committed() -> None:
            if digest in self._recent:
                self._recent[digest] = True
            client.ack(mid, qos)

        self.submit(Reception(payload, self.name, 0, rssi, snr, _wall_ms(), on_commit=committed))

    def _radio_properties(self, props: Properties | None) -> tuple[int | None, float | None]:
        """Optional MQTT 5 user properties ``rssi_dbm`` / ``snr_db`` a node may send; bad ones are counted."""
        rssi: int | None = None
        snr: float | None = None
        for key, value in getattr(props, "UserProperty", None) or ():
            try:
                if key == "rssi_dbm":
                    rssi = int(value)
                    if not -200 <= rssi <= 0:
                        raise ValueError(value)
                elif key == "snr_db":
                    snr = float(value)
                    if not -40.0 <= snr <= 40.0:
                        raise ValueError(value)
            except ValueError:
                self.on_link_error(self.name, "bad_user_property")
                if key == "rssi_dbm":
                    rssi = None
                else:
                    snr = None
        return rssi, snr

    # --- retained lot state (the cycle's on_commit listener, event-loop thread) -------

    def _shadow(self, lot: LotConfig, state: LotState) -> None:
        """Incremental counts per zone and for the lot, from the committed state (caller holds the lock)."""
        self.lot = lot
        self._zone_of = {s.id: s.zone for s in lot.spots}
        self._spot_state: dict[str, str] = {}
        self._counts: dict[str | None, dict[str, int]] = {None: dict.fromkeys(STATES, 0)}  # None: the lot
        for spot in state.spots.values():
            self._spot_state[spot.spot_id] = spot.state
            for key in (None, spot.zone):
                self._counts.setdefault(key, dict.fromkeys(STATES, 0))[spot.state] += 1
        now = _wall_ms()
        self._updated_ms: dict[str | None, int] = dict.fromkeys(self._counts, now)

    def relot(self, lot: LotConfig, state: LotState) -> None:
        """The lot was switched live: recount, publish every topic, and clear the retained state of zones
        that are gone (an empty retained message deletes it on the broker)."""
        with self._lock:
            zones_before = {key for key in self._counts if key is not None}
            self._shadow(lot, state)
            for key in zones_before - set(self._counts):
                self._published.pop(key, None)
                if self._session_up and self._client is not None:
                    self._client.publish(f"{self.prefix}/zones/{zone_topic_level(key)}/state", b"", qos=1,
                                         retain=True)
            if self._session_up:
                self._publish_all()

    def publish_changes(self, changes: list[dict[str, Any]]) -> None:
        """Apply committed spot changes to the counts; publish the topics whose counts changed."""
        now = _wall_ms()
        with self._lock:
            touched: set[str | None] = set()
            for change in changes:
                spot, new = change.get("spot"), change.get("state")
                if change.get("type") != "spot" or spot not in self._zone_of or new not in STATES:
                    continue
                old = self._spot_state[spot]
                if old == new:
                    continue
                self._spot_state[spot] = new
                for key in (None, self._zone_of[spot]):
                    self._counts[key][old] -= 1
                    self._counts[key][new] += 1
                    touched.add(key)
            for key in touched:
                if self._key_counts(key) != self._published.get(key):
                    self._updated_ms[key] = now
                    if self._session_up:
                        self._publish(key)

    def _key_counts(self, key: str | None) -> tuple[int, int, int]:
        c = self._counts[key]
        return c["occupied"], c["empty"], c["unknown"]

    def state_document(self, key: str | None) -> tuple[str, dict[str, Any]]:
        """Topic and JSON body for the lot (``None``) or one zone."""
        occupied, free, unknown = self._key_counts(key)
        doc: dict[str, Any] = {"lot": self.lot.id}
        topic = f"{self.prefix}/state"
        if key is not None:
            doc["zone"] = key
            topic = f"{self.prefix}/zones/{zone_topic_level(key)}/state"
        doc.update(capacity=occupied + free + unknown, occupied=occupied, free=free, unknown=unknown,
                   updated_ms=self._updated_ms[key])
        return topic, doc

    def _publish(self, key: str | None) -> None:
        """Caller holds the lock, so two publications of one topic leave in commit order."""
        assert self._client is not None
        topic, doc = self.state_document(key)
        self._client.publish(topic, json.dumps(doc, separators=(",", ":")), qos=1, retain=True)
        self._published[key] = self._key_counts(key)
        self.states_published += 1

    def send_downlink(self, node_id: int, radio_frame: bytes) -> bool:
        """A downlink (an ACK) to a Wi-Fi node: ``<prefix>/down/<node>``, QoS 1, not retained."""
        client = self._client
        if client is None or not self.connected:
            return False
        client.publish(f"{self.prefix}/down/{node_id:08x}", radio_frame, qos=1, retain=False)
        return True

    def _publish_all(self) -> None:
        for key in self._counts:
            self._publish(key)
