"""UART transport for wired test rigs (``"transport": "uart"``): the gateway serial link.

The node speaks ``proto/serial_link.py`` (SLIP, CRC-16) on a UART as if it
were a gateway that heard its own frame: each uplink goes out as an RX
packet (gateway id 0, RSSI/SNR 0, the configured SF and frequency), so the
fog's serial ingest takes it unchanged; the fog's TX packets (downlinks)
come back and are verified like radio downlinks. No airtime rules apply.
"""

import time

import machine

from proto import serial_link

try:
    from micropython import const
except ImportError:  # CPython: unit tests and the CLI

    def const(expr):  # type: ignore[no-redef,misc]
        return expr


TYPE_CHECKING = const(False)  # mypy: True; MicroPython drops the block at compile time (no names interned)
if TYPE_CHECKING:
    from node_config import NodeConfig


class UartLink:
    def __init__(self, cfg: "NodeConfig") -> None:
        u = cfg.uart
        self.uart = machine.UART(u["id"], baudrate=u["baudrate"], tx=u["tx"], rx=u["rx"], timeout=0)
        self.sf = cfg.radio["sf"]
        self.freq_hz = cfg.radio["freq_hz"]
        self.dec = serial_link.SlipDecoder()
        self.waiting = []  # type: list
        self.last_rssi_dbm = None  # type: int | None
        self.last_snr_db = None  # type: float | None

    def send(self, data: bytes) -> bool:
        self.uart.write(serial_link.encode_rx(data, 0, 0, 0, self.sf, self.freq_hz))
        return True

    def poll(self) -> "bytes | None":
        if self.uart.any():
            chunk = self.uart.read()  # everything waiting (the UART has timeout 0)
            if chunk:
                for p in self.dec.feed(chunk):
                    if isinstance(p, dict) and p.get("kind") == serial_link.TX:
                        self.waiting.append(p["frame"])
        return self.waiting.pop(0) if self.waiting else None

    def rx_window(self, ms: int) -> "bytes | None":
        t0 = time.ticks_ms()
        while True:
            got = self.poll()
            if got is not None or time.ticks_diff(time.ticks_ms(), t0) >= ms:
                return got
            time.sleep_ms(5)

    def sleep(self) -> None:
        pass
