"""Fog ingest over a real pty + pyserial: accepted, refused, counted, logged once."""

from __future__ import annotations

import asyncio
import logging

import pytest

from proto import frame as fr

NODE_A01 = 0x00D30001


def _key(fog, node_id: int) -> bytes:  # type: ignore[no-untyped-def]
    return fog.daemon.cfg.nodes[node_id].key


def _occ(fog, fcnt: int, state: int, node_id: int = NODE_A01, key: bytes | None = None) -> bytes:  # type: ignore[no-untyped-def]
    payload = fr.occupancy_payload(state, fr.FLAG_RANGE_CONFIRMED, 30, 40, 25)
    return fr.encode_frame(fr.OCCUPANCY, node_id, fcnt, payload, key or _key(fog, node_id))


async def _spot(fog, spot: str) -> dict:  # type: ignore[no-untyped-def]
    status, body = await fog.get("/v1/lots/demo/spots")
    assert status == 200
    return next(s for s in body if s["spot"] == spot)


async def test_occupancy_frame_reaches_the_api(fog) -> None:  # type: ignore[no-untyped-def]
    fog.gateway.send_rx(_occ(fog, 1, fr.OCCUPIED), rssi_dbm=-101, snr_db=-3.25)

    async def occupied():  # type: ignore[no-untyped-def]
        return (await _spot(fog, "A01"))["state"] == "occupied"

    await fog.wait_for(occupied)
    spot = await _spot(fog, "A01")
    assert spot["rssi_dbm"] == -101 and spot["snr_db"] == -3.25
    status, lot = await fog.get("/v1/lots/demo")
    assert lot["occupied"] == 1 and lot["capacity"] == 24
    status, page = await fog.get("/v1/lots/demo/events")
    assert [e["fcnt"] for e in page["events"]] == [1]
    assert fog.daemon.store.count("events") == 1  # committed, not only in memory


async def test_malformed_bad_mic_and_replay_are_refused_counted_and_logged_once(fog, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.WARNING, logger="fogpark.fog.cycle")
    good = _occ(fog, 5, fr.OCCUPIED)
    fog.gateway.send_rx(good)
    fog.gateway.send_rx(bytes([0x11, 1, 2, 3]))  # malformed: too short, still a valid serial packet
    fog.gateway.send_rx(_occ(fog, 6, fr.EMPTY, key=bytes(16)))  # bad MIC: wrong key
    later = _occ(fog, 7, fr.EMPTY)
    fog.gateway.send_rx(later)
    # Replays: the earlier frame again, three times (well after the dedup check: it is not the last frame).
    for _ in range(3):
        fog.gateway.send_rx(good)

    async def all_counted():  # type: ignore[no-untyped-def]
        _, stats = await fog.get("/v1/stats")
        refused = stats["frames_refused"]
        return refused if refused.get("replay") == 3 else None

    refused = await fog.wait_for(all_counted)
    assert refused == {"too_short": 1, "bad_mic": 1, "replay": 3}
    # The good frames took effect, the bad ones changed nothing.
    assert (await _spot(fog, "A01"))["state"] == "empty"
    assert [e["fcnt"] for e in (await fog.get("/v1/lots/demo/events"))[1]["events"]] == [5, 7]
    # Logged once per node and reason, not once per frame.
    replay_logs = [r for r in caplog.records if "replay" in r.getMessage()]
    assert len(replay_logs) == 1
    # Visible in Prometheus metrics too, and the fog still serves.
    status, text = await fog.get("/metrics")
    assert 'fogpark_frames_refused_total{reason="replay"} 3.0' in text
    gauges = {ln.split()[0]: float(ln.split()[1]) for ln in text.splitlines() if ln and not ln.startswith("#")}
    assert gauges["fogpark_store_bytes"] > 0 and gauges["fogpark_disk_free_bytes"] > 0  # disk use
    assert "fogpark_commit_lag_seconds_count" in gauges and gauges["fogpark_commit_lag_seconds_count"] >= 1
    status, health = await fog.get("/healthz")
    assert status == 200
    status, alerts = await fog.get("/v1/lots/demo/alerts")
    assert {a["kind"] for a in alerts} == {"bad_mic", "replay"}
    assert next(a for a in alerts if a["kind"] == "replay")["count"] == 3


async def test_same_frame_from_two_gateways_is_one_event(fog) -> None:  # type: ignore[no-untyped-def]
    frame = _occ(fog, 1, fr.OCCUPIED)
    fog.gateway.send_rx(frame, rssi_dbm=-80)
    fog.gateway.send_rx(frame, rssi_dbm=-110)

    async def seen():  # type: ignore[no-untyped-def]
        return fog.daemon.metrics.frames_duplicate._value.get() == 1

    await fog.wait_for(seen)
    assert fog.daemon.store.count("events") == 1
    assert fog.daemon.engine.refusals == {}


async def test_garbage_on_the_line_is_survived(fog) -> None:  # type: ignore[no-untyped-def]
    fog.gateway.write_raw(bytes(range(256)) * 4)
    fog.gateway.send_rx(_occ(fog, 1, fr.OCCUPIED))

    async def occupied():  # type: ignore[no-untyped-def]
        return (await _spot(fog, "A01"))["state"] == "occupied"

    await fog.wait_for(occupied)
    assert sum(fog.daemon.link_errors.values()) >= 1


@pytest.mark.parametrize("path", ["/v1/lots/nope/spots", "/v1/nothing"])
async def test_unknown_paths_are_404_with_a_message(fog, path: str) -> None:  # type: ignore[no-untyped-def]
    status, body = await fog.get(path)
    assert status == 404 and body["error"]


async def test_bad_query_is_400(fog) -> None:  # type: ignore[no-untyped-def]
    status, body = await fog.get("/v1/lots/demo/events?limit=abc")
    assert status == 400 and body["where"] == "query.limit"
    _, stats = await fog.get("/v1/stats")
    assert stats["bad_requests"]["400"] == 1


async def test_confirmed_uplink_gets_an_ack_after_commit_and_a_replay_gets_none(fog) -> None:  # type: ignore[no-untyped-def]
    key = _key(fog, NODE_A01)
    payload = fr.occupancy_payload(fr.OCCUPIED, fr.FLAG_ACK_REQUESTED, 30, 40, 25)
    uplink = fr.encode_frame(fr.OCCUPANCY, NODE_A01, 9, payload, key)
    fog.gateway.send_rx(uplink)

    async def acks():  # type: ignore[no-untyped-def]
        return fog.gateway.read_tx()

    (pkt,) = await fog.wait_for(acks)
    assert fog.daemon.store.count("events") == 1  # the ACK came after the frame was committed
    down = fr.parse_frame(pkt["frame"])
    assert down.msg_type == fr.ACK and down.node_id == NODE_A01
    assert down.fields()["acked_fcnt16"] == 9
    # The node's first downlink: counter 0, which a node that heard none can reconstruct from 16 bits.
    assert down.fcnt16 == 0 and down.verify(key, fr.reconstruct_fcnt(down.fcnt16, -1))
    fog.gateway.send_rx(fr.encode_frame(fr.OCCUPANCY, NODE_A01, 10, payload, key))

    async def second():  # type: ignore[no-untyped-def]
        return fog.gateway.read_tx()

    (pkt2,) = await fog.wait_for(second)
    down2 = fr.parse_frame(pkt2["frame"])
    assert down2.verify(key, fr.reconstruct_fcnt(down2.fcnt16, 0)) and down2.fcnt16 == 1
    fog.gateway.send_rx(uplink)  # the same frame again, later: a replay or duplicate, never re-acked

    async def counted():  # type: ignore[no-untyped-def]
        dup = fog.daemon.metrics.frames_duplicate._value.get()
        return dup >= 1 or fog.daemon.engine.refusals.get("replay")

    await fog.wait_for(counted)
    assert fog.gateway.read_tx() == []


async def test_serial_unplug_and_replug_degrades_then_recovers(fog) -> None:  # type: ignore[no-untyped-def]
    fog.gateway.send_rx(_occ(fog, 1, fr.OCCUPIED))

    async def occupied():  # type: ignore[no-untyped-def]
        return (await _spot(fog, "A01"))["state"] == "occupied"

    await fog.wait_for(occupied)
    fog.gateway.unplug()  # the USB cable is pulled: the pty is gone

    async def degraded():  # type: ignore[no-untyped-def]
        status, health = await fog.get("/healthz")
        return health if health["status"] == "degraded" and "gateway:gw0" in health["problems"] else None

    health = await fog.wait_for(degraded)
    assert health["problems"]["gateway:gw0"]  # says what is wrong
    fog.gateway.plug()  # plugged back in (a new pty behind the same stable path)

    async def recovered():  # type: ignore[no-untyped-def]
        status, health = await fog.get("/healthz")
        return "gateway:gw0" not in health["problems"]

    await fog.wait_for(recovered, timeout=15)
    fog.gateway.send_rx(_occ(fog, 2, fr.EMPTY))

    async def empty():  # type: ignore[no-untyped-def]
        return (await _spot(fog, "A01"))["state"] == "empty"

    await fog.wait_for(empty)
    assert fog.daemon.gateways[0].reopens >= 1


async def test_tamper_flag_in_heartbeats_raises_and_clears_the_alert(fog) -> None:  # type: ignore[no-untyped-def]
    key = _key(fog, NODE_A01)
    tampered = fr.heartbeat_payload(3600, 20.0, 10, None, None, fr.EMPTY | fr.FLAG_TAMPER, 0)
    fog.gateway.send_rx(fr.encode_frame(fr.HEARTBEAT, NODE_A01, 1, tampered, key))

    async def alert():  # type: ignore[no-untyped-def]
        _, alerts = await fog.get("/v1/lots/demo/alerts")
        return [a for a in alerts if a["kind"] == "tamper"]

    (raised,) = await fog.wait_for(alert)
    assert raised["cleared_ms"] == 0 and (await _spot(fog, "A01"))["tamper"] is True
    clean = fr.heartbeat_payload(3600, 20.0, 20, None, None, fr.EMPTY, 0)
    fog.gateway.send_rx(fr.encode_frame(fr.HEARTBEAT, NODE_A01, 2, clean, key))

    async def cleared():  # type: ignore[no-untyped-def]
        found = await alert()
        return found if found and found[0]["cleared_ms"] else None

    await fog.wait_for(cleared)
    assert (await _spot(fog, "A01"))["tamper"] is False


async def test_a_read_never_shows_what_is_not_yet_committed_without_saying_so(fog, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import threading

    import aiohttp

    from fog import api

    store = fog.daemon.store
    real, entered, gate = store.commit_cycles, threading.Event(), threading.Event()

    def held(writes):  # type: ignore[no-untyped-def]  # on the writer thread
        if any(w.events for w in writes):
            entered.set()
            gate.wait(10)
        real(writes)

    store.commit_cycles = held
    loop = asyncio.get_running_loop()
    try:
        fog.gateway.send_rx(_occ(fog, 1, fr.OCCUPIED))
        assert await asyncio.to_thread(entered.wait, 5)
        async with aiohttp.ClientSession() as s:
            async with s.get(fog.url + "/v1/lots/demo") as r:  # waits SETTLE_S (50 ms), answers, flagged
                assert r.headers.get("X-FogPark-Pending-Commits") == "1"
            monkeypatch.setattr(api, "SETTLE_S", 5.0)
            loop.call_later(0.2, gate.set)
            t0 = loop.time()
            async with s.get(fog.url + "/v1/lots/demo") as r:  # waits for the commit, then reads
                waited = loop.time() - t0
                body = await r.json()
            assert "X-FogPark-Pending-Commits" not in r.headers and waited >= 0.15
            assert body["occupied"] == 1 and store.count("events") == 1
    finally:
        gate.set()
        store.commit_cycles = real
