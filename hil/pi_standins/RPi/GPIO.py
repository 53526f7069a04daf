"""Stand-in for ``RPi.GPIO`` on a bench without a Raspberry Pi (BCM numbering, GPIO 0-27).

Inputs read what the bench wired to them (:func:`wire_input`, e.g. an
emulated SX1276's DIO0) or their pull; outputs drive what the bench wired
(:func:`wire_output`, e.g. the radio's NRESET). Edge detection works as the
real module's: ``add_event_detect`` needs the channel set up as an input,
refuses a second detection on the same channel, and runs every callback on one
separate thread, which samples the wired levels every millisecond.

The refusals use the real module's exception types and wording, so code that
misuses GPIO here fails on the Pi the same way. Bench-only functions (not in
RPi.GPIO): :func:`wire_input`, :func:`wire_output`, :func:`reset`.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

VERSION = "0.7.1 (FogPark bench stand-in)"
RPI_INFO = {"P1_REVISION": 3, "TYPE": "bench stand-in", "MANUFACTURER": "FogPark", "PROCESSOR": "none"}

BOARD = 10
BCM = 11
OUT = 0
IN = 1
LOW = 0
HIGH = 1
PUD_OFF = 20
PUD_DOWN = 21
PUD_UP = 22
RISING = 31
FALLING = 32
BOTH = 33
SAMPLE_S = 0.001

_Callback = Callable[[int], None]


@dataclass
class _Pin:
    direction: int
    pull: int = PUD_OFF
    level: int = LOW  # driven level, for outputs


@dataclass
class _Detection:
    edge: int
    callbacks: list[_Callback] = field(default_factory=list)
    last: int = 0
    detected: bool = False


_lock = threading.RLock()
_mode: int | None = None
_warnings = True
_pins: dict[int, _Pin] = {}
_detections: dict[int, _Detection] = {}
_sources: dict[int, Callable[[], int]] = {}
_sinks: dict[int, Callable[[int], None]] = {}
_sampler: threading.Thread | None = None
_sampler_stop = threading.Event()


# --- bench wiring (not RPi.GPIO API) -----------------------------------------------


def wire_input(channel: int, level: Callable[[], int]) -> None:
    """What drives ``channel`` from outside (called on the sampler thread and by ``input``)."""
    with _lock:
        _sources[channel] = level


def wire_output(channel: int, sink: Callable[[int], None]) -> None:
    """What ``channel`` drives when it is an output (called with 0/1)."""
    with _lock:
        _sinks[channel] = sink


def reset() -> None:
    """A fresh Pi: no mode, no pins, no wiring, no sampler."""
    global _mode
    cleanup()
    with _lock:
        _sources.clear()
        _sinks.clear()
        _mode = None


# --- RPi.GPIO API -------------------------------------------------------------------


def setwarnings(flag: bool) -> None:
    global _warnings
    _warnings = bool(flag)


def setmode(mode: int) -> None:
    global _mode
    if mode not in (BOARD, BCM):
        raise ValueError("An invalid mode was passed to setmode()")
    if _mode is not None and mode != _mode:
        raise ValueError("A different mode has already been set!")
    if mode == BOARD:
        raise ValueError("this bench stand-in supports BCM numbering only")
    _mode = mode


def getmode() -> int | None:
    return _mode


def _channels(channel: int | Iterable[int]) -> list[int]:
    chans = [channel] if isinstance(channel, int) else list(channel)
    if _mode is None:
        raise RuntimeError("Please set pin numbering mode using GPIO.setmode(GPIO.BOARD) or GPIO.setmode(GPIO.BCM)")
    for c in chans:
        if not isinstance(c, int) or not 0 <= c <= 27:
            raise ValueError("The channel sent is invalid on a Raspberry Pi")
    return chans


def _drive(channel: int, level: int) -> None:
    sink = _sinks.get(channel)
    if sink is not None:
        sink(level)


def setup(channel: int | Iterable[int], direction: int, pull_up_down: int = PUD_OFF, initial: int = -1) -> None:
    if direction not in (IN, OUT):
        raise ValueError("An invalid direction was passed to setup()")
    if pull_up_down not in (PUD_OFF, PUD_DOWN, PUD_UP):
        raise ValueError("Invalid value for pull_up_down - should be either PUD_OFF, PUD_UP or PUD_DOWN")
    if direction == OUT and pull_up_down != PUD_OFF:
        raise ValueError("pull_up_down parameter is not valid for outputs")
    with _lock:
        for c in _channels(channel):
            if direction == OUT:
                level = HIGH if initial == HIGH else LOW
                _pins[c] = _Pin(OUT, PUD_OFF, level)
                _drive(c, level)
            else:
                _pins[c] = _Pin(IN, pull_up_down)
                _drive(c, 1)  # released: what the pin sees is its own pull-up or the chip's (NRESET has one)


def output(channel: int | Iterable[int], value: int | bool) -> None:
    with _lock:
        for c in _channels(channel):
            pin = _pins.get(c)
            if pin is None or pin.direction != OUT:
                raise RuntimeError("The GPIO channel has not been set up as an OUTPUT")
            pin.level = HIGH if value else LOW
            _drive(c, pin.level)


def _level(c: int, pin: _Pin) -> int:
    if pin.direction == OUT:
        return pin.level
    source = _sources.get(c)
    if source is not None:
        return 1 if source() else 0
    return HIGH if pin.pull == PUD_UP else LOW


def input(channel: int) -> int:  # noqa: A001 - the real module's name
    with _lock:
        (c,) = _channels(channel)
        pin = _pins.get(c)
        if pin is None:
            raise RuntimeError("You must setup() the GPIO channel first")
        return _level(c, pin)


def add_event_detect(channel: int, edge: int, callback: _Callback | None = None, bouncetime: int | None = None
                     ) -> None:
    global _sampler
    if edge not in (RISING, FALLING, BOTH):
        raise ValueError("The edge must be set to RISING, FALLING or BOTH")
    with _lock:
        (c,) = _channels(channel)
        pin = _pins.get(c)
        if pin is None or pin.direction != IN:
            raise RuntimeError("You must setup() the GPIO channel as an input first")
        if c in _detections:
            raise RuntimeError("Conflicting edge detection already enabled for this GPIO channel")
        det = _Detection(edge, last=_level(c, pin))
        if callback is not None:
            det.callbacks.append(callback)
        _detections[c] = det
        if _sampler is None or not _sampler.is_alive():
            _sampler_stop.clear()
            _sampler = threading.Thread(target=_sample, name="RPi.GPIO-standin-events", daemon=True)
            _sampler.start()


def add_event_callback(channel: int, callback: _Callback) -> None:
    with _lock:
        (c,) = _channels(channel)
        det = _detections.get(c)
        if det is None:
            raise RuntimeError("Add event detection using add_event_detect first before adding a callback")
        det.callbacks.append(callback)


def remove_event_detect(channel: int) -> None:
    with _lock:
        (c,) = _channels(channel)
        _detections.pop(c, None)


def event_detected(channel: int) -> bool:
    with _lock:
        (c,) = _channels(channel)
        det = _detections.get(c)
        if det is None:
            return False
        hit, det.detected = det.detected, False
        return hit


def cleanup(channel: int | Iterable[int] | None = None) -> None:
    """Channels back to inputs, their detections removed; all of them (and the mode) when none is given."""
    global _mode, _sampler
    with _lock:
        chans = list(_pins) if channel is None or _mode is None else _channels(channel)
        for c in chans:
            _detections.pop(c, None)
            if c in _pins:
                del _pins[c]
                _drive(c, 1)
        if channel is None:
            _detections.clear()
            _mode = None
        sampler = _sampler if not _detections else None
    if sampler is not None:
        _sampler_stop.set()
        if sampler is not threading.current_thread():
            sampler.join(timeout=1)
        _sampler = None


def _sample() -> None:
    """The event thread: level changes on watched inputs become callbacks, in order."""
    while not _sampler_stop.wait(SAMPLE_S):
        fired: list[tuple[int, list[_Callback]]] = []
        with _lock:
            for c, det in _detections.items():
                pin = _pins.get(c)
                if pin is None:
                    continue
                now = _level(c, pin)
                rose, fell = now and not det.last, det.last and not now
                det.last = now
                if (rose and det.edge in (RISING, BOTH)) or (fell and det.edge in (FALLING, BOTH)):
                    det.detected = True
                    fired.append((c, list(det.callbacks)))
        for c, callbacks in fired:  # outside the lock: a callback may use GPIO and SPI
            for cb in callbacks:
                try:
                    cb(c)
                except Exception:  # noqa: BLE001 - as RPi.GPIO: print and keep the event thread alive
                    traceback.print_exc(file=sys.stderr)
