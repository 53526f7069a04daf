"""Bench scenarios: a TOML file that says what the lot is, what the vehicles do and what breaks when.

The format is documented in ``hil/scenarios/README.md``. Loading validates
every key and refuses a wrong file with a message that names the key, so a
typo in a fault's ``kind`` fails before a five-minute run starts, not in it.
"""

from __future__ import annotations

import bisect
import random
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"

FAULT_KINDS: dict[str, dict[str, Any]] = {
    # kind: the keys it takes besides at_s (with defaults)
    "fog_kill": {"restart_after_s": 1.0},
    "cloud_down": {"duration_s": 20.0},
    "serial_unplug": {"duration_s": 5.0},
    "radio_burst": {"duration_s": 5.0},
    "battery_sag": {"spot": "", "battery_mv": 3300, "brownout": True},
    "tamper": {"spot": "", "duration_s": 30.0},
    "spoof": {"spot": "", "count": 3},
    "replay": {"spot": "", "count": 3},
    "clock_jump": {"jump_s": 3600.0},
    "broker_restart": {},
}


# [reservations] of a scenario: the lot's reservation policy for the run (scenario seconds, theta a
# probability). Keys go to the lot file's [reservations], except checkin_grace_s ([alerts]).
POLICY_KEYS = ("lead_s", "theta", "grace_s", "waiting_window_s", "hold_before_s", "max_advance_s",
               "guidance_timeout_s", "checkin_grace_s")
BOOKING_KINDS = ("booking", "reservation")
CARD_HEX = set("0123456789abcdefABCDEF")


class ScenarioError(ValueError):
    """A scenario file that cannot run: which file, which key, what is wrong."""


@dataclass(frozen=True)
class Fault:
    at_s: float  # scenario time (before acceleration)
    kind: str
    args: dict[str, Any]


@dataclass(frozen=True)
class TraceEvent:
    at_s: float
    spot: str
    action: str  # "park" | "leave"


@dataclass(frozen=True)
class Booking:
    """A driver's booking or reservation on the timeline, and what the driver then does.

    Times are scenario seconds. ``arrive_after_s`` None: nobody comes (a
    no-show); ``cancel_after_s``: the driver cancels instead. With
    ``card_uid`` occupancy alone is not a check-in: the driver must ``badge``
    the card on the bay's RC522.
    """

    at_s: float  # when the request is made
    kind: str  # "booking" (starts now, held at once) | "reservation" (starts start_in_s later)
    hours: int = 1
    start_in_s: float = 0.0  # reservation: its start, after the request
    arrive_after_s: float | None = None  # after the start: the car parks on the held spot
    stay_s: float | None = None  # then leaves (None: still parked at the end)
    cancel_after_s: float | None = None  # after the request: cancelled by the driver
    card_uid: str = ""
    badge: bool = True
    expect: str = "admitted"  # or "refused" (e.g. inside the lead time)


@dataclass
class Scenario:
    name: str
    description: str
    duration_s: float  # scenario time
    acceleration: float = 1.0  # scenario seconds per wall second (traffic only)
    seed: int = 1
    settle_s: float = 15.0  # wall seconds for nodes to boot and calibrate before traffic
    drain_s: float = 60.0  # wall seconds at most for the outbox to reach the cloud after traffic
    tail_s: float = 10.0  # wall seconds after traffic for the last changes (and retries) to reach the fog
    spots: int | None = None  # None: the demo lot
    emulated: int | None = None  # bays with real firmware; None: all
    channels_hz: tuple[int, ...] = ()  # uplink channels dealt to nodes round-robin; (): one channel
    arrivals_per_min: float = 0.0
    departures_per_min: float | None = None  # Poisson departures (a random parked car leaves)
    mean_stay_s: float | None = None  # or: each car stays an exponential time
    initial_occupancy_max: float = 0.0  # a fraction U(0, max) of bays starts occupied
    initial_spread_s: float = 30.0  # wall seconds over which the initial cars park
    min_dwell_s: float = 6.0  # wall seconds: no car stays, and no bay stays free, shorter than this
    trace: list[TraceEvent] = field(default_factory=list)
    node_settings: dict[str, Any] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    min_detection: float = 0.99
    detection_window_s: float = 60.0  # wall seconds a fog event may lag a truth change and still count
    max_false_reports: int | None = None  # fog state reports the truth never had (None: not judged)
    policy: dict[str, float] = field(default_factory=dict)  # [reservations]: the lot's policy (scenario s)
    bookings: list[Booking] = field(default_factory=list)
    source: Path | None = None

    @property
    def wall_s(self) -> float:
        """How long the traffic phase takes on the wall clock."""
        return self.duration_s / self.acceleration


def _num(t: dict[str, Any], key: str, where: str, default: float | None, lo: float = 0.0,
         hi: float = float("inf")) -> float | None:
    v = t.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ScenarioError(f"{where}.{key}: expected a number, got {v!r}")
    if not lo <= v <= hi:
        raise ScenarioError(f"{where}.{key}: {v} is outside {lo} .. {hi}")
    return float(v)


def _req(v: float | None, where: str) -> float:
    if v is None:
        raise ScenarioError(f"{where}: missing (a number is required)")
    return v


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario file; a bare name means ``hil/scenarios/<name>.toml``."""
    p = Path(path)
    if not p.exists() and (SCENARIO_DIR / f"{p.name}.toml").exists():
        p = SCENARIO_DIR / f"{p.name}.toml"
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ScenarioError(f"{p}: no such scenario file (library: {', '.join(library())})") from None
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(f"{p}: not valid TOML: {err}") from None
    try:
        return _parse(data, p)
    except ScenarioError as err:
        raise ScenarioError(f"{p}: {err}") from None


def _parse(data: dict[str, Any], p: Path) -> Scenario:
    known = {"scenario", "lot", "traffic", "nodes", "faults", "verdict", "reservations", "bookings"}
    extra = set(data) - known
    if extra:
        raise ScenarioError(f"unknown table(s) {sorted(extra)}; known: {sorted(known)}")
    sc = data.get("scenario", {})
    lot = data.get("lot", {})
    tr = data.get("traffic", {})
    ver = data.get("verdict", {})
    s = Scenario(
        name=str(sc.get("name", p.stem)),
        description=str(sc.get("description", "")),
        duration_s=_req(_num(sc, "duration_s", "scenario", None, 1, 86400), "scenario.duration_s"),
        acceleration=_req(_num(sc, "acceleration", "scenario", 1.0, 0.01, 1000), "scenario.acceleration"),
        seed=int(sc.get("seed", 1)),
        settle_s=_req(_num(sc, "settle_s", "scenario", 15.0, 0, 600), "scenario.settle_s"),
        drain_s=_req(_num(sc, "drain_s", "scenario", 60.0, 0, 600), "scenario.drain_s"),
        tail_s=_req(_num(sc, "tail_s", "scenario", 10.0, 0, 600), "scenario.tail_s"),
        arrivals_per_min=_req(_num(tr, "arrivals_per_min", "traffic", 0.0, 0, 6000), "traffic.arrivals_per_min"),
        departures_per_min=_num(tr, "departures_per_min", "traffic", None, 0, 6000),
        mean_stay_s=_num(tr, "mean_stay_s", "traffic", None, 0.1),
        initial_occupancy_max=_req(_num(tr, "initial_occupancy_max", "traffic", 0.0, 0, 1), "traffic"),
        initial_spread_s=_req(_num(tr, "initial_spread_s", "traffic", 30.0, 0, 3600), "traffic"),
        min_dwell_s=_req(_num(tr, "min_dwell_s", "traffic", 6.0, 3, 3600), "traffic.min_dwell_s"),
        min_detection=_req(_num(ver, "min_detection", "verdict", 0.99, 0, 1), "verdict"),
        detection_window_s=_req(_num(ver, "detection_window_s", "verdict", 60.0, 1, 3600), "verdict"),
        source=p,
    )
    mfr = _num(ver, "max_false_reports", "verdict", None, 0)
    s.max_false_reports = None if mfr is None else int(mfr)
    if "spots" in lot:
        s.spots = int(_req(_num(lot, "spots", "lot", None, 1, 20000), "lot.spots"))
    if "emulated" in lot:
        s.emulated = int(_req(_num(lot, "emulated", "lot", None, 0, 20000), "lot.emulated"))
    ch = lot.get("channels_hz", [])
    if not isinstance(ch, list) or not all(isinstance(f, int) and 137_000_000 <= f <= 1_020_000_000 for f in ch):
        raise ScenarioError(f"lot.channels_hz: expected a list of frequencies in Hz, got {ch!r}")
    s.channels_hz = tuple(ch)
    if s.departures_per_min is not None and s.mean_stay_s is not None:
        raise ScenarioError("traffic: give departures_per_min or mean_stay_s, not both")
    if s.arrivals_per_min > 0 and s.departures_per_min is None and s.mean_stay_s is None:
        s.mean_stay_s = 120.0
    for i, row in enumerate(tr.get("trace", [])):
        where = f"traffic.trace[{i}]"
        if not (isinstance(row, list) and len(row) == 3 and row[2] in ("park", "leave")):
            raise ScenarioError(f"{where}: expected [at_s, spot, \"park\"|\"leave\"], got {row!r}")
        s.trace.append(TraceEvent(float(row[0]), str(row[1]), str(row[2])))
    nodes = data.get("nodes", {})
    if not isinstance(nodes, dict):
        raise ScenarioError("nodes: expected a table of node.json keys")
    s.node_settings = dict(nodes)
    for i, row in enumerate(data.get("faults", [])):
        where = f"faults[{i}]"
        kind = row.get("kind")
        if kind not in FAULT_KINDS:
            raise ScenarioError(f"{where}.kind: {kind!r} is not one of {', '.join(sorted(FAULT_KINDS))}")
        at = _req(_num(row, "at_s", where, None, 0, s.duration_s), f"{where}.at_s")
        allowed = FAULT_KINDS[kind]
        unknown = set(row) - {"kind", "at_s"} - set(allowed)
        if unknown:
            raise ScenarioError(f"{where}: unknown key(s) {sorted(unknown)} for {kind}; known: {sorted(allowed)}")
        s.faults.append(Fault(at, kind, {**allowed, **{k: v for k, v in row.items() if k in allowed}}))
    s.faults.sort(key=lambda f: f.at_s)
    _parse_bookings(s, data)
    return s


def _parse_bookings(s: Scenario, data: dict[str, Any]) -> None:
    """[reservations] (the lot's policy for the run) and [[bookings]] (drivers on the timeline)."""
    pol = data.get("reservations", {})
    if not isinstance(pol, dict):
        raise ScenarioError("reservations: expected a table")
    unknown = set(pol) - set(POLICY_KEYS)
    if unknown:
        raise ScenarioError(f"reservations: unknown key(s) {sorted(unknown)}; known: {list(POLICY_KEYS)}")
    for key in pol:
        hi = 1.0 if key == "theta" else 30 * 86400.0
        s.policy[key] = _req(_num(pol, key, "reservations", None, 0, hi), f"reservations.{key}")
    for i, row in enumerate(data.get("bookings", [])):
        where = f"bookings[{i}]"
        if not isinstance(row, dict):
            raise ScenarioError(f"{where}: expected a table")
        known = set(Booking.__dataclass_fields__)
        unknown = set(row) - known
        if unknown:
            raise ScenarioError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
        kind = row.get("kind", "booking")
        if kind not in BOOKING_KINDS:
            raise ScenarioError(f"{where}.kind: {kind!r} is not one of {', '.join(BOOKING_KINDS)}")
        expect = row.get("expect", "admitted")
        if expect not in ("admitted", "refused"):
            raise ScenarioError(f"{where}.expect: {expect!r} is not one of admitted, refused")
        card = row.get("card_uid", "")
        if not isinstance(card, str) or (card and (set(card) - CARD_HEX or len(card) not in (8, 14, 20))):
            raise ScenarioError(f"{where}.card_uid: the card's UID in hex, 4, 7 or 10 bytes; got {card!r}")
        badge = row.get("badge", True)
        if not isinstance(badge, bool):
            raise ScenarioError(f"{where}.badge: expected true or false, got {badge!r}")
        b = Booking(
            at_s=_req(_num(row, "at_s", where, None, 0, s.duration_s), f"{where}.at_s"),
            kind=kind,
            hours=int(_req(_num(row, "hours", where, 1, 1, 72), f"{where}.hours")),
            start_in_s=_req(_num(row, "start_in_s", where, 0.0, 0, 86400), f"{where}.start_in_s"),
            arrive_after_s=_num(row, "arrive_after_s", where, None, 0, 86400),
            stay_s=_num(row, "stay_s", where, None, 0, 86400),
            cancel_after_s=_num(row, "cancel_after_s", where, None, 0, 86400),
            card_uid=card.lower(), badge=badge, expect=expect,
        )
        if b.kind == "booking" and "start_in_s" in row:
            raise ScenarioError(f"{where}.start_in_s: a booking starts when it is made; use kind = \"reservation\"")
        if b.cancel_after_s is not None and b.arrive_after_s is not None:
            raise ScenarioError(f"{where}: give arrive_after_s or cancel_after_s, not both")
        if b.stay_s is not None and b.arrive_after_s is None:
            raise ScenarioError(f"{where}.stay_s: needs arrive_after_s (a car that never comes cannot stay)")
        s.bookings.append(b)
    if s.bookings and s.spots is not None:
        raise ScenarioError("bookings: need a lot with a lane graph to hold spots; generated lots "
                            "(lot.spots) have none: use the demo lot")


def library() -> list[str]:
    """Names of the scenarios shipped in ``hil/scenarios``."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


STANDARD = ("smoke", "night", "rush-hour", "faults-short", "reservations")  # what `make hil` runs (`run --all`)


class TruthTraffic:
    """The ground truth: which bay is occupied when, driven by the scenario's rates or trace.

    Times are wall seconds since the traffic phase started. Departures may be a
    Poisson process of their own (``departures_per_min``: a random parked car
    leaves) or per-car exponential stays (``mean_stay_s``). Every stay and every
    gap on a bay is at least ``min_dwell_s`` wall seconds, so the firmware (which
    needs ``hold_samples`` samples at ``sample_ms``) can see it: a truth the sensor
    cannot physically resolve would not be a fair test of detection.
    """

    def __init__(self, sc: Scenario, spots: list[str]) -> None:
        self.sc = sc
        self.spots = spots
        self.rng = random.Random(sc.seed)
        self.occupied: dict[str, float] = {}  # spot -> wall time parked
        self.due_leave: dict[str, float] = {}  # per-car stays
        self.freed: dict[str, float] = {}  # spot -> wall time left
        self.turned_away = 0
        self.deferred = 0  # Poisson departures postponed because every car was too fresh
        self.log: list[tuple[float, str, str]] = []  # (wall s, spot, "occupied"|"empty")
        self.held: set[str] = set()  # spots the fog holds for a booking: random cars do not park there
        self.scripted: set[str] = set()  # spots whose car is a booked one (it leaves when its script says)
        self.paused: dict[int, float] = {}  # booking -> no random arrival before this wall time (it picks a spot)
        acc = sc.acceleration
        # (wall s, spot, action, scripted) from the initial fill, the trace and the bookings
        self.pending: list[tuple[float, str, str, bool]] = []
        n0 = int(round(self.rng.uniform(0.0, sc.initial_occupancy_max) * len(spots)))
        for spot in self.rng.sample(spots, n0):
            self.pending.append((self.rng.uniform(0.0, sc.initial_spread_s), spot, "park", False))
        self.initial_cars = n0
        for ev in sc.trace:
            self.pending.append((ev.at_s / acc, ev.spot, ev.action, False))
        self.pending.sort()
        self.next_arrival = self._gap(sc.arrivals_per_min)
        self.next_departure = self._gap(sc.departures_per_min or 0.0)

    def _gap(self, per_min: float) -> float:
        if per_min <= 0:
            return float("inf")
        return self.rng.expovariate(per_min / 60.0) / self.sc.acceleration

    def script(self, at: float, spot: str, action: str) -> None:
        """A booked car's move (wall time): parks on its held spot, or leaves it."""
        bisect.insort(self.pending, (at, spot, action, True))

    def _free_spot(self, now: float, touched: set[str]) -> str | None:
        free = [s for s in self.spots if s not in self.occupied and s not in touched and s not in self.held
                and now - self.freed.get(s, -1e9) >= self.sc.min_dwell_s]
        return self.rng.choice(free) if free else None

    def _park(self, now: float, spot: str, out: list[tuple[str, str]], scripted: bool = False) -> None:
        self.occupied[spot] = now
        if scripted:
            self.scripted.add(spot)
        elif self.sc.mean_stay_s is not None:
            stay = self.rng.expovariate(1.0 / self.sc.mean_stay_s) / self.sc.acceleration
            self.due_leave[spot] = now + max(self.sc.min_dwell_s, stay)
        self.log.append((now, spot, "occupied"))
        out.append((spot, "park"))

    def _leave(self, now: float, spot: str, out: list[tuple[str, str]]) -> None:
        del self.occupied[spot]
        self.scripted.discard(spot)
        self.due_leave.pop(spot, None)
        self.freed[spot] = now
        self.log.append((now, spot, "empty"))
        out.append((spot, "leave"))

    def step(self, now: float) -> list[tuple[str, str]]:
        """Advance to wall time ``now``; returns [(spot, "park"|"leave")] to apply to the nodes."""
        out: list[tuple[str, str]] = []
        dwell = self.sc.min_dwell_s
        pause_end = max(self.paused.values(), default=-1.0)
        while self.pending and self.pending[0][0] <= now:
            _, spot, action, scripted = self.pending.pop(0)
            touched = {x for x, _ in out}
            if action == "park" and not scripted and now < pause_end:
                bisect.insort(self.pending, (pause_end, spot, action, scripted))  # a booking is picking a spot
            elif scripted and action == "park":
                if spot in self.occupied or spot in touched or now - self.freed.get(spot, -1e9) < dwell:
                    self.script(now + 0.5, spot, "park")  # the bay is not free yet (or too freshly): wait
                else:
                    self._park(now, spot, out, scripted=True)
            elif action == "park" and spot not in self.occupied and spot not in touched:
                if spot in self.held:  # held for a booking meanwhile: this car takes another bay
                    other = self._free_spot(now, touched)
                    if other is not None:
                        self._park(now, other, out)
                else:
                    self._park(now, spot, out)
            elif action == "leave" and spot in self.occupied and spot not in touched:
                self._leave(now, spot, out)
        for spot, t in list(self.due_leave.items()):
            if t <= now:
                self._leave(now, spot, out)
        while self.next_departure <= now:
            ripe = [s for s, t in self.occupied.items() if now - t >= dwell and s not in {x for x, _ in out}
                    and s not in self.scripted]
            if ripe:
                self._leave(now, self.rng.choice(sorted(ripe)), out)
            elif self.occupied:
                self.deferred += 1
            self.next_departure += self._gap(self.sc.departures_per_min or 0.0)
        while self.next_arrival <= now and now >= pause_end:
            chosen = self._free_spot(now, {x for x, _ in out})
            if chosen is not None:
                self._park(now, chosen, out)
            else:
                self.turned_away += 1
            self.next_arrival += self._gap(self.sc.arrivals_per_min)
        return out
