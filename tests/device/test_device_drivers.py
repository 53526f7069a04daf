"""Drivers against the emulated parts, run under the real MicroPython binary (scripts in mpy/)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="module")
def hcsr04(mpy: Any) -> dict[str, Any]:
    return mpy.results("drv_hcsr04.py")[0]


@pytest.fixture(scope="module")
def qmc(mpy: Any) -> dict[str, Any]:
    return mpy.results("drv_qmc5883l.py")[0]


@pytest.fixture(scope="module")
def sx(mpy: Any) -> tuple[dict[str, Any], list[str]]:
    return mpy.results("drv_sx127x.py")


# --- HC-SR04 ------------------------------------------------------------------


def test_hcsr04_measures_distance(hcsr04: dict[str, Any]) -> None:
    assert hcsr04["d100_t20"] == pytest.approx(100.0, abs=0.5)
    assert hcsr04["d100_t20_mm"] == pytest.approx(1000, abs=5)


def test_hcsr04_compensates_the_speed_of_sound_for_temperature(hcsr04: dict[str, Any]) -> None:
    assert hcsr04["d100_t35_compensated"] == pytest.approx(100.0, abs=0.5)
    assert hcsr04["d100_tm10_compensated"] == pytest.approx(100.0, abs=0.5)
    # told 20 C in 35 C air, the driver is 2.6 % short: the compensation is doing the work
    assert hcsr04["d100_t35_uncompensated"] == pytest.approx(97.4, abs=0.5)


def test_hcsr04_no_echo_is_none_never_a_distance(hcsr04: dict[str, Any]) -> None:
    assert hcsr04["no_echo"] is None
    assert hcsr04["no_echo_raw"] == -1  # ECHO held high past the 30 ms timeout
    assert hcsr04["beyond_range"] is None
    # a timeout longer than the module's 38 ms give-up pulse: 38000 us is implausible -> None, not 650 cm
    assert hcsr04["no_echo_long_timeout_raw"] == 38000
    assert hcsr04["no_echo_long_timeout"] is None
    # a module that never raises ECHO at all: the pulse never starts (-2), still None
    assert hcsr04["silent_module"] == [-2, None]


def test_hcsr04_does_not_time_the_tail_of_a_previous_cycle(hcsr04: dict[str, Any]) -> None:
    first, echo_level, second = hcsr04["busy_raw"]
    assert first == -1 and echo_level == 1
    assert second == -3  # busy, reported as no echo rather than a bogus short distance


def test_hcsr04_untriggered_pulse_times_out_waiting(hcsr04: dict[str, Any]) -> None:
    assert hcsr04["untriggered"] == -2


def test_hcsr04_pings_are_spaced_at_least_60_ms(hcsr04: dict[str, Any]) -> None:
    five = hcsr04["five_pings"]
    assert five["cm"] == pytest.approx(50.0, abs=0.5)
    assert five["ignored"] == 0  # the model drops triggers inside a 60 ms cycle
    assert five["ms"] >= 4 * 60


# --- QMC5883L ------------------------------------------------------------------


def test_qmc5883l_is_found_at_0x0d(qmc: dict[str, Any]) -> None:
    assert qmc["scan"] == [0x0D]


@pytest.mark.parametrize("rng", ["read_8g", "read_2g"])
def test_qmc5883l_reads_the_field_in_tenths_of_microtesla(qmc: dict[str, Any], rng: str) -> None:
    r = qmc[rng]
    assert r["fresh"] and not r["sat"]
    for got, want in zip(r["dut"], [250, -100, 400], strict=True):
        assert abs(got - want) <= 1


def test_qmc5883l_overflow_is_flagged_saturated(qmc: dict[str, Any]) -> None:
    assert qmc["over_2g"]["sat"] is True
    assert qmc["over_2g"]["dut"][2] == 2730  # int16 full scale at 120 LSB/uT
    assert qmc["over_8g"]["sat"] is False
    assert qmc["over_8g"]["dut"][2] == pytest.approx(3000, abs=1)


def test_qmc5883l_waits_for_data_ready(qmc: dict[str, Any]) -> None:
    assert qmc["second_read"]["fresh"] is True
    assert qmc["second_read"]["waited_ms"] >= 50  # the next 10 Hz conversion


def test_qmc5883l_temperature(qmc: dict[str, Any]) -> None:
    assert qmc["temperature_c10"] == 175


def test_qmc5883l_unpowered_is_absent(qmc: dict[str, Any]) -> None:
    assert qmc["unpowered"] == 19  # ENODEV: no ACK


# --- SX127x ---------------------------------------------------------------------


def _tx_lines(lines: list[str]) -> list[list[str]]:
    return [ln.split() for ln in lines if ln.startswith("TX ")]


def test_sx127x_probe_and_sleep(sx: tuple[dict[str, Any], list[str]]) -> None:
    r, _ = sx
    assert r["version"] == 0x12
    assert r["mode_after_init"] == 0x80  # LoRa mode, SLEEP


def test_sx127x_send_emits_the_fifo_with_the_radio_settings(sx: tuple[dict[str, Any], list[str]]) -> None:
    r, lines = sx
    tx = _tx_lines(lines)
    assert tx[0] == ["TX", "0102030405060708090a0b0c", "868099976", "7", "125000", "5", "14", "0x12"]
    s = r["send_sf7"]
    assert s["ok"] is True
    assert s["ms"] >= 41  # waited for TxDone: 41.2 ms on air
    assert s["mode"] == 0x80 and s["irq"] == 0  # asleep, IRQs cleared


def test_sx127x_configure_sf12(sx: tuple[dict[str, Any], list[str]]) -> None:
    r, lines = sx
    assert r["ldro_sf12"] & 0x08  # LowDataRateOptimize for 32 ms symbols
    assert _tx_lines(lines)[1] == ["TX", "aa" * 12, "869525024", "12", "125000", "8", "20", "0x34"]
    assert r["send_sf12"]["ok"] is True
    assert r["send_sf12"]["ms"] >= 1155


def test_sx127x_rx_window_receives_a_downlink(sx: tuple[dict[str, Any], list[str]]) -> None:
    rx = sx[0]["rx"]
    assert rx["inject"] == "received"
    assert rx["payload"] == "downlink!"
    assert rx["rssi"] == -97
    assert rx["snr"] == -3.5
    assert rx["mode"] == 0x80


def test_sx127x_ignores_other_spreading_factors(sx: tuple[dict[str, Any], list[str]]) -> None:
    assert sx[0]["rx_wrong_sf"] == {"payload": None, "inject": "wrong_sf"}


def test_sx127x_in_reset_answers_nothing(sx: tuple[dict[str, Any], list[str]]) -> None:
    assert sx[0]["in_reset_version"] == 0


# --- QMC5883P, HMC5883L and the bus probe (GY-271 modules ship with any of the three) -----------


@pytest.fixture(scope="module")
def mags(mpy: Any) -> dict[str, Any]:
    return mpy.results("drv_magnetometers.py")[0]


@pytest.mark.parametrize(("chip", "addr", "name"), [("qmc5883l", 0x0D, "QMC5883L"), ("qmc5883p", 0x2C, "QMC5883P"),
                                                    ("hmc5883l", 0x1E, "HMC5883L")])
def test_probe_finds_the_chip_and_reads_microtesla(mags: dict[str, Any], chip: str, addr: int, name: str) -> None:
    r = mags[chip]
    assert r["scan"] == [addr]
    assert r["chip"] == name
    assert r["fresh"] and not r["sat"]
    # 0.1 uT: (25, -10, 40) uT, within one count of each chip's resolution
    for got, want in zip(r["dut"], [250, -100, 400], strict=True):
        assert abs(got - want) <= 5, (chip, r["dut"])


@pytest.mark.parametrize("chip", ["qmc5883l", "qmc5883p", "hmc5883l"])
def test_overflow_is_reported_saturated(mags: dict[str, Any], chip: str) -> None:
    assert mags[chip]["over"]["sat"] is True  # 1000 uT is beyond +/-8 G on every chip


def test_only_the_qmc5883l_has_a_temperature_sensor(mags: dict[str, Any]) -> None:
    assert mags["qmc5883l"]["temp"] == 215
    assert mags["qmc5883p"]["temp"] is None and mags["hmc5883l"]["temp"] is None


@pytest.mark.parametrize("chip", ["qmc5883l", "qmc5883p", "hmc5883l"])
def test_standby_stops_measuring(mags: dict[str, Any], chip: str) -> None:
    assert mags[chip]["samples_while_standby"] == 0


def test_hmc5883l_data_is_x_z_y_big_endian(mags: dict[str, Any]) -> None:
    raw = mags["hmc_raw"]
    # (10, 20, 30) uT at 10.9 LSB/uT: X 109, Z 327, Y 218, each MSB first
    assert raw == [0, 109, 327 >> 8, 327 & 0xFF, 0, 218]
    assert mags["hmc_xyz"] == [100, 200, 300]


def test_probe_on_an_empty_bus_names_the_chips(mags: dict[str, Any]) -> None:
    errno, text = mags["empty_bus"]
    assert errno == 19 and "QMC5883L (0x0D), QMC5883P (0x2C) or HMC5883L (0x1E)" in text


# --- RC522 ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rc522(mpy: Any) -> dict[str, Any]:
    return mpy.results("drv_rc522.py")[0]


def test_rc522_found_and_crc_a(rc522: dict[str, Any]) -> None:
    assert rc522["version"] == 0x92
    assert rc522["crc_hlta"] == 0xCD57  # sent 57 CD


def test_rc522_reads_4_7_and_10_byte_uids_once_per_presentation(rc522: dict[str, Any]) -> None:
    assert rc522["no_card"] is None
    for uid, (first, while_halted, again) in rc522["cards"].items():
        assert first == uid  # the cascade levels put the UID together
        assert while_halted is None  # halted after the read: not read twice while it lies there
        assert again == uid  # presented again: read again
    assert rc522["reads"] == 6
    assert rc522["antenna_after"] == 0


def test_rc522_shares_the_spi_bus_with_the_radio(rc522: dict[str, Any]) -> None:
    assert rc522["radio_version"] == 0x12


def test_rc522_card_ignores_a_select_with_a_bad_crc(rc522: dict[str, Any]) -> None:
    assert rc522["bad_crc_select"] is None
