"""Push a recorded or synthetic sensor trace through the firmware's detector (MicroPython and CPython).

A trace is a sequence of samples, packed ``SAMPLE`` (little-endian): the
magnetic field x, y, z in 0.1 uT, what the ranger would read in mm if
fired (``NO_ECHO`` = -1: nothing reflects), and flags (bit 0 magnetometer
saturated, bit 1 magnetometer missing). ``replay`` feeds them to
``detect.Detector`` exactly as ``node_app.Node.step`` does -- including
the power-saving ranging policy (the ranger fires only when the detector
wants it or every ``range_every`` samples) -- and returns the committed
state changes as ``(sample index, state)``. The code is plain enough to
run under both interpreters, which must agree sample for sample.
"""

import struct

import detect

SAMPLE = "<hhhhB"
SAMPLE_SIZE = 9
NO_ECHO = -1
F_SATURATED = 1
F_MAG_MISSING = 2
# node.json defaults (node_config.py), and the sample period of the default battery profile
DEFAULTS = {
    "arrive_ut": 12.0,
    "leave_ut": 6.0,
    "occupied_below_cm": 80.0,
    "hold_samples": 2,
    "ema_shift": 5,
    "calib_samples": 4,
    "rebaseline_samples": 40,
    "short_below_cm": 8.0,
    "range_every": 20,
    "tamper_s": 120,
}


def make_detector(params: dict, sample_s: int, has_ranger: bool = True) -> "detect.Detector":
    p = dict(DEFAULTS)
    p.update(params)
    t = p["tamper_s"]
    tamper = 0 if t <= 0 else max(2, (t + sample_s - 1) // sample_s)
    return detect.Detector(
        p["arrive_ut"],
        p["leave_ut"],
        p["occupied_below_cm"],
        p["hold_samples"],
        p["ema_shift"],
        p["calib_samples"],
        p["rebaseline_samples"],
        has_ranger,
        p["short_below_cm"],
        tamper,
    )


def replay(data: "bytes | bytearray", params: dict, sample_s: int, has_ranger: bool = True) -> list:
    """[(sample index, new committed state)] for the packed samples in ``data``."""
    det = make_detector(params, sample_s, has_ranger)
    every = params.get("range_every", DEFAULTS["range_every"])
    events = []
    since = 0
    n = len(data) // SAMPLE_SIZE
    for i in range(n):
        x, y, z, rng_mm, flags = struct.unpack_from(SAMPLE, data, i * SAMPLE_SIZE)
        mag_ok = not flags & F_MAG_MISSING
        sat = bool(flags & F_SATURATED)
        rng = detect.RANGE_SKIPPED
        if has_ranger:
            since += 1
            if since >= every or det.wants_range(x, y, z, mag_ok and not sat):
                since = 0
                rng = detect.RANGE_NONE if rng_mm < 0 else rng_mm
        if det.update(x, y, z, mag_ok, rng, sat):
            events.append((i, det.state))
    return events
