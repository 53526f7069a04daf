"""The node's link side: frames out (within the region's rules), downlinks in.

Frames wait in slots, sent in this order of urgency: occupancy, checkin,
config_ack, diagnostics (a short queue), heartbeat. A newer frame of a kind
replaces one still waiting (diagnostics queue up to four).

Transports (``cfg.transport``): ``lora`` (the SX127x driver), ``wifi``
(``wifi_link``: Wi-Fi station + MQTT QoS 1) and ``uart`` (``uart_link``:
SLIP packets of proto/serial_link.py, for wired rigs). Only LoRa has an
airtime budget and a receive window; the others deliver downlinks whenever
the node polls (every sample).

LoRa rules, by ``cfg.region``:

* EU868: ``duty_cycle_pct`` of airtime per hour (ETSI EN 300 220 counts the
  duty cycle per sub-band over one hour; the node uses one channel, so one
  sub-band), refilled every second and starting full; a frame that does
  not fit waits for the budget.
* US915: a frame whose time on air at the configured SF exceeds the 400 ms
  dwell limit is refused (never transmitted, counted in ``dwell_refused``);
  no duty cycle.

Time on air is the Semtech formula (``proto.airtime``). Counters come from
``fcnt_store`` and are spent even when TxDone never comes, so a counter is
never sent twice.

Confirmed uplinks (``cfg.confirmed``): an occupancy frame carries
FLAG_ACK_REQUESTED and the node listens in its receive window for an ACK
downlink naming that frame's counter (low 16 bits). Without it the frame is
sent again after ``retry_s`` seconds, doubling each time, plus up to
``retry_s`` s of random jitter, at most ``retries`` times, each time with
a new counter (the fog refuses a counter it has seen, so the same bytes
could never be acknowledged twice); then it is given up and counted.
Other frames are sent meanwhile.

Downlinks (after each LoRa uplink when ``radio.rx_window_ms`` > 0): a frame
for this node whose MIC verifies, with its counter reconstructed as
LoRaWAN does from the last accepted one (kept in flash, so a captured
downlink cannot be replayed after a reboot), updates the RSSI/SNR reported
in heartbeats and is handed on: ACK (a confirmed uplink done; flag bit 0
"config pending" calls ``on_config_pending``), CONFIG (``on_config``, whose
status goes back in a CONFIG_ACK) and COMMAND (``on_command``).
"""

import os

import machine
from fcnt_store import FcntStore

from proto import airtime, frame

try:
    from micropython import const
except ImportError:  # CPython: unit tests and the CLI

    def const(expr):  # type: ignore[no-redef,misc]
        return expr


TYPE_CHECKING = const(False)  # mypy: True; MicroPython drops the block at compile time (no names interned)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any  # noqa: F401 - type comments

    from node_config import NodeConfig

_US915_DWELL_US = const(400000)
_MAX_DIAGS = const(4)


def hexlify(data: bytes) -> str:
    import binascii

    return binascii.hexlify(data).decode()


class Uplink:
    def __init__(self, cfg: "NodeConfig") -> None:
        self.cfg = cfg
        self.enabled = cfg.tx_enabled
        self.lora = cfg.transport == "lora"
        self.link = None  # type: Any
        self.radio = None  # type: Any  # the SX127x driver (LoRa transport)
        self.fcnt = None  # type: FcntStore | None
        pct = cfg.duty_cycle_pct if self.lora else 100.0
        self.budget_cap_us = int(pct * 36000000)  # pct/100 of 3600 s
        self.budget_refill_us = int(pct * 10000)  # per second
        self.budget_us = self.budget_cap_us
        self.pending_occ = None  # type: bytes | None
        self.pending_checkin = None  # type: bytes | None
        self.pending_cfg_ack = None  # type: bytes | None
        self.diags = []  # type: list
        self.pending_hb = False
        self.waiting_note = False
        self.tx_ok = 0
        self.tx_failed = 0
        self.dwell_refused = 0
        self.rx_fcnt = -1
        self.rssi_dbm = None  # type: int | None
        self.snr_db = None  # type: float | None
        self.now_s = 0
        # confirmed uplinks
        self.confirm_fcnt16 = -1  # counter (low 16 bits) an ACK must name; -1: none awaited
        self.attempts = 0
        self.retry_at_s = 0
        self.acked = 0
        self.gave_up = 0
        self.cfg_version = -1
        self.on_command = None  # type: Callable[[int, bytes], None] | None
        self.on_config = None  # type: Callable[[bytes], int] | None
        self.on_config_pending = None  # type: Callable[[], None] | None

    def setup(self, pins: dict, cold: bool = True, resume: "tuple | None" = None) -> None:
        """Bring up the link and the frame counter (``resume``: counters kept across deep sleep)."""
        try:
            if self.lora:
                self.radio = self._lora(pins, cold)
                self.link = self.radio
            elif self.cfg.transport == "wifi":
                from wifi_link import WifiLink

                self.link = WifiLink(self.cfg)
                try:
                    self.link.connect()  # join now (later sends retry when this fails)
                except OSError as e:
                    print(str(e))
            else:
                from uart_link import UartLink

                self.link = UartLink(self.cfg)
        except (OSError, ValueError) as e:
            print(f"{self.cfg.transport}: {e}; transmit disabled")
            self.link = None
            self.radio = None
            self.enabled = False
        if self.enabled:
            try:
                self.fcnt = FcntStore("fcnt.dat", self.cfg.fcnt_block, resume)
            except OSError as e:
                print("frame counter: " + str(e) + "; transmit disabled")
                self.enabled = False
            else:
                if resume is None and self.fcnt.rx_last > self.rx_fcnt:
                    self.rx_fcnt = self.fcnt.rx_last

    def _lora(self, pins: dict, cold: bool) -> object:
        from drivers.sx127x import SX127x

        Pin = machine.Pin
        rp = pins["radio"]
        rc = self.cfg.radio
        spi = machine.SPI(
            rp["spi"],
            baudrate=rp.get("baudrate", 5000000),
            polarity=0,
            phase=0,
            sck=Pin(rp["sck"]),
            mosi=Pin(rp["mosi"]),
            miso=Pin(rp["miso"]),
        )
        radio = SX127x(
            spi,
            Pin(rp["cs"]),
            Pin(rp["reset"]),
            Pin(rp["dio0"]),
            rc["freq_hz"],
            rc["sf"],
            rc["bw_hz"],
            rc["cr"],
            rc["power_dbm"],
            rc["sync_word"],
            rc["preamble"],
            True,
            cold,
        )
        radio.sleep()
        return radio

    def boots(self) -> int:
        return self.fcnt.boots if self.fcnt is not None else 1

    def advance(self, seconds: int) -> None:
        """Time passed: refill the airtime budget."""
        self.now_s += seconds
        b = self.budget_us + self.budget_refill_us * seconds
        self.budget_us = b if b < self.budget_cap_us else self.budget_cap_us

    def second(self) -> None:
        self.advance(1)

    def due(self) -> bool:
        return (
            self.pending_hb
            or (self.pending_occ is not None and self.now_s >= self.retry_at_s)
            or self.pending_checkin is not None
            or self.pending_cfg_ack is not None
            or len(self.diags) > 0
        )

    def queue_occupancy(self, payload: bytes) -> None:
        self.pending_occ = payload
        self.waiting_note = False
        self.attempts = 0
        self.retry_at_s = 0
        self.confirm_fcnt16 = -1

    def queue_diagnostic(self, payload: bytes) -> None:
        if len(self.diags) >= _MAX_DIAGS:
            self.diags.pop(0)
        self.diags.append(payload)

    def queue_checkin(self, payload: bytes) -> None:
        self.pending_checkin = payload

    def flush(self, heartbeat: "Callable[[], bytes]") -> bool:
        """Send what is pending, most urgent first; False if something still waits for airtime."""
        if self.pending_occ is not None and self.now_s >= self.retry_at_s:
            if not self._send_occupancy():
                return False
        if self.pending_checkin is not None:
            if not self.send(frame.CHECKIN, self.pending_checkin):
                return False
            self.pending_checkin = None
        if self.pending_cfg_ack is not None:
            if not self.send(frame.CONFIG_ACK, self.pending_cfg_ack):
                return False
            self.pending_cfg_ack = None
        while self.diags:
            if not self.send(frame.DIAGNOSTIC, self.diags[0]):
                return False
            self.diags.pop(0)
        if self.pending_hb:
            if not self.send(frame.HEARTBEAT, heartbeat()):
                return False
            self.pending_hb = False
        return True

    def _send_occupancy(self) -> bool:
        payload = self.pending_occ
        if payload is None:
            return True
        confirmed = self.cfg.confirmed and self.enabled
        if confirmed:
            payload = bytes([payload[0] | frame.FLAG_ACK_REQUESTED]) + payload[1:]
        self.confirm_fcnt16 = -1
        if not self.send(frame.OCCUPANCY, payload, confirmed):
            return False
        if not confirmed or self.confirm_fcnt16 == -2:  # -2: acknowledged in the window
            self.pending_occ = None
            self.confirm_fcnt16 = -1
            return True
        self.attempts += 1
        if self.attempts > self.cfg.retries:
            print("confirmed: no ACK after " + str(self.attempts) + " sends: occupancy given up")
            self.gave_up += 1
            self.pending_occ = None
            self.confirm_fcnt16 = -1
            return True
        base = self.cfg.retry_s
        wait = (base << (self.attempts - 1)) + os.urandom(1)[0] % (base + 1)
        self.retry_at_s = self.now_s + wait + 1  # whole seconds: +1 makes it at least ``wait``
        print(f"confirmed: no ACK; retry {self.attempts} in {wait} s")
        return True

    def send(self, msg_type: int, payload: bytes, confirmed: bool = False) -> bool:
        """Transmit one frame; False when it must wait for airtime budget."""
        name = frame.TYPE_NAMES[msg_type]
        link = self.link
        if not self.enabled or link is None or self.fcnt is None:
            print(f"tx disabled: {name} not sent")
            return True
        n = frame.MIN_FRAME_LEN + len(payload)
        toa = 0
        if self.lora:
            rc = self.cfg.radio
            toa = airtime.time_on_air_us(n, rc["sf"], rc["bw_hz"], rc["cr"], rc["preamble"])
            if self.cfg.region == "US915" and toa > _US915_DWELL_US:
                self.dwell_refused += 1
                print(f"dwell: {name} frame of {n} B would be on air {toa // 1000} ms at SF{rc['sf']}, "
                      "over the US915 limit of 400 ms: refused")
                return True
            if toa > self.budget_us:
                if not self.waiting_note:
                    self.waiting_note = True
                    print("duty cycle: " + name + " waits for airtime budget")
                return False
        try:
            fcnt = self.fcnt.take()
        except OSError as e:
            print("frame counter: " + str(e) + "; transmit disabled")
            self.enabled = False
            return True
        data = frame.encode_frame(msg_type, self.cfg.node_id, fcnt, payload, self.cfg.key)
        if self.cfg.debug:
            print(f"FRAME TX {hexlify(data)}")
        try:
            ok = link.send(data)
        except OSError as e:
            print(f"tx {name} failed: {e}")
            ok = False
        self.budget_us -= toa
        if ok:
            self.tx_ok += 1
        else:
            self.tx_failed += 1
        print(f"tx {name} fcnt {fcnt} {n} B {'ok' if ok else 'FAILED'}")
        if confirmed:
            self.confirm_fcnt16 = fcnt & 0xFFFF
        window = self.cfg.radio["rx_window_ms"]
        if ok and self.lora and window > 0:
            self.listen(window)
        elif ok and not self.lora and confirmed:
            self.listen(window if window > 0 else 2000)
        return True

    def poll(self) -> None:
        """Transports other than LoRa: handle a downlink that is waiting (never blocks)."""
        if self.lora or self.link is None or not self.enabled:
            return
        try:
            data = self.link.poll()
        except OSError as e:
            print(self.cfg.transport + ": " + str(e))
            return
        if data is not None:
            self.downlink(data)

    def listen(self, ms: int) -> None:
        link = self.link
        if link is None:
            return
        try:
            data = link.rx_window(ms)
        except OSError as e:
            print("rx: " + str(e))
            return
        if data is not None:
            self.downlink(data)

    def downlink(self, data: bytes) -> None:
        """Verify and dispatch one received downlink."""
        link = self.link
        if self.cfg.debug:
            print(f"FRAME RX {hexlify(data)}")
        try:
            fr = frame.parse_frame(data)
        except frame.FrameError as e:
            print("rx: dropped (" + e.reason + ")")
            return
        if not frame.is_downlink(fr.msg_type) or fr.node_id != self.cfg.node_id:
            print("rx: not a downlink for this node")
            return
        fcnt = frame.reconstruct_fcnt(fr.fcnt16, self.rx_fcnt)
        if self.rx_fcnt >= 0 and fcnt - self.rx_fcnt > frame.MAX_FCNT_GAP:
            print("rx: dropped (counter gap)")
            return
        if not fr.verify(self.cfg.key, fcnt):
            print("rx: dropped (MIC mismatch)")
            return
        self.rx_fcnt = fcnt
        if self.fcnt is not None:
            try:
                self.fcnt.note_downlink(fcnt)
            except OSError as e:
                print("frame counter: " + str(e))
        self.rssi_dbm = link.last_rssi_dbm
        self.snr_db = link.last_snr_db
        print(f"rx {fr.type_name()} fcnt {fcnt} rssi {self.rssi_dbm} dBm")
        try:
            f = fr.fields()
        except frame.FrameError as e:
            print("rx: dropped (" + e.reason + ")")
            return
        t = fr.msg_type
        if t == frame.ACK:
            if f["acked_fcnt16"] == self.confirm_fcnt16:
                self.confirm_fcnt16 = -2
                self.acked += 1
                print("confirmed: ACK for fcnt16 " + str(f["acked_fcnt16"]))
            if f["flags"] & 1 and self.on_config_pending is not None:
                self.on_config_pending()
        elif t == frame.CONFIG:
            if self.on_config is not None:
                version = f["config_version"]
                status = self.on_config(fr.payload)
                self.pending_cfg_ack = frame.config_ack_payload(version, status)
        elif t == frame.COMMAND:
            if self.on_command is not None:
                self.on_command(f["command"], f["args"])

