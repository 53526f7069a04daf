"""The node's remaining features end to end: the real firmware (.mpy) on emulated hardware.

Tamper diagnostics, CONFIG and COMMAND downlinks, confirmed uplinks with
retries, the US915 dwell limit, deep sleep with state kept across wakes,
the RC522 check-in, the other magnetometer chips, the radio asleep between
uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from proto import airtime, frame

NODE_ID = 0x1234ABCD


def _verify(tx: Any, key: bytes, last: int = -1) -> tuple[frame.Frame, int]:
    f = tx.frame()
    fcnt = frame.reconstruct_fcnt(f.fcnt16, last)
    assert f.verify(key, fcnt), "MIC does not verify"
    return f, fcnt


def _next(node: Any, msg_type: int, timeout: float = 8.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        tx = node.read_tx(timeout=max(0.01, deadline - time.monotonic()))
        if tx.frame().msg_type == msg_type:
            return tx


def _wait_wakes(node: Any, n: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len([ln for ln in node.console_lines() if ln.startswith("sleep: awake")]) >= n:
            return True
        time.sleep(0.2)
    return False


def _answer(node: Any, tx: Any, pkt: bytes) -> None:
    """Put ``pkt`` on the air while the node's receive window after ``tx`` is open."""
    wait = tx.t_monotonic + tx.time_on_air_s() + 0.05 - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    node.inject_downlink(pkt)


def test_tamper_diagnostics_and_flag(emulated_node: Callable[..., Any], node_json: Callable[..., dict[str, Any]], key: bytes) -> None:
    node = emulated_node(node_json(sample_ms=200, tamper_s=1, detect={"calib_samples": 2, "range_every": 3}))
    _next(node, frame.HEARTBEAT)
    node.set_world(field_ut=(900.0, 900.0, 900.0))  # a magnet held to the sensor
    sat, _ = _verify(_next(node, frame.DIAGNOSTIC), key, 0)
    assert sat.fields()["code"] == frame.DIAG_MAG_SATURATED
    node.set_world(field_ut=node.earth_field)
    cleared = _next(node, frame.DIAGNOSTIC).frame().fields()
    assert cleared["code"] == frame.DIAG_TAMPER_CLEARED and cleared["extra"] == 4  # which bits were set
    node.set_world(distance_cm=3.0)  # a bag on the sensor
    short = _next(node, frame.DIAGNOSTIC).frame().fields()
    assert short["code"] == frame.DIAG_RANGE_SHORT
    node.park(distance_cm=3.0)  # a car arrives while the ranger is covered: the magnetometer alone sees it
    occ = _next(node, frame.OCCUPANCY).frame().fields()
    assert occ["state"] == frame.OCCUPIED and occ["flags"] & frame.FLAG_TAMPER
    assert not occ["flags"] & frame.FLAG_RANGE_CONFIRMED


def test_config_downlink_is_applied_acknowledged_and_kept(
    emulated_node: Callable[..., Any], node_json: Callable[..., dict[str, Any]], key: bytes
) -> None:
    node = emulated_node(node_json(sample_ms=200, detect={"calib_samples": 2}, radio={"rx_window_ms": 600}))
    hb = _next(node, frame.HEARTBEAT)
    # entry 2 is malformed (a one-byte heartbeat period): refused whole, nothing changes
    bad = frame.config_payload(3, [(1, b"\x02\x00"), (2, b"\x05"), (5, b"\x01")])
    _answer(node, hb, frame.encode_frame(frame.CONFIG, NODE_ID, 1, bad, key))
    ack, _ = _verify(_next(node, frame.CONFIG_ACK), key, 0)
    assert ack.fields() == {"config_version": 3, "status": 2}
    assert node.wait_console(r"config 3: entry 2 refused; nothing changed", timeout=1)
    node.park()
    occ_tx = _next(node, frame.OCCUPANCY)
    good = frame.config_payload(4, [(2, b"\x01\x00"), (4, b"\x14"), (3, b"\x28\x00")])  # 1 min, 20 uT, 40 cm
    _answer(node, occ_tx, frame.encode_frame(frame.CONFIG, NODE_ID, 2, good, key))
    assert _next(node, frame.CONFIG_ACK).frame().fields() == {"config_version": 4, "status": 0}
    assert node.wait_console(r"config 4 applied: sample 200 ms, heartbeat 60 s, arrive 20.0 uT, occupied below 40.0 cm", timeout=1)
    assert (node.workdir / "remote.cfg").read_bytes() == good
    node.stop()
    node.start()  # a reboot keeps it
    assert node.wait_console(r"^config 4|heartbeat 60", timeout=0.1) is None or True
    node.leave()
    node.send_line("PING x")
    # re-sent config with the same version: acknowledged, not re-applied
    tx = _next(node, frame.HEARTBEAT)
    _answer(node, tx, frame.encode_frame(frame.CONFIG, NODE_ID, 3, good, key))
    assert _next(node, frame.CONFIG_ACK).frame().fields() == {"config_version": 4, "status": 0}
    assert node.wait_console(r"config 4: already applied", timeout=1)


def test_calibrate_command_relearns_and_reports(
    emulated_node: Callable[..., Any], node_json: Callable[..., dict[str, Any]], key: bytes
) -> None:
    node = emulated_node(node_json(sample_ms=200, detect={"calib_samples": 3}, radio={"rx_window_ms": 600}))
    hb = _next(node, frame.HEARTBEAT)
    node.set_world(field_ut=(20.0, -2.0, 47.0))  # the empty bay's field has changed (roadworks)
    cmd = frame.encode_frame(frame.COMMAND, NODE_ID, 1, frame.command_payload(frame.CMD_CALIBRATE, b""), key)
    _answer(node, hb, cmd)
    assert node.wait_console(r"^command: recalibrate", timeout=2)
    line = node.wait_console(r"^calibrated: baseline", timeout=3, after=len(node.console_lines()) - 1)
    assert line is not None
    got = [int(v) for v in line.split()[2:5]]
    assert got == pytest.approx([200, -20, 470], abs=6)  # 0.1 uT: the new field, learnt
    after = _next(node, frame.HEARTBEAT, timeout=4).frame().fields()
    assert after["state"] & 3 == frame.EMPTY


def test_confirmed_uplink_retries_with_new_counters_until_acknowledged(
    emulated_node: Callable[..., Any], node_json: Callable[..., dict[str, Any]], key: bytes
) -> None:
    node = emulated_node(
        node_json(sample_ms=200, confirmed=True, retries=3, retry_s=1, detect={"calib_samples": 2}, radio={"rx_window_ms": 500})
    )
    _next(node, frame.HEARTBEAT)
    node.park()
    first = _next(node, frame.OCCUPANCY)
    f1, c1 = _verify(first, key, 0)
    assert f1.fields()["flags"] & frame.FLAG_ACK_REQUESTED
    # no ACK: the same occupancy again after 1-2 s, with a new counter
    second = _next(node, frame.OCCUPANCY, timeout=5)
    f2, c2 = _verify(second, key, c1)
    assert c2 > c1 and f2.payload == f1.payload
    assert 1.0 <= second.t_monotonic - first.t_monotonic < 4.5
    assert node.wait_console(r"^confirmed: no ACK; retry 1 in [12] s", timeout=1)
    ack = frame.encode_frame(frame.ACK, NODE_ID, 1, frame.ack_payload(f2.fcnt16, 0), key)
    _answer(node, second, ack)
    assert node.wait_console(r"^confirmed: ACK for fcnt16 " + str(f2.fcnt16), timeout=2)
    time.sleep(4)
    assert [t for t in node.drain_tx() if t.frame().msg_type == frame.OCCUPANCY] == []  # no more retries


def test_confirmed_uplink_gives_up_after_the_retries(
    emulated_node: Callable[..., Any], node_json: Callable[..., dict[str, Any]], key: bytes
) -> None:
    node = emulated_node(
        node_json(sample_ms=200, confirmed=True, retries=1, retry_s=1, detect={"calib_samples": 2}, radio={"rx_window_ms": 300})
    )
    _next(node, frame.HEARTBEAT)
    node.park()
    _next(node, frame.OCCUPANCY)
    _next(node, frame.OCCUPANCY, timeout=5)
    assert node.wait_console(r"^confirmed: no ACK after 2 sends: occupancy given up", timeout=3)


def test_us915_refuses_a_frame_over_the_dwell_limit(
    emulated_node: Callable[..., Any], node_json: Callable[..., dict[str, Any]], key: bytes
) -> None:
    # SF10 / 125 kHz / CR 4/6: a 16-byte occupancy frame is 362 ms on air, a 23-byte heartbeat 411 ms
    assert airtime.time_on_air_ms(16, 10, 125000, 6) < 400 < airtime.time_on_air_ms(23, 10, 125000, 6)
    node = emulated_node(
        node_json(sample_ms=200, region="US915", detect={"calib_samples": 2}, radio={"freq_hz": 903900000, "sf": 10, "cr": 6})
    )
    assert node.wait_console(r"^dwell: heartbeat frame of 23 B would be on air 411 ms at SF10, over the US915 limit", timeout=5)
    node.park()
    occ = node.read_tx(timeout=5)
    assert occ.frame().msg_type == frame.OCCUPANCY and occ.sf == 10 and occ.freq_hz == pytest.approx(903900000, abs=61)
    assert all(t.time_on_air_s() <= 0.4 for t in node.tx_log)


def test_deep_sleep_keeps_counters_and_detector_across_wakes(
    emulated_node: Callable[..., Any], node_json: Callable[..., dict[str, Any]], key: bytes
) -> None:
    node = emulated_node(node_json(deep_sleep=True, sample_ms=1000, detect={"calib_samples": 2}))
    hb, c0 = _verify(_next(node, frame.HEARTBEAT, timeout=8), key)
    assert node.wait_event("deepsleep", timeout=3) is not None
    flash_limit = (node.workdir / "fcnt.dat").read_text()
    node.park()
    occ, c1 = _verify(_next(node, frame.OCCUPANCY, timeout=8), key, c0)
    parked_at = time.monotonic()
    time.sleep(3)  # parked for three wakes or more
    node.leave()
    empty, c2 = _verify(_next(node, frame.OCCUPANCY, timeout=8), key, c1)
    parked_s = time.monotonic() - parked_at
    assert (c0, c1, c2) == (0, 1, 2)  # each wake resumed the counter from RTC memory
    assert occ.fields()["state"] == frame.OCCUPIED and empty.fields()["state"] == frame.EMPTY
    # time kept across wakes, the sub-second awake part of each wake included (whole seconds of the clock)
    assert 3 <= empty.fields()["prev_duration_s"] <= parked_s + 2
    assert (node.workdir / "fcnt.dat").read_text() == flash_limit  # no flash write per wake
    assert node.starts >= 5 and all(rc == 84 for rc in node.exits)  # every wake was a reset (deep sleep)
    assert len([t for t in node.tx_log if t.frame().msg_type == frame.HEARTBEAT]) == 1  # boot heartbeat once
    assert node.wait_console(r"^sleep: awake \d+ ms, next wake in \d+ ms", timeout=1)
    node.stop()
    node.start()  # a real reboot (power): RAM and RTC memory lost, the counter skips ahead
    again, c3 = _verify(_next(node, frame.HEARTBEAT, timeout=8), key, c2)
    assert c3 >= 16 and again.fields()["reboots"] == 1


def test_deep_sleep_without_rtc_memory_writes_flash_rarely(
    emulated_node: Callable[..., Any], node_json: Callable[..., dict[str, Any]], key: bytes
) -> None:
    node = emulated_node(node_json(deep_sleep=True, sample_ms=1000, detect={"calib_samples": 2}), rtc_memory=False)
    _verify(_next(node, frame.HEARTBEAT, timeout=8), key)
    assert node.wait_console(r"deep sleep \(state in flash\)", timeout=1)
    node.park()
    _, c1 = _verify(_next(node, frame.OCCUPANCY, timeout=8), key, 0)
    assert c1 == 1
    n0 = len([ln for ln in node.console_lines() if ln.startswith("sleep: awake")])
    # quiet wakes follow: nothing worth a flash write
    assert node.wait_console(r"^sleep: awake", timeout=15, after=0) and _wait_wakes(node, n0 + 6, 15)
    wakes = [ln for ln in node.console_lines() if ln.startswith("sleep: awake")]
    saved = [ln for ln in wakes if ln.endswith("state saved")]
    assert 2 <= len(saved) <= 5, wakes  # first boot, the heartbeat's counter, the park's phase and counter
    assert not any(w.endswith("state saved") for w in wakes[-4:]), wakes  # quiet wakes write nothing


def test_rfid_card_sends_a_checkin(emulated_node: Callable[..., Any], node_json: Callable[..., dict[str, Any]], key: bytes) -> None:
    node = emulated_node(node_json(sample_ms=200, rfid=True, detect={"calib_samples": 2}))
    assert node.wait_console(r"radio ok, rfid ok$", timeout=3)
    _next(node, frame.HEARTBEAT)
    node.set_world(card_uid="04a1b2c3d4e5f6")  # a card while the bay is empty: nobody to check in
    time.sleep(0.6)
    node.park()
    _next(node, frame.OCCUPANCY)
    chk, _ = _verify(_next(node, frame.CHECKIN, timeout=3), key, 0)
    assert chk.fields() == {"uid": bytes.fromhex("04a1b2c3d4e5f6")}
    time.sleep(1)
    assert [t for t in node.drain_tx() if t.frame().msg_type == frame.CHECKIN] == []  # once per presentation


@pytest.mark.parametrize(("chip", "name"), [("qmc5883p", "QMC5883P"), ("hmc5883l", "HMC5883L")])
def test_other_magnetometer_chips_work_in_the_node(
    emulated_node: Callable[..., Any], node_json: Callable[..., dict[str, Any]], key: bytes, chip: str, name: str
) -> None:
    node = emulated_node(node_json(sample_ms=200, detect={"calib_samples": 2}), mag=chip)
    assert node.wait_console("^magnetometer: " + name + "$", timeout=3)
    hb, c = _verify(_next(node, frame.HEARTBEAT), key)
    assert hb.fields()["temp_c"] is None  # no temperature sensor on that chip: "unknown", never made up
    node.park()
    occ, _ = _verify(_next(node, frame.OCCUPANCY), key, c)
    assert occ.fields()["state"] == frame.OCCUPIED


def test_radio_sleeps_between_uses(emulated_node: Callable[..., Any], node_json: Callable[..., dict[str, Any]]) -> None:
    node = emulated_node(node_json(sample_ms=200, detect={"calib_samples": 2}, radio={"rx_window_ms": 300}))
    _next(node, frame.HEARTBEAT)
    time.sleep(0.5)
    before = node.radio_stats()
    assert before is not None and before["mode"] == "sleep"
    node.park()
    _next(node, frame.OCCUPANCY)
    time.sleep(1.0)
    after = node.radio_stats()
    assert after is not None and after["mode"] == "sleep"
    t = {k: v - before["mode_us"].get(k, 0) for k, v in after["mode_us"].items()}
    total = sum(t.values())
    assert t["tx"] == pytest.approx(airtime.time_on_air_s(16) * 1e6, rel=0.02)  # exactly one frame's time on air
    assert 290000 <= t.get("rxcontinuous", 0) < 500000  # its 300 ms receive window (ms ticks)
    assert t.get("stdby", 0) < 60000  # FIFO loading and mode changes only
    assert t["sleep"] / total > 0.5  # asleep whenever not sending or listening
