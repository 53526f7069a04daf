"""The verdict: what the scenario did (ground truth) against what the fog and the cloud recorded.

Invariants (a broken one makes ``fogpark-hil run`` exit non-zero):

* every event the fog acknowledged (showed on its API) is in its store at the end;
* every occupancy event the fog stored reached the cloud or still waits in the outbox;
* no duplicate in the cloud: one row per (fog, seq) and per (node, fcnt);
* detection ≥ the scenario's ``min_detection``;
* every alert a fault expects was raised; every fault was applied (or is
  listed as not applicable).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from hil.runner import RunResult, cloud_db, fog_db
from proto import parking_pb2 as pb


@dataclass
class Verdict:
    numbers: dict[str, Any] = field(default_factory=dict)
    invariants: dict[str, bool] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    series: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # occupancy over time
    latencies: dict[str, list[float]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(self.invariants.values())


def percentiles(xs: list[float]) -> dict[str, float | None]:
    if not xs:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    s = sorted(xs)

    def q(p: float) -> float:
        return round(s[min(len(s) - 1, int(round(p * (len(s) - 1))))], 3)

    return {"n": len(s), "p50": q(0.50), "p95": q(0.95), "p99": q(0.99), "max": round(s[-1], 3)}


def _occupancy_series(changes: list[tuple[float, str, str]]) -> list[tuple[float, int]]:
    """(t, occupied count) after each change, from (t, spot, state) sorted by t."""
    state: dict[str, str] = {}
    out: list[tuple[float, int]] = []
    n = 0
    for t, spot, st in sorted(changes):
        was = state.get(spot) == "occupied"
        state[spot] = st
        n += (st == "occupied") - was
        out.append((t, n))
    return out


def judge(r: RunResult) -> Verdict:
    v = Verdict()
    sc = r.scenario
    fog = fog_db(r.workdir)
    cloud = cloud_db(r.workdir)
    offsets = r.faults.clock_offset_ms  # the fog's clock was jumped: map its at_ms back to real time

    def real_ms(at_ms: int) -> float:
        """The fog stamped ``at_ms`` with its (possibly jumped) clock: undo the jump in effect then."""
        for applied_s, off in reversed(offsets):
            if at_ms - off >= applied_s * 1000 - 1000:
                return float(at_ms - off)
        return float(at_ms)

    # --- fog spot events (state reports) --------------------------------------------------
    rows = fog.execute("SELECT id, at_ms, spot_id, node_id, fcnt, state, kind FROM events "
                       "WHERE state IN ('occupied','empty') ORDER BY id").fetchall()
    fog_ev: dict[str, list[tuple[float, str, int, int]]] = {}
    for _id, at_ms, spot, node, fcnt, state, _kind in rows:
        fog_ev.setdefault(spot, []).append((real_ms(at_ms) / 1000, state, node, fcnt))
    for evs in fog_ev.values():
        evs.sort()
    # cloud: (node, fcnt) -> received_ms (cloud's own clock)
    cloud_rx: dict[tuple[int, int], int] = {}
    for node, fcnt, rx_ms in cloud.execute(
            "SELECT e.node_id, e.fcnt, r.received_ms FROM spot_events e JOIN records r "
            "ON r.fog_id = e.fog_id AND r.seq = e.seq"):
        key = (int(node), int(fcnt))
        cloud_rx[key] = min(rx_ms, cloud_rx.get(key, rx_ms))

    # --- detection: each truth change must be matched by a fog event of that state ---------
    truth_by_spot: dict[str, list[tuple[float, str]]] = {}
    for t, spot, st in r.truth:
        truth_by_spot.setdefault(spot, []).append((t, st))
    changes = 0
    detected = 0
    missed: list[dict[str, Any]] = []
    fog_lat: list[float] = []
    cloud_lat: list[float] = []
    per_bay: dict[str, dict[str, Any]] = {}
    win = sc.detection_window_s
    for spot, tl in truth_by_spot.items():
        evs = fog_ev.get(spot, [])
        times = [e[0] for e in evs]
        bay: dict[str, Any] = {"changes": 0, "detected": 0, "delays_s": []}
        for i, (t, st) in enumerate(tl):
            if i == 0:
                continue  # the starting state (empty) is not a change the sensor saw
            nxt = tl[i + 1][0] if i + 1 < len(tl) else float("inf")
            bay["changes"] += 1
            changes += 1
            j = bisect.bisect_left(times, t)
            hit = None
            while j < len(evs) and evs[j][0] <= min(t + win, nxt + win):
                if evs[j][1] == st:
                    hit = evs[j]
                    break
                j += 1
            if hit is None:
                missed.append({"spot": spot, "t": round(t - r.t_traffic_epoch, 1), "state": st})
                continue
            bay["detected"] += 1
            detected += 1
            d = hit[0] - t
            bay["delays_s"].append(round(d, 3))
            fog_lat.append(d)
            crx = cloud_rx.get((hit[2], hit[3]))
            if crx is not None:
                cloud_lat.append(crx / 1000 - t)
        per_bay[spot] = bay
    accuracy = detected / changes if changes else 1.0
    # False reports: a fog state the bay did not have at any moment of the preceding window.
    false_reports: list[dict[str, Any]] = []
    for spot, evs in fog_ev.items():
        history = truth_by_spot.get(spot, [])
        if not history:
            continue
        for t, st, _node, _fcnt in evs:
            if t < r.t_traffic_epoch:
                continue
            states = {s for ts, s in history if t - win <= ts <= t}
            before = [s for ts, s in history if ts < t - win]
            if before:
                states.add(before[-1])
            if st not in states:
                false_reports.append({"spot": spot, "t": round(t - r.t_traffic_epoch, 1), "state": st})
    v.latencies = {"sensor_to_fog_s": fog_lat, "sensor_to_cloud_s": cloud_lat}

    # --- acknowledged events lost, cloud completeness, duplicates --------------------------------
    stored = set(fog.execute("SELECT node_id, fcnt FROM events WHERE node_id IS NOT NULL"))
    lost_acked = sorted(r.seen_acked - stored)
    dup_seq = cloud.execute("SELECT COUNT(*) FROM (SELECT fog_id, seq FROM records GROUP BY fog_id, seq "
                            "HAVING COUNT(*) > 1)").fetchone()[0]
    dup_ev = cloud.execute("SELECT COUNT(*) FROM (SELECT node_id, fcnt FROM spot_events GROUP BY node_id, fcnt "
                           "HAVING COUNT(*) > 1)").fetchone()[0]
    cloud_pairs = {(int(n), int(f)) for n, f in cloud.execute("SELECT node_id, fcnt FROM spot_events")}
    waiting: set[tuple[int, int]] = set()
    for kind, body in fog.execute("SELECT kind, body FROM outbox"):
        if kind == "spot_event":
            ev = pb.SpotEvent.FromString(body)
            waiting.add((ev.node_id, ev.fcnt))
    fog_occ = {(int(n), int(f)) for n, f in fog.execute(
        "SELECT node_id, fcnt FROM events WHERE kind='occupancy'")}
    not_in_cloud = sorted(fog_occ - cloud_pairs - waiting)
    acked_row = fog.execute("SELECT value FROM sync_state WHERE key='acked_seq'").fetchone()
    fog_acked = int(acked_row[0]) if acked_row else 0
    cur = cloud.execute("SELECT acked_seq FROM cursors WHERE fog_id='demo-fog'").fetchone()

    # --- alerts and refusals the faults expect -------------------------------------------------
    raised = {(a.get("kind"), a.get("node_id")) for a in r.fog_alerts}
    expected = [{"kind": k, "node_id": f"{n:#010x}", "raised": (k, n) in raised}
                for k, n in r.faults.expected_alerts]
    refused = r.fog_stats.get("frames_refused", {}) or {}
    refusals_ok = all(refused.get(k, 0) >= n for k, n in r.faults.expected_refusals.items())
    battery_seen = {s["spot"]: s.get("battery_mv") for s in r.fog_spots}
    battery = [{"spot": s, "expected_mv": mv, "fog_mv": battery_seen.get(s)}
               for s, mv in r.faults.expected_battery.items()]
    failed_faults = [f for f in r.faults.done if not f.get("ok")
                     and f["kind"] not in {s["kind"] for s in r.faults.skipped}]

    # --- occupancy over time ----------------------------------------------------------------------
    t0 = r.t_traffic_epoch
    v.series["truth"] = [(t - t0, n) for t, n in _occupancy_series(r.truth)]
    v.series["fog"] = [(t - t0, n) for t, n in _occupancy_series(
        [(e[0], s, e[1]) for s, evs in fog_ev.items() for e in evs])]
    cloud_changes = [(rx / 1000, spot, st) for spot, st, rx in cloud.execute(
        "SELECT e.spot_id, e.state, r.received_ms FROM spot_events e JOIN records r "
        "ON r.fog_id = e.fog_id AND r.seq = e.seq WHERE e.state IN ('occupied','empty')")]
    v.series["cloud"] = [(t - t0, n) for t, n in _occupancy_series(cloud_changes)]

    lost = dict(r.channel["lost"])
    if r.faults.unplugged_frames:
        lost["serial_unplugged"] = r.faults.unplugged_frames
    v.numbers = {
        "scenario": sc.name,
        "nodes_emulated": r.traffic_info.get("emulated_bays", len(r.spots)),
        "bays_synthetic": r.traffic_info.get("synthetic_bays", 0),
        "truth_changes": changes,
        "detected": detected,
        "detection_accuracy": round(accuracy, 5),
        "false_reports": len(false_reports),
        "detection_delay_s": percentiles(fog_lat),
        "latency_sensor_to_fog_s": percentiles(fog_lat),
        "latency_sensor_to_cloud_s": percentiles(cloud_lat),
        "frames": {"sent": r.channel["sent"], "received_on_air": r.channel["delivered"],
                   "fog_events_stored": r.fog_stats.get("events_stored"), "lost_by_cause": lost,
                   "duty_cycle_waits": r.duty_cycle_waits, "refused_by_fog": refused,
                   "downlinks": r.downlinks},
        "acknowledged_events_seen": len(r.seen_acked),
        "acknowledged_events_lost": len(lost_acked),
        "fog_occupancy_events_missing_in_cloud": len(not_in_cloud),
        "cloud_duplicates": int(dup_seq) + int(dup_ev),
        "fog_acked_seq": fog_acked,
        "cloud_cursor": int(cur[0]) if cur else 0,
        "outbox_waiting_at_end": r.fog_stats.get("outbox_waiting"),
        "alerts_expected": expected,
        "alerts_raised": sorted({str(a.get("kind")) for a in r.fog_alerts}),
        "refusals_expected": r.faults.expected_refusals,
        "battery": battery,
        "faults": r.faults.done,
        "faults_not_applicable": r.faults.skipped,
        "traffic": r.traffic_info,
        "wall_s": r.phases_s,
        "problems": r.problems,
    }
    v.details = {"missed": missed[:50], "false_reports": false_reports[:50], "lost_acked": lost_acked[:20], "not_in_cloud": not_in_cloud[:20],
                 "per_bay": per_bay}
    v.invariants = {
        "run completed": not r.problems,
        "0 acknowledged events lost": not lost_acked,
        "every fog occupancy event in the cloud or its outbox": not not_in_cloud,
        "0 duplicates in the cloud": dup_seq == 0 and dup_ev == 0,
        f"detection >= {sc.min_detection:.0%}": accuracy >= sc.min_detection and changes > 0
        or (changes == 0 and sc.arrivals_per_min == 0 and not sc.trace and sc.initial_occupancy_max == 0),
        "expected alerts raised": all(e["raised"] for e in expected),
        "expected refusals counted": refusals_ok,
        "battery sag seen by the fog": all(b["fog_mv"] is not None and b["fog_mv"] <= b["expected_mv"] + 50
                                           for b in battery),
        "every fault applied": not failed_faults,
    }
    if sc.max_false_reports is not None:
        v.invariants[f"false reports <= {sc.max_false_reports}"] = len(false_reports) <= sc.max_false_reports
    if r.bookings is not None:
        from hil.booking_verdict import judge_bookings

        numbers, invariants = judge_bookings(r.bookings, r.fog_alerts, fog, cloud, r.t_collect_epoch, win)
        v.numbers["reservations"] = numbers
        v.invariants.update(invariants)
    fog.close()
    cloud.close()
    return v
