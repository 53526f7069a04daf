"""Bay occupancy detection: pure logic, no I/O, no allocation per sample.

Inputs each sample: the magnetic field in deci-microtesla (ints, 0.1 uT) and,
when the node has an ultrasonic ranger, the range in millimetres.

Magnetometer: a per-axis baseline (the bay's empty field) is learnt by
averaging the first ``calib_samples`` samples, then tracked by an
exponential moving average (alpha = 1/2^ema_shift) *only while the bay is
empty and the field is quiet*, so a parked car is never absorbed into the
baseline. The deviation is the magnitude of the vector difference between
the field and the baseline (compared squared, so no square root per sample);
a car adds tens of uT.

Ultrasonic: when present it confirms: a reading closer than
``occupied_below_cm`` says "something is over the sensor"; no echo or a
farther reading says "clear".

State machine (``phase``)::

    EMPTY --car--> ARRIVING --car x hold_samples--> OCCUPIED
    OCCUPIED --gone--> LEAVING --gone x hold_samples--> EMPTY

with "car" = deviation >= arrive_ut AND (no ranger, or range says occupied),
and "gone" = deviation < leave_ut AND (no ranger, or range says clear).
Separate arrive/leave thresholds give hysteresis; the hold count means one
noisy sample never flips the bay. A sample without evidence (neither sensor
usable) holds the current phase.

Drift recovery (ranger only): if the range keeps saying clear while the
field stays off-baseline for ``rebaseline_samples`` samples, the field has
drifted (or the bay was calibrated with a car on it): re-learn the baseline
and, if the bay was occupied, declare it empty.

Defaults (documented in node_config.py, overridable per node):
arrive_ut 12, leave_ut 6, occupied_below_cm 80, hold_samples 2,
ema_shift 5, calib_samples 4, rebaseline_samples 40.

The committed state uses the radio frame's values: EMPTY 0, OCCUPIED 1,
UNKNOWN 2 (before the first calibration, or with no usable sensor).
"""

try:
    from micropython import const
except ImportError:  # CPython: unit tests and ``fogpark-node check``

    def const(expr):  # type: ignore[no-redef,misc]
        return expr


# Committed spot states (the values of proto.frame.EMPTY/OCCUPIED/UNKNOWN).
EMPTY = const(0)
OCCUPIED = const(1)
UNKNOWN = const(2)

# Internal phases.
P_EMPTY = const(0)
P_ARRIVING = const(1)
P_OCCUPIED = const(2)
P_LEAVING = const(3)
PHASE_NAMES = ("empty", "arriving", "occupied", "leaving")

# Range argument values besides a distance in mm.
RANGE_NONE = const(-1)  # ranger fired: no echo, or an implausible reading
RANGE_SKIPPED = const(-2)  # no ranger, or not fired this sample


def isqrt(n: int) -> int:
    """Integer square root (floor), for reporting the deviation on events."""
    if n <= 0:
        return 0
    x = n
    y = (x + 1) >> 1
    while y < x:
        x = y
        y = (x + n // x) >> 1
    return x


class Detector:
    """Occupancy state machine; call ``update`` once per sample."""

    def __init__(
        self,
        arrive_ut: float = 12.0,
        leave_ut: float = 6.0,
        occupied_below_cm: float = 80.0,
        hold_samples: int = 2,
        ema_shift: int = 5,
        calib_samples: int = 4,
        rebaseline_samples: int = 40,
        has_ranger: bool = True,
    ) -> None:
        if leave_ut > arrive_ut:
            raise ValueError("leave_ut must not exceed arrive_ut")
        a = int(arrive_ut * 10)
        lv = int(leave_ut * 10)
        self.arrive2 = a * a  # thresholds squared, in (0.1 uT)^2
        self.leave2 = lv * lv
        self.occupied_below_mm = int(occupied_below_cm * 10)
        self.hold = hold_samples if hold_samples > 0 else 1
        self.ema_shift = ema_shift
        self.calib_samples = calib_samples if calib_samples > 0 else 1
        self.rebaseline = rebaseline_samples
        self.has_ranger = has_ranger
        self.phase = P_EMPTY
        self.state = UNKNOWN
        self.count = 0  # consecutive samples supporting a pending transition
        self.drift = 0  # consecutive samples of "range clear, field off-baseline"
        # Baseline in 1/16 of 0.1 uT (fixed point), valid once cal_left == 0.
        self.bx = 0
        self.by = 0
        self.bz = 0
        self.cal_left = self.calib_samples
        self.sx = 0
        self.sy = 0
        self.sz = 0
        self.dev2 = 0  # last squared deviation, (0.1 uT)^2; 0 while uncalibrated
        self.range_hit = False  # last ranged sample confirmed a vehicle
        self.samples = 0

    def calibrating(self) -> bool:
        return self.cal_left > 0

    def recalibrate(self) -> None:
        """Forget the baseline and learn it again from the next samples."""
        self.cal_left = self.calib_samples
        self.sx = 0
        self.sy = 0
        self.sz = 0
        self.dev2 = 0
        self.drift = 0

    def deviation2(self, x: int, y: int, z: int) -> int:
        """Squared deviation of (x, y, z) from the baseline; -1 while calibrating."""
        if self.cal_left > 0:
            return -1
        dx = x - (self.bx >> 4)
        dy = y - (self.by >> 4)
        dz = z - (self.bz >> 4)
        return dx * dx + dy * dy + dz * dz

    def wants_range(self, x: int, y: int, z: int, mag_ok: bool) -> bool:
        """Should the ranger fire this sample? (It costs power and ~200 ms.)

        Yes unless the bay is settled empty and the field is quiet; the app
        also fires it every so often to catch drift.
        """
        if not self.has_ranger:
            return False
        if self.phase != P_EMPTY or not mag_ok or self.cal_left > 0:
            return True
        return self.deviation2(x, y, z) >= self.leave2

    def _rebase(self, x: int, y: int, z: int) -> None:
        self.bx = x << 4
        self.by = y << 4
        self.bz = z << 4
        self.dev2 = 0
        self.drift = 0

    def _commit(self, state: int) -> bool:
        prev = self.state
        self.state = state
        return prev != state and prev != UNKNOWN

    def update(self, x: int, y: int, z: int, mag_ok: bool, range_mm: int) -> bool:
        """Feed one sample; True when the committed state changed.

        ``x, y, z`` field in 0.1 uT (ignored when ``mag_ok`` is False);
        ``range_mm`` a distance, RANGE_NONE (fired, no echo) or
        RANGE_SKIPPED. A change away from UNKNOWN is not reported (the
        boot heartbeat announces the first state).
        """
        self.samples += 1
        ranged = range_mm != RANGE_SKIPPED
        hit = ranged and 0 <= range_mm < self.occupied_below_mm
        if ranged:
            self.range_hit = hit
        phase = self.phase
        settled_empty = phase <= P_ARRIVING

        # Magnetometer evidence: 1 high, 0 low, -1 unknown.
        mag = -1
        if mag_ok:
            if self.cal_left > 0:
                if not hit:
                    self.sx += x
                    self.sy += y
                    self.sz += z
                    self.cal_left -= 1
                    if self.cal_left == 0:
                        n = self.calib_samples
                        self.bx = (self.sx << 4) // n
                        self.by = (self.sy << 4) // n
                        self.bz = (self.sz << 4) // n
                        if self.state == UNKNOWN and settled_empty:
                            self.state = EMPTY
            else:
                d2 = self.deviation2(x, y, z)
                self.dev2 = d2
                if settled_empty:
                    mag = 1 if d2 >= self.arrive2 else 0
                else:
                    mag = 1 if d2 >= self.leave2 else 0

        # Range evidence: 1 vehicle, 0 clear, -1 not measured.
        rng = -1
        if ranged:
            rng = 1 if hit else 0

        if mag < 0 and rng < 0:
            return False  # nothing to go on: hold

        if settled_empty:
            car = mag != 0 and rng != 0  # every known sensor agrees
            if car:
                self.drift = 0
                self.count += 1
                self.phase = P_ARRIVING
                if self.count >= self.hold:
                    self.phase = P_OCCUPIED
                    self.count = 0
                    return self._commit(OCCUPIED)
                return False
            self.phase = P_EMPTY
            self.count = 0
            if mag == 1 and rng == 0:
                # Clear range but the field is off-baseline: drift, not a car.
                self.drift += 1
                if self.rebaseline > 0 and self.drift >= self.rebaseline:
                    self._rebase(x, y, z)
            elif mag == 0:
                self.drift = 0
                if self.dev2 < self.leave2:
                    sh = self.ema_shift
                    self.bx += ((x << 4) - self.bx) >> sh
                    self.by += ((y << 4) - self.by) >> sh
                    self.bz += ((z << 4) - self.bz) >> sh
            return False

        # OCCUPIED or LEAVING
        gone = mag != 1 and rng != 1
        if gone:
            self.drift = 0
            self.count += 1
            self.phase = P_LEAVING
            if self.count >= self.hold:
                self.phase = P_EMPTY
                self.count = 0
                return self._commit(EMPTY)
            return False
        self.phase = P_OCCUPIED
        self.count = 0
        if mag == 1 and rng == 0:
            self.drift += 1
            if self.rebaseline > 0 and self.drift >= self.rebaseline:
                # The range has said "clear" for a long time: trust it.
                self._rebase(x, y, z)
                self.phase = P_EMPTY
                return self._commit(EMPTY)
        else:
            self.drift = 0
        return False
