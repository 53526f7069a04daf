"""Detection accuracy on the standard synthetic trace set, under CPython and the MicroPython unix port.

``device/traces.py`` generates the set deterministically (six scenarios:
typical, high-chassis vehicles, busy neighbouring bays, drift over days,
passers-by, long stays; three bays of four days each at 30 s samples);
``device/trace_replay.py`` runs the firmware's ``detect.py`` with the
node's ranging policy. ``bench/bench_device_detection.py`` prints the table.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from device.cli import firmware_module
from hil.node_process import DEFAULT_MICROPYTHON, REPO

pytestmark = pytest.mark.xdist_group("device_traces")  # module fixtures: build them once, on one worker

firmware_module("detect")  # device/firmware on sys.path: trace_replay imports detect as the node does
from device import trace_replay, traces  # noqa: E402


@pytest.fixture(scope="module")
def standard() -> list[traces.Trace]:
    return traces.standard_set()


@pytest.fixture(scope="module")
def cpython_events(standard: list[traces.Trace]) -> dict[str, list[tuple[int, int]]]:
    return {t.name: trace_replay.replay(t.data, {}, t.sample_s) for t in standard}


def test_the_set_is_deterministic_and_covers_the_scenarios(standard: list[traces.Trace]) -> None:
    again = traces.generate("drift", 1)
    assert again.data == next(t for t in standard if t.name == "drift-1").data
    assert {t.scenario for t in standard} == set(traces.SCENARIOS)
    assert sum(len(t.truth) for t in standard) >= 600
    assert sum(len(t.high_chassis) for t in standard) >= 40


def test_at_least_99_percent_correct(standard: list[traces.Trace], cpython_events: dict[str, Any]) -> None:
    rows = traces.evaluate(standard, cpython_events)
    print("\n" + traces.table(rows))
    total = rows[-1][1]
    assert total.correct_pct >= 99.0
    for name, s in rows:
        assert s.correct_pct >= 97.0, name  # no scenario far behind the others
        assert s.delay_s(0.95) <= traces.MAX_DELAY_S, name


def test_micropython_detects_the_same_changes(
    standard: list[traces.Trace], cpython_events: dict[str, Any], tmp_path: Path
) -> None:
    paths = traces.write(standard, tmp_path)
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join([str(REPO / "device" / "firmware"), str(REPO / "device")])
    proc = subprocess.run(
        [DEFAULT_MICROPYTHON, "-X", "heapsize=4M", str(Path(__file__).parent / "mpy" / "replay_traces.py"),
         str(traces.SAMPLE_S), *map(str, paths)],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    got = {}
    for line in proc.stdout.splitlines():
        f = line.split()
        got[f[1][: -len(".trace")]] = [(int(a), int(b)) for a, b in (e.split(":") for e in f[2:])]
    assert got == cpython_events


def test_stress_scenario_is_scored_honestly() -> None:
    """Outside the standard set: the detector does give way when everything is worse at once."""
    tr = traces.generate(traces.STRESS, 0)
    s = traces.score(tr, trace_replay.replay(tr.data, {}, tr.sample_s))
    assert s.correct_pct < 99.0
