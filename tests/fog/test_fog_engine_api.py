"""The lot engine's HTTP routes on a running daemon: answers after commit, 4xx JSON, counted refusals."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from fog_engine_harness import demo_lot_text, write_lot

from fog.admission import Reception
from fog.config import DEMO_FOG_CONFIG, load_fog_config
from fog.daemon import FogDaemon
from proto import frame as fr

HOUR_MS = 3_600_000


class Client:
    """HTTP to a daemon, plus frames straight into its cycle queue (as an ingest backend does)."""

    def __init__(self, daemon: FogDaemon) -> None:
        self.daemon = daemon
        self.url = f"http://127.0.0.1:{daemon.api_port}"
        self.fcnt: dict[int, int] = {}
        self.node_of = {n.spot: n for n in daemon.cfg.nodes.values()}

    async def call(self, method: str, path: str, body: Any = None, data: str | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as s, s.request(method, self.url + path, json=body, data=data,
                                                            headers=headers) as r:
            return r.status, (await r.json() if r.content_type == "application/json" else await r.text())

    async def frames(self, states: dict[str, int]) -> None:
        """Send one occupancy frame per spot and wait until the cycle has applied them all."""
        engine = self.daemon.engine
        for spot, state in states.items():
            node = self.node_of[spot]
            self.fcnt[node.node_id] = self.fcnt.get(node.node_id, 0) + 1
            payload = fr.occupancy_payload(state, fr.FLAG_RANGE_CONFIRMED, 30, 40, 25)
            raw = fr.encode_frame(fr.OCCUPANCY, node.node_id, self.fcnt[node.node_id], payload, node.key)
            engine.submit(Reception(raw, "test", received_ms=int(time.time() * 1000)))
        cycles = engine.cycles
        while engine.queue or engine.cycles < cycles + 2:
            await asyncio.sleep(0.01)


@pytest.fixture
async def client(fog) -> Client:  # type: ignore[no-untyped-def]
    return Client(fog.daemon)


async def _daemon(tmp_path: Path, lot_text: str) -> AsyncIterator[Client]:
    cfg = load_fog_config(DEMO_FOG_CONFIG)
    cfg = dataclasses.replace(cfg, lot=write_lot(tmp_path, lot_text), data_dir=tmp_path / "fog", api_port=0,
                              cloud=None, serial=())
    daemon = FogDaemon(cfg)
    task = asyncio.create_task(daemon.run(install_signals=False))
    while daemon.api_port is None:
        await asyncio.sleep(0.01)
    yield Client(daemon)
    daemon.stop_event.set()
    await asyncio.wait_for(task, 10)


@pytest.fixture
async def auction_lot(tmp_path: Path) -> AsyncIterator[Client]:
    text = demo_lot_text('[tariff]\nplan = "fixed"\nrate_per_hour = 2\ncurrency = "EUR"\n[tariff.auction]\n'
                         'zone = "S"\nfloor = 50\ncap = 500\n', subscriber_zone=True)
    async for c in _daemon(tmp_path, text):
        yield c


async def test_selection_through_the_api_never_returns_an_occupied_held_or_unhealthy_spot(client: Client) -> None:
    rng = random.Random(7)
    spots = sorted(client.node_of)
    given: set[str] = set()  # answered spots stay held for their guided vehicles until they park
    for _round in range(6):
        states = {s: rng.choice((fr.OCCUPIED, fr.EMPTY, fr.EMPTY, fr.UNKNOWN)) for s in spots}
        await client.frames(states)
        given -= {s for s, state in states.items() if state == fr.OCCUPIED}  # a vehicle parked there
        _, listing = await client.call("GET", "/v1/lots/demo/spots")
        free = {s["spot"] for s in listing if s["state"] == "empty" and not s["tamper"]}
        for _ in range(4):
            status, body = await client.call("POST", "/v1/lots/demo/select", {"entrance": "entrance"})
            if status == 409:
                assert not (free - given) and body["where"] == "lot"
                continue
            assert status == 200, body
            assert body["spot"] in free and body["spot"] not in given
            assert body["path"][0] == "entrance" and body["eta_s"] > 0 and 0 <= body["congestion"] <= 1
            given.add(body["spot"])
    assert len(given) >= 6


async def test_bad_requests_get_a_4xx_json_change_nothing_and_are_counted(client: Client) -> None:
    now = int(time.time() * 1000)
    await client.frames({s: fr.EMPTY for s in client.node_of})
    cases = [
        ("POST", "/v1/lots/demo/select", {"entrance": "JA0"}, 400, "body.entrance"),
        ("POST", "/v1/lots/demo/select", {}, 400, "body.entrance"),
        ("POST", "/v1/lots/nope/select", {"entrance": "entrance"}, 404, "path.lot"),
        ("POST", "/v1/lots/demo/reservations", {"start": now + 2 * HOUR_MS, "hours": 2}, 422, "body.start"),
        ("POST", "/v1/lots/demo/reservations", {"start": "tomorrow", "hours": 2}, 400, "body.start"),
        ("POST", "/v1/lots/demo/reservations", {"kind": "booking", "hours": 0}, 422, "body.hours"),
        ("POST", "/v1/lots/demo/reservations", {"kind": "booking", "hours": 1, "card_uid": "xyz"}, 400,
         "body.card_uid"),
        ("POST", "/v1/lots/demo/reservations/r-none/cancel", None, 404, "path.id"),
        ("POST", "/v1/lots/demo/auction/bids", {"client": "a", "amount": 10}, 409, "lot"),
        ("GET", "/v1/lots/demo/quote?hours=-1", None, 422, "query.hours"),
        ("GET", "/v1/lots/demo/availability?at=yesterday", None, 400, "query.at"),
    ]
    for method, path, body, status, where in cases:
        got, answer = await client.call(method, path, body)
        assert (got, answer["where"]) == (status, where), (path, answer)
        assert answer["error"]
    got, answer = await client.call("POST", "/v1/lots/demo/select", data="{not json")
    assert (got, answer["where"]) == (400, "body")
    assert client.daemon.store.count("reservations") == 0 and not client.daemon.engine.lot_engine.guided
    _, stats = await client.call("GET", "/v1/stats")
    assert stats["bad_requests"] == {"400": 6, "404": 2, "409": 1, "422": 3}
    _, engine = await client.call("GET", "/v1/lots/demo/engine")
    assert engine["refused"]["unknown_entrance"] == 1 and engine["refused"]["lead_time"] == 1
    _, metrics = await client.call("GET", "/metrics")
    assert 'fogpark_requests_refused_total{reason="lead_time",route="/v1/lots/{lot}/reservations"} 1.0' in metrics


async def test_booking_routes_quote_and_availability(client: Client) -> None:
    await client.frames({s: fr.OCCUPIED if s < "A05" else fr.EMPTY for s in client.node_of})  # A01..A04
    status, q = await client.call("GET", "/v1/lots/demo/quote?hours=3")
    assert status == 200 and q["total"] == 4.85 and q["billed_hours"] == 3
    status, booking = await client.call("POST", "/v1/lots/demo/reservations",
                                        {"kind": "booking", "hours": 2, "plate": "ab 123"})
    assert status == 201 and booking["plate"] == "AB123" and booking["spot_id"] == "A05"
    rid = booking["id"]
    status, avail = await client.call("GET", "/v1/lots/demo/availability")
    assert (avail["occupied"], avail["free"], avail["unreserved_free"], avail["state"]) == (4, 20, 19, "S5")
    status, body = await client.call("POST", f"/v1/lots/demo/reservations/{rid}/extend", {"hours": 1})
    assert status == 200 and body["extension"] == {"hours": 1, "charge": 1.42} and body["charged"] == 4.85
    status, body = await client.call("POST", f"/v1/lots/demo/reservations/{rid}/checkin", {"plate": "AB123"})
    assert status == 200 and body["status"] == "checked_in"
    status, body = await client.call("POST", f"/v1/lots/demo/reservations/{rid}/cancel")
    assert (status, body["where"]) == (409, "path.id")
    status, listed = await client.call("GET", "/v1/lots/demo/reservations?status=checked_in")
    assert [r["id"] for r in listed] == [rid]
    status, got = await client.call("GET", f"/v1/lots/demo/reservations/{rid}")
    assert status == 200 and got["extension_hours"] == 1
    start = int(time.time() * 1000) + 4 * HOUR_MS
    status, fc = await client.call("GET", f"/v1/lots/demo/availability?at={start}")
    assert fc["forecast"]["reserved_overlapping"] == 0 and fc["forecast"]["model"]["source"] == "persistence"
    status, res = await client.call("POST", "/v1/lots/demo/reservations", {"start": start, "hours": 1})
    assert status == 201 and res["probability"] == 1.0
    status, fc = await client.call("GET", f"/v1/lots/demo/availability?at={start + 60_000}")
    assert fc["forecast"]["reserved_overlapping"] == 1
    status, history = await client.call("GET", "/v1/lots/demo/statistics?limit=5")
    assert status == 200 and history["window_s"] == 900 and isinstance(history["rows"], list)


async def test_installing_a_model_needs_the_operator_token(client: Client) -> None:
    le = client.daemon.engine.lot_engine
    day, slot = le.models.key_of(time.time())
    key = f"{day}/{slot * 5 // 60:02d}{slot * 5 % 60:02d}"
    model = {"season_key": key, "matrix": [0.2] * 25, "brier": 0.31, "brier_persistence": 0.45}
    status, body = await client.call("POST", "/v1/lots/demo/models", model)
    assert (status, body["where"]) == (401, "header.Authorization")
    token = {"Authorization": f"Bearer {client.daemon.cfg.admin_token}"}
    status, body = await client.call("POST", "/v1/lots/demo/models", dict(model, season_key="weekday/0833"),
                                     headers=token)
    assert status == 400 and "5-minute slot" in body["error"]
    status, body = await client.call("POST", "/v1/lots/demo/models", model, headers=token)
    assert status == 200 and body["brier"] == 0.31
    at = int(time.time() * 1000) + 60_000
    _, avail = await client.call("GET", f"/v1/lots/demo/availability?at={at}")
    assert avail["forecast"]["model"]["source"] == "cloud"
    assert avail["forecast"]["distribution"] == pytest.approx({f"S{i}": 0.2 for i in range(1, 6)})


async def test_auction_bids_result_and_subscription(auction_lot: Client) -> None:
    c = auction_lot
    for client_id, amount in (("ann", 120), ("bob", 90), ("cat", 150.5)):
        status, bid = await c.call("POST", "/v1/lots/demo/auction/bids", {"client": client_id, "amount": amount})
        assert status == 201 and bid["amount"] == amount
    status, body = await c.call("POST", "/v1/lots/demo/auction/bids", {"client": "dan", "amount": 501})
    assert (status, body["where"]) == (422, "body.amount") and "above the cap" in body["error"]
    status, body = await c.call("POST", "/v1/lots/demo/auction/bids", {"client": "eve", "amount": 49.99})
    assert status == 422 and "below the floor" in body["error"]
    status, result = await c.call("GET", "/v1/lots/demo/auction")
    assert (result["rate"], result["revenue"], result["currency"]) == (120.0, 240.0, "EUR")
    assert [w["client"] for w in result["winners"]] == ["cat", "ann"] and result["bids"] == 3
    status, sub = await c.call("POST", "/v1/lots/demo/reservations", {"kind": "subscription", "client": "ann"})
    assert status == 201 and sub["zone"] == "S" and sub["price_total"] == 120.0
    status, body = await c.call("POST", "/v1/lots/demo/reservations", {"kind": "subscription", "client": "bob"})
    assert (status, body["where"]) == (409, "body.client")
    assert c.daemon.store.count("auction_bids") == 3 and c.daemon.store.count("reservations") == 1
