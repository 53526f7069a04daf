"""The node's radio side: frames out (within an airtime budget), downlinks in.

Frames wait in three slots -- occupancy, diagnostic, heartbeat, sent in that
order of urgency; a newer frame of a kind replaces one still waiting. Each
transmission spends its time on air (``proto.airtime``) from a budget of
``duty_cycle_pct`` of an hour, refilled every second and starting full
(ETSI EN 300 220 counts the duty cycle over one hour); a frame that does
not fit waits for the budget. Counters come from ``fcnt_store`` and are
spent even when TxDone never comes, so a counter is never sent twice.

With ``radio.rx_window_ms`` > 0 the radio listens after each uplink; a
downlink for this node whose MIC verifies (counter reconstructed as
LoRaWAN does, kept in RAM) updates the RSSI/SNR reported in heartbeats and
is handed to ``on_command`` when it is a COMMAND.
"""

import machine
from drivers.sx127x import SX127x
from fcnt_store import FcntStore

from proto import airtime, frame

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from node_config import NodeConfig


class Uplink:
    def __init__(self, cfg: "NodeConfig") -> None:
        self.cfg = cfg
        self.enabled = cfg.tx_enabled
        self.radio = None  # type: SX127x | None
        self.fcnt = None  # type: FcntStore | None
        pct = cfg.duty_cycle_pct
        self.budget_cap_us = int(pct * 36000000)  # pct/100 of 3600 s
        self.budget_refill_us = int(pct * 10000)  # per second
        self.budget_us = self.budget_cap_us
        self.pending_occ = None  # type: bytes | None
        self.pending_diag = None  # type: bytes | None
        self.pending_hb = False
        self.waiting_note = False
        self.tx_ok = 0
        self.tx_failed = 0
        self.rx_fcnt = -1
        self.rssi_dbm = None  # type: int | None
        self.snr_db = None  # type: float | None
        self.on_command = None  # type: Callable[[int, bytes], None] | None

    def setup(self, pins: dict) -> None:
        """Bring up the SX127x on the board's pins (asleep), and the frame counter."""
        Pin = machine.Pin
        rp = pins["radio"]
        rc = self.cfg.radio
        try:
            spi = machine.SPI(
                rp["spi"],
                baudrate=rp.get("baudrate", 5000000),
                polarity=0,
                phase=0,
                sck=Pin(rp["sck"]),
                mosi=Pin(rp["mosi"]),
                miso=Pin(rp["miso"]),
            )
            self.radio = SX127x(
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
            )
            self.radio.sleep()
        except (OSError, ValueError) as e:
            print("radio: " + str(e) + "; transmit disabled")
            self.radio = None
            self.enabled = False
        if self.enabled:
            try:
                self.fcnt = FcntStore("fcnt.dat", self.cfg.fcnt_block)
            except OSError as e:
                print("frame counter: " + str(e) + "; transmit disabled")
                self.enabled = False

    def boots(self) -> int:
        return self.fcnt.boots if self.fcnt is not None else 1

    def second(self) -> None:
        """One second passed: refill the airtime budget."""
        b = self.budget_us + self.budget_refill_us
        self.budget_us = b if b < self.budget_cap_us else self.budget_cap_us

    def due(self) -> bool:
        return self.pending_hb or self.pending_occ is not None or self.pending_diag is not None

    def queue_occupancy(self, payload: bytes) -> None:
        self.pending_occ = payload
        self.waiting_note = False

    def queue_diagnostic(self, payload: bytes) -> None:
        self.pending_diag = payload

    def flush(self, heartbeat: "Callable[[], bytes]") -> bool:
        """Send what is pending, most urgent first; False if something still waits."""
        if self.pending_occ is not None:
            if not self.send(frame.OCCUPANCY, self.pending_occ):
                return False
            self.pending_occ = None
        if self.pending_diag is not None:
            if not self.send(frame.DIAGNOSTIC, self.pending_diag):
                return False
            self.pending_diag = None
        if self.pending_hb:
            if not self.send(frame.HEARTBEAT, heartbeat()):
                return False
            self.pending_hb = False
        return True

    def send(self, msg_type: int, payload: bytes) -> bool:
        """Transmit one frame; False when it must wait for airtime budget."""
        name = frame.TYPE_NAMES[msg_type]
        radio = self.radio
        if not self.enabled or radio is None or self.fcnt is None:
            print("tx disabled: " + name + " not sent")
            return True
        n = frame.MIN_FRAME_LEN + len(payload)
        rc = self.cfg.radio
        toa = airtime.time_on_air_us(n, rc["sf"], rc["bw_hz"], rc["cr"], rc["preamble"])
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
        ok = radio.send(data)
        self.budget_us -= toa
        if ok:
            self.tx_ok += 1
        else:
            self.tx_failed += 1
        print("tx " + name + " fcnt " + str(fcnt) + " " + str(n) + " B " + ("ok" if ok else "TIMEOUT (no TxDone)"))
        if ok and rc["rx_window_ms"] > 0:
            self.listen(rc["rx_window_ms"])
        return True

    def listen(self, ms: int) -> None:
        radio = self.radio
        if radio is None:
            return
        data = radio.rx_window(ms)
        if data is None:
            return
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
        self.rssi_dbm = radio.last_rssi_dbm
        self.snr_db = radio.last_snr_db
        print("rx " + fr.type_name() + " fcnt " + str(fcnt) + " rssi " + str(self.rssi_dbm) + " dBm")
        if fr.msg_type == frame.COMMAND and self.on_command is not None:
            f = fr.fields()
            self.on_command(f["command"], f["args"])
