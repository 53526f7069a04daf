"""The node's state across deep sleep: RTC memory where the port has it, a flash file otherwise.

With ``deep_sleep`` every wake is a boot: RAM is gone. Everything the node
needs to carry on -- frame counters, the detector (baseline, phase, tamper
watch), timers, frames waiting to be sent, confirmed-uplink retries, the
last downlink counter, radio statistics -- is packed into one record of
``SIZE`` bytes with a magic and a CRC-32, and restored at the next wake.

Where it goes:

* **RTC memory** (``machine.RTC().memory()``, ESP32: 2 KiB of RTC slow
  memory, kept across deep sleep and every reset but a power cut). Written
  before every deep sleep: it costs nothing.
* **flash** (``state.bin``) on ports without RTC memory. Flash wears, so it
  is written only when something that matters changed (a frame counter
  was used, the committed state, phase, tamper bits or a queued frame) or,
  otherwise, at most every ``FLASH_EVERY_S`` seconds (for the baseline and
  the timers); time across deep sleep then comes from the port's clock
  (``time.time()``), which keeps running through deep sleep.

Frame counters are restored from the record **only after a wake from deep
sleep** (``machine.reset_cause() == DEEPSLEEP_RESET``), because only then
was the record written after the last counter was used. After any other
reset (watchdog, crash, power) the counter comes from ``fcnt_store``'s
flash reservation, which skips ahead: a reboot never reuses a counter. The
detector state is restored after any reset when the record is valid (a
watchdog reset keeps the baseline).
"""

import struct
import time

import detect
import machine

try:
    from micropython import const
except ImportError:  # CPython: unit tests and the CLI

    def const(expr):  # type: ignore[no-redef,misc]
        return expr


TYPE_CHECKING = const(False)  # mypy: True; MicroPython drops the block at compile time (no names interned)
if TYPE_CHECKING:
    from typing import Any  # noqa: F401 - type comments

try:
    from binascii import crc32
except ImportError:  # a port built without binascii.crc32

    def crc32(data: "bytes | bytearray | memoryview", crc: int = 0) -> int:  # type: ignore[misc]
        crc = ~crc & 0xFFFFFFFF
        for b in data:
            crc ^= b
            for _ in range(8):
                crc = (crc >> 1) ^ (0xEDB88320 & -(crc & 1))
        return ~crc & 0xFFFFFFFF


MAGIC = b"FPK3"
FLASH_PATH = "state.bin"
FLASH_EVERY_S = 600
# counters, timers, flags, radio stats, retries, remote config, sensors, queued frames, last card
_NODE = "<4sIIIqIIIIhBBIHIiHbbBIhHBhIB5sB11sB3sB28sB10s"
_NODE_SIZE = struct.calcsize(_NODE)
SIZE = _NODE_SIZE + detect.STATE_SIZE + 4

# flag bits
_BOOT_HB_DONE = 0x01
_PENDING_HB = 0x02
_SAW_CARD = 0x04


def _pad(b: "bytes | None", n: int) -> bytes:
    if b is None:
        return bytes(n)
    return bytes(b) + bytes(n - len(b))


class Store:
    def __init__(self) -> None:
        self.buf = bytearray(SIZE)
        self.rtc = None  # type: machine.RTC | None
        try:
            rtc = machine.RTC()
            rtc.memory()  # type: ignore[attr-defined]
            self.rtc = rtc
        except (AttributeError, OSError, TypeError):
            self.rtc = None
        self.where = "rtc" if self.rtc is not None else "flash"
        self.saved_sig = ()  # type: tuple
        self.saved_at = 0
        self.writes = 0

    def saved_at_record(self) -> int:
        """``time.time()`` when the restored record was written."""
        return self.saved_at

    def read(self) -> bool:
        """Load the record into ``buf``; True when it is present and intact."""
        data = None  # type: bytes | None
        if self.rtc is not None:
            data = self.rtc.memory()  # type: ignore[attr-defined]
        else:
            try:
                with open(FLASH_PATH, "rb") as f:
                    data = f.read()
            except OSError:
                data = None
        if data is None or len(data) != SIZE or data[:4] != MAGIC:
            return False
        if crc32(memoryview(data)[: SIZE - 4]) != struct.unpack_from("<I", data, SIZE - 4)[0]:
            return False
        self.buf[:] = data
        return True

    def _signature(self, node: object) -> tuple:
        """What must never be lost: counters, state, phase, tamper, queued frames (flash backend)."""
        n = node  # type: Any
        up = n.up
        return (
            up.fcnt.next if up.fcnt is not None else 0,
            up.rx_fcnt,
            n.det.state,
            n.det.phase,
            n.det.tamper,
            n.det.cal_left,
            up.pending_occ,
            up.pending_checkin,
            up.pending_cfg_ack,
            len(up.diags),
            up.pending_hb,
            up.attempts,
            n.card_uid,
        )

    def pack(self, node: object) -> None:
        n = node  # type: Any
        up = n.up
        fc = up.fcnt
        diags = b"".join(up.diags[:4])
        struct.pack_into(
            _NODE,
            self.buf,
            0,
            MAGIC,
            fc.next if fc is not None else 0,
            fc.limit if fc is not None else 0,
            up.boots(),
            up.rx_fcnt,
            n.uptime_s,
            int(time.time()),
            n.state_since_s,
            n.next_hb_s,
            n.boot_hb_wait,
            (_BOOT_HB_DONE if n.boot_hb_done else 0) | (_PENDING_HB if up.pending_hb else 0) | (_SAW_CARD if n.card_seen else 0),
            n.prev_state,
            up.budget_us,
            n.since_range,
            up.retry_at_s,
            up.confirm_fcnt16,
            up.cfg_version & 0xFFFF,
            up.rssi_dbm if up.rssi_dbm is not None else 0,
            int(up.snr_db * 4) if up.snr_db is not None else -128,
            up.attempts,
            n.cycles,
            n.temp_c10,
            n.battery_mv,
            n.reported_tamper,
            n.last_range_mm,
            up.now_s,
            len(up.pending_occ) if up.pending_occ is not None else 0,
            _pad(up.pending_occ, 5),
            len(up.pending_checkin) if up.pending_checkin is not None else 0,
            _pad(up.pending_checkin, 11),
            len(up.pending_cfg_ack) if up.pending_cfg_ack is not None else 0,
            _pad(up.pending_cfg_ack, 3),
            len(diags) // 7,
            _pad(diags, 28),
            len(n.card_uid),
            _pad(n.card_uid, 10),
        )
        n.det.save_into(self.buf, _NODE_SIZE)
        struct.pack_into("<I", self.buf, SIZE - 4, crc32(memoryview(self.buf)[: SIZE - 4]))

    def unpack(self, node: object, counters: bool) -> "tuple | None":
        """Restore ``node`` from ``buf``; returns the counters (next, limit, boots, rx) when ``counters``."""
        n = node  # type: Any
        up = n.up
        (
            _m,
            f_next,
            f_limit,
            boots,
            rx_fcnt,
            uptime_s,
            saved_at,
            n.state_since_s,
            n.next_hb_s,
            n.boot_hb_wait,
            flags,
            n.prev_state,
            budget_us,
            n.since_range,
            up.retry_at_s,
            up.confirm_fcnt16,
            cfg_version,
            rssi,
            snr4,
            up.attempts,
            n.cycles,
            n.temp_c10,
            n.battery_mv,
            n.reported_tamper,
            n.last_range_mm,
            up.now_s,
            occ_n,
            occ,
            chk_n,
            chk,
            ack_n,
            ack,
            diag_n,
            diags,
            uid_n,
            uid,
        ) = struct.unpack_from(_NODE, self.buf, 0)
        n.det.load_from(self.buf, _NODE_SIZE)
        n.uptime_s = uptime_s  # the caller adds the time slept since (time.time() - saved_at)
        self.saved_at = saved_at
        n.boot_hb_done = bool(flags & _BOOT_HB_DONE)
        n.card_seen = bool(flags & _SAW_CARD)
        n.card_uid = bytes(uid[:uid_n])
        up.pending_hb = bool(flags & _PENDING_HB)
        up.budget_us = budget_us if budget_us < up.budget_cap_us else up.budget_cap_us
        up.cfg_version = -1 if cfg_version == 0xFFFF else cfg_version
        up.rssi_dbm = rssi if rssi else None
        up.snr_db = None if snr4 == -128 else snr4 / 4
        up.pending_occ = bytes(occ[:occ_n]) if occ_n else None
        up.pending_checkin = bytes(chk[:chk_n]) if chk_n else None
        up.pending_cfg_ack = bytes(ack[:ack_n]) if ack_n else None
        up.diags = [bytes(diags[7 * i : 7 * i + 7]) for i in range(diag_n)]
        if not counters:
            return None
        up.rx_fcnt = rx_fcnt
        return (f_next, f_limit, boots, rx_fcnt)

    def save(self, node: object, force: bool = False) -> bool:
        """Write the record (always to RTC memory; to flash only when needed). True if written."""
        self.pack(node)
        if self.rtc is not None:
            self.rtc.memory(self.buf)  # type: ignore[attr-defined]
            self.writes += 1
            return True
        now = int(time.time())
        sig = self._signature(node)
        if not force and sig == self.saved_sig and now - self.saved_at < FLASH_EVERY_S:
            return False
        tmp = FLASH_PATH + ".tmp"
        with open(tmp, "wb") as f:
            f.write(self.buf)
        import os

        try:
            os.rename(tmp, FLASH_PATH)
        except OSError:
            try:
                os.remove(FLASH_PATH)
            except OSError:
                pass
            os.rename(tmp, FLASH_PATH)
        self.saved_sig = sig
        self.saved_at = now
        self.writes += 1
        return True

