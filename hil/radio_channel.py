"""The emulated LoRa channel between emulated nodes and emulated gateways.

Each transmission occupies the air for its Semtech time-on-air. At its end
the channel decides, per gateway: below sensitivity → lost; overlapped on the
same frequency and spreading factor by a signal not at least ``capture_db``
weaker → collision (the capture effect lets the stronger one through);
random or burst loss → lost; else delivered with the RSSI/SNR the path loss
gives. Every outcome is counted by cause, per node, for the bench's verdict.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from proto.airtime import time_on_air_ms

# SX1276 sensitivity at 125 kHz (datasheet table 13), dBm.
SENSITIVITY_DBM = {6: -118, 7: -123, 8: -126, 9: -129, 10: -132, 11: -133, 12: -136}
NOISE_FIGURE_DB = 6.0


@dataclass
class Gateway:
    """A receiver: where it is, and what to call with each frame it hears."""

    name: str
    x_m: float
    y_m: float
    deliver: Callable[[bytes, int, float], None]  # (frame, rssi dBm, snr dB)


@dataclass
class Transmission:
    node: str
    payload: bytes
    freq_hz: int
    sf: int
    bw_hz: int
    cr: int
    power_dbm: float
    start_s: float
    end_s: float
    rssi: dict[str, float] = field(default_factory=dict)


@dataclass
class ChannelStats:
    sent: Counter[str] = field(default_factory=Counter)
    delivered: Counter[str] = field(default_factory=Counter)  # per node, at least one gateway heard it
    lost: Counter[str] = field(default_factory=Counter)  # by cause
    airtime_s: dict[str, float] = field(default_factory=dict)  # per node, for duty-cycle accounting


class RadioChannel:
    """Log-distance path loss, capture-effect collisions, random and burst loss."""

    def __init__(
        self,
        gateways: list[Gateway],
        positions: dict[str, tuple[float, float]],
        loss: float = 0.0,
        capture_db: float = 6.0,
        path_loss_exponent: float = 2.7,
        ref_loss_db: float = 40.0,
        shadowing_db: float = 2.0,
        seed: int = 0,
    ) -> None:
        self.gateways = gateways
        self.positions = positions
        self.loss = loss
        self.capture_db = capture_db
        self.n = path_loss_exponent
        self.ref_loss_db = ref_loss_db
        self.shadowing_db = shadowing_db
        self.rng = random.Random(seed)
        self.burst_until_s = -1.0
        self.in_air: list[Transmission] = []
        self.pending: set[int] = set()
        self.stats = ChannelStats()

    def start_burst(self, now_s: float, seconds: float) -> None:
        """Everything on air until now+seconds is lost (interference, a truck parked on the antenna)."""
        self.burst_until_s = max(self.burst_until_s, now_s + seconds)

    def rssi(self, node: str, gw: Gateway, power_dbm: float) -> float:
        x, y = self.positions.get(node, (0.0, 0.0))
        d = max(1.0, math.hypot(x - gw.x_m, y - gw.y_m))
        return power_dbm - (self.ref_loss_db + 10 * self.n * math.log10(d)) + self.rng.gauss(0, self.shadowing_db)

    def transmit(self, node: str, payload: bytes, freq_hz: int, sf: int, bw_hz: int, cr: int,
                 power_dbm: float, now_s: float) -> Transmission:
        """Put a frame on the air; call :meth:`finish` with it at ``end_s``."""
        toa = time_on_air_ms(len(payload), sf, bw_hz, cr) / 1000
        tx = Transmission(node, payload, freq_hz, sf, bw_hz, cr, power_dbm, now_s, now_s + toa)
        tx.rssi = {gw.name: self.rssi(node, gw, power_dbm) for gw in self.gateways}
        self.in_air.append(tx)
        self.pending.add(id(tx))
        self.stats.sent[node] += 1
        self.stats.airtime_s[node] = self.stats.airtime_s.get(node, 0.0) + toa
        return tx

    def finish(self, tx: Transmission) -> list[str]:
        """Decide and deliver; returns the gateways that heard it."""
        rivals = [o for o in self.in_air if o is not tx and o.freq_hz == tx.freq_hz and o.sf == tx.sf
                  and o.start_s < tx.end_s and tx.start_s < o.end_s]
        heard: list[str] = []
        causes: list[str] = []
        for gw in self.gateways:
            rssi = tx.rssi[gw.name]
            noise = -174 + 10 * math.log10(tx.bw_hz) + NOISE_FIGURE_DB
            if rssi < SENSITIVITY_DBM.get(tx.sf, -123):
                causes.append("below_sensitivity")
            elif any(o.rssi[gw.name] > rssi - self.capture_db for o in rivals):
                causes.append("collision")
            elif tx.start_s < self.burst_until_s:
                causes.append("burst_loss")
            elif self.rng.random() < self.loss:
                causes.append("random_loss")
            else:
                snr = max(-20.0, min(12.0, rssi - noise))
                gw.deliver(tx.payload, int(round(rssi)), round(snr * 4) / 4)
                heard.append(gw.name)
        if heard:
            self.stats.delivered[tx.node] += 1
        elif causes:
            # Name the most telling cause across gateways (collision beats loss beats range).
            for cause in ("collision", "burst_loss", "random_loss", "below_sensitivity"):
                if cause in causes:
                    self.stats.lost[cause] += 1
                    break
        # Keep a transmission while one still pending or yet to start could overlap it.
        self.pending.discard(id(tx))
        horizon = min([tx.end_s] + [o.start_s for o in self.in_air if id(o) in self.pending])
        self.in_air = [o for o in self.in_air if o.end_s > horizon]
        return heard
