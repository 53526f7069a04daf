"""Stand-in for py-spidev (``import spidev``) on a bench without a Raspberry Pi.

Put ``hil/pi_standins`` first on ``sys.path`` (or ``PYTHONPATH``) and code
written for the Pi -- pyLoRa's ``SX127x.board_config``, the fog's
``fog/ingest/spi_lora.py`` -- opens ``SpiDev(bus, device)`` and talks to
whatever the bench attached there, byte for byte, through ``xfer``/``xfer2``.

What it keeps from the real module: ``open`` fails with ``FileNotFoundError``
when the device node does not exist (the Pi's default overlay gives
``/dev/spidev0.0`` and ``/dev/spidev0.1``); one ``xfer``/``xfer2`` call is one
transaction with chip select held low for its bytes (as the SX127x needs);
MISO reads 0x00 when nothing answers on that chip select (a module unplugged).

Bench-only functions (not in py-spidev): :func:`attach`, :func:`detach`,
:func:`set_device_nodes`, :func:`reset`.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Sequence
from typing import Protocol


class SpiChip(Protocol):
    """What sits on a chip select: the SX1276 model has exactly these two methods."""

    def spi_select(self, selected: bool) -> None: ...

    def spi_byte(self, b: int) -> int: ...


_DEFAULT_NODES = frozenset({(0, 0), (0, 1)})
_nodes: set[tuple[int, int]] = set(_DEFAULT_NODES)
_chips: dict[tuple[int, int], tuple[SpiChip, threading.RLock]] = {}
_registry_lock = threading.Lock()


def attach(bus: int, device: int, chip: SpiChip, lock: threading.RLock | None = None) -> threading.RLock:
    """Wire ``chip`` to /dev/spidev<bus>.<device>; ``lock`` serialises it with the bench's other access."""
    lock = lock or threading.RLock()
    with _registry_lock:
        _nodes.add((bus, device))
        _chips[(bus, device)] = (chip, lock)
    return lock


def detach(bus: int, device: int) -> None:
    """Pull the module off the connector: the device node stays, MISO reads 0x00."""
    with _registry_lock:
        _chips.pop((bus, device), None)


def set_device_nodes(nodes: set[tuple[int, int]]) -> None:
    """Which /dev/spidevB.D exist (what the device-tree overlay created)."""
    with _registry_lock:
        _nodes.clear()
        _nodes.update(nodes)


def reset() -> None:
    """Back to a fresh Pi: default device nodes, nothing attached."""
    with _registry_lock:
        _chips.clear()
        _nodes.clear()
        _nodes.update(_DEFAULT_NODES)


class SpiDev:
    """The subset of ``spidev.SpiDev`` that Pi radio drivers use."""

    def __init__(self, bus: int | None = None, device: int | None = None) -> None:
        self.mode = 0
        self.max_speed_hz = 500000
        self.bits_per_word = 8
        self.lsbfirst = False
        self.cshigh = False
        self.threewire = False
        self.loop = False
        self.no_cs = False
        self._where: tuple[int, int] | None = None
        self.transfers = 0
        if bus is not None and device is not None:
            self.open(bus, device)

    def open(self, bus: int, device: int) -> None:
        with _registry_lock:
            present = (bus, device) in _nodes
        if not present:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", f"/dev/spidev{bus}.{device}")
        self._where = (bus, device)

    def close(self) -> None:
        self._where = None

    def _transfer(self, values: Sequence[int]) -> list[int]:
        if self._where is None:
            raise OSError(errno.EBADF, "Bad file descriptor (SpiDev not open)")
        with _registry_lock:
            wired = _chips.get(self._where)
        self.transfers += 1
        if wired is None:
            return [0] * len(values)
        chip, lock = wired
        with lock:
            chip.spi_select(True)
            try:
                return [chip.spi_byte(int(v) & 0xFF) & 0xFF for v in values]
            finally:
                chip.spi_select(False)

    def xfer(self, values: Sequence[int], speed_hz: int = 0, delay_usecs: int = 0, bits_per_word: int = 0
             ) -> list[int]:
        return self._transfer(values)

    def xfer2(self, values: Sequence[int], speed_hz: int = 0, delay_usecs: int = 0, bits_per_word: int = 0
              ) -> list[int]:
        return self._transfer(values)

    def readbytes(self, n: int) -> list[int]:
        return self._transfer([0] * n)

    def writebytes(self, values: Sequence[int]) -> None:
        self._transfer(values)
