"""A small MQTT 3.1.1 client in the style of micropython-lib's ``umqtt.simple``.

Enough for a sensor node: CONNECT (clean session, keepalive), PUBLISH at
QoS 0 or 1 (waits for the PUBACK; a retry sets DUP), SUBSCRIBE, incoming
PUBLISH at QoS 0/1 (answered with PUBACK), PINGREQ, DISCONNECT. Blocking
socket calls are bounded by ``select.poll`` timeouts, so a dead broker costs
at most ``timeout_ms``. The packet encoders are plain functions (tests
check them against a real broker and paho-mqtt).
"""

import select
import socket
import struct
import time

try:
    from micropython import const
except ImportError:  # CPython: unit tests and the CLI

    def const(expr):  # type: ignore[no-redef,misc]
        return expr


TYPE_CHECKING = const(False)  # mypy: True; MicroPython drops the block at compile time (no names interned)
if TYPE_CHECKING:
    from typing import Any  # noqa: F401 - type comments

CONNACK_CODES = (
    "accepted",
    "unacceptable protocol version",
    "client id rejected",
    "server unavailable",
    "bad user name or password",
    "not authorised",
)


class MQTTError(OSError):
    pass


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _str(s: "str | bytes") -> bytes:
    b = s.encode() if isinstance(s, str) else bytes(s)
    return struct.pack("!H", len(b)) + b


def connect_packet(client_id: str, keepalive: int = 60, clean_session: bool = True) -> bytes:
    body = _str("MQTT") + bytes([4, 0x02 if clean_session else 0]) + struct.pack("!H", keepalive) + _str(client_id)
    return b"\x10" + _varint(len(body)) + body


def publish_packet(topic: str, msg: bytes, pid: int = 0, qos: int = 0, retain: bool = False, dup: bool = False) -> bytes:
    head = 0x30 | (qos << 1) | (1 if retain else 0) | (0x08 if dup else 0)
    body = _str(topic) + (struct.pack("!H", pid) if qos else b"") + bytes(msg)
    return bytes([head]) + _varint(len(body)) + body


def subscribe_packet(pid: int, topic: str, qos: int = 1) -> bytes:
    body = struct.pack("!H", pid) + _str(topic) + bytes([qos])
    return b"\x82" + _varint(len(body)) + body


class MQTTClient:
    def __init__(self, client_id: str, server: str, port: int = 1883, keepalive: int = 60, timeout_ms: int = 5000) -> None:
        self.client_id = client_id
        self.server = server
        self.port = port
        self.keepalive = keepalive
        self.timeout_ms = timeout_ms
        self.sock = None  # type: Any
        self.poller = None  # type: Any
        self.pid = 0
        self.inbox = []  # type: list  # (topic, msg) received while waiting for something else
        self.last_io_ms = 0  # type: Any

    # --- socket ---------------------------------------------------------------

    def _wait(self, ms: int) -> bool:
        return bool(self.poller.poll(ms))

    def _read(self, n: int, ms: int) -> bytes:
        out = b""
        t0 = time.ticks_ms()
        while len(out) < n:
            left = ms - time.ticks_diff(time.ticks_ms(), t0)
            if left <= 0 or not self._wait(left):
                raise MQTTError(110, "MQTT: broker did not answer in time")
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise MQTTError(104, "MQTT: broker closed the connection")
            out += chunk
        return out

    def _write(self, data: bytes) -> None:
        self.sock.send(data) if hasattr(self.sock, "send") else self.sock.write(data)
        self.last_io_ms = time.ticks_ms()

    def _packet(self, ms: int) -> "tuple | None":
        """The next packet (type byte, body), or None when nothing comes within ``ms``."""
        if not self._wait(ms):
            return None
        head = self._read(1, self.timeout_ms)[0]
        n = 0
        shift = 0
        while True:
            b = self._read(1, self.timeout_ms)[0]
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        return head, self._read(n, self.timeout_ms) if n else b""

    def _handle(self, head: int, body: bytes) -> None:
        """A packet that is not the one being waited for: incoming PUBLISH goes to the inbox."""
        if head & 0xF0 == 0x30:
            tlen = struct.unpack("!H", body[:2])[0]
            topic = body[2 : 2 + tlen].decode()
            off = 2 + tlen
            qos = (head >> 1) & 3
            if qos:
                pid = body[off : off + 2]
                off += 2
                self._write(b"\x40\x02" + pid)
            self.inbox.append((topic, bytes(body[off:])))

    # --- MQTT -------------------------------------------------------------------

    def connect(self, clean_session: bool = True) -> None:
        addr = socket.getaddrinfo(self.server, self.port)[0][-1]
        s = socket.socket()
        try:
            s.connect(addr)
        except OSError:
            s.close()
            raise
        self.sock = s
        self.poller = select.poll()
        self.poller.register(s, select.POLLIN)
        self._write(connect_packet(self.client_id, self.keepalive, clean_session))
        p = self._packet(self.timeout_ms)
        if p is None or p[0] != 0x20 or len(p[1]) != 2:
            self.close()
            raise MQTTError(111, "MQTT: no CONNACK from " + self.server)
        rc = p[1][1]
        if rc:
            self.close()
            raise MQTTError(111, "MQTT: connection refused: " + (CONNACK_CODES[rc] if rc < 6 else str(rc)))

    def _next_pid(self) -> int:
        self.pid = self.pid % 65535 + 1
        return self.pid

    def publish(self, topic: str, msg: bytes, qos: int = 1, retries: int = 1) -> bool:
        """Publish; at QoS 1 True once the broker's PUBACK arrived."""
        if qos == 0:
            self._write(publish_packet(topic, msg))
            return True
        pid = self._next_pid()
        for attempt in range(retries + 1):
            self._write(publish_packet(topic, msg, pid, 1, False, attempt > 0))
            t0 = time.ticks_ms()
            while True:
                left = self.timeout_ms - time.ticks_diff(time.ticks_ms(), t0)
                p = self._packet(left) if left > 0 else None
                if p is None:
                    break
                if p[0] == 0x40 and p[1] == struct.pack("!H", pid):
                    return True
                self._handle(p[0], p[1])
        return False

    def subscribe(self, topic: str, qos: int = 1) -> None:
        pid = self._next_pid()
        self._write(subscribe_packet(pid, topic, qos))
        t0 = time.ticks_ms()
        while True:
            left = self.timeout_ms - time.ticks_diff(time.ticks_ms(), t0)
            p = self._packet(left) if left > 0 else None
            if p is None:
                raise MQTTError(110, "MQTT: no SUBACK")
            if p[0] == 0x90 and p[1][:2] == struct.pack("!H", pid):
                if p[1][2] == 0x80:
                    raise MQTTError(1, "MQTT: subscription to " + topic + " refused")
                return
            self._handle(p[0], p[1])

    def check_msg(self, ms: int = 0) -> "tuple | None":
        """(topic, message) of a message received (within ``ms``), or None."""
        if self.inbox:
            return self.inbox.pop(0)
        p = self._packet(ms)
        while p is not None:
            self._handle(p[0], p[1])
            if self.inbox:
                return self.inbox.pop(0)
            p = self._packet(0)
        if self.keepalive and time.ticks_diff(time.ticks_ms(), self.last_io_ms) > self.keepalive * 500:
            self._write(b"\xc0\x00")  # PINGREQ at half the keepalive
        return None

    def disconnect(self) -> None:
        try:
            self._write(b"\xe0\x00")
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None

