"""Operator HTTP API on a real socket (aiohttp test server on a free port)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cloud.config import CloudConfig
from cloud.http_api import create_app
from cloud.metrics import Counters
from cloud.queries import Operations
from cloud.store import CloudStore

HOUR_MS = 3_600_000


@pytest.fixture
def now_ms(kit: Any) -> int:
    return int(kit.T0_MS + 2 * HOUR_MS)


@pytest.fixture
def seeded(store: CloudStore, kit: Any) -> CloudStore:
    """lot-a: 120 minutes of summaries from T0 and 30 spot events in the first minute; lot-b: one summary."""
    summaries = [kit.summary(seq, window_start_ms=kit.T0_MS + (seq - 1) * 60_000, occupied=seq % 20, arrivals=1)
                 for seq in range(1, 121)]
    store.ingest_batch(kit.batch(kit.FOG_A, summaries))
    events = [kit.spot_event(seq, spot=f"A-{seq - 120:02d}", at_ms=kit.T0_MS + (seq - 120) * 1000)
              for seq in range(121, 151)]
    store.ingest_batch(kit.batch(kit.FOG_A, events))
    store.ingest_batch(kit.batch(kit.FOG_B, [kit.summary(1, lot=kit.LOT_B, window_start_ms=kit.T0_MS, occupied=3)]))
    return store


@pytest.fixture
async def http(
    seeded: CloudStore, counters: Counters, now_ms: int, config: CloudConfig, kit: Any
) -> AsyncIterator[TestClient]:
    ops = Operations(seeded, seeded, config, clock=lambda: now_ms)
    async with TestClient(TestServer(create_app(ops, counters)),
                          headers={"Authorization": f"Bearer {kit.READ_TOKEN}"}) as client:
        yield client


async def test_lots(http: TestClient, kit: Any) -> None:
    response = await http.get("/v1/lots")
    assert response.status == 200
    lots = await response.json()
    assert [(lot["lot_id"], lot["window_start_ms"], lot["occupied"]) for lot in lots] == [
        (kit.LOT_A, kit.T0_MS + 119 * 60_000, 0), (kit.LOT_B, kit.T0_MS, 3)]


async def test_history_json(http: TestClient, kit: Any) -> None:
    response = await http.get(f"/v1/lots/{kit.LOT_A}/history", params={"since": "3h", "until": "now"})
    assert response.status == 200
    body = await response.json()
    assert (body["lot_id"], body["count"], body["truncated"]) == (kit.LOT_A, 30, False)
    assert body["since_ms"] == kit.T0_MS - HOUR_MS
    first = body["events"][0]
    assert (first["spot_id"], first["at_ms"], first["state"], first["node_id"], first["rssi_dbm"]) == (
        "A-01", kit.T0_MS + 1000, "occupied", 17, -97)


async def test_history_default_window_is_the_last_hour(http: TestClient, kit: Any) -> None:
    body = await (await http.get(f"/v1/lots/{kit.LOT_A}/history")).json()
    assert (body["count"], body["since_ms"], body["until_ms"]) == (0, kit.T0_MS + HOUR_MS, kit.T0_MS + 2 * HOUR_MS)


async def test_history_csv_and_limit(http: TestClient, kit: Any) -> None:
    response = await http.get(f"/v1/lots/{kit.LOT_A}/history",
                              params={"since": "2024-05-01T07:00:00Z", "format": "csv", "limit": "5"})
    assert response.status == 200
    assert response.content_type == "text/csv"
    assert response.headers["X-FogPark-Truncated"] == "true"
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert [r["spot_id"] for r in rows] == ["A-01", "A-02", "A-03", "A-04", "A-05"]
    assert rows[0]["at"] == "2024-05-01T08:00:01.000Z"
    assert rows[0]["fcnt"] == "121"


async def test_summaries(http: TestClient, kit: Any) -> None:
    response = await http.get(f"/v1/lots/{kit.LOT_A}/summaries", params={"since": "2h", "bucket": "1h"})
    assert response.status == 200
    body = await response.json()
    assert body["bucket_s"] == 3600
    buckets = body["buckets"]
    assert [(b["bucket_start_ms"], b["samples"], b["arrivals"]) for b in buckets] == [
        (kit.T0_MS, 60, 60), (kit.T0_MS + HOUR_MS, 60, 60)]
    assert buckets[0]["mean_occupied"] == pytest.approx(sum(s % 20 for s in range(1, 61)) / 60)


async def test_healthz_and_metrics(http: TestClient, seeded: CloudStore, counters: Counters) -> None:
    assert (await http.get("/healthz")).status == 200
    counters.inc("fogpark_cloud_records_stored_total", 7)
    response = await http.get("/metrics")
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await response.text()
    assert "fogpark_cloud_records_stored_total 7" in text
    assert "# TYPE fogpark_cloud_rejected_total counter" in text
    seeded.close()
    response = await http.get("/healthz")
    assert response.status == 503
    assert (await response.json())["status"] == "error"


@pytest.mark.parametrize(
    ("path", "params", "where", "reason"),
    [
        ("history", {"since": "10x"}, "since", "bad_since"),
        ("history", {"until": "yesterday"}, "until", "bad_until"),
        ("history", {"since": "now", "until": "1h"}, "since", "bad_since"),
        ("history", {"format": "xml"}, "format", "bad_format"),
        ("history", {"limit": "0"}, "limit", "bad_limit"),
        ("history", {"limit": "lots"}, "limit", "bad_limit"),
        ("history", {"sinse": "1h"}, "sinse", "unknown_parameter"),
        ("summaries", {"bucket": "0s"}, "bucket", "bad_bucket"),
        ("summaries", {"bucket": "1s", "since": "4w"}, "bucket", "bad_bucket"),
        ("summaries", {"limit": "5"}, "limit", "unknown_parameter"),
        ("summaries", {"format": "xml"}, "format", "bad_format"),
    ],
)
async def test_bad_parameters_are_400_with_where_and_counted(
    http: TestClient, counters: Counters, kit: Any, path: str, params: dict[str, str], where: str, reason: str
) -> None:
    response = await http.get(f"/v1/lots/{kit.LOT_A}/{path}", params=params)
    assert response.status == 400
    body = await response.json()
    assert body["where"] == where
    assert body["error"]
    surface = f"http./v1/lots/{{lot}}/{path}"
    assert counters.value("fogpark_cloud_rejected_total", surface=surface, reason=reason) == 1
    assert f'reason="{reason}"' in await (await http.get("/metrics")).text()


async def test_repeated_parameter_is_refused(http: TestClient, kit: Any) -> None:
    response = await http.get(f"/v1/lots/{kit.LOT_A}/history?since=1h&since=2h")
    assert response.status == 400
    assert (await response.json())["where"] == "since"


async def test_lots_takes_no_parameters(http: TestClient) -> None:
    response = await http.get("/v1/lots", params={"lot": "a"})
    assert response.status == 400
    assert "known: none" in (await response.json())["error"]
