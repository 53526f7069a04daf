"""Wi-Fi + MQTT transport for ESP32 sites with Wi-Fi (``"transport": "wifi"``).

Uplinks: each frame's raw bytes are published at QoS 1 to
``fogpark/<lot>/up/<node_id as 8 hex digits>``; the link reports success
only when the broker's PUBACK arrived. Downlinks: the node subscribes
(QoS 1) to ``fogpark/<lot>/down/<node_id hex>``; each message is one raw
downlink frame, verified like one heard over LoRa. The connection is made
on first use and again after a failure, at most every ``RETRY_MS``.
``last_rssi_dbm`` is the station's RSSI; there is no SNR.
"""

import time

from mqtt import MQTTClient, MQTTError

try:
    from micropython import const
except ImportError:  # CPython: unit tests and the CLI

    def const(expr):  # type: ignore[no-redef,misc]
        return expr


TYPE_CHECKING = const(False)  # mypy: True; MicroPython drops the block at compile time (no names interned)
if TYPE_CHECKING:
    from typing import Any  # noqa: F401 - type comments

    from node_config import NodeConfig

ASSOC_TIMEOUT_MS = 10000
RETRY_MS = 30000


class WifiLink:
    def __init__(self, cfg: "NodeConfig") -> None:
        import network

        self.cfg = cfg
        w = cfg.wifi
        node_hex = f"{cfg.node_id:08x}"
        self.up_topic = "fogpark/" + w["lot"] + "/up/" + node_hex
        self.down_topic = "fogpark/" + w["lot"] + "/down/" + node_hex
        self.wlan = network.WLAN(network.STA_IF)
        self.mqtt = MQTTClient("fogpark-" + node_hex, w["broker"], w["port"], w["keepalive_s"])
        self.connected = False
        self.failed_at = None  # type: Any
        self.last_rssi_dbm = None  # type: int | None
        self.last_snr_db = None  # type: float | None

    def connect(self) -> None:
        self._ensure()

    def _ensure(self) -> None:
        if self.connected:
            return
        if self.failed_at is not None and time.ticks_diff(time.ticks_ms(), self.failed_at) < RETRY_MS:
            raise MQTTError(11, "wifi: not connected (retrying later)")
        try:
            self._connect()
        except OSError:
            self.failed_at = time.ticks_ms()
            raise
        self.failed_at = None

    def _connect(self) -> None:
        wlan = self.wlan
        w = self.cfg.wifi
        wlan.active(True)
        if not wlan.isconnected():
            wlan.connect(w["ssid"], w["password"])
            t0 = time.ticks_ms()
            while not wlan.isconnected():
                st = wlan.status()
                if st in (201, 202) or time.ticks_diff(time.ticks_ms(), t0) > ASSOC_TIMEOUT_MS:
                    raise MQTTError(113, "wifi: cannot join " + repr(w["ssid"]) + " (status " + str(st) + ")")
                time.sleep_ms(50)
            print("wifi: joined " + w["ssid"] + " as " + wlan.ifconfig()[0])
        self.last_rssi_dbm = wlan.status("rssi") or None
        self.mqtt.connect(True)
        self.mqtt.subscribe(self.down_topic, 1)
        self.connected = True
        print("mqtt: connected to " + w["broker"] + ":" + str(w["port"]) + ", publishing to " + self.up_topic)

    def _drop(self) -> None:
        self.connected = False
        self.mqtt.close()

    def send(self, data: bytes) -> bool:
        self._ensure()
        try:
            ok = self.mqtt.publish(self.up_topic, data, 1)
        except OSError:
            self._drop()
            raise
        return ok

    def poll(self) -> "bytes | None":
        return self.rx_window(0)

    def rx_window(self, ms: int) -> "bytes | None":
        if not self.connected:
            return None
        try:
            m = self.mqtt.check_msg(ms)
        except OSError:
            self._drop()
            raise
        if m is None or m[0] != self.down_topic:
            return None
        self.last_rssi_dbm = self.wlan.status("rssi") or None
        return m[1]

    def sleep(self) -> None:
        pass



