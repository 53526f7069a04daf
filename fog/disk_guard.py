"""Keeping the fog's store within its disk, for months, with nobody watching.

Under pressure (free space on the data filesystem below ``min_free_mb``, or
the store above 90 % of its quota ``max_db_mb``) the guard first deletes its
ballast file (a reserve that gives SQLite room to work on a full disk), then
compacts spot-level events older than the retention window into per-spot
daily summaries (``spot_daily``), halving the window down to one hour while
pressure lasts. Records still waiting for the cloud live in the outbox and are
never compacted away: the cloud's copy stays exact. The caller raises the
``disk_pressure`` alert; nothing here raises.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from fog.config import DiskPolicy
from fog.store import FogStore

log = logging.getLogger("fogpark.fog.disk")
MB = 1024 * 1024
HOUR_MS = 3600 * 1000


class DiskGuard:
    def __init__(self, policy: DiskPolicy, data_dir: Path, store: FogStore) -> None:
        self.policy = policy
        self.data_dir = Path(data_dir)
        self.store = store
        self.ballast = self.data_dir / ".ballast"
        self.compacted_events = 0
        if policy.max_db_mb:
            store.set_quota(int(policy.max_db_mb * MB))
        self._restore_ballast()

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.data_dir).free

    def pressure(self) -> str | None:
        """Why the store is short of room, or None."""
        free = self.free_bytes()
        if free < self.policy.min_free_mb * MB:
            return f"only {free / MB:.1f} MB free on {self.data_dir} (minimum {self.policy.min_free_mb:g} MB)"
        if self.policy.max_db_mb:
            used = self.store.db_bytes()
            if used > 0.9 * self.policy.max_db_mb * MB:
                return f"store uses {used / MB:.1f} MB of its {self.policy.max_db_mb:g} MB quota"
        return None

    def check(self, now_ms: int) -> str | None:
        """Relieve pressure if there is any; returns the reason when there was."""
        reason = self.pressure()
        if reason is None:
            self._restore_ballast()
            return None
        if self.ballast.exists():
            self.ballast.unlink()
            log.warning("disk pressure (%s): released the %g MB ballast", reason, self.policy.ballast_mb)
        window_ms = self.policy.events_retention_days * 86400 * 1000
        while True:
            n = self.store.compact_events(int(now_ms - window_ms))
            self.compacted_events += n
            if n:
                log.warning("disk pressure (%s): compacted %d events older than %.1f h into daily summaries",
                            reason, n, window_ms / HOUR_MS)
            if self.pressure() is None or window_ms <= HOUR_MS:
                break
            window_ms = max(HOUR_MS, window_ms / 2)
        return reason

    def _restore_ballast(self) -> None:
        size = int(self.policy.ballast_mb * MB)
        if not size or self.ballast.exists():
            return
        if self.free_bytes() < size + 4 * self.policy.min_free_mb * MB:
            return  # only when there is plenty: the ballast must never cause the pressure it guards against
        try:
            with self.ballast.open("wb") as f:
                f.truncate(0)
                os.posix_fallocate(f.fileno(), 0, size)
        except OSError:
            self.ballast.unlink(missing_ok=True)
