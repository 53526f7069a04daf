"""End to end: the real firmware in a MicroPython process on emulated hardware."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from proto import frame


def _verified(tx: Any, key: bytes, last: int = -1) -> tuple[frame.Frame, int]:
    f = tx.frame()
    fcnt = frame.reconstruct_fcnt(f.fcnt16, last)
    assert f.verify(key, fcnt), "MIC does not verify under the node's key"
    return f, fcnt


def _next_of_type(node: Any, msg_type: int, timeout: float = 6.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        tx = node.read_tx(timeout=max(0.01, deadline - time.monotonic()))
        if tx.frame().msg_type == msg_type:
            return tx


def test_park_and_leave_send_verified_occupancy_frames(
    emulated_node: Callable[..., Any], node_json: Callable[..., dict[str, Any]], key: bytes
) -> None:
    node = emulated_node(node_json())  # the emulated board's defaults: 500 ms samples
    assert node.start_time_s < 0.5
    boot = node.read_tx(timeout=6)
    hb, fcnt = _verified(boot, key)
    assert hb.msg_type == frame.HEARTBEAT and hb.node_id == 0x1234ABCD
    fields = hb.fields()
    assert fields["state"] == frame.EMPTY
    assert fields["battery_mv"] == pytest.approx(3900, abs=10)  # through the divider and the ADC
    assert fields["temp_c"] == pytest.approx(20.0, abs=0.2)  # the magnetometer's die sensor
    assert fields["reboots"] == 0
    assert (boot.freq_hz, boot.sf, boot.bw_hz, boot.cr, boot.power_dbm, boot.sync_word) == (
        868099976, 7, 125000, 5, 14, 0x12,
    )

    t_park = time.monotonic()
    vehicle = node.park()
    tx = _next_of_type(node, frame.OCCUPANCY)
    detected_s = tx.t_monotonic - t_park
    occ, fcnt = _verified(tx, key, fcnt)
    f = occ.fields()
    assert f["state"] == frame.OCCUPIED
    assert f["flags"] & frame.FLAG_RANGE_CONFIRMED
    assert f["distance_cm"] == pytest.approx(25, abs=2)
    assert f["mag_dev_ut"] == pytest.approx((vehicle[0] ** 2 + vehicle[1] ** 2 + vehicle[2] ** 2) ** 0.5, abs=3)
    assert 0.4 < detected_s < 2.5

    time.sleep(1.2)
    node.leave()
    tx = _next_of_type(node, frame.OCCUPANCY)
    empty, _ = _verified(tx, key, fcnt)
    f = empty.fields()
    assert f["state"] == frame.EMPTY
    assert f["prev_duration_s"] > 0
    assert f["distance_cm"] is None  # no echo: open sky


def test_heartbeats_keep_coming(
    emulated_node: Callable[..., Any], node_json: Callable[..., dict[str, Any]], key: bytes
) -> None:
    node = emulated_node(node_json(sample_ms=200, heartbeat_s=10, detect={"calib_samples": 2}))
    t0 = node.read_tx(timeout=5).t_monotonic
    node.set_world(battery_mv=3300, temp_c=-5.0)
    tx = _next_of_type(node, frame.HEARTBEAT, timeout=14)
    assert 9.0 < tx.t_monotonic - t0 < 12.5
    f, _ = _verified(tx, key, 0)
    hb = f.fields()
    assert hb["battery_mv"] == pytest.approx(3300, abs=10)
    assert hb["temp_c"] == pytest.approx(-5.0, abs=0.2)
    assert hb["state"] & 0x03 == frame.EMPTY  # receivers mask bits 0-1: bits 4-7 are flags
    assert hb["state"] & frame.FLAG_LOW_BATTERY  # 3300 mV is below low_battery_mv (3400)
    assert hb["uptime_s"] >= 9


async def test_transmissions_queue_for_asyncio(
    emulated_node: Callable[..., Any], node_json: Callable[..., dict[str, Any]], key: bytes
) -> None:
    node = emulated_node(node_json(sample_ms=200, detect={"calib_samples": 2}))
    q = node.transmissions(backlog=True)
    boot = await asyncio.wait_for(q.get(), timeout=5)
    assert boot.frame().msg_type == frame.HEARTBEAT
    node.park()
    occ = await asyncio.wait_for(q.get(), timeout=5)
    f, _ = _verified(occ, key, 0)
    assert f.fields()["state"] == frame.OCCUPIED
    assert occ.t_monotonic > boot.t_monotonic
    assert occ.time_on_air_s() == pytest.approx(0.0515, abs=0.001)


def test_reboot_command_downlink_restarts_the_node(
    emulated_node: Callable[..., Any], node_json: Callable[..., dict[str, Any]], key: bytes
) -> None:
    node = emulated_node(node_json(sample_ms=200, detect={"calib_samples": 2}, radio={"rx_window_ms": 800}))
    up, fcnt = _verified(node.read_tx(timeout=5), key)
    time.sleep(0.15)  # the uplink is on air for 66 ms; the node then listens
    body = frame.command_payload(frame.CMD_REBOOT, b"")
    down = frame.encode_frame(frame.COMMAND, 0x1234ABCD, 1, body, key)
    node.inject_downlink(down, rssi_dbm=-88.0, snr_db=6.25)
    assert node.wait_event("rx", timeout=3) == {"result": "received", "len": len(down)}
    assert node.wait_console(r"^rx command fcnt 1 rssi -88 dBm", timeout=3) is not None
    assert node.wait_event("reset", timeout=3) == {"cause": 5}
    assert node.wait_event("boot", after=1, timeout=5) is not None  # restarted by the bench
    hb, _ = _verified(_next_of_type(node, frame.HEARTBEAT), key, fcnt)
    assert hb.fields()["reboots"] == 1


def test_downlink_with_a_bad_mic_is_dropped(
    emulated_node: Callable[..., Any], node_json: Callable[..., dict[str, Any]], key: bytes
) -> None:
    node = emulated_node(node_json(sample_ms=200, detect={"calib_samples": 2}, radio={"rx_window_ms": 800}))
    node.read_tx(timeout=5)
    time.sleep(0.15)
    forged = frame.encode_frame(frame.COMMAND, 0x1234ABCD, 1, frame.command_payload(frame.CMD_REBOOT, b""), bytes(16))
    node.inject_downlink(forged)
    assert node.wait_console(r"rx: dropped \(MIC mismatch\)", timeout=3) is not None
    assert node.wait_event("reset", timeout=0.5) is None


def test_stop_leaves_no_process(emulated_node: Callable[..., Any], node_json: Callable[..., dict[str, Any]]) -> None:
    node = emulated_node(node_json())
    pid = node.pid
    t0 = time.monotonic()
    rc = node.stop()
    assert time.monotonic() - t0 < 1.5
    assert rc == 0  # it saw EOF on stdin and exited by itself
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_world_errors_are_reported_not_fatal(
    emulated_node: Callable[..., Any], node_json: Callable[..., dict[str, Any]]
) -> None:
    node = emulated_node(node_json())
    node.send_line('WORLD {"altitude_m": 3}')
    err = node.wait_event("error", timeout=3)
    assert err is not None and "unknown world key 'altitude_m'" in err["error"]
    assert node.sync(timeout=3)
    assert node.running


def test_every_board_profile_runs_on_its_emulated_pcb(
    emulated_node: Callable[..., Any], node_json: Callable[..., dict[str, Any]], key: bytes
) -> None:
    """Each board's pin map, wired to the emulated parts: power gating, buses and radio all line up."""
    boards = ["heltec_lora32_v2", "ttgo_lora32", "feather_esp32_v2_rfm95", "feather_rp2040_rfm95"]
    nodes = {
        b: emulated_node(node_json(board=b, sample_ms=200, boot_jitter_s=1, detect={"calib_samples": 2}), name=b) for b in boards
    }
    for b, node in nodes.items():
        assert node.board == b
        hb, _ = _verified(node.read_tx(timeout=6), key)
        assert hb.msg_type == frame.HEARTBEAT, b
        assert node.wait_console(r"magnetometer ok, ranger ok, radio ok$", timeout=1) is not None, node.console_lines()
    hb_rp2040 = nodes["feather_rp2040_rfm95"].tx_log[0].frame().fields()
    assert hb_rp2040["battery_mv"] == 0  # no battery monitor wired on that board
