"""Bay occupancy detection and tamper watch: pure logic, no I/O, no allocation per sample.

Inputs each sample: the magnetic field in deci-microtesla (ints, 0.1 uT),
whether the magnetometer answered and whether it saturated, and, when the
node has an ultrasonic ranger, the range in millimetres.

Magnetometer: a per-axis baseline (the bay's empty field) is learnt by
averaging the first ``calib_samples`` samples (at install, and again after
a CALIBRATE command), then tracked by an exponential moving average (alpha
= 1/2^ema_shift) *only while the bay is empty and the field is quiet*, so a
parked car is never absorbed into the baseline. The deviation is the
magnitude of the vector difference between the field and the baseline
(compared squared: no square root per sample). Evidence: "strong" at or
above ``arrive_ut``, "weak" at or above ``leave_ut``, else "quiet".

Ultrasonic (when present and trusted): a reading in
``short_below_cm`` .. ``occupied_below_cm`` is a vehicle's underbody
("hit"); no echo or a farther reading is "clear"; a reading closer than
``short_below_cm`` is something lying on the sensor and says nothing about
a vehicle.

State machine (``phase``)::

    EMPTY --car--> ARRIVING --car x hold_samples--> OCCUPIED
    OCCUPIED --gone--> LEAVING --gone x hold_samples--> EMPTY

* car: range hit and the field at least weak (a high-chassis vehicle is
  far from the sensor: its field change is small, its underbody still
  reflects), or the range hitting ``2 * hold_samples`` times in a row
  whatever the field, or range hit with the magnetometer unusable; without
  a usable range, a strong field.
* gone: range clear and the field closer to the empty bay's than to the
  parked vehicle's (which is followed while the range confirms it: the
  baseline may have drifted while it was parked), or the range clear
  ``2 * hold_samples`` times in a row while the field is not still the
  vehicle's (within half its deviation); without a usable range, the same
  field test alone.

The ranger costs power, so over a settled empty bay it fires only when the
field is off-baseline or just moved by half ``leave_ut`` (a vehicle with a small
field arriving), and every ``range_every`` samples anyway (``node_app``).

Separate thresholds give hysteresis; the hold count means one noisy sample
never flips the bay. A sample without evidence holds the current phase.

Drift recovery (ranger only): if the range keeps saying clear while the
field stays off-baseline for ``rebaseline_samples`` samples, the field has
drifted (or a neighbour's vehicle shifted it): re-learn the baseline. While
occupied this applies to a weak field only (a strong one is the blind
watch's business while it is on), and the bay is declared empty.

Tamper watch (``tamper_samples`` > 0; ``tamper`` holds the active bits):

* T_RANGE_BLIND: ``tamper_samples`` ranged samples in a row without an echo
  while the bay is occupied and the field still says the vehicle is there
  (strong, and not below half the deviation it caused): the ranger stopped
  seeing a vehicle it had confirmed (covered, failed). The ranger is then
  ignored (magnetometer only) until a valid echo comes back. Over an empty
  bay no echo is normal, so an empty bay never raises it.
* T_RANGE_SHORT: ``tamper_samples`` readings in a row closer than
  ``short_below_cm`` (something on the sensor). Ranger ignored until a
  farther reading or no echo.
* T_MAG_SATURATED: ``tamper_samples`` saturated samples in a row (a magnet
  held to the sensor). A saturated sample is never used as field evidence.

The committed state uses the radio frame's values: EMPTY 0, OCCUPIED 1,
UNKNOWN 2 (before the first calibration, or with no usable sensor).
``save_into``/``load_from`` pack the whole detector in ``STATE_SIZE``
bytes (RTC memory, or flash, across deep sleep).
"""

import struct

try:
    from micropython import const
except ImportError:  # CPython: unit tests, traces and ``fogpark-node check``

    def const(expr):  # type: ignore[no-redef,misc]
        return expr


# Committed spot states (the values of proto.frame.EMPTY/OCCUPIED/UNKNOWN).
EMPTY = const(0)
OCCUPIED = const(1)
UNKNOWN = const(2)

# Internal phases.
_P_EMPTY = const(0)
_P_ARRIVING = const(1)
_P_OCCUPIED = const(2)
_P_LEAVING = const(3)

# Range argument values besides a distance in mm.
RANGE_NONE = const(-1)  # ranger fired: no echo, or an implausible reading
RANGE_SKIPPED = const(-2)  # no ranger, or not fired this sample

# Tamper bits.
T_RANGE_BLIND = const(1)
T_RANGE_SHORT = const(2)
T_MAG_SATURATED = const(4)

_STATE_FORMAT = const("<BBBBiiiiiiiiiiiiiBHHHHHHIB")  # see save_into
STATE_SIZE = struct.calcsize(_STATE_FORMAT)


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
    """Occupancy state machine and tamper watch; call ``update`` once per sample."""

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
        short_below_cm: float = 8.0,
        tamper_samples: int = 0,
    ) -> None:
        self.has_ranger = has_ranger
        self.set_thresholds(arrive_ut, leave_ut, occupied_below_cm)
        self.short_mm = int(short_below_cm * 10)
        self.hold = hold_samples if hold_samples > 0 else 1
        self.ema_shift = ema_shift
        self.calib_samples = calib_samples if calib_samples > 0 else 1
        self.rebaseline = rebaseline_samples
        self.tamper_samples = tamper_samples
        self.phase = _P_EMPTY
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
        self.ox = 0  # the parked vehicle's field (0.1 uT), followed while the range confirms it
        self.oy = 0
        self.oz = 0
        self.lx = 0  # the previous sample's field (a change wakes the ranger)
        self.ly = 0
        self.lz = 0
        self.hit_n = 0  # range hits in a row over an empty bay
        self.watch = 0  # samples the ranger keeps firing after the field moved
        self.clear_n = 0  # range clear in a row over an occupied bay
        self.range_hit = False  # last ranged sample confirmed a vehicle
        self.tamper = 0  # T_* bits
        self.blind_n = 0
        self.short_n = 0
        self.sat_n = 0
        self.samples = 0

    def set_thresholds(self, arrive_ut: float, leave_ut: float, occupied_below_cm: float) -> None:
        """(Re)set the thresholds (a CONFIG downlink may change them)."""
        if leave_ut > arrive_ut:
            raise ValueError("leave_ut must not exceed arrive_ut")
        a = int(arrive_ut * 10)
        lv = int(leave_ut * 10)
        self.arrive2 = a * a  # thresholds squared, in (0.1 uT)^2
        self.leave2 = lv * lv
        self.occupied_below_mm = int(occupied_below_cm * 10)

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

    def ranger_trusted(self) -> bool:
        return self.has_ranger and not self.tamper & (T_RANGE_BLIND | T_RANGE_SHORT)

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

        Yes unless the bay is settled empty and the field is quiet and did
        not just move (by half ``leave_ut`` since the last sample, or within
        the ``2 * hold_samples`` samples after that), or the ranger
        is not trusted (tampered: the app still fires it every
        ``range_every`` samples to see it recover).
        """
        if not self.ranger_trusted():
            return False
        if self.phase != _P_EMPTY or not mag_ok or self.cal_left > 0 or self.hit_n > 0 or self.watch > 0:
            return True
        if self.short_n > 0:
            return True  # something lay on the sensor at the last reading: watch it
        dx = x - self.lx
        dy = y - self.ly
        dz = z - self.lz
        if 4 * (dx * dx + dy * dy + dz * dz) >= self.leave2:
            return True  # the field just moved by leave_ut/2: a vehicle whose field is small may have arrived
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

    def _watch_range(self, ranged: bool, range_mm: int, vehicle_field: bool) -> None:
        """Tamper bookkeeping for the ranger (before its reading is used)."""
        if not ranged or not self.has_ranger:
            return
        n = self.tamper_samples
        valid = range_mm >= 0
        if valid and range_mm < self.short_mm:
            self.short_n += 1
            if n > 0 and self.short_n >= n:
                self.tamper |= T_RANGE_SHORT
        else:
            self.short_n = 0
            self.tamper &= ~T_RANGE_SHORT
        if valid:
            if range_mm >= self.short_mm:
                self.blind_n = 0
                self.tamper &= ~T_RANGE_BLIND
        elif vehicle_field:
            self.blind_n += 1
            if n > 0 and self.blind_n >= n:
                self.tamper |= T_RANGE_BLIND
        else:
            self.blind_n = 0

    def update(self, x: int, y: int, z: int, mag_ok: bool, range_mm: int, saturated: bool = False) -> bool:
        """Feed one sample; True when the committed state changed.

        ``x, y, z`` field in 0.1 uT (ignored when ``mag_ok`` is False or
        ``saturated``); ``range_mm`` a distance, RANGE_NONE (fired, no echo)
        or RANGE_SKIPPED. A change away from UNKNOWN is not reported (the
        boot heartbeat announces the first state). Tamper bits change in
        ``tamper`` (the caller compares).
        """
        self.samples += 1
        if saturated:
            self.sat_n += 1
            if self.tamper_samples > 0 and self.sat_n >= self.tamper_samples:
                self.tamper |= T_MAG_SATURATED
            mag_ok = False
        elif mag_ok:
            self.sat_n = 0
            self.tamper &= ~T_MAG_SATURATED
        ranged = range_mm != RANGE_SKIPPED
        phase = self.phase
        settled_empty = phase <= _P_ARRIVING

        # Magnetometer evidence: 2 strong, 1 weak, 0 quiet, -1 unknown; d2 to the
        # baseline, d2o to the parked vehicle's field (occupied phases).
        mag = -1
        d2 = 0
        d2o = 0
        moved2 = 0  # squared change since the previous sample
        if mag_ok:
            mx = x - self.lx
            my = y - self.ly
            mz = z - self.lz
            moved2 = mx * mx + my * my + mz * mz
            if 4 * moved2 >= self.leave2:
                self.watch = 2 * self.hold + 1  # keep looking while a vehicle may be settling
            elif self.watch > 0:
                self.watch -= 1
            if self.cal_left > 0:
                if not (ranged and self.short_mm <= range_mm < self.occupied_below_mm):
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
                mag = 2 if d2 >= self.arrive2 else 1 if d2 >= self.leave2 else 0
                if not settled_empty:
                    dx = x - self.ox
                    dy = y - self.oy
                    dz = z - self.oz
                    d2o = dx * dx + dy * dy + dz * dz
            self.lx = x
            self.ly = y
            self.lz = z
        # near: the field is still the parked vehicle's (within half its deviation);
        # dropped: it is closer to the empty bay's than to the vehicle's (or unknown: the
        # range decides alone).
        near = mag >= 1 and not settled_empty and 4 * d2o <= d2
        dropped = mag < 0 or d2 < d2o
        self._watch_range(ranged, range_mm, near and mag == 2)
        # Range evidence: 1 vehicle, 0 clear, -1 not measured / not trusted / something on it.
        rng = -1
        if ranged and self.ranger_trusted() and not 0 <= range_mm < self.short_mm:
            hit = 0 <= range_mm < self.occupied_below_mm
            self.range_hit = hit
            rng = 1 if hit else 0

        if mag < 0 and rng < 0:
            return False  # nothing to go on: hold

        if settled_empty:
            if rng == 1:
                self.hit_n += 1
            elif rng == 0:
                self.hit_n = 0
            if rng >= 0:
                # the ranger sees an underbody: with any field change, or on its own when it
                # keeps seeing it (a vehicle whose field hardly reaches the sensor)
                car = rng == 1 and (mag != 0 or self.hit_n >= 2 * self.hold)
            else:
                car = mag == 2
            if car:
                self.drift = 0
                if self.count > 0 and 4 * moved2 > d2 and mag > 0:
                    # the field jumped since the last sample (by over half the deviation): still
                    # moving, or another vehicle passing; a parked one holds still. Count afresh.
                    self.count = 0
                self.count += 1
                if mag == 0:
                    self.count = self.hold
                self.phase = _P_ARRIVING
                if self.count >= self.hold:
                    self.phase = _P_OCCUPIED
                    self.count = 0
                    self.hit_n = 0
                    self.clear_n = 0
                    self.ox = x if mag_ok else self.bx >> 4
                    self.oy = y if mag_ok else self.by >> 4
                    self.oz = z if mag_ok else self.bz >> 4
                    return self._commit(OCCUPIED)
                return False
            self.phase = _P_EMPTY
            self.count = 0
            if mag >= 1 and rng == 0:
                # Clear range but the field is off-baseline: drift (or a neighbour), not a car.
                self.drift += 1
                if self.rebaseline > 0 and self.drift >= self.rebaseline:
                    self._rebase(x, y, z)
            elif mag == 0:
                self.drift = 0
                sh = self.ema_shift
                self.bx += ((x << 4) - self.bx) >> sh
                self.by += ((y << 4) - self.by) >> sh
                self.bz += ((z << 4) - self.bz) >> sh
            return False

        # OCCUPIED or LEAVING
        if rng == 1:
            self.clear_n = 0
            if mag_ok:  # follow the vehicle's field (it drifts with the sensor too)
                self.ox += (x - self.ox) >> 2
                self.oy += (y - self.oy) >> 2
                self.oz += (z - self.oz) >> 2
        elif rng == 0:
            self.clear_n += 1
        if rng >= 0:
            # the range says clear, and the field left the vehicle's (or the range has said
            # clear for long and the field does not insist on the vehicle)
            gone = rng == 0 and (dropped or (self.clear_n >= 2 * self.hold and not near))
        else:
            gone = dropped
        if gone:
            self.count += 1
            self.phase = _P_LEAVING
            if self.count >= self.hold:
                self.phase = _P_EMPTY
                self.count = 0
                self.clear_n = 0
                self.hit_n = 0
                self.drift = 0
                return self._commit(EMPTY)
            return False
        self.phase = _P_OCCUPIED
        self.count = 0
        return False

    # --- persistence (RTC memory / flash across deep sleep) ---------------------------

    def save_into(self, buf: bytearray, off: int) -> None:
        """Pack the detector into ``buf[off:off+STATE_SIZE]``."""
        struct.pack_into(
            _STATE_FORMAT,
            buf,
            off,
            self.phase,
            self.state,
            self.count if self.count < 256 else 255,
            self.cal_left,
            self.bx,
            self.by,
            self.bz,
            self.sx,
            self.sy,
            self.sz,
            self.dev2,
            self.ox,
            self.oy,
            self.oz,
            self.lx,
            self.ly,
            self.lz,
            (1 if self.range_hit else 0) | (self.tamper << 1),
            _u16(self.drift),
            _u16(self.blind_n),
            _u16(self.short_n),
            _u16(self.sat_n),
            _u16(self.hit_n),
            _u16(self.clear_n),
            self.samples & 0xFFFFFFFF,
            self.watch if self.watch < 256 else 255,
        )

    def load_from(self, buf: "bytes | bytearray", off: int) -> None:
        (
            self.phase,
            self.state,
            self.count,
            self.cal_left,
            self.bx,
            self.by,
            self.bz,
            self.sx,
            self.sy,
            self.sz,
            self.dev2,
            self.ox,
            self.oy,
            self.oz,
            self.lx,
            self.ly,
            self.lz,
            bits,
            self.drift,
            self.blind_n,
            self.short_n,
            self.sat_n,
            self.hit_n,
            self.clear_n,
            self.samples,
            self.watch,
        ) = struct.unpack_from(_STATE_FORMAT, buf, off)
        self.range_hit = bool(bits & 1)
        self.tamper = bits >> 1


def _u16(n: int) -> int:
    return n if n < 65535 else 65535
