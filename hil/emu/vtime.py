"""A virtual clock that stands in for ``time`` in bench soak runs (MicroPython).

``sys.modules["time"] = vtime`` before anything else imports ``time``: then
``sleep_ms``/``sleep_us`` advance the clock at once instead of waiting, and
every part model, driver and the firmware see the same virtual time, so a
day of samples runs in seconds. ``ticks_*`` wrap at 2**30 as MicroPython's
do; ``time()`` starts at 2026-01-01 UTC.
"""

_PERIOD = 1 << 30
_HALF = 1 << 29
_us = [0]
EPOCH = 1767225600


def ticks_us() -> int:
    _us[0] += 1  # time never stands still between two reads
    return _us[0] & (_PERIOD - 1)


def ticks_ms() -> int:
    _us[0] += 1
    return (_us[0] // 1000) & (_PERIOD - 1)


def ticks_cpu() -> int:
    return ticks_us()


def ticks_diff(a: int, b: int) -> int:
    return ((a - b + _HALF) & (_PERIOD - 1)) - _HALF


def ticks_add(t: int, d: int) -> int:
    return (t + d) & (_PERIOD - 1)


def sleep_us(n: int) -> None:
    if n > 0:
        _us[0] += n


def sleep_ms(n: int) -> None:
    if n > 0:
        _us[0] += n * 1000


def sleep(s: float) -> None:
    sleep_us(int(s * 1000000))


def time() -> int:
    return EPOCH + _us[0] // 1000000


def time_ns() -> int:
    return EPOCH * 1000000000 + _us[0] * 1000


def elapsed_s() -> float:
    return _us[0] / 1000000
