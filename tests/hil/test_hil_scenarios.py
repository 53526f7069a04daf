"""`fogpark-hil run`: scenario files, ground-truth traffic, generated lots, and one short run end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

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
    with pytest.raises(ScenarioError, match=where.replace("[", r"\[").replace("]", r"\]")):
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


@pytest.mark.xdist_group("e2e")
def test_smoke_scenario_end_to_end_passes_every_invariant(tmp_path: Path) -> None:
    """The real stack through a short scenario with a fog kill -9, a loss burst, a spoof and a replay."""
    t0 = time.monotonic()
    out = subprocess.run([str(BIN / "fogpark-hil"), "run", "smoke", "--workdir", str(tmp_path), "--no-plots"],
                         capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - t0
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "PASS" in out.stdout and "sensor -> fog API" in out.stdout
    verdict = json.loads((tmp_path / "smoke" / "verdict.json").read_text())
    n = verdict["numbers"]
    assert n["acknowledged_events_lost"] == 0 and n["cloud_duplicates"] == 0
    assert n["truth_changes"] >= 10 and n["detection_accuracy"] >= 0.99
    assert {a["kind"] for a in n["alerts_expected"]} == {"bad_mic", "replay"}
    assert elapsed < 60, f"the make-test scenario took {elapsed:.0f} s"
    # nothing left behind: no process still has the run's workdir as its cwd
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""
