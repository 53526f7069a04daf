"""The uplink's duty-cycle budget on the emulated radio (MicroPython)."""

from __future__ import annotations

from typing import Any

from proto import airtime


def test_airtime_budget_defers_frames_until_refilled(mpy: Any) -> None:
    r, lines = mpy.results("uplink_duty.py")
    assert r["errors"] == []
    assert r["budget_us"] == 360000  # 0.01 % of an hour
    toa = airtime.time_on_air_us(16)
    assert r["sent_before_waiting"] == 360000 // toa == 6
    assert r["tx_lines"] == 6  # nothing went on air beyond the budget
    assert "duty cycle: occupancy waits for airtime budget" in lines
    assert r["flush_while_broke"] is False
    assert r["flush_after_refill"] is True and r["tx_lines_after"] == 7
    assert r["fcnt_next"] == 7  # a frame that waited did not use up a counter
