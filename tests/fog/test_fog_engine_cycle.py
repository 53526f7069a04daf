"""The lot engine inside the real cycle: selection, bookings, admission, no-shows, §8 rules, §1 history."""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path

import pytest
from fog_engine_harness import Harness, demo_lot_text, generated_lot, write_lot

from fog.config import LotPolicy
from proto import frame as fr

OCCUPANCY_20 = {"plan": "occupancy", "operating_cost": 20, "k": 0.5}


# ---------------------------------------------------------------- selection
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_selection_never_returns_an_occupied_held_or_unhealthy_spot(tmp_path: Path, seed: int) -> None:
    """Random sensor traffic, tamper, unknown states and silent nodes; every answer is checked against
    the lot as the fog knows it and against the fastest route to every eligible spot."""
    policy = LotPolicy(heartbeat_s=600)  # silent after 20 min
    h = Harness(tmp_path, dataclasses.replace(write_lot(tmp_path, demo_lot_text()), policy=policy))
    rng = random.Random(seed)
    spots = sorted(h.node_of)
    h.set_states({s for s in spots if rng.random() < 0.5})
    answered = 0
    for step in range(120):
        spot = rng.choice(spots)
        roll = rng.random()
        if roll < 0.45:
            h.frame(spot, state=rng.choice((fr.OCCUPIED, fr.EMPTY)))
        elif roll < 0.5:
            h.frame(spot, state=fr.UNKNOWN)
        elif roll < 0.55:
            h.frame(spot, fr.DIAGNOSTIC, payload=fr.diagnostic_payload(
                rng.choice((fr.DIAG_RANGE_BLIND, fr.DIAG_TAMPER_CLEARED)), 0, 0))
        if step == 60:  # half the nodes go quiet: after 2 x 600 s those still quiet are silent
            for s in spots:
                if rng.random() < 0.7:
                    h.frame(s, fr.HEARTBEAT, state=fr.EMPTY)
            h.cycle(1300)
        h.cycle(0.5)
        le = h.lot_engine
        assert le.selector is not None and not h.engine.queue  # every frame so far is applied
        state = h.engine.state.spots
        eligible = [s for s in spots if state[s].state == "empty" and not state[s].tamper
                    and s not in le.holder and le.spot_node[s] not in le.silence.silent]
        etas = {s: le.selector.route("entrance", s).eta_s for s in eligible}  # type: ignore[union-attr]
        out = await h.ask("select", {"entrance": "entrance"})
        if out.status == 409:
            assert not eligible and out.reason == "lot_full"
            continue
        answered += 1
        chosen = out.body["spot"]
        assert chosen in eligible, (chosen, state[chosen], le.holder.get(chosen))
        assert le.holder[chosen].startswith("guide:")  # held for the guided vehicle from now on
        assert out.body["eta_s"] == pytest.approx(min(etas.values()), abs=1e-9)
        assert out.body["path"][0] == "entrance" and out.body["path"][-1] == chosen
        if rng.random() < 0.5:  # the guided vehicle parks
            h.frame(chosen, state=fr.OCCUPIED)
    assert answered > 20
    assert h.count("reservations") == 0  # selections are not bookings


async def test_unknown_entrance_and_full_lot_are_refused_with_nothing_changed(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.set_states(set(h.node_of))  # every spot occupied
    outbox = h.count("outbox")
    out = await h.ask("select", {"entrance": "JA0"})
    assert (out.status, out.reason, out.body["where"]) == (400, "unknown_entrance", "body.entrance")
    out = await h.ask("select", {"entrance": "entrance"})
    assert (out.status, out.reason) == (409, "lot_full")
    out = await h.ask("reserve", {"kind": "booking", "hours": 2})
    assert (out.status, out.reason) == (409, "lot_full")
    assert h.count("reservations") == 0 and h.count("outbox") == outbox and not h.lot_engine.guided


async def test_guidance_counts_the_vehicle_on_its_path_until_it_parks_or_times_out(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.set_states(set())
    first = (await h.ask("select", {"entrance": "entrance", "vehicle": "car1"})).body
    sel = h.lot_engine.selector
    assert sel is not None and sel.edge_vehicles("entrance", "JA0") == 1
    second = (await h.ask("select", {"entrance": "entrance", "vehicle": "car2"})).body
    assert second["spot"] != first["spot"] and sel.edge_vehicles("entrance", "JA0") == 2
    h.frame(first["spot"], state=fr.OCCUPIED)
    h.cycle(1)
    assert sel.edge_vehicles("entrance", "JA0") == 1 and first["spot"] not in h.lot_engine.holder
    h.cycle(h.cfg.lot.policy.guidance_timeout_s)  # car2 never arrives
    assert sel.edge_vehicles("entrance", "JA0") == 0 and second["spot"] not in h.lot_engine.holder
    assert sel.is_eligible(second["spot"])


# ---------------------------------------------------------------- bookings and pricing
async def test_occupancy_booking_late_arrival_and_extension_follow_the_worked_example(tmp_path: Path) -> None:
    """§4.3 through the fog: OC 20, k 0.5, 100 spots, 40 occupied → 24.00; arriving after the grace
    with 50 occupied → LC 12.00; one more hour with 60 occupied → 38.40."""
    h = Harness(tmp_path, generated_lot(100, OCCUPANCY_20))
    spots = sorted(h.node_of)
    h.set_states(set(spots[:40]))
    out = await h.ask("reserve", {"kind": "booking", "hours": 1})
    assert out.status == 201, out.body
    r = out.body
    assert (r["price_per_hour"], r["price_total"], r["occupancy_at_booking"]) == (24.0, 24.0, 0.4)
    spot = r["spot_id"]
    assert spot not in spots[:40] and h.lot_engine.holder[spot] == f"res:{r['id']}"
    others = [s for s in spots[40:] if s != spot]
    h.cycle(2 * 3600 - 60)  # 1 h 59 min later: past the 1 h grace, inside the 3 h window
    for s in others[:9]:
        h.frame(s, state=fr.OCCUPIED)
    h.frame(spot, state=fr.OCCUPIED)  # no card or plate: occupancy of the held spot is the check-in
    h.cycle()
    r = h.lot_engine.reservation(r["id"])
    assert r is not None and r["status"] == "checked_in" and r["late_charge"] == 12.0
    for s in others[9:19]:
        h.frame(s, state=fr.OCCUPIED)
    h.cycle()
    out = await h.ask("extend", {"id": r["id"], "hours": 1})
    assert out.status == 200 and out.body["extension"] == {"hours": 1, "charge": 38.4}
    h.frame(spot, state=fr.EMPTY)  # leaves inside the extended end: no overstay
    h.cycle(600)
    done = h.lot_engine.reservation(r["id"])
    assert done is not None and done["status"] == "completed" and done["final_charge"] == 74.4  # 24 + 12 + 38.4
    assert spot not in h.lot_engine.holder
    assert [(m.status, m.price_total) for m in h.outbox("reservation")] == [
        ("admitted", 24.0), ("checked_in", 36.0), ("checked_in", 74.4), ("completed", 74.4)]


async def test_card_booking_checks_in_by_rfid_and_bills_an_overstay(tmp_path: Path) -> None:
    h = Harness(tmp_path)  # demo: hybrid P_F 2, P_s 1.5, d 0.05, r 2, N 3
    h.set_states(set())
    r = (await h.ask("reserve", {"kind": "booking", "hours": 2, "card_uid": "04A1B2C3"})).body
    spot = r["spot_id"]
    assert r["price_total"] == 3.43  # 2 + 1.5 - 1 x 0.05 x 1.5 = 3.425, half-up
    assert (await h.ask("select", {"entrance": "entrance"})).body["spot"] != spot  # the hold is respected
    h.frame(spot, state=fr.OCCUPIED)
    h.cycle(20)
    assert h.lot_engine.reservation(r["id"])["status"] == "admitted"  # type: ignore[index]
    h.card(spot, "04a1b2c3")
    h.cycle(20)
    got = h.lot_engine.reservation(r["id"])
    assert got is not None and got["status"] == "checked_in" and got["checked_in_ms"] == h.now - 40_000
    h.advance(2.5 * 3600 - 40)  # leaves 30 min past the booked 2 h: one started hour more (4.85 - 3.425)
    h.frame(spot, state=fr.EMPTY)
    h.cycle()
    done = h.lot_engine.reservation(r["id"])
    assert done is not None and done["status"] == "completed" and done["final_charge"] == 4.85


async def test_a_booking_is_answered_only_after_its_commit(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.set_states(set())
    real_commit = h.store.commit_cycles
    failures = []

    def failing_commit(ws):  # type: ignore[no-untyped-def]
        if any(w.reservations for w in ws) and not failures:
            failures.append(1)
            raise OSError("disk full")
        real_commit(ws)

    h.store.commit_cycles = failing_commit  # type: ignore[method-assign]
    future = h.lot_engine.submit("reserve", {"kind": "booking", "hours": 1}, now_ms=h.now)
    h.cycle()
    assert failures and not future.done() and h.count("reservations") == 0
    assert h.lot_engine.stats()["held_spots"] == 0  # rebuilt from the store: the hold is gone too
    h.cycle()
    assert future.done() and future.result().status == 201
    assert h.count("reservations") == 1 and h.lot_engine.stats()["held_spots"] == 1


# ---------------------------------------------------------------- advance reservations (§3, §5)
async def test_reservation_admission_lead_time_and_theta(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.set_states(set(sorted(h.node_of)[:20]))  # 4 of 24 free: ratio 0.17, state S1
    hour = 3_600_000
    out = await h.ask("reserve", {"kind": "reservation", "start_ms": h.now + 2 * hour, "hours": 1})
    assert (out.status, out.reason, out.body["where"]) == (422, "lead_time", "body.start")
    assert "at least 10800 s" in out.body["error"]
    out = await h.ask("reserve", {"kind": "reservation", "start_ms": h.now + 4 * hour, "hours": 1})
    # persistence in S1 = [0, 4.8) free spots: P(at least one free) = (4.8 - 1) / 4.8 = 0.79 < 0.9
    assert (out.status, out.reason) == (409, "availability") and "0.792" in out.body["error"]
    assert h.count("reservations") == 0
    h.set_states(set(sorted(h.node_of)[:4]))  # 20 free: S5
    out = await h.ask("reserve", {"kind": "reservation", "start_ms": h.now + 4 * hour, "hours": 1})
    assert out.status == 201 and out.body["probability"] == 1.0 and out.body["spot_id"] is None
    assert h.lot_engine.book.overlapping(h.now + 4 * hour + 1) == 1


async def test_reservation_hold_starts_before_and_a_no_show_releases_it(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.set_states(set())
    start = h.now + 4 * 3_600_000
    r = (await h.ask("reserve", {"kind": "reservation", "start_ms": start, "hours": 2, "plate": "AB-123"})).body
    h.cycle(3 * 3600 + 44 * 60)  # 16 min before the start: not held yet
    assert not any(o.startswith("res:") for o in h.lot_engine.holder.values())
    h.cycle(60)  # 15 min before: held
    spot = h.lot_engine.book.live[r["id"]].spot_id
    assert spot is not None and h.lot_engine.holder[spot] == f"res:{r['id']}"
    h.cycle(15 * 60 + 3 * 3600 - 0.001)  # 1 ms before the window closes
    assert h.lot_engine.reservation(r["id"])["status"] == "admitted"  # type: ignore[index]
    h.cycle(0.001)
    got = h.lot_engine.reservation(r["id"])
    assert got is not None and got["status"] == "no_show" and spot not in h.lot_engine.holder
    assert h.outbox("reservation")[-1].status == "no_show"
    out = await h.ask("cancel", {"id": r["id"]})
    assert (out.status, out.reason) == (409, "not_live")


async def test_reservation_vehicle_is_routed_to_its_spot_and_checked_in_by_plate(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.set_states(set())
    r = (await h.ask("reserve", {"kind": "booking", "hours": 1, "plate": "AB-123"})).body
    # Everything but two far spots fills up; its own spot stays routable for it alone.
    held = r["spot_id"]
    h.set_states(set(h.node_of) - {held, "B12"})
    other = await h.ask("select", {"entrance": "entrance"})
    assert other.body["spot"] == "B12"
    mine = await h.ask("select", {"entrance": "entrance", "reservation": r["id"]})
    assert mine.body["spot"] == held and mine.body["reservation"] == r["id"]
    h.frame(held, state=fr.OCCUPIED)
    h.cycle(30)
    out = await h.ask("checkin", {"id": r["id"], "plate": "ZZ-999"})
    assert (out.status, out.reason) == (409, "plate_mismatch")
    out = await h.ask("checkin", {"id": r["id"], "plate": "AB-123"})
    assert out.status == 200 and out.body["status"] == "checked_in" and out.body["checked_in_ms"] == h.now - 30_000


# ---------------------------------------------------------------- §8 rules
async def test_node_silent_is_raised_once_and_cleared_when_heard(tmp_path: Path) -> None:
    lot = dataclasses.replace(write_lot(tmp_path, demo_lot_text()), policy=LotPolicy(heartbeat_s=60))
    h = Harness(tmp_path, lot)
    h.set_states(set())
    for spot in h.node_of:
        if spot != "A01":
            h.frame(spot, fr.HEARTBEAT, state=fr.EMPTY)
    h.cycle(100)
    for spot in h.node_of:
        if spot != "A01":
            h.frame(spot, fr.HEARTBEAT, state=fr.EMPTY)
    h.cycle(21)  # A01 last heard 121 s ago: more than 2 x 60 s
    h.cycle(30)
    alerts = [a for a in h.outbox("alert") if a.kind == "node_silent"]
    assert [(a.spot_id, a.cleared_ms) for a in alerts] == [("A01", 0)]
    assert not h.lot_engine.selector.is_eligible("A01")  # type: ignore[union-attr]
    assert (await h.ask("select", {"entrance": "entrance"})).body["spot"] != "A01"
    h.frame("A01", fr.HEARTBEAT, state=fr.EMPTY)
    h.cycle()
    alerts = [a for a in h.outbox("alert") if a.kind == "node_silent"]
    assert len(alerts) == 2 and alerts[-1].cleared_ms == h.now
    assert h.engine.alerts[alerts[0].alert_id]["cleared_ms"] == h.now
    assert h.lot_engine.selector.is_eligible("A01")  # type: ignore[union-attr]


async def test_held_spot_occupied_without_check_in_raises_unverified_occupancy(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.set_states(set())
    r = (await h.ask("reserve", {"kind": "booking", "hours": 1, "card_uid": "01020304"})).body
    spot = r["spot_id"]
    h.frame(spot, state=fr.OCCUPIED)
    h.cycle(299)
    assert not [a for a in h.outbox("alert") if a.kind == "unverified_occupancy"]
    h.cycle(2)  # past the 300 s check-in grace
    h.cycle(60)
    raised = [a for a in h.outbox("alert") if a.kind == "unverified_occupancy"]
    assert [(a.spot_id, a.cleared_ms) for a in raised] == [(spot, 0)]
    h.card(spot, "01020304")  # the card comes, late
    h.cycle()
    raised = [a for a in h.outbox("alert") if a.kind == "unverified_occupancy"]
    assert len(raised) == 2 and raised[-1].cleared_ms > 0
    assert h.lot_engine.reservation(r["id"])["status"] == "checked_in"  # type: ignore[index]


async def test_occupancy_while_closed_alerts_unless_a_vehicle_was_guided(tmp_path: Path) -> None:
    text = demo_lot_text().replace('opening_hours = "00:00-24:00"', 'opening_hours = "00:00-00:01"')
    h = Harness(tmp_path, write_lot(tmp_path, text))
    if h.lot_engine.hours.is_open(h.now):  # the one open minute of the day
        h.advance(120)
    h.set_states(set())
    guided = (await h.ask("select", {"entrance": "entrance"})).body["spot"]
    h.frame(guided, state=fr.OCCUPIED)
    h.frame("B05", state=fr.OCCUPIED)
    h.cycle()
    closed = [a for a in h.outbox("alert") if a.kind == "closed_occupancy"]
    assert [(a.spot_id, a.cleared_ms) for a in closed] == [("B05", 0)]
    h.frame("B05", state=fr.EMPTY)
    h.cycle()
    assert h.outbox("alert")[-1].cleared_ms == h.now


# ---------------------------------------------------------------- auction and subscriptions
AUCTION_LOT = """[tariff]
plan = "fixed"
rate_per_hour = 2
[tariff.auction]
zone = "S"
floor = 50
cap = 500
"""


async def test_auction_winners_subscribe_and_subscribers_are_not_routed(tmp_path: Path) -> None:
    h = Harness(tmp_path, write_lot(tmp_path, demo_lot_text(AUCTION_LOT, subscriber_zone=True)))
    h.set_states(set())
    for client, amount in (("ann", 120), ("bob", 90), ("cat", 150)):
        assert (await h.ask("bid", {"client": client, "amount": amount})).status == 201
    out = await h.ask("bid", {"client": "dan", "amount": 600})
    assert (out.status, out.reason, out.body["where"]) == (422, "bid_out_of_range", "body.amount")
    assert h.count("auction_bids") == 3
    result = h.lot_engine.auction()
    assert (result["rate"], result["revenue"], [w["client"] for w in result["winners"]]) == (120.0, 240.0,
                                                                                            ["cat", "ann"])
    out = await h.ask("reserve", {"kind": "subscription", "client": "bob"})
    assert (out.status, out.reason) == (409, "not_a_winner")
    sub = await h.ask("reserve", {"kind": "subscription", "client": "ann", "card_uid": "0a0b0c0d"})
    assert sub.status == 201 and sub.body["price_total"] == 120.0 and sub.body["zone"] == "S"
    out = await h.ask("select", {"entrance": "entrance", "reservation": sub.body["id"]})
    assert (out.status, out.reason) == (409, "subscriber")
    for _ in range(22):  # everyone else fills the lot; the subscriber spots are never given out
        out = await h.ask("select", {"entrance": "entrance"})
        assert out.status == 200 and out.body["spot"] not in ("A12", "B12")
    assert (await h.ask("select", {"entrance": "entrance"})).reason == "lot_full"
    h.frame("A12", state=fr.OCCUPIED)
    h.card("A12", "0a0b0c0d")
    h.frame("B12", state=fr.OCCUPIED)  # nobody checks in here
    h.cycle(400)
    h.cycle()
    alerts = {a.spot_id for a in h.outbox("alert") if a.kind == "unverified_occupancy"}
    assert alerts == {"B12"}


# ---------------------------------------------------------------- §1 history, summaries, restart, models
async def test_statistics_history_and_lot_summary_carry_section_1_and_the_price(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.set_states(set())
    window_ms = int(h.cfg.lot.policy.stats_window_s * 1000)
    h.now = (h.now // window_ms + 1) * window_ms + 1000  # just after a window boundary
    h.cycle()
    t0 = h.now
    for offset, spot in ((0, "A01"), (60, "A02"), (180, "A03"), (300, "A04")):  # §1 example: λ = 100 s
        h.now = t0 + offset * 1000
        h.frame(spot, state=fr.OCCUPIED)
        h.cycle()
    h.now = (h.now // window_ms + 1) * window_ms
    h.cycle()
    row = h.store.lot_stats_page(0, 1)[0]
    assert (row["occupied"], row["capacity"], row["arrivals"]) == (4, 24, 4)
    assert row["concentration"] == pytest.approx(4 / 24) and row["mean_interarrival_s"] == pytest.approx(100.0)
    assert row["price_per_hour"] == 2.0 and row["unreserved_free"] == 20
    summaries = h.outbox("summary")  # per minute: A01 and A02 fall in different minutes
    assert summaries and all(s.price_per_hour == 2.0 and s.capacity == 24 for s in summaries)
    assert sum(s.arrivals for s in summaries) == 4
    assert all(math.isnan(s.mean_interarrival_s) for s in summaries if s.arrivals < 2)


async def test_reservations_holds_and_models_survive_a_restart(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.set_states(set())
    r = (await h.ask("reserve", {"kind": "booking", "hours": 1})).body
    matrix = [0.0, 0.0, 0.0, 0.0, 1.0] * 5  # every state goes to S5
    key = h.lot_engine.models.key_of(h.now / 1000)
    season = f"{key[0]}/{key[1] * 5 // 60:02d}{key[1] * 5 % 60:02d}"
    out = await h.ask("model", {"season_key": season, "matrix": matrix, "trained_ms": 1, "brier": 0.2,
                                "brier_persistence": 0.4})
    assert out.status == 200, out.body
    bad = await h.ask("model", {"season_key": season, "matrix": [0.5] * 25})
    assert (bad.status, bad.reason) == (400, "bad_model") and "sums to" in bad.body["error"]
    again = h.restart()
    le = again.lot_engine
    assert le.holder[r["spot_id"]] == f"res:{r['id']}" and le.reservation(r["id"])["status"] == "admitted"  # type: ignore[index]
    again.set_states(set(sorted(again.node_of)[:20]))  # S1 now
    fc = le.forecast_at(again.now + 300_000, again.now)
    assert fc["from_state"] == "S1" and fc["distribution"]["S5"] == pytest.approx(1.0)
    assert fc["model"]["source"] == "cloud" and fc["model"]["brier"] == 0.2
