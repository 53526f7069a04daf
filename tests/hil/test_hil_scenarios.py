"""`fogpark-hil run`: scenario files, ground-truth traffic, generated lots, and one short run end to end."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fog.config import load_fog_config
from hil.runner import generate_lot_files
from hil.scenario import STANDARD, ScenarioError, TruthTraffic, library, load_scenario
from hil.verdict import percentiles

BIN = Path(sys.executable).parent


def test_every_library_scenario_loads_and_the_standard_set_exists() -> None:
    names = library()
    for name in names:
        sc = load_scenario(name)
        assert sc.duration_s > 0 and sc.name
    assert set(STANDARD) <= set(names)
    assert "published-150" in names


def test_the_published_scenario_says_what_issue_7_says() -> None:
    sc = load_scenario("published-150")
    assert (sc.spots, sc.arrivals_per_min, sc.departures_per_min, sc.initial_occupancy_max) == (150, 10, 5, 0.9)
    kinds = {f.kind for f in sc.faults}
    assert {"fog_kill", "cloud_down", "serial_unplug", "radio_burst", "battery_sag", "tamper", "spoof",
            "replay", "clock_jump", "broker_restart"} <= kinds


@pytest.mark.parametrize(("text", "where"), [
    ('[scenario]\nduration_s = 10\n[[faults]]\nat_s = 1\nkind = "meteor"\n', "faults[0].kind"),
    ('[scenario]\nduration_s = 10\n[[faults]]\nat_s = 1\nkind = "fog_kill"\nrestart_s = 1\n', "faults[0]"),
    ("[scenario]\nduration_s = -1\n", "scenario.duration_s"),
    ('[scenario]\nduration_s = 10\n[traffic]\narrivals_per_min = "many"\n', "traffic.arrivals_per_min"),
    ("[scenario]\nduration_s = 10\n[trafic]\n", "unknown table"),
    ("[scenario]\nduration_s = 10\n[lot]\nchannels_hz = [868]\n", "lot.channels_hz"),
])
def test_a_wrong_scenario_is_refused_naming_the_key(tmp_path: Path, text: str, where: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ScenarioError, match=re.escape(where)):
        load_scenario(p)


def test_truth_traffic_keeps_dwell_and_follows_the_rates(tmp_path: Path) -> None:
    p = tmp_path / "t.toml"
    p.write_text("[scenario]\nduration_s = 3600\nacceleration = 10\n[traffic]\narrivals_per_min = 10\n"
                 "departures_per_min = 5\ninitial_occupancy_max = 0.9\nmin_dwell_s = 4\n")
    sc = load_scenario(p)
    spots = [f"S{i}" for i in range(150)]
    tr = TruthTraffic(sc, spots)
    t = 0.0
    while t < sc.wall_s:
        tr.step(t)
        t += 0.1
    assert tr.initial_cars <= 135
    last: dict[str, float] = {}
    for at, spot, _state in tr.log:
        if spot in last:
            assert at - last[spot] >= sc.min_dwell_s - 0.11, "a stay or gap shorter than the sensor can see"
        last[spot] = at
    arrivals = sum(1 for _, _, s in tr.log if s == "occupied") - tr.initial_cars + tr.turned_away
    # 3600 scenario seconds of 10/min: ~600 arrivals (Poisson, generous bounds).
    assert 500 < arrivals < 700


def test_generated_lot_is_one_the_fog_loads(tmp_path: Path) -> None:
    cfg = load_fog_config(generate_lot_files(120, tmp_path, seed=1))
    assert cfg.lot.capacity == 120 and len(cfg.nodes) == 120
    assert {n.spot for n in cfg.nodes.values()} == set(cfg.lot.spot_ids())


def test_percentiles() -> None:
    p = percentiles([float(i) for i in range(1, 101)])
    assert p["n"] == 100 and p["p50"] == 51.0 and p["p99"] == 99.0 and p["max"] == 100.0
    assert percentiles([])["p50"] is None


@pytest.mark.parametrize(("text", "where"), [
    ('[[bookings]]\nat_s = 1\nkind = "valet"\n', "bookings[0].kind"),
    ('[[bookings]]\nat_s = 1\narrive_after_s = 2\ncancel_after_s = 1\n', "bookings[0]: give arrive_after_s"),
    ('[[bookings]]\nat_s = 1\nstart_in_s = 9\n', "bookings[0].start_in_s"),
    ('[[bookings]]\nat_s = 1\ncard_uid = "xyz"\n', "bookings[0].card_uid"),
    ('[[bookings]]\nat_s = 1\nstay_s = 5\n', "bookings[0].stay_s"),
    ("[reservations]\nlead_hours = 3\n", "reservations: unknown key"),
    ('[lot]\nspots = 100\n[[bookings]]\nat_s = 1\n', "lane graph"),
])
def test_a_wrong_booking_is_refused_naming_the_key(tmp_path: Path, text: str, where: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text("[scenario]\nduration_s = 10\n" + text)
    with pytest.raises(ScenarioError, match=re.escape(where)):
        load_scenario(p)


def test_the_reservations_scenario_plays_every_rule() -> None:
    sc = load_scenario("reservations")
    b = sc.bookings
    assert {x.kind for x in b} == {"booking", "reservation"} and any(x.expect == "refused" for x in b)
    assert any(x.arrive_after_s is None and x.cancel_after_s is None and x.expect == "admitted" for x in b)  # no-show
    assert any(x.cancel_after_s is not None for x in b) and any(x.card_uid and not x.badge for x in b)
    assert sc.policy["lead_s"] < sc.duration_s and sc.policy["waiting_window_s"] < sc.duration_s


def test_truth_traffic_keeps_random_cars_off_held_spots(tmp_path: Path) -> None:
    p = tmp_path / "t.toml"
    p.write_text("[scenario]\nduration_s = 600\n[traffic]\narrivals_per_min = 120\nmean_stay_s = 10\n"
                 "min_dwell_s = 3\ninitial_occupancy_max = 0.5\ninitial_spread_s = 20\n")
    sc = load_scenario(p)
    tr = TruthTraffic(sc, [f"S{i}" for i in range(6)])
    tr.held.add("S0")
    tr.paused[0] = 5.0
    tr.script(30.0, "S0", "park")
    tr.script(40.0, "S0", "leave")
    t = 0.0
    while t < 60:
        tr.step(t)
        t += 0.1
    s0 = [(at, st) for at, spot, st in tr.log if spot == "S0"]
    assert [st for _, st in s0] == ["occupied", "empty"], "only the booked car parks on the held spot"
    assert 30.0 <= s0[0][0] < 31.0 and 40.0 <= s0[1][0] < 41.0
    assert all(at >= 5.0 for at, spot, st in tr.log if st == "occupied" and spot != "S0"), "nobody parks while paused"


def test_lot_with_policy_writes_wall_seconds(tmp_path: Path) -> None:
    from fog.config import DEMO_FOG_CONFIG
    from hil.runner import lot_with_policy

    cfg = load_fog_config(lot_with_policy(DEMO_FOG_CONFIG, tmp_path, {"lead_s": 60, "waiting_window_s": 200,
                                                                       "grace_s": 100, "theta": 0.8,
                                                                       "checkin_grace_s": 20}, 2.0))
    pol = cfg.lot.policy
    assert (pol.lead_s, pol.waiting_window_s, pol.grace_s, pol.theta, pol.checkin_grace_s) == (30, 100, 50, 0.8, 10)
    assert pol.hold_before_s == 900 and cfg.lot.lane_graph is not None  # the rest of the demo lot is kept


def test_the_booking_verdict_can_fail() -> None:
    """A status, a late charge or a no-show time that break the rules are each reported."""
    from hil.booking_verdict import judge_one
    from hil.bookings import BookingRun
    from hil.scenario import Booking

    class Driver:
        acc = 1.0
        policy_wall = {"waiting_window_s": 20.0, "grace_s": 5.0, "checkin_grace_s": 5.0}
        stopped_at = 1000.0

    d: Any = Driver()
    ok = BookingRun(0, Booking(at_s=0, kind="booking", arrive_after_s=2), http_status=201, id="b-1", spot="A01",
                    start=100.0, arrived=102.0,
                    final={"status": "checked_in", "spot_id": "A01", "start_ms": 100_000, "checked_in_ms": 102_500,
                           "late_charge": 0.0, "detail": "checked in by occupancy"})
    assert judge_one(ok, d, [], 200.0, 30.0)["problems"] == []
    late = BookingRun(**{**vars(ok), "final": {**ok.final, "checked_in_ms": 107_000}})
    assert "late charge" in " ".join(judge_one(late, d, [], 200.0, 30.0)["problems"])
    gone = BookingRun(**{**vars(ok), "arrived": None,
                         "final": {**ok.final, "status": "no_show", "updated_ms": 130_000, "checked_in_ms": None}})
    text = " ".join(judge_one(gone, d, [], 200.0, 30.0)["problems"])
    assert "never parked" in text and "no-show recorded +10.0 s" in text
    wrong = BookingRun(**{**vars(ok), "final": {**ok.final, "status": "no_show"}})
    assert "expected checked_in" in " ".join(judge_one(wrong, d, [], 200.0, 30.0)["problems"])
    refused = BookingRun(1, Booking(at_s=0, kind="reservation", expect="refused"), http_status=201,
                         answer={"id": "r-1"})
    assert "expected a refusal" in " ".join(judge_one(refused, d, [], 200.0, 30.0)["problems"])


@pytest.mark.xdist_group("e2e")
def test_smoke_scenario_end_to_end_passes_every_invariant(tmp_path: Path) -> None:
    """The real stack through a short scenario with a fog kill -9, a loss burst, a spoof, a replay and
    bookings; bay A01 is a board on a pty (the flashed firmware in test mode) through --hardware."""
    from fog.config import DEMO_FOG_CONFIG
    from hil.hardware import board_node_json, emulated_board

    board = emulated_board(tmp_path / "board", board_node_json(DEMO_FOG_CONFIG, "A01", rfid=True, boot_jitter_s=3),
                           world={"field_ut": [30.0, 2.0, 20.0]})  # the desk's field, not the bench's
    t0 = time.monotonic()
    try:
        out = subprocess.run([str(BIN / "fogpark-hil"), "run", "smoke", "--workdir", str(tmp_path), "--no-plots",
                              "--hardware", f"{board.port}=A01"], capture_output=True, text=True, timeout=120)
    finally:
        board.stop()
    elapsed = time.monotonic() - t0
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "PASS" in out.stdout and "sensor -> fog API" in out.stdout
    verdict = json.loads((tmp_path / "smoke" / "verdict.json").read_text())
    n = verdict["numbers"]
    assert n["acknowledged_events_lost"] == 0 and n["cloud_duplicates"] == 0
    assert n["truth_changes"] >= 10 and n["detection_accuracy"] >= 0.99
    assert {a["kind"] for a in n["alerts_expected"]} == {"bad_mic", "replay"}
    assert n["traffic"]["boards"] == {"A01": board.port}
    res = n["reservations"]
    assert sorted(str(b["status"]) for b in res["bookings"]) == ["checked_in", "completed", "no_show", "refused"]
    assert res["selection_probes"] > 0 and not res["held_spots_handed_out"]
    assert verdict["invariants"]["bookings behave as booked"]
    assert elapsed < 60, f"the make-test scenario took {elapsed:.0f} s"
    # nothing left behind: no process still has the run's workdir as its cwd
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""
