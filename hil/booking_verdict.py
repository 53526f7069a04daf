"""The verdict on a scenario's bookings: what each should have become against what the fog and cloud recorded.

Expectations follow the fog's rules (ALGORITHMS.md §3-5, §8; ``fog/lot_engine.py``):

* a booking is held a spot when it is made, a reservation ``hold_before_s``
  before its start; a reservation inside the lead time is refused (422);
* without a credential the occupancy of the held spot is the check-in; with
  a card it is the card on the bay's reader, and a car without one raises
  ``unverified_occupancy`` after ``checkin_grace_s``;
* checked in more than ``grace_s`` after the start: a late charge (> 0);
* nobody checked in within ``waiting_window_s`` of the start: ``no_show``,
  the spot released at that deadline; a cancelled one is ``cancelled``;
* a checked-in car that leaves completes it;
* the cloud's last record of each is the fog's (or that record still waits
  in the fog's outbox).

All times compared are the fog's own (``start_ms``, ``checked_in_ms``,
``updated_ms``) against the ground truth (when the bench parked the car).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from hil.bookings import BookingDriver, BookingRun
from proto import parking_pb2 as pb

DEADLINE_TOLERANCE_S = 5.0  # a deadline's record may lag it by a cycle, a commit, a fog restart


def _expected(run: BookingRun, d: BookingDriver, t_collect: float) -> tuple[str, ...]:
    """The statuses the booking may have at the end of the run."""
    b = run.spec
    assert run.start is not None
    window = d.policy_wall.get("waiting_window_s", 3 * 3600.0)
    past_window = run.start + window + DEADLINE_TOLERANCE_S <= t_collect
    if b.cancel_after_s is not None:
        return ("cancelled",)
    if run.arrived is None or (b.card_uid and not b.badge) or run.arrived > run.start + window:
        return ("no_show",) if past_window else ("admitted",)
    if run.left is not None:
        return ("completed",)
    return ("checked_in",)


def judge_one(run: BookingRun, d: BookingDriver, alerts: list[dict[str, Any]], t_collect: float,
              window_s: float) -> dict[str, Any]:
    """One booking's row in the verdict: what happened, what was expected, what broke."""
    b = run.spec
    f = run.final
    out: dict[str, Any] = {"index": run.index, "kind": b.kind, "id": run.id, "spot": run.spot,
                           "http": run.http_status, "status": f.get("status"), "detail": f.get("detail"),
                           "card": bool(b.card_uid), "badge": b.badge if b.card_uid else None,
                           "late_charge": f.get("late_charge"), "problems": list(run.notes)}
    bad = out["problems"]
    if b.expect == "refused":
        out["expected"] = ["refused"]
        if run.http_status is not None and 400 <= run.http_status < 500:
            out["status"] = "refused"
            out["detail"] = run.answer.get("error")
        else:
            bad.append(f"expected a refusal, the fog answered {run.http_status}")
        return out
    if run.http_status != 201:
        bad.append(f"expected 201, the fog answered {run.http_status}: {run.answer.get('error')}")
        return out
    if run.spot is None or run.start is None:
        bad.append("no spot was held")
        return out
    planned = run.start + b.arrive_after_s / d.acc if b.arrive_after_s is not None else None
    if planned is not None and run.arrived is None and planned < d.stopped_at:
        bad.append("the booked car never parked on its held spot (another car on it?)")
    expected = _expected(run, d, t_collect)
    out["expected"] = list(expected)
    if f.get("status") not in expected:
        bad.append(f"status {f.get('status')!r}, expected {' or '.join(expected)}")
    if f.get("spot_id") != run.spot:
        bad.append(f"the fog's record names spot {f.get('spot_id')!r}, the car was sent to {run.spot!r}")
    window = d.policy_wall.get("waiting_window_s", 3 * 3600.0)
    if f.get("status") == "no_show" and f.get("updated_ms") is not None:
        lag = int(f["updated_ms"]) / 1000 - (run.start + window)
        out["no_show_lag_s"] = round(lag, 2)
        if not -1.0 <= lag <= DEADLINE_TOLERANCE_S:
            bad.append(f"no-show recorded {lag:+.1f} s from start + waiting_window_s")
    if f.get("checked_in_ms") is not None and run.arrived is not None:
        delay = int(f["checked_in_ms"]) / 1000 - run.arrived
        out["checkin_delay_s"] = round(delay, 2)
        if not -1.0 <= delay <= window_s:
            bad.append(f"checked in {delay:+.1f} s from the car's arrival")
        late = (int(f["checked_in_ms"]) - int(f["start_ms"])) / 1000 > d.policy_wall.get("grace_s", 3600.0)
        if late != (float(f.get("late_charge") or 0) > 0):
            bad.append(f"late charge {f.get('late_charge')} for a check-in "
                       f"{'after' if late else 'within'} grace_s of the start")
        if b.card_uid and "card" not in str(f.get("detail")):
            bad.append(f"a card booking checked in otherwise: {f.get('detail')!r}")
    if b.card_uid and not b.badge and run.arrived is not None:
        grace = d.policy_wall.get("checkin_grace_s", 300.0)
        raised = any(a.get("kind") == "unverified_occupancy" and a.get("spot_id") == run.spot for a in alerts)
        out["unverified_alert"] = raised
        if run.arrived + grace + DEADLINE_TOLERANCE_S <= t_collect and not raised:
            bad.append("a car without the card on the held spot raised no unverified_occupancy alert")
    return out


def cloud_agrees(runs: list[BookingRun], fog: sqlite3.Connection, cloud: sqlite3.Connection) -> list[str]:
    """Bookings whose final fog state is neither the cloud's last record nor waiting in the outbox."""
    waiting: dict[str, str] = {}
    for kind, body in fog.execute("SELECT kind, body FROM outbox ORDER BY rowid"):
        if kind == "reservation":
            msg = pb.Reservation.FromString(body)
            waiting[msg.reservation_id] = msg.status
    missing = []
    for run in runs:
        if not run.id or not run.final:
            continue
        row = cloud.execute("SELECT status FROM reservations WHERE reservation_id = ? ORDER BY seq DESC LIMIT 1",
                            [run.id]).fetchone()
        if (row is None or row[0] != run.final.get("status")) and waiting.get(run.id) != run.final.get("status"):
            missing.append(f"{run.id}: fog {run.final.get('status')!r}, cloud {row[0] if row else None!r}")
    return missing


def judge_bookings(d: BookingDriver, alerts: list[dict[str, Any]], fog: sqlite3.Connection,
                   cloud: sqlite3.Connection, t_collect: float, window_s: float) -> tuple[dict[str, Any],
                                                                                        dict[str, bool]]:
    """(numbers, invariants) for the verdict."""
    rows = [judge_one(run, d, alerts, t_collect, window_s) for run in d.runs]
    not_in_cloud = cloud_agrees(d.runs, fog, cloud)
    numbers = {
        "bookings": rows,
        "statuses": {s: sum(1 for r in rows if str(r.get("status")) == s) for s in
                     sorted({str(r.get("status")) for r in rows})},
        "selection_probes": d.probes,
        "selection_probe_errors": d.probe_errors,
        "held_spots_handed_out": d.held_handed_out,
        "not_in_cloud": not_in_cloud,
        "policy_wall_s": d.policy_wall,
    }
    invariants = {
        "bookings behave as booked": all(not r["problems"] for r in rows),
        "selection never hands out a held spot": not d.held_handed_out and d.probes > 0,
        "every booking's last state in the cloud": not not_in_cloud,
    }
    return numbers, invariants
