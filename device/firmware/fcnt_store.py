"""The 32-bit uplink frame counter, persisted so a reboot never reuses one.

The file holds the *limit*: the first counter not yet reserved. Counters
are handed out from a reserved block; before the block runs out the next
block is reserved by rewriting the file (``block`` counters per flash
write). On boot the counter restarts at the stored limit, skipping whatever
was left of the previous block, so every counter ever sent is below every
counter sent after a reboot. The boot count lives in the same file (it is
rewritten at every boot anyway) and feeds the heartbeat's ``reboots``.

Deep sleep: a wake from deep sleep is not a reboot. ``resume`` (the
counters as the node left them, from RTC memory or the state file, see
``persist.py``) continues exactly where the node was, without writing
flash; the flash limit still bounds every counter handed out.

The last accepted *downlink* counter is kept in the same file (written when
a downlink is accepted, which is rare), so a downlink captured before a
reboot cannot be replayed after it.

File format: one line of text, ``fcnt1 <limit> <boots> [<downlink>]``. Writes go to a
temporary file renamed over the old one (atomic on littlefs and POSIX), so
a power cut during a write leaves the old or the new limit, both safe.
"""

import os

try:
    from micropython import const
except ImportError:  # CPython: unit tests and the CLI

    def const(expr):  # type: ignore[no-redef,misc]
        return expr


_FCNT_MAX = const(0xFFFFFFFF)
_MAGIC = const("fcnt1")


class FcntError(OSError):
    pass


class FcntStore:
    def __init__(self, path: str = "fcnt.dat", block: int = 16, resume: "tuple | None" = None) -> None:
        if block < 1:
            raise ValueError("block must be >= 1")
        self.path = path
        self.block = block
        self.writes = 0
        if resume is not None:
            # (next, limit, boots, downlink): a wake from deep sleep; nothing to write
            self.next, self.limit, self.boots, self.rx_last = resume
            return
        limit, boots, rx_last = self._load()
        self.boots = boots + 1
        self.rx_last = rx_last
        self.next = limit  # the next counter to use
        self.limit = limit  # counters below this are reserved on flash
        self._reserve()

    def _load(self) -> tuple:
        try:
            with open(self.path) as f:
                text = f.read()
        except OSError:
            return 0, 0, -1  # first boot: no file yet
        parts = text.split()
        if len(parts) not in (3, 4) or parts[0] != _MAGIC:
            raise FcntError(22, "frame counter file " + self.path + " is corrupt: " + repr(text[:40]))
        try:
            limit = int(parts[1])
            boots = int(parts[2])
            rx_last = int(parts[3]) if len(parts) == 4 else -1
        except ValueError:
            raise FcntError(22, "frame counter file " + self.path + " is corrupt: " + repr(text[:40])) from None
        if not 0 <= limit <= _FCNT_MAX + 1 or boots < 0 or rx_last > _FCNT_MAX:
            raise FcntError(22, "frame counter file " + self.path + " is out of range")
        return limit, boots, rx_last

    def note_downlink(self, fcnt: int) -> None:
        """A downlink with this full counter was accepted: never accept it (or older) again."""
        self.rx_last = fcnt
        self._write(self.limit)

    def _write(self, limit: int) -> None:
        tmp = self.path + ".tmp"
        line = _MAGIC + " " + str(limit) + " " + str(self.boots)
        if self.rx_last >= 0:
            line += " " + str(self.rx_last)
        with open(tmp, "w") as f:
            f.write(line + "\n")
        try:
            os.rename(tmp, self.path)
        except OSError:  # a filesystem whose rename does not replace
            try:
                os.remove(self.path)
            except OSError:
                pass
            os.rename(tmp, self.path)
        self.writes += 1

    def _reserve(self) -> None:
        limit = self.next + self.block
        if limit > _FCNT_MAX + 1:
            limit = _FCNT_MAX + 1
        self._write(limit)
        self.limit = limit

    def take(self) -> int:
        """The next unused counter (reserving a new block first when needed)."""
        if self.next >= self.limit:
            if self.next > _FCNT_MAX:
                raise FcntError(28, "frame counter exhausted: the node needs a new key")
            self._reserve()
        n = self.next
        self.next = n + 1
        return n
