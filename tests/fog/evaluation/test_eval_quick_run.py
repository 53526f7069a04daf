"""The CI-sized evaluation end to end: one command, a report with every sweep point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("traci")
pytest.importorskip("sumolib")
pytest.importorskip("matplotlib")

from fog.evaluation.cli import main  # noqa: E402
from fog.evaluation.report import REPORT_FILES  # noqa: E402
from fog.evaluation.sweeps import QUICK_PLAN  # noqa: E402


@pytest.mark.slow
def test_quick_evaluation_writes_the_whole_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval"
    assert main(["--quick", "--out", str(out), "--jobs", "2"]) == 0
    for name in REPORT_FILES:
        assert (out / name).stat().st_size > 0, name
    for name in REPORT_FILES:
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["errors"] == []
    assert [c["point"] for c in summary["sweep_a"]] == list(QUICK_PLAN.congestion_points)
    assert [c["point"] for c in summary["sweep_b"]] == [float(k) for k in QUICK_PLAN.free_spot_points]
    assert [round(r["occupancy"], 2) for r in summary["revenue"]] == list(QUICK_PLAN.revenue_points)
    assert {m["policy"] for m in summary["mcpr"]} == {"mcpr", "nearest", "reserve-nearest"}
    assert summary["published_setting"]["fogpark_arrival_s"]["n"] == QUICK_PLAN.published_seeds
    assert "same 150 spots, same 472 lanes" in summary["round_trip"]
    for c in summary["sweep_a"] + summary["sweep_b"]:
        assert c["fogpark_arrival_s"]["n"] == QUICK_PLAN.seeds
        assert c["baseline_arrival_s"]["n"] == QUICK_PLAN.seeds
        assert c["verdict"] in ("FogPark faster", "baseline faster", "no significant difference")
    report = (out / "report.md").read_text()
    for heading in ("## Published setting", "## Sweep (a)", "## Sweep (b)", "## Sweep (c)", "## Multi-lot"):
        assert heading in report
    for c in QUICK_PLAN.congestion_points:
        assert f"\n| {c:g} | " in report
    assert "16–46 %" in report and "10–15 %" in report
    assert "## Verdicts" in report
    assert "### Where FogPark's selection does not beat the traditional search" in report
    printed = capsys.readouterr()
    assert "report:" in printed.out and "published setting:" in printed.out
    assert "progress:" in printed.err  # not a terminal: one line per tenth


def test_missing_lot_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--lot", str(tmp_path / "nope.toml"), "--out", str(tmp_path)]) == 2
    assert "file not found" in capsys.readouterr().err
