"""LoRa time on air (proto/airtime.py) against the published values, under both interpreters."""

from __future__ import annotations

from typing import Any

import pytest

from device.cli import main as cli_main
from proto import airtime


def test_published_sf7() -> None:
    # 12-byte payload, SF7, 125 kHz, CR 4/5, 8-symbol preamble, explicit header, CRC on
    assert airtime.time_on_air_ms(12, 7, 125000, 5, 8, True, True) == pytest.approx(41.216, abs=1e-6)


def test_published_sf12_with_low_data_rate_optimize() -> None:
    assert airtime.low_data_rate_optimize(12, 125000)
    assert airtime.time_on_air_ms(12, 12, 125000, 5, 8, True, True) == pytest.approx(1155.072, abs=1e-6)
    # without LDRO it would be shorter: the optimisation really is applied
    assert airtime.time_on_air_ms(12, 12, 125000, 5, ldro=False) < 1100


def test_ldro_threshold_is_16_ms_symbols() -> None:
    assert not airtime.low_data_rate_optimize(10, 125000)  # 8.2 ms
    assert airtime.low_data_rate_optimize(11, 125000)  # 16.4 ms
    assert not airtime.low_data_rate_optimize(12, 500000)  # 8.2 ms


def test_implicit_header_and_no_crc_are_shorter() -> None:
    base = airtime.time_on_air_ms(10, 7)  # (80 - 28 + 28 + 16) / 28 -> 4 x 5 symbols
    assert airtime.time_on_air_ms(10, 7, explicit_header=False) == pytest.approx(base - 5 * 1.024)
    assert airtime.time_on_air_ms(10, 7, crc=False) == pytest.approx(base - 5 * 1.024)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"sf": 13}, "spreading factor"), ({"cr": 9}, "coding rate"), ({"payload_len": 300}, "payload")],
)
def test_bad_parameters_are_refused(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"payload_len": 12, **kwargs}
    with pytest.raises(ValueError, match=match):
        airtime.time_on_air_s(**args)


def test_duty_cycle_rate() -> None:
    toa = airtime.time_on_air_s(16)  # an occupancy frame at SF7: 51.5 ms
    assert airtime.max_packets_per_hour(toa, 0.01) == int(36 / toa)
    assert airtime.off_time_s(toa, 0.01) == pytest.approx(99 * toa)


def test_micropython_gives_the_same_numbers(mpy: Any) -> None:
    r, _ = mpy.results("airtime_values.py")
    assert r["sf7_12B"] == pytest.approx(41.216, abs=1e-6)
    assert r["sf12_12B"] == pytest.approx(1155.072, abs=1e-6)
    assert r["sf12_12B_us"] == airtime.time_on_air_us(12, 12)
    assert r["ldro_sf11"] is True and r["ldro_sf10"] is False


def test_cli_airtime(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["airtime", "--sf", "7", "--bw", "125", "--cr", "5", "--payload", "12"]) == 0
    out = capsys.readouterr().out
    assert "41.2 ms" in out
    assert "873 frames/hour" in out
    assert cli_main(["airtime", "--sf", "12", "--payload", "12"]) == 0
    assert "1155.1 ms" in capsys.readouterr().out


def test_cli_airtime_refuses_unknown_bandwidth(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["airtime", "--bw", "100"]) == 2
    assert "--bw must be one of" in capsys.readouterr().err
