"""Detection state machine cases, run under CPython (pytest imports this file) and MicroPython.

Each case_* function raises AssertionError on failure. Under MicroPython run
this file as a script: it prints ``PASS <case>`` / ``FAIL <case> <why>``
and, last, the bytes allocated by 1000 updates of the detector.
"""

import detect

EARTH = (180, -40, 440)  # 0.1 uT
CAR = (50, 30, 400)  # a car adds ~40 uT, mostly vertical
NEAR = 300  # mm: the underbody over the sensor
FAR = detect.RANGE_NONE  # open sky: no echo


def field(extra=(0, 0, 0), noise=0):
    return (EARTH[0] + extra[0] + noise, EARTH[1] + extra[1] - noise, EARTH[2] + extra[2] + noise)


def feed(det, n, extra=(0, 0, 0), rng=FAR, mag_ok=True):
    events = 0
    for _ in range(n):
        x, y, z = field(extra)
        if det.update(x, y, z, mag_ok, rng):
            events += 1
    return events


def calibrated(**kw):
    det = detect.Detector(**kw)
    assert det.state == detect.UNKNOWN
    assert feed(det, det.calib_samples) == 0  # the first known state is not an event
    assert det.state == detect.EMPTY, det.state
    assert not det.calibrating()
    return det


def case_calibration_gives_empty():
    det = detect.Detector(calib_samples=4)
    feed(det, 3)
    assert det.state == detect.UNKNOWN and det.calibrating()
    feed(det, 1)
    assert det.state == detect.EMPTY and not det.calibrating()


def case_arrival_needs_hold_samples():
    det = calibrated(hold_samples=3)
    x, y, z = field(CAR)
    assert not det.update(x, y, z, True, NEAR)
    assert not det.update(x, y, z, True, NEAR)
    assert det.state == detect.EMPTY and det.phase == detect.P_ARRIVING
    assert det.update(x, y, z, True, NEAR)
    assert det.state == detect.OCCUPIED
    assert feed(det, 10, CAR, NEAR) == 0  # no repeated events


def case_one_noisy_sample_does_not_flip():
    det = calibrated(hold_samples=2)
    x, y, z = field(CAR)
    assert not det.update(x, y, z, True, NEAR)  # one spike, even with a range hit
    assert feed(det, 5) == 0
    assert det.state == detect.EMPTY
    assert feed(det, 2, CAR, NEAR) == 1  # a real car
    x, y, z = field()
    assert not det.update(x, y, z, True, FAR)  # one clear sample while parked
    assert feed(det, 5, CAR, NEAR) == 0
    assert det.state == detect.OCCUPIED


def case_leave_returns_to_empty():
    det = calibrated()
    assert feed(det, 2, CAR, NEAR) == 1
    assert feed(det, 50, CAR, NEAR) == 0  # parked a while: the baseline must not absorb the car
    assert feed(det, 2) == 1
    assert det.state == detect.EMPTY
    assert det.deviation2(*field()) < det.leave2


def case_hysteresis_between_thresholds():
    det = calibrated(arrive_ut=12, leave_ut=6)
    assert feed(det, 2, CAR, NEAR) == 1
    mid = (0, 0, 90)  # 9 uT: below arrive, above leave
    assert feed(det, 10, mid, FAR) == 0  # range says clear but the field says something is there
    assert det.state == detect.OCCUPIED
    det2 = calibrated(arrive_ut=12, leave_ut=6)
    assert feed(det2, 10, mid, NEAR) == 0  # 9 uT never calls a car
    assert det2.state == detect.EMPTY


def case_range_confirms_arrival():
    det = calibrated()
    assert feed(det, 10, CAR, FAR) == 0  # a car in the next bay disturbs the field, nothing above
    assert det.state == detect.EMPTY
    assert feed(det, 2, CAR, NEAR) == 1


def case_without_ranger_magnetometer_alone():
    det = calibrated(has_ranger=False)
    assert feed(det, 2, CAR, detect.RANGE_SKIPPED) == 1
    assert feed(det, 2, (0, 0, 0), detect.RANGE_SKIPPED) == 1
    assert det.state == detect.EMPTY


def case_drift_is_rebaselined():
    det = calibrated(rebaseline_samples=10)
    shift = (0, 0, 200)  # 20 uT of drift (a steel plate laid nearby), range clear
    assert feed(det, 9, shift, FAR) == 0
    assert det.deviation2(*field(shift)) >= det.arrive2
    assert feed(det, 1, shift, FAR) == 0
    assert det.deviation2(*field(shift)) < det.leave2  # learnt
    # a car still registers on top of the new baseline
    car = (shift[0] + CAR[0], shift[1] + CAR[1], shift[2] + CAR[2])
    assert feed(det, 2, car, NEAR) == 1


def case_slow_drift_followed_by_ema():
    det = calibrated(ema_shift=3)
    for i in range(200):
        d = (0, 0, i // 4)  # 5 uT over 200 samples: temperature drift
        x, y, z = field(d)
        assert not det.update(x, y, z, True, FAR)
    assert det.state == detect.EMPTY
    assert det.deviation2(*field((0, 0, 50))) < det.leave2


def case_car_present_at_boot_with_ranger():
    det = detect.Detector(calib_samples=4, hold_samples=2)
    assert feed(det, 3, CAR, NEAR) == 0  # from UNKNOWN: no event
    assert det.state == detect.OCCUPIED
    assert det.calibrating()  # the car's field is not taken as the empty bay's
    assert feed(det, 2) == 1  # it leaves: an event
    assert det.state == detect.EMPTY
    feed(det, 4)
    assert not det.calibrating()
    assert feed(det, 2, CAR, NEAR) == 1


def case_magnetometer_failure_holds_state():
    det = calibrated(has_ranger=False)
    assert feed(det, 2, CAR, detect.RANGE_SKIPPED) == 1
    assert feed(det, 10, (0, 0, 0), detect.RANGE_SKIPPED, mag_ok=False) == 0
    assert det.state == detect.OCCUPIED


CASES = [
    case_calibration_gives_empty,
    case_arrival_needs_hold_samples,
    case_one_noisy_sample_does_not_flip,
    case_leave_returns_to_empty,
    case_hysteresis_between_thresholds,
    case_range_confirms_arrival,
    case_without_ranger_magnetometer_alone,
    case_drift_is_rebaselined,
    case_slow_drift_followed_by_ema,
    case_car_present_at_boot_with_ranger,
    case_magnetometer_failure_holds_state,
]


def allocation_per_1000_updates():
    import gc

    det = calibrated()
    x, y, z = field(CAR)
    ex, ey, ez = field()
    det.update(x, y, z, True, NEAR)
    gc.collect()
    before = gc.mem_alloc()  # type: ignore[attr-defined]
    for _ in range(500):
        det.update(x, y, z, True, NEAR)
        det.update(ex, ey, ez, True, FAR)
    return gc.mem_alloc() - before  # type: ignore[attr-defined]


if __name__ == "__main__":
    for case in CASES:
        try:
            case()
            print("PASS " + case.__name__)
        except AssertionError as e:
            print("FAIL " + case.__name__ + " " + repr(e))
    print("ALLOC " + str(allocation_per_1000_updates()))
