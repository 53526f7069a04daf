"""The emulated LoRa channel: airtime, capture-effect collisions, loss, range."""

from __future__ import annotations

import pytest

from hil.radio_channel import Gateway, RadioChannel
from proto.airtime import time_on_air_ms


def _channel(positions: dict[str, tuple[float, float]], **kw: float) -> tuple[RadioChannel, list[tuple]]:
    heard: list[tuple] = []
    gw = Gateway("gw", 0.0, 0.0, lambda f, rssi, snr: heard.append((f, rssi, snr)))
    return RadioChannel([gw], positions, shadowing_db=0.0, **kw), heard


def test_transmission_lasts_its_semtech_airtime() -> None:
    ch, heard = _channel({"a": (10.0, 0.0)})
    tx = ch.transmit("a", bytes(16), 868_100_000, 7, 125_000, 5, 14, now_s=100.0)
    assert tx.end_s - tx.start_s == pytest.approx(time_on_air_ms(16, 7, 125_000, 5) / 1000)
    assert ch.finish(tx) == ["gw"] and heard[0][0] == bytes(16)
    assert -140 < heard[0][1] < 0 and -20 <= heard[0][2] <= 12


def test_overlap_of_equal_signals_collides_but_a_much_stronger_one_captures() -> None:
    ch, heard = _channel({"near": (5.0, 0.0), "same": (5.0, 0.0), "far": (400.0, 0.0)})
    a = ch.transmit("near", b"A" * 16, 868_100_000, 7, 125_000, 5, 14, 0.0)
    b = ch.transmit("same", b"B" * 16, 868_100_000, 7, 125_000, 5, 14, 0.01)
    assert ch.finish(a) == [] and ch.finish(b) == []
    assert ch.stats.lost["collision"] == 2
    strong = ch.transmit("near", b"S" * 16, 868_100_000, 7, 125_000, 5, 14, 10.0)
    weak = ch.transmit("far", b"W" * 16, 868_100_000, 7, 125_000, 5, 14, 10.01)
    assert ch.finish(strong) == ["gw"]  # capture: ≥ 6 dB stronger survives
    assert ch.finish(weak) == []


def test_other_frequency_or_sf_or_no_overlap_does_not_collide() -> None:
    ch, _ = _channel({"a": (5.0, 0.0), "b": (5.0, 0.0)})
    a = ch.transmit("a", bytes(16), 868_100_000, 7, 125_000, 5, 14, 0.0)
    b = ch.transmit("b", bytes(16), 868_300_000, 7, 125_000, 5, 14, 0.0)
    c = ch.transmit("b", bytes(16), 868_100_000, 9, 125_000, 5, 14, 0.0)
    assert ch.finish(a) == ["gw"] and ch.finish(b) == ["gw"] and ch.finish(c) == ["gw"]
    d = ch.transmit("a", bytes(16), 868_100_000, 7, 125_000, 5, 14, 1.0)
    assert ch.finish(d) == ["gw"]
    e = ch.transmit("b", bytes(16), 868_100_000, 7, 125_000, 5, 14, d.end_s + 0.001)
    assert ch.finish(e) == ["gw"]


def test_burst_random_loss_and_range_are_counted_by_cause() -> None:
    ch, _ = _channel({"a": (5.0, 0.0), "moon": (1e9, 0.0)}, loss=1.0)
    ch.finish(ch.transmit("a", bytes(16), 868_100_000, 7, 125_000, 5, 14, 0.0))
    ch.start_burst(1.0, 5.0)
    ch.finish(ch.transmit("a", bytes(16), 868_100_000, 7, 125_000, 5, 14, 2.0))
    ch.finish(ch.transmit("moon", bytes(16), 868_100_000, 7, 125_000, 5, 14, 10.0))
    assert ch.stats.lost == {"random_loss": 1, "burst_loss": 1, "below_sensitivity": 1}
    assert ch.stats.sent["a"] == 2 and sum(ch.stats.delivered.values()) == 0


def test_finished_transmissions_are_forgotten() -> None:
    ch, _ = _channel({"a": (5.0, 0.0)})
    for i in range(100):
        ch.finish(ch.transmit("a", bytes(16), 868_100_000, 7, 125_000, 5, 14, float(i)))
    assert len(ch.in_air) <= 1
