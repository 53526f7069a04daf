"""Energy budget and battery life of a sensor node: ``fogpark-node battery``.

Every figure is a current drawn for a time; the day's charge is the sum of
the terms below, each shown on its own line (mAh per day and share):

* **sleep** -- the board asleep between wakes (deep sleep with the RTC
  timer and RTC memory, the radio asleep, the magnetometer in standby, the
  regulator's quiescent current; the HC-SR04 is power-gated).
* **wake-ups** -- every ``wake_s`` the MCU boots from deep sleep, restores
  its state, reads the magnetometer and runs the detector: ``awake_ms`` at
  the MCU's active current (``--log`` takes the mean of the firmware's
  ``sleep: awake <ms> ms`` console lines from a real board instead).
* **sensing** -- the magnetometer's conversion (or its continuous current
  when it is never put in standby: ``--mag-mode continuous``) and the
  ultrasonic pings (module current and the MCU kept awake for the ping
  window), fired every ``range_every`` wakes and around each arrival and
  departure.
* **airtime** -- frames per day (heartbeats, two occupancy frames per
  stay) x time on air by the Semtech formula x (radio TX + MCU), plus the
  receive window after each uplink when one is configured.
* **retries** -- confirmed uplinks: the expected extra sends when an ACK is
  lost with probability ``ack_loss``, each with its receive window.

Battery life = capacity x usable fraction / mAh per day. The solar panel
for energy neutrality: daily Wh / (peak sun hours x charge efficiency).

Current figures and where they come from (``PROFILES``, overridable on the
command line):

* ESP32 deep sleep, RTC timer + RTC memory: **10 uA** -- Espressif ESP32
  datasheet v4.x, "Power consumption by power modes".
* ESP32 active, CPU on, radios off: **40-80 mA** (50 mA used) -- same
  table, modem-sleep 20-68 mA by clock; 50 mA also covers flash reads at boot.
* SX1276 transmit at +14 dBm on PA_BOOST: **29-44 mA** (44 mA used: RFM95
  modules only have PA_BOOST) -- Semtech SX1276 datasheet rev 7, table 10
  (IDDT, RFO +13 dBm 29 mA; PA_BOOST +17 dBm 87 mA).
* SX1276 receive: **10.8-12 mA** (11.5 mA used) -- same table, IDDR at
  125 kHz. SX1276 sleep: **0.2 uA** (IDDSL).
* HC-SR04: **15 mA** while pinging -- the module's datasheet (Elecfreaks);
  a reading is 3 pings 60 ms apart plus 50 ms settling after power-up.
* QMC5883L: **75 uA** continuous at 10 Hz, **3 uA** standby -- QST
  QMC5883L datasheet 1.0, "Electrical characteristics"; a single
  conversion at 200 Hz ODR lasts ~5 ms.
* Regulator quiescent: **4 uA** (Holtek HT7333), a board made for batteries.
* Development boards (Heltec/TTGO-class, ``--profile devboard``): USB-UART
  bridge, LEDs and an AMS1117-class regulator keep the board at about
  **1 mA** in deep sleep -- an order of magnitude often measured, not a
  datasheet figure: measure yours and pass ``--sleep-ua``.
* Awake time per wake: **120 ms** with compiled .mpy firmware (ESP32 wake
  from deep sleep with the bootloader's image check skipped, MicroPython
  start, .mpy imports, one sample), **400 ms** when the board compiles .py
  sources at every boot -- estimates until a board's console log is given.
  The firmware's ``sleep: awake <ms> ms`` counts from its own start;
  ``--boot-ms`` (60 ms) adds the ROM bootloader and MicroPython start-up
  it cannot see. (On the bench, under the unix port on a PC, the firmware
  part measures ~150 ms per wake -- mostly process start and the emulated
  buses, not a board figure.)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from proto import airtime

PROFILES: dict[str, dict[str, float]] = {
    "custom": {  # ESP32 module + RFM95 + HT7333 on a board made for batteries: the 10 uA class
        "mcu_sleep_ua": 10.0,
        "board_sleep_ua": 4.0,  # regulator quiescent
        "radio_sleep_ua": 0.2,
        "active_ma": 50.0,
    },
    "devboard": {  # Heltec WiFi LoRa 32 / TTGO LoRa32 class, an estimate
        "mcu_sleep_ua": 10.0,
        "board_sleep_ua": 1000.0,
        "radio_sleep_ua": 0.2,
        "active_ma": 60.0,
    },
}
AWAKE_MS = {"mpy": 120.0, "source": 400.0}
TX_MA = 44.0
RX_MA = 11.5
RANGER_MA = 15.0
RANGER_WINDOW_MS = 3 * 60 + 50
MAG_CONT_UA = 75.0
MAG_STANDBY_UA = 3.0
MAG_CONVERSION_MS = 5.0
OCCUPANCY_FRAME = 16
HEARTBEAT_FRAME = 23


@dataclass
class Budget:
    wake_s: float = 30.0
    awake_ms: float = AWAKE_MS["mpy"]
    profile: str = "custom"
    sleep_ua: float | None = None  # overrides the profile's total sleep current
    active_ma: float | None = None
    mag_mode: str = "single"
    range_every: int = 20
    rangings_per_event: float = 4.0
    arrivals_per_day: float = 20.0
    heartbeat_s: float = 10800.0
    sf: int = 7
    bw_hz: int = 125000
    cr: int = 5
    preamble: int = 8
    tx_ma: float = TX_MA
    rx_ma: float = RX_MA
    rx_window_ms: float = 0.0
    confirmed: bool = False
    ack_loss: float = 0.1
    retries: int = 3
    capacity_mah: float = 3000.0
    usable: float = 0.85
    battery_v: float = 3.7
    sun_hours: float = 3.0
    charge_eff: float = 0.7
    terms: dict[str, float] = field(default_factory=dict)

    def sleep_current_ua(self) -> float:
        if self.sleep_ua is not None:
            return self.sleep_ua
        p = PROFILES[self.profile]
        mag = MAG_STANDBY_UA if self.mag_mode == "single" else 0.0
        return p["mcu_sleep_ua"] + p["board_sleep_ua"] + p["radio_sleep_ua"] + mag

    def active(self) -> float:
        return self.active_ma if self.active_ma is not None else PROFILES[self.profile]["active_ma"]

    def compute(self) -> dict[str, float]:
        """mAh per day by term (also kept in ``terms``)."""
        day = 86400.0
        wakes = day / self.wake_s
        act = self.active()
        frames_occ = 2 * self.arrivals_per_day
        frames_hb = day / self.heartbeat_s
        toa_occ = airtime.time_on_air_s(OCCUPANCY_FRAME, self.sf, self.bw_hz, self.cr, self.preamble)
        toa_hb = airtime.time_on_air_s(HEARTBEAT_FRAME, self.sf, self.bw_hz, self.cr, self.preamble)
        rx_s = self.rx_window_ms / 1000 if (self.rx_window_ms > 0 or self.confirmed) else 0.0
        if self.confirmed and rx_s == 0:
            rx_s = 1.0
        rangings = wakes / self.range_every + self.rangings_per_event * frames_occ
        ranging_s = rangings * RANGER_WINDOW_MS / 1000
        awake_s = wakes * self.awake_ms / 1000 + ranging_s

        t: dict[str, float] = {}
        t["sleep"] = self.sleep_current_ua() / 1000 * (day - awake_s) / 3600
        t["wake-ups"] = wakes * self.awake_ms / 1000 * act / 3600
        mag = MAG_CONT_UA / 1000 * day / 3600 if self.mag_mode == "continuous" else wakes * MAG_CONVERSION_MS / 1000 * MAG_CONT_UA / 1000 / 3600
        t["sensing: magnetometer"] = mag
        t["sensing: ultrasonic"] = ranging_s * (RANGER_MA + act) / 3600
        air = frames_occ * toa_occ + frames_hb * toa_hb
        t["airtime"] = (air * (self.tx_ma + act) + (frames_occ + frames_hb) * rx_s * (self.rx_ma + act)) / 3600
        extra = 0.0
        if self.confirmed:
            p = self.ack_loss
            extra = frames_occ * sum(p**k for k in range(1, self.retries + 1))
        t["retries"] = extra * (toa_occ * (self.tx_ma + act) + rx_s * (self.rx_ma + act)) / 3600
        self.terms = t
        return t

    def total_mah(self) -> float:
        return sum((self.terms or self.compute()).values())

    def life_days(self) -> float:
        return self.capacity_mah * self.usable / self.total_mah()

    def dominant(self) -> str:
        t = self.terms or self.compute()
        return max(t, key=lambda k: t[k])

    def panel_wp(self) -> float:
        """Panel peak watts for energy neutrality: daily Wh / (peak sun hours x charge efficiency)."""
        wh = self.total_mah() * self.battery_v / 1000
        return wh / (self.sun_hours * self.charge_eff)


def awake_ms_from_log(path: Path) -> tuple[float, int]:
    """Mean awake time of the ``sleep: awake <ms> ms`` lines of a console log, and how many."""
    vals = [int(m.group(1)) for m in re.finditer(r"sleep: awake (\d+) ms", path.read_text(errors="replace"))]
    if not vals:
        raise ValueError(str(path) + ": no 'sleep: awake <ms> ms' lines (is the node in deep sleep mode?)")
    return sum(vals) / len(vals), len(vals)


def report(b: Budget) -> str:
    t = b.compute()
    total = sum(t.values())
    lines = []
    lines.append(
        f"profile {b.profile}: wake every {b.wake_s:g} s, awake {b.awake_ms:g} ms at {b.active():g} mA, "
        f"sleep {b.sleep_current_ua():g} uA, magnetometer {b.mag_mode}, SF{b.sf}/{b.bw_hz // 1000} kHz, "
        f"{b.arrivals_per_day:g} arrivals/day, heartbeat every {b.heartbeat_s / 3600:g} h"
        + (f", confirmed (ACK loss {b.ack_loss:g}, {b.retries} retries)" if b.confirmed else "")
    )
    lines.append("")
    lines.append(f"{'term':<24}{'mAh/day':>10}{'share':>9}")
    lines.append("-" * 43)
    for k, v in t.items():
        lines.append(f"{k:<24}{v:>10.3f}{100 * v / total:>8.1f}%")
    lines.append("-" * 43)
    lines.append(f"{'total':<24}{total:>10.3f}{'100.0%':>9}")
    days = b.life_days()
    lines.append("")
    lines.append(f"average current {total / 24 * 1000:.0f} uA; dominant term: {b.dominant()}")
    lines.append(
        f"battery life on {b.capacity_mah:g} mAh ({100 * b.usable:g} % usable): {days:.0f} days = {days / 365:.2f} years"
    )
    wp = b.panel_wp()
    lines.append(
        f"solar for energy neutrality: {total * b.battery_v / 1000 * 1000:.1f} mWh/day -> "
        f"{wp * 1000:.1f} mW panel ({wp:.3f} Wp) at {b.sun_hours:g} peak sun hours and "
        f"{100 * b.charge_eff:g} % charge efficiency"
    )
    if not math.isfinite(days):
        lines.append("(no consumption?)")
    return "\n".join(lines)
