"""Operator API: token roles, every operator view over one seeded store, bookings to the fog and back, NGSI-LD."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cloud.config import CloudConfig, parse_config
from cloud.http_api import create_app
from cloud.metrics import Counters
from cloud.queries import Operations
from cloud.service import ServerHandle
from cloud.store import CloudStore
from proto import parking_pb2 as pb

HOUR_MS = 3_600_000
MIN_MS = 60_000
REJECTED = "fogpark_cloud_rejected_total"


def _reservation(seq: int, rid: str, plan: str, status: str, start_ms: int, price: float, late: float = 0.0,
                 lot: str = "lot-a", source: str = "fog") -> pb.Record:
    return pb.Record(seq=seq, reservation=pb.Reservation(
        lot_id=lot, reservation_id=rid, spot_id="A-01", plan=plan, status=status, start_ms=start_ms,
        end_ms=start_ms + HOUR_MS, price_total=price, late_charge=late, updated_ms=start_ms, source=source))


@pytest.fixture
def now_ms(kit: Any) -> int:
    return int(kit.T0_MS + 2 * HOUR_MS)


@pytest.fixture
def seeded(store: CloudStore, kit: Any, now_ms: int) -> CloudStore:
    """lot-a: two hours of minutes, arrivals, reservations of every kind, alerts, node health; lot-b: one minute."""
    t0 = kit.T0_MS
    records = [pb.Record(seq=i + 1, summary=pb.LotSummary(
        lot_id=kit.LOT_A, window_start_ms=t0 + i * MIN_MS, window_s=60, capacity=20, occupied=5 + i % 10,
        free=15 - i % 10, arrivals=1, concentration=(5 + i % 10) / 20, price_per_hour=2.0 + (i // 60) * 0.5,
        mean_interarrival_s=float("nan"))) for i in range(120)]
    seq = 121
    for offset_s, state in ((60, "occupied"), (120, "occupied"), (200, "empty"), (300, "occupied")):
        records.append(kit.spot_event(seq, at_ms=now_ms - 600_000 + offset_s * 1000, state=state,
                                      spot=f"A-{seq % 10:02d}"))
        seq += 1
    for rid, plan, status, start, price, late in (
        ("r1", "hybrid_short", "completed", t0, 10.0, 2.0),
        ("r2", "occupancy", "admitted", t0 + HOUR_MS, 24.0, 0.0),       # superseded by the next record
        ("r2", "occupancy", "checked_in", t0 + HOUR_MS, 24.0, 0.0),
        ("r3", "occupancy", "admitted", now_ms - 4 * HOUR_MS, 24.0, 0.0),   # past the 3 h window: overdue
        ("r4", "occupancy", "no_show", now_ms - 5 * HOUR_MS, 24.0, 0.0),
        ("r5", "fixed", "cancelled", t0, 5.0, 0.0),
        ("r6", "occupancy", "admitted", now_ms + HOUR_MS, 30.0, 0.0),       # future: pending revenue
    ):
        records.append(_reservation(seq, rid, plan, status, start, price, late))
        seq += 1
    records += [
        pb.Record(seq=seq, alert=pb.Alert(lot_id=kit.LOT_A, alert_id="al-1", kind="node_silent", spot_id="A-02",
                                          first_seen_ms=now_ms - HOUR_MS, last_seen_ms=now_ms - MIN_MS)),
        pb.Record(seq=seq + 1, alert=pb.Alert(lot_id=kit.LOT_A, alert_id="al-2", kind="tamper",
                                              first_seen_ms=t0, last_seen_ms=t0 + MIN_MS, cleared_ms=t0 + MIN_MS)),
        pb.Record(seq=seq + 2, node_health=pb.NodeHealth(lot_id=kit.LOT_A, node_id=17, spot_id="A-01",
                                                         last_seen_ms=now_ms - MIN_MS, battery_mv=3600)),
        pb.Record(seq=seq + 3, node_health=pb.NodeHealth(lot_id=kit.LOT_A, node_id=18, spot_id="A-02",
                                                         last_seen_ms=now_ms - 2 * HOUR_MS, battery_mv=3100)),
    ]
    store.ingest_batch(kit.batch(kit.FOG_A, records))
    store.ingest_batch(kit.batch(kit.FOG_B, [pb.Record(seq=1, summary=pb.LotSummary(
        lot_id=kit.LOT_B, window_start_ms=now_ms - 5 * MIN_MS, window_s=60, capacity=10, occupied=7, free=3,
        concentration=0.7, price_per_hour=1.0))]))
    return store


def _client(store: CloudStore, config: CloudConfig, counters: Counters, now_ms: int,
            token: str | None) -> TestClient:
    ops = Operations(store, store, config, clock=lambda: now_ms)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return TestClient(TestServer(create_app(ops, counters)), headers=headers)


@pytest.fixture
async def read(seeded: CloudStore, config: CloudConfig, counters: Counters, now_ms: int,
               kit: Any) -> AsyncIterator[TestClient]:
    async with _client(seeded, config, counters, now_ms, kit.READ_TOKEN) as client:
        yield client


@pytest.fixture
async def admin(seeded: CloudStore, config: CloudConfig, counters: Counters, now_ms: int,
                kit: Any) -> AsyncIterator[TestClient]:
    async with _client(seeded, config, counters, now_ms, kit.ADMIN_TOKEN) as client:
        yield client


# ---- authentication and roles ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "status", "reason"),
    [(None, 401, "missing_token"), ("not-a-token-at-all", 401, "bad_token"),
     ("token-a-0123456789", 401, "bad_token")],  # a fog's gRPC token is not an operator token
    ids=["no-token", "wrong-token", "fog-token"],
)
async def test_requests_without_a_valid_token_are_refused_and_counted(
    seeded: CloudStore, config: CloudConfig, counters: Counters, now_ms: int, token: str | None, status: int,
    reason: str,
) -> None:
    async with _client(seeded, config, counters, now_ms, token) as client:
        for path in ("/v1/city/lots", "/v1/lots", "/v1/nodes", "/v1/ngsi-ld/entities"):
            response = await client.get(path)
            assert response.status == status, path
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert (await response.json())["where"] == "authorization"
        assert counters.value(REJECTED, surface="http./v1/city/lots", reason=reason) == 1


async def test_read_only_token_cannot_call_admin_endpoints_and_nothing_changes(
    read: TestClient, seeded: CloudStore, counters: Counters, kit: Any, now_ms: int
) -> None:
    body = {"lot_id": kit.LOT_A, "start": "2024-05-01T12:00:00Z", "end": "2024-05-01T13:00:00Z"}
    for method, path in (("POST", "/v1/bookings"), ("POST", "/v1/models/train"),
                         ("POST", f"/v1/models/{kit.LOT_A}/push")):
        response = await read.request(method, path, json=body)
        assert response.status == 403, path
        assert "role 'read'" in (await response.json())["error"]
    assert seeded.bookings() == [] and seeded.updates_after(kit.FOG_A, 0) == []
    assert seeded.model_reports() == []
    assert counters.value(REJECTED, surface="http./v1/bookings", reason="forbidden") == 1


async def test_whoami_names_the_operator_and_role(read: TestClient, admin: TestClient) -> None:
    assert await (await read.get("/v1/whoami")).json() == {"operator": "viewer", "role": "read"}
    assert await (await admin.get("/v1/whoami")).json() == {"operator": "boss", "role": "admin"}


async def test_health_metrics_and_dashboard_are_public(
    seeded: CloudStore, config: CloudConfig, counters: Counters, now_ms: int
) -> None:
    async with _client(seeded, config, counters, now_ms, None) as client:
        assert (await client.get("/healthz")).status == 200
        assert (await client.get("/metrics")).status == 200
        page = await client.get("/dashboard/")
        assert page.status == 200 and "default-src 'none'" in page.headers["Content-Security-Policy"]
        assert (await client.get("/dashboard/app.js")).content_type == "text/javascript"
        assert (await client.get("/dashboard/../cloud.example.toml")).status == 404
        assert (await client.get("/", allow_redirects=False)).headers["Location"] == "/dashboard/"


async def test_anonymous_read_allows_gets_only(
    seeded: CloudStore, counters: Counters, now_ms: int, config_dict: dict[str, Any], kit: Any
) -> None:
    config = parse_config({**config_dict, "http": {"anonymous_read": True}}, "tests", environ={})
    async with _client(seeded, config, counters, now_ms, None) as client:
        assert (await client.get("/v1/city/lots")).status == 200
        assert (await client.get("/v1/whoami")).status == 200
        response = await client.post("/v1/bookings", json={"lot_id": kit.LOT_A})
        assert response.status == 401
    assert seeded.bookings() == []


# ---- views ----------------------------------------------------------------------------------------


async def test_city_view(read: TestClient, kit: Any, now_ms: int) -> None:
    body = await (await read.get("/v1/city/lots")).json()
    lots = {lot["lot_id"]: lot for lot in body["lots"]}
    a, b = lots[kit.LOT_A], lots[kit.LOT_B]
    assert (a["name"], a["capacity"], a["occupied"], a["free"], a["price_per_hour"], a["currency"]) == (
        "Lot A", 20, 14, 6, 2.5, "SAR")
    assert (a["updated_ms"], a["stale"], a["lat"], a["fogs"]) == (now_ms, False, 21.4225, kit.FOG_A)
    assert (b["free"], b["stale"]) == (3, False)


async def test_occupancy_with_price_as_json_and_csv(read: TestClient, kit: Any) -> None:
    body = await (await read.get(f"/v1/lots/{kit.LOT_A}/summaries", params={"since": "2h", "bucket": "1h"})).json()
    assert [(b["samples"], b["mean_price_per_hour"], b["capacity"]) for b in body["buckets"]] == [
        (60, 2.0, 20), (60, 2.5, 20)]
    assert body["buckets"][0]["mean_free"] == pytest.approx(15 - 4.5)
    response = await read.get(f"/v1/lots/{kit.LOT_A}/summaries", params={"since": "2h", "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert [r["bucket_start"] for r in rows] == ["2024-05-01T08:00:00.000Z", "2024-05-01T09:00:00.000Z"]
    assert rows[1]["mean_price_per_hour"] == "2.5"


async def test_stats_concentration_and_interarrival(read: TestClient, kit: Any) -> None:
    body = await (await read.get(f"/v1/lots/{kit.LOT_A}/stats", params={"since": "15m"})).json()
    (row,) = body["stats"]
    assert row["concentration_now"] == 0.7  # 14 of 20
    assert row["spot_arrivals"] == 3
    assert row["mean_interarrival_s"] == 120.0  # arrivals at 60, 120, 300 s: (300 - 60) / 2
    assert row["concentration_peak"] == 0.7 and row["summary_minutes"] == 15
    one = await (await read.get(f"/v1/lots/{kit.LOT_A}/stats", params={"since": "9m"})).json()
    assert one["stats"][0]["mean_interarrival_s"] is not None
    none = await (await read.get(f"/v1/lots/{kit.LOT_A}/stats", params={"since": "5m"})).json()
    assert (none["stats"][0]["spot_arrivals"], none["stats"][0]["mean_interarrival_s"]) == (1, None)
    missing = await read.get("/v1/lots/nowhere/stats")
    assert missing.status == 404 and (await missing.json())["where"] == "lot"


async def test_revenue_per_plan(read: TestClient, kit: Any) -> None:
    body = await (await read.get("/v1/revenue", params={"lot": kit.LOT_A, "since": "7d", "until": "2024-05-03T00:00:00Z"})).json()
    plans = {p["plan"]: p for p in body["plans"]}
    assert plans["hybrid_short"]["revenue"] == 12.0 and plans["hybrid_short"]["late_charges"] == 2.0
    occ = plans["occupancy"]
    assert (occ["reservations"], occ["checked_in"], occ["admitted"], occ["no_show"]) == (4, 1, 2, 1)
    assert (occ["revenue"], occ["pending"], occ["mean_price"]) == (24.0, 54.0, 24.0)
    assert plans["fixed"]["cancelled"] == 1 and plans["fixed"]["revenue"] == 0.0
    assert (body["revenue_total"], body["currency"]) == (36.0, "SAR")


async def test_reservations_filter_and_bad_status(read: TestClient, kit: Any) -> None:
    body = await (await read.get("/v1/reservations", params={"status": "admitted", "until": "2024-05-03T00:00:00Z"})).json()
    assert [r["reservation_id"] for r in body["reservations"]] == ["r3", "r6"]
    bad = await read.get("/v1/reservations", params={"status": "maybe"})
    assert bad.status == 400 and (await bad.json())["where"] == "status"


async def test_no_shows_recorded_and_overdue(read: TestClient) -> None:
    body = await (await read.get("/v1/no-shows", params={"since": "1d"})).json()
    assert {(r["reservation_id"], r["no_show"]) for r in body["no_shows"]} == {("r4", "recorded"), ("r3", "overdue")}
    assert (body["recorded"], body["overdue"]) == (1, 1)


async def test_alerts_active_and_csv(read: TestClient) -> None:
    body = await (await read.get("/v1/alerts", params={"active": "true"})).json()
    assert [a["alert_id"] for a in body["alerts"]] == ["al-1"]
    text = await (await read.get("/v1/alerts", params={"format": "csv"})).text()
    assert [r["alert_id"] for r in csv.DictReader(io.StringIO(text))] == ["al-1", "al-2"]


async def test_node_health_across_the_city(read: TestClient) -> None:
    body = await (await read.get("/v1/nodes")).json()
    nodes = {n["node_id"]: n for n in body["nodes"]}
    assert (nodes[17]["silent"], nodes[17]["battery_low"], nodes[17]["age_s"]) == (False, False, 60)
    assert (nodes[18]["silent"], nodes[18]["battery_low"]) == (True, True)
    assert (body["count"], body["silent"], body["battery_low"]) == (2, 1, 1)


async def test_recommend_ranks_lots_for_a_destination(read: TestClient, kit: Any) -> None:
    # Next to lot-b: lot-b wins on distance and price, lot-a on free spots; equal weights favour lot-b.
    body = await (await read.get("/v1/recommend", params={"lat": "21.4301", "lon": "39.8301"})).json()
    assert [r["lot_id"] for r in body["ranking"]] == [kit.LOT_B, kit.LOT_A]
    best = body["ranking"][0]
    assert (best["distance_score"], best["price_score"], best["free_spots_score"]) == (1.0, 1.0, 0.0)
    assert best["utility"] == pytest.approx(2 / 3, abs=1e-6)
    # A driver who cares only about free spots.
    only_free = await (await read.get("/v1/recommend", params={
        "lat": "21.4301", "lon": "39.8301", "w_distance": "0", "w_price": "0", "w_free": "1"})).json()
    assert only_free["ranking"][0]["lot_id"] == kit.LOT_A
    local = await (await read.get("/v1/recommend", params={"x_m": "0", "y_m": "0"})).json()
    assert local["ranking"] == [] and {e["reason"] for e in local["excluded"]} == {
        "position uses the other kind of coordinates"}


@pytest.mark.parametrize(
    ("params", "where"),
    [({"lat": "21.4"}, "destination"), ({"lat": "91", "lon": "0"}, "lat"), ({"lat": "x", "lon": "0"}, "lat"),
     ({"lat": "0", "lon": "0", "w_price": "-1"}, "w_price"),
     ({"lat": "0", "lon": "0", "w_distance": "0", "w_price": "0", "w_free": "0"}, "weights")],
)
async def test_recommend_refuses_bad_input(read: TestClient, params: dict[str, str], where: str) -> None:
    response = await read.get("/v1/recommend", params=params)
    assert response.status == 400
    assert (await response.json())["where"] == where


async def test_recommend_leaves_out_stale_lots(
    seeded: CloudStore, config: CloudConfig, counters: Counters, now_ms: int, kit: Any
) -> None:
    async with _client(seeded, config, counters, now_ms + 20 * MIN_MS, kit.READ_TOKEN) as client:
        body = await (await client.get("/v1/recommend", params={"lat": "21.43", "lon": "39.83"})).json()
    assert body["ranking"] == []
    assert {e["reason"] for e in body["excluded"]} == {"summary older than max_summary_age"}


# ---- NGSI-LD -------------------------------------------------------------------------------------


async def test_ngsi_ld_entities_have_the_smart_data_model_shape(read: TestClient, kit: Any) -> None:
    response = await read.get("/v1/ngsi-ld/entities")
    assert response.content_type == "application/ld+json"
    entities = await response.json()
    lots = [e for e in entities if e["type"] == "OffStreetParking"]
    spots = [e for e in entities if e["type"] == "ParkingSpot"]
    assert {e["id"] for e in lots} == {f"urn:ngsi-ld:OffStreetParking:{kit.LOT_A}",
                                       f"urn:ngsi-ld:OffStreetParking:{kit.LOT_B}"}
    for entity in entities:
        assert entity["id"].startswith(f"urn:ngsi-ld:{entity['type']}:")
        assert "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld" in entity["@context"]
        assert entity["location"]["type"] == "GeoProperty"
        assert entity["location"]["value"]["type"] == "Point"
    lot_a = next(e for e in lots if e["id"].endswith(kit.LOT_A))
    for attribute in ("id", "type", "location", "name", "totalSpotNumber", "availableSpotNumber"):
        assert attribute in lot_a
    assert lot_a["location"]["value"]["coordinates"] == [39.8262, 21.4225]  # GeoJSON: lon, lat
    assert (lot_a["availableSpotNumber"]["type"], lot_a["availableSpotNumber"]["value"]) == ("Property", 6)
    assert lot_a["availableSpotNumber"]["observedAt"].endswith("Z")
    assert lot_a["priceRatePerMinute"]["value"] == pytest.approx(2.5 / 60, abs=1e-6)
    assert spots
    for spot in spots:
        for attribute in ("id", "type", "location", "status", "category", "refParkingSite"):
            assert attribute in spot, attribute
        assert spot["status"]["value"] in ("free", "occupied", "unknown", "closed")
        assert spot["refParkingSite"] == {"type": "Relationship", "object": f"urn:ngsi-ld:OffStreetParking:{kit.LOT_A}"}
        assert spot["category"]["value"] == ["offStreet"]
    only_spots = await (await read.get("/v1/ngsi-ld/entities", params={"type": "ParkingSpot"})).json()
    assert {e["type"] for e in only_spots} == {"ParkingSpot"}
    one = await read.get(f"/v1/ngsi-ld/entities/urn:ngsi-ld:OffStreetParking:{kit.LOT_B}")
    assert (await one.json())["availableSpotNumber"]["value"] == 3
    assert (await read.get("/v1/ngsi-ld/entities/urn:ngsi-ld:OffStreetParking:nope")).status == 404
    assert (await read.get("/v1/ngsi-ld/entities", params={"type": "Car"})).status == 400


# ---- bookings: cloud -> fog -> cloud over real gRPC ---------------------------------------------


async def test_booking_is_forwarded_and_a_refusal_comes_back(
    server: ServerHandle, fog_a: Any, db_path: Any, config: CloudConfig, counters: Counters, kit: Any
) -> None:
    http_store = CloudStore(db_path)
    try:
        ops = Operations(http_store, http_store, config, clock=lambda: kit.T0_MS)
        async with TestClient(TestServer(create_app(ops, counters)),
                              headers={"Authorization": f"Bearer {kit.ADMIN_TOKEN}"}) as admin:
            made = []
            for start, end in (("2024-05-01T12:00:00Z", "2024-05-01T14:00:00Z"),
                               ("2024-05-01T15:00:00Z", "2024-05-01T16:00:00Z")):
                response = await admin.post("/v1/bookings", json={
                    "lot_id": kit.LOT_A, "plan": "occupancy", "start": start, "end": end,
                    "plate": "AB 123", "card_uid_hex": "04a1b2c3"})
                assert response.status == 201, await response.text()
                made.append(await response.json())
            assert [b["status"] for b in made] == ["forwarded", "forwarded"]
            # The fog receives both on its stream, as CloudUpdate.booking ...
            stream = fog_a.subscribe(0)
            got = [await asyncio.wait_for(stream.read(), 5) for _ in range(2)]
            stream.cancel()
            assert [u.booking.booking_id for u in got] == [b["booking_id"] for b in made]
            assert (got[0].booking.plate, got[0].booking.card_uid_hex) == ("AB 123", "04a1b2c3")
            # ... admits the first, refuses the second, and says so with Reservation records.
            first, second = made
            await fog_a.push(kit.batch(kit.FOG_A, [
                _reservation(1, first["booking_id"], "occupancy", "admitted", first["start_ms"], 24.0, source="cloud"),
                _reservation(2, second["booking_id"], "occupancy", "refused", second["start_ms"], 0.0,
                             source="cloud")]))
            body = await (await admin.get("/v1/bookings")).json()
            status = {b["booking_id"]: b["status"] for b in body["bookings"]}
            assert status == {first["booking_id"]: "admitted", second["booking_id"]: "refused"}
            assert body["by_status"] == {"admitted": 1, "refused": 1}
            text = await (await admin.get("/v1/bookings", params={"format": "csv"})).text()
            assert "refused" in text and "AB 123" not in text  # plates are not shown in lists
    finally:
        http_store.close()


@pytest.mark.parametrize(
    ("body", "where", "status"),
    [({"lot_id": "lot-z", "start": "2024-05-01T12:00:00Z", "end": "2024-05-01T13:00:00Z"}, "lot_id", 404),
     ({"lot_id": "lot-a", "start": "2024-05-01T07:00:00Z", "end": "2024-05-01T09:00:00Z"}, "start", 400),
     ({"lot_id": "lot-a", "start": "2024-05-01T12:00:00Z", "end": "2024-05-01T11:00:00Z"}, "end", 400),
     ({"lot_id": "lot-a", "start": "tomorrow", "end": "2024-05-01T13:00:00Z"}, "start", 400),
     ({"lot_id": "lot-a", "start": "2024-05-01T12:00:00Z", "end": "2024-05-01T13:00:00Z", "plan": "vip"}, "plan",
      400),
     ({"lot_id": "lot-a", "start": "2024-05-01T12:00:00Z", "end": "2024-05-01T13:00:00Z", "plate": "ab'1"},
      "plate", 400),
     ({"lot_id": "lot-a", "start": "2024-05-01T12:00:00Z", "end": "2024-05-01T13:00:00Z", "color": "red"},
      "color", 400)],
)
async def test_bad_bookings_are_refused_and_nothing_is_queued(
    store: CloudStore, config: CloudConfig, counters: Counters, kit: Any, body: dict[str, str], where: str,
    status: int,
) -> None:
    ops = Operations(store, store, config, clock=lambda: kit.T0_MS)
    async with TestClient(TestServer(create_app(ops, counters)),
                          headers={"Authorization": f"Bearer {kit.ADMIN_TOKEN}"}) as admin:
        response = await admin.post("/v1/bookings", json=body)
        assert response.status == status
        assert (await response.json())["where"] == where
        not_json = await admin.post("/v1/bookings", data=b"{not json")
        assert (await not_json.json())["where"] == "body"
    assert store.bookings() == [] and store.updates_after(kit.FOG_A, 0) == []
