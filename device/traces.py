"""Synthetic magnetometer + ultrasonic traces for scoring the detector, generated deterministically.

The *standard trace set* (``standard_set()``) is what ``bench/bench_device_detection.py``
prints and what ``tests/device/test_device_traces.py`` holds to >= 99 %
correct: six scenarios, each three bays of four days sampled every 30 s
(the default battery profile: ``deep_sleep``, ``sample_ms`` 30000), every
bay from its own seed. Each sample is what the node's drivers would hand
the detector: field x, y, z in 0.1 uT and what the ranger would read if
fired (mm, or -1 for no echo). The replay (``device/trace_replay.py``) runs
the firmware's ``detect.py`` with the node's ranging policy on them, under
CPython here and under MicroPython in the test, which must agree.

The world, per bay (all magnitudes are at the sensor, in the road surface):

* **Earth field** (18, -4, 44) uT plus a per-bay offset (+/-5 uT per axis:
  rebar, kerbs), **noise** 0.3 uT per axis (QMC5883L at OSR 512).
* **Drift**: the sensor's offset follows the temperature (a daily sine of
  8 degC, weather as a random walk) through a per-axis tempco of up to
  0.15 uT/degC, plus a random walk of 0.3 uT per sqrt(day). The *drift*
  scenario has 15 degC days, 0.25 uT/degC, a 1 uT per sqrt(day) walk, a
  1-3 uT/day ramp on z and one 3-5 uT step (a steel object left nearby).
* **Vehicles** arrive and leave as an alternating renewal process: gaps
  exponential (mean 2 h by day, 6 h at night, at least 5 min), stays
  log-normal (median 80 min, 10 min .. 14 h; *long_stays*: overnight
  8-16 h). A car adds a field vector of magnitude s (log-normal, median
  35 uT, at least 14 uT), mostly vertical; its underbody is 12-35 cm above
  the ranger. A **high-chassis** vehicle (SUV, van, truck: 50 % in the
  *high_chassis* scenario, 10 % elsewhere) adds only 6.5-25 uT (median
  11 uT) and its underbody is 45-75 cm up. The sample taken within 10 s of
  an arrival or departure sees the car half in place (a random fraction of
  its field, the ranger hitting it with probability 0.6).
* **Ranger**: over a vehicle, the underbody distance +/- 1 cm, with 3 %
  dropouts (no echo; 6 % for high chassis); over an empty bay no echo, with
  0.5 % spurious echoes at 30-300 cm.
* **Neighbouring bays**: two, each with its own vehicle process; a parked
  neighbour adds 0.5-4 uT in a random direction (*busy_neighbours*: 2-9 uT,
  with shorter stays) and never reflects the ranger.
* **Passers-by** (6 a day; *passers_by*: 40 a day): a vehicle rolling over
  the sensor for 2-12 s (20-60 uT, underbody 15-35 cm), or a pedestrian for
  3-20 s (no field; legs at 80-180 cm, or a foot on the sensor at
  3-30 cm). They matter only when a sample instant falls inside them.
  Stops of 30 s to 5 min are not generated: at a 30 s sample period they
  are indistinguishable from a short stay.

Scoring (``score``): a detected change matches a true arrival/departure
of the same kind when it comes no earlier than one sample before it and
at most ``MAX_DELAY_S`` after it (one to one, in time order). Correct % =
matched / (true events + false flips), so a false flip counts against as
much as a missed event.
"""

from __future__ import annotations

import math
import random
import struct
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_S = 30
DAY_S = 86400
MAX_DELAY_S = 180
EARTH_UT = (18.0, -4.0, 44.0)
SAMPLE = "<hhhhB"
NO_ECHO = -1

SCENARIOS = ("typical", "high_chassis", "busy_neighbours", "drift", "passers_by", "long_stays")
# Outside the standard set, to show where the detector gives way: everything at once and harsher
# (a dirty ranger: 20 % dropouts; neighbours 4-15 uT; 80 passers a day; drift as *drift*).
STRESS = "stress"
BAYS_PER_SCENARIO = 3
DAYS = 4


@dataclass
class Trace:
    name: str
    scenario: str
    sample_s: int
    data: bytes  # packed samples (device/trace_replay.py SAMPLE)
    truth: list[tuple[int, int]]  # (time s, state): 1 arrival (occupied), 0 departure (empty)
    high_chassis: set[int] = field(default_factory=set)  # arrival times of high-chassis vehicles

    @property
    def samples(self) -> int:
        return len(self.data) // 9


def _stays(rng: random.Random, days: int, long_stays: bool = False, busy: bool = False) -> list[tuple[float, float]]:
    """(arrive s, leave s) intervals of one bay's vehicles; the bay starts empty for >= 20 min."""
    out = []
    t = 1200.0 + rng.expovariate(1 / 3600)
    end = days * DAY_S - 600
    while t < end:
        hour = (t % DAY_S) / 3600
        if long_stays and (hour >= 17 or hour < 2) and rng.random() < 0.6:
            stay = rng.uniform(8, 16) * 3600
        else:
            stay = min(14 * 3600, max(600.0, rng.lognormvariate(math.log(80 * 60 if not busy else 40 * 60), 0.8)))
        leave = t + stay
        if leave >= end:
            break
        out.append((t, leave))
        night = 0 <= ((leave % DAY_S) / 3600) < 6
        gap = rng.expovariate(1 / ((6 if night else 2) * 3600 if not busy else 1800))
        t = leave + max(300.0, gap)
    return out


def _vector(rng: random.Random, magnitude: float, vertical: bool = True) -> tuple[float, float, float]:
    if vertical:
        z = magnitude * rng.uniform(0.75, 1.0)
        h = math.sqrt(max(0.0, magnitude**2 - z**2))
        a = rng.uniform(0, 2 * math.pi)
        return (h * math.cos(a), h * math.sin(a), z)
    a = rng.uniform(0, 2 * math.pi)
    c = rng.uniform(-1, 1)
    s = math.sqrt(1 - c * c)
    return (magnitude * s * math.cos(a), magnitude * s * math.sin(a), magnitude * c)


def generate(scenario: str, bay: int, days: int = DAYS, sample_s: int = SAMPLE_S) -> Trace:
    """One bay of one scenario; the same (scenario, bay) always gives the same trace."""
    if scenario not in SCENARIOS and scenario != STRESS:
        raise ValueError("unknown scenario " + repr(scenario))
    stress = scenario == STRESS
    seed = (SCENARIOS.index(scenario) if not stress else 99) * 1000 + bay
    rng = random.Random(seed)
    drift = scenario == "drift" or stress
    high_share = 0.5 if scenario == "high_chassis" else 0.3 if stress else 0.1
    busy = scenario == "busy_neighbours" or stress
    passers_per_day = 40 if scenario == "passers_by" else 80 if stress else 6
    drop_factor = 6.5 if stress else 1.0
    n = days * DAY_S // sample_s

    offset = tuple(EARTH_UT[i] + rng.uniform(-5, 5) for i in range(3))
    tempco = tuple(rng.uniform(-1, 1) * (0.25 if drift else 0.15) for _ in range(3))
    walk_sigma = (1.0 if drift else 0.3) * math.sqrt(sample_s / DAY_S)
    temp_amp = 15.0 if drift else 8.0
    ramp = (0.0, 0.0, rng.uniform(1, 3) / DAY_S) if drift else (0.0, 0.0, 0.0)
    step_at = rng.uniform(0.5, days - 0.5) * DAY_S if drift else -1.0
    step = _vector(rng, rng.uniform(3, 5), False) if drift else (0.0, 0.0, 0.0)

    # vehicles of this bay
    cars = []
    truth: list[tuple[int, int]] = []
    high: set[int] = set()
    for a, d in _stays(rng, days, long_stays=scenario == "long_stays"):
        hc = rng.random() < high_share
        if hc:
            s = min(25.0, max(6.5, rng.lognormvariate(math.log(11.0), 0.35)))
            under = rng.uniform(45, 75)
            drop = 0.06 * drop_factor
        else:
            s = min(150.0, max(14.0, rng.lognormvariate(math.log(35.0), 0.4)))
            under = rng.uniform(12, 35)
            drop = 0.03 * drop_factor
        cars.append((a, d, _vector(rng, s), under, drop))
        truth.append((int(a), 1))
        truth.append((int(d), 0))
        if hc:
            high.add(int(a))
    # neighbours: their cars shift our field a little
    neigh = []
    for _side in range(2):
        for a, d in _stays(rng, days, busy=busy):
            mag = rng.uniform(4, 15) if stress else rng.uniform(2, 9) if busy else rng.uniform(0.5, 4)
            neigh.append((a, d, _vector(rng, mag, False)))
    # passers-by
    passers = []
    t = rng.expovariate(passers_per_day / DAY_S)
    while t < days * DAY_S:
        if rng.random() < 0.6:
            dur = rng.uniform(2, 12)
            passers.append((t, t + dur, _vector(rng, rng.uniform(20, 60)), rng.uniform(15, 35)))
        else:
            dur = rng.uniform(3, 20)
            dist = rng.uniform(80, 180) if rng.random() < 0.7 else rng.uniform(3, 30)
            passers.append((t, t + dur, (0.0, 0.0, 0.0), dist))
        t += rng.expovariate(passers_per_day / DAY_S)

    # what covers each sample instant (intervals -> sample indices, no per-sample search)
    def span(a: float, d: float) -> range:
        return range(max(0, math.ceil(a / sample_s)), min(n - 1, math.floor(d / sample_s)) + 1)

    shift = [[0.0, 0.0, 0.0] for _ in range(n)]
    for a, d, vec in neigh:
        for i in span(a, d):
            sh = shift[i]
            for k in range(3):
                sh[k] += vec[k]
    car_at: dict[int, tuple] = {}
    for car in cars:
        for i in span(car[0], car[1]):
            car_at[i] = car
    passer_at: dict[int, tuple] = {}
    for ps in passers:
        for i in span(ps[0], ps[1]):
            passer_at[i] = ps

    out = bytearray()
    walk = [0.0, 0.0, 0.0]
    weather = 0.0
    for i in range(n):
        t = i * sample_s
        weather += rng.gauss(0, 0.05)
        weather *= 0.999
        temp = 12 + temp_amp * math.sin(2 * math.pi * (t / DAY_S - 0.375)) + weather
        sh = shift[i]
        f = []
        for k in range(3):
            walk[k] += rng.gauss(0, walk_sigma)
            v = offset[k] + tempco[k] * (temp - 12) + walk[k] + ramp[k] * t + sh[k]
            if step_at >= 0 and t >= step_at:
                v += step[k]
            f.append(v)
        rng_cm: float | None = None
        if rng.random() < 0.005:
            rng_cm = rng.uniform(30, 300)  # a spurious echo (rain, an insect)
        here = car_at.get(i)
        if here is not None:
            a, d, vec, under, drop = here
            edge = min(t - a, d - t)
            frac = 1.0
            sees = rng.random() >= drop
            if edge < 10:  # rolling in or out
                frac = rng.uniform(0.3, 1.0)
                sees = rng.random() < 0.6
            for k in range(3):
                f[k] += vec[k] * frac
            rng_cm = under + rng.gauss(0, 1.0) if sees else None
        passing = passer_at.get(i)
        if passing is not None:
            for k in range(3):
                f[k] += passing[2][k]
            rng_cm = passing[3]
        xyz = [int(round(10 * (f[k] + rng.gauss(0, 0.3)))) for k in range(3)]
        mm = NO_ECHO if rng_cm is None else max(20, int(round(rng_cm * 10)))
        out += struct.pack(SAMPLE, xyz[0], xyz[1], xyz[2], mm, 0)
    return Trace(scenario + "-" + str(bay), scenario, sample_s, bytes(out), truth, high)


def standard_set() -> list[Trace]:
    return [generate(s, b) for s in SCENARIOS for b in range(BAYS_PER_SCENARIO)]


def write(traces: list[Trace], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for tr in traces:
        p = folder / (tr.name + ".trace")
        p.write_bytes(tr.data)
        paths.append(p)
    return paths


# --- scoring ---------------------------------------------------------------------


@dataclass
class Score:
    arrivals: int = 0
    departures: int = 0
    arrivals_ok: int = 0
    departures_ok: int = 0
    false_flips: int = 0
    high_chassis: int = 0
    high_chassis_ok: int = 0
    delays: list[float] = field(default_factory=list)

    def add(self, other: Score) -> None:
        for k in ("arrivals", "departures", "arrivals_ok", "departures_ok", "false_flips", "high_chassis", "high_chassis_ok"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.delays += other.delays

    @property
    def truth(self) -> int:
        return self.arrivals + self.departures

    @property
    def matched(self) -> int:
        return self.arrivals_ok + self.departures_ok

    @property
    def correct_pct(self) -> float:
        denom = self.truth + self.false_flips
        return 100.0 * self.matched / denom if denom else 100.0

    def delay_s(self, q: float) -> float:
        if not self.delays:
            return float("nan")
        d = sorted(self.delays)
        return d[min(len(d) - 1, int(q * len(d)))]


def score(trace: Trace, events: list[tuple[int, int]]) -> Score:
    """Match detected (sample index, state) changes to the trace's truth."""
    det = [(i * trace.sample_s, st) for i, st in events]
    used = [False] * len(det)
    s = Score()
    for t, st in trace.truth:
        if st == 1:
            s.arrivals += 1
        else:
            s.departures += 1
        hc = st == 1 and t in trace.high_chassis
        if hc:
            s.high_chassis += 1
        for j, (td, sd) in enumerate(det):
            if used[j] or sd != st:
                continue
            if t - trace.sample_s <= td <= t + MAX_DELAY_S:
                used[j] = True
                if st == 1:
                    s.arrivals_ok += 1
                else:
                    s.departures_ok += 1
                if hc:
                    s.high_chassis_ok += 1
                s.delays.append(max(0.0, float(td - t)))
                break
            if td > t + MAX_DELAY_S:
                break
    s.false_flips = used.count(False)
    return s


def table(rows: list[tuple[str, Score]]) -> str:
    head = (
        f"{'scenario':<16} {'events':>6} {'arrivals ok':>12} {'departures ok':>14} {'high-chassis ok':>16} "
        f"{'false flips':>11} {'correct':>8} {'delay p50':>9} {'delay p95':>9}"
    )
    lines = [head, "-" * len(head)]
    for name, s in rows:
        lines.append(
            f"{name:<16} {s.truth:>6} {s.arrivals_ok:>5}/{s.arrivals:<6} {s.departures_ok:>6}/{s.departures:<7} "
            f"{s.high_chassis_ok:>7}/{s.high_chassis:<8} {s.false_flips:>11} {s.correct_pct:>7.2f}% "
            f"{s.delay_s(0.5):>8.0f}s {s.delay_s(0.95):>8.0f}s"
        )
    return "\n".join(lines)


def evaluate(traces: list[Trace], results: dict[str, list[tuple[int, int]]]) -> list[tuple[str, Score]]:
    """Per-scenario scores and the total, in table order."""
    by: dict[str, Score] = {}
    total = Score()
    for tr in traces:
        s = score(tr, results[tr.name])
        by.setdefault(tr.scenario, Score()).add(s)
        total.add(s)
    rows = [(k, by[k]) for k in SCENARIOS if k in by]
    if STRESS in by:
        rows.append((STRESS, by[STRESS]))
    return rows + [("all", total)]
