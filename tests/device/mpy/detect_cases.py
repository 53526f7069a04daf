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
    assert det.state == detect.EMPTY and det.phase == 1  # arriving (detect._P_ARRIVING: compiled in, not a module attribute)
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
    small_car = (0, 0, 140)  # 14 uT
    assert feed(det, 2, small_car, NEAR) == 1
    still = (0, 0, 125)  # 12.5 uT: still the car's field, whatever the range says
    assert feed(det, 10, still, FAR) == 0
    assert det.state == detect.OCCUPIED
    mid = (0, 0, 90)  # 9 uT: weak, closer to the car's field than to the empty bay's, but not the car's
    assert feed(det, 2, mid, FAR) == 1  # the range has said clear for long: gone
    det = calibrated(arrive_ut=12, leave_ut=6)
    assert feed(det, 2, small_car, NEAR) == 1
    assert feed(det, 3, mid, FAR) == 0  # range clear, but not yet for long
    assert feed(det, 2, mid, FAR) == 1  # clear 2 x hold in a row and the field is not the car's: gone
    det2 = calibrated(arrive_ut=12, leave_ut=6)
    mid = (0, 0, 90)
    assert feed(det2, 10, mid, FAR) == 0  # 9 uT with a clear range never calls a car
    for _ in range(5):  # a pedestrian over the sensor for one sample at a time: 4 uT, range hit
        assert feed(det2, 1, (0, 0, 40), NEAR) == 0
        assert feed(det2, 1) == 0
    assert det2.state == detect.EMPTY
    # something the ranger keeps seeing (2 x hold samples) is a vehicle whatever its field
    assert feed(det2, 3, (0, 0, 40), NEAR) == 0
    assert feed(det2, 1, (0, 0, 40), NEAR) == 1


def case_high_chassis_vehicle_weak_field_and_range_hit():
    det = calibrated(arrive_ut=12, leave_ut=6)
    van = (30, 0, 70)  # 7.6 uT: the underbody is 65 cm up
    assert feed(det, 2, van, 650) == 1
    assert det.state == detect.OCCUPIED
    assert feed(det, 2) == 1


def case_departure_after_drift_while_parked():
    det = calibrated(arrive_ut=12, leave_ut=6)
    assert feed(det, 2, CAR, NEAR) == 1
    drifted = (0, 0, 80)  # the empty bay now reads 8 uT off the baseline (hours of temperature drift)
    assert feed(det, 2, drifted, FAR) == 1  # clear range, field fell below half the car's: gone
    assert det.state == detect.EMPTY


def case_tamper_range_short():
    det = calibrated(tamper_samples=5)
    assert feed(det, 4, (0, 0, 0), 30) == 0  # a bag on the sensor: 3 cm
    assert det.tamper == 0
    feed(det, 1, (0, 0, 0), 30)
    assert det.tamper == detect.T_RANGE_SHORT
    assert not det.ranger_trusted()
    assert feed(det, 2, CAR, 30) == 1  # magnetometer alone while the ranger is covered
    feed(det, 1, CAR, NEAR)  # the bag is gone: a real reading
    assert det.tamper == 0


def case_tamper_range_blind():
    det = calibrated(tamper_samples=4)
    assert feed(det, 10, CAR, FAR) == 0  # over an empty bay no echo is normal: never blind
    assert det.tamper == 0 and det.state == detect.EMPTY
    det = calibrated(tamper_samples=4)
    assert feed(det, 2, CAR, NEAR) == 1  # a car, confirmed by the ranger
    assert feed(det, 3, CAR, FAR) == 0  # then the ranger is taped over: the field says the car is there
    assert det.tamper == 0
    assert feed(det, 1, CAR, FAR) == 0
    assert det.tamper == detect.T_RANGE_BLIND
    assert det.state == detect.OCCUPIED
    assert feed(det, 2, (0, 0, 0), FAR) == 1  # magnetometer only: it leaves
    assert feed(det, 2, CAR, FAR) == 1  # and the next car is seen without the ranger
    feed(det, 1, CAR, NEAR)  # an echo again: the ranger is back
    assert det.tamper == 0


def case_tamper_magnet_saturates():
    det = calibrated(tamper_samples=3)
    x, y, z = field(CAR)
    for _ in range(2):
        assert not det.update(x, y, z, True, FAR, True)
    assert det.tamper == 0
    det.update(x, y, z, True, FAR, True)
    assert det.tamper == detect.T_MAG_SATURATED
    assert det.state == detect.EMPTY  # saturated readings are no evidence
    ex, ey, ez = field()
    det.update(ex, ey, ez, True, FAR, False)
    assert det.tamper == 0


def case_state_survives_save_and_load():
    det = calibrated(tamper_samples=3)
    assert feed(det, 2, CAR, NEAR) == 1
    buf = bytearray(detect.STATE_SIZE + 3)
    det.save_into(buf, 3)
    again = detect.Detector(tamper_samples=3)
    again.load_from(buf, 3)
    for name in ("phase", "state", "bx", "by", "bz", "cal_left", "ox", "oy", "oz", "tamper", "samples"):
        assert getattr(again, name) == getattr(det, name), name
    assert feed(again, 2) == 1 and again.state == detect.EMPTY


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
    case_high_chassis_vehicle_weak_field_and_range_hit,
    case_departure_after_drift_while_parked,
    case_tamper_range_short,
    case_tamper_range_blind,
    case_tamper_magnet_saturates,
    case_state_survives_save_and_load,
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
