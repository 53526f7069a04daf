"""The run's report: a text summary for the terminal, a JSON file for machines, PNG plots for people."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hil.verdict import Verdict


def _pct(d: dict[str, Any]) -> str:
    if not d.get("n"):
        return "   n=0"
    return f"n={d['n']:5d}  p50 {d['p50']:7.2f}  p95 {d['p95']:7.2f}  p99 {d['p99']:7.2f}  max {d['max']:7.2f}"


def text_summary(v: Verdict) -> str:
    n = v.numbers
    fr = n["frames"]
    lines = [
        f"== verdict: {n['scenario']} — {'PASS' if v.ok else 'FAIL'}",
        f"  bays                 {n['nodes_emulated']} emulated + {n['bays_synthetic']} synthetic   truth changes {n['truth_changes']}"
        f"   detected {n['detected']}   accuracy {100 * n['detection_accuracy']:.2f} %"
        f"   false reports {n['false_reports']}"
        + (f"\n  real boards          {n['traffic']['boards']}" if n["traffic"].get("boards") else ""),
        "  latency (s)",
        f"    sensor -> fog API  {_pct(n['latency_sensor_to_fog_s'])}",
        f"    sensor -> cloud    {_pct(n['latency_sensor_to_cloud_s'])}",
        f"  frames               sent {fr['sent']}   heard on air {fr['received_on_air']}"
        f"   fog events stored {fr['fog_events_stored']}   downlinks {fr['downlinks']}",
        f"    lost by cause      {fr['lost_by_cause'] or 0}   duty-cycle waits {fr['duty_cycle_waits']}",
        f"    refused by fog     {fr['refused_by_fog'] or 0}",
        f"  acknowledged events  seen {n['acknowledged_events_seen']}   lost {n['acknowledged_events_lost']}",
        f"  cloud                duplicates {n['cloud_duplicates']}   fog acked seq {n['fog_acked_seq']}"
        f"   cloud cursor {n['cloud_cursor']}   missing occupancy events {n['fog_occupancy_events_missing_in_cloud']}",
        f"  alerts expected      {[(a['kind'], a['raised']) for a in n['alerts_expected']]}",
        f"  alerts raised        {n['alerts_raised']}",
        "  faults",
    ]
    res = n.get("reservations")
    if res:
        lines.append(f"  bookings             {res['statuses']}   selection probes {res['selection_probes']}"
                     f"   held spots handed out {len(res['held_spots_handed_out'])}")
        for b in res["bookings"]:
            extra = "".join(f"  {k} {b[k]}" for k in ("checkin_delay_s", "no_show_lag_s", "late_charge",
                                                      "unverified_alert") if b.get(k) is not None)
            lines.append(f"    #{b['index']} {b['kind']:<11} {str(b['spot']):<4} {str(b.get('status')):<10}"
                         f" expected {'/'.join(b.get('expected', []))}{extra}"
                         + "".join(f"  PROBLEM: {p}" for p in b["problems"]))
    for f in n["faults"]:
        extra = "" if f.get("ok") else f"  NOT APPLIED: {f.get('error')}"
        lines.append(f"    t={f['at_s']:6.0f} s  {f['kind']:<15} {'ok' if f.get('ok') else 'no'}{extra}")
    if n.get("wall_s"):
        lines.append("  wall time (s)        " + "  ".join(f"{k} {v:g}" for k, v in n["wall_s"].items()))
    for p in n["problems"]:
        lines.append(f"  problem: {p}")
    lines.append("  invariants")
    for name, ok in v.invariants.items():
        lines.append(f"    [{'ok' if ok else 'BROKEN'}] {name}")
    return "\n".join(lines)


def write_json(v: Verdict, path: Path) -> None:
    path.write_text(json.dumps({"ok": v.ok, "invariants": v.invariants, "numbers": v.numbers,
                                "details": v.details}, indent=2, default=str) + "\n")


def write_plots(v: Verdict, outdir: Path) -> list[Path]:
    """occupancy.png (truth vs fog vs cloud) and latency.png (histograms). Headless (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: list[Path] = []
    fig, ax = plt.subplots(figsize=(9, 4))
    for name, style in (("truth", "k-"), ("fog", "b--"), ("cloud", "r:")):
        pts = v.series.get(name) or []
        if pts:
            xs = [p[0] for p in pts]
            ys = [p[1] for p in pts]
            ax.step(xs, ys, style, where="post", label=name)
    ax.set_xlabel("seconds since traffic start (wall)")
    ax.set_ylabel("occupied bays")
    ax.set_title(f"{v.numbers['scenario']}: occupancy")
    ax.legend()
    p = outdir / "occupancy.png"
    fig.tight_layout()
    fig.savefig(p, dpi=100)
    plt.close(fig)
    out.append(p)
    fig, ax = plt.subplots(figsize=(9, 4))
    for name, color in (("sensor_to_fog_s", "tab:blue"), ("sensor_to_cloud_s", "tab:red")):
        xs = v.latencies.get(name) or []
        if xs:
            ax.hist(xs, bins=40, alpha=0.6, color=color, label=name)
    ax.set_xlabel("latency (s)")
    ax.set_ylabel("changes")
    ax.set_title(f"{v.numbers['scenario']}: latency")
    if any(v.latencies.values()):
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no state changes in this scenario", ha="center", transform=ax.transAxes)
    p = outdir / "latency.png"
    fig.tight_layout()
    fig.savefig(p, dpi=100)
    plt.close(fig)
    out.append(p)
    return out
