"""The InfluxDB 2.x history backend.

No InfluxDB server runs in CI. What runs here, always: the exact line protocol
and Flux the official client sends, captured by an aiohttp server on 127.0.0.1
that answers like InfluxDB's /api/v2/write (204) and /api/v2/query (annotated
CSV); the parsing of those answers into the very rows the SQLite backend
returns for the same records; and the gRPC service writing to the backend
before it acknowledges, retrying through the fog's resend after a failure.
What runs only with a real server (INFLUX_URL, INFLUX_TOKEN, INFLUX_ORG,
INFLUX_BUCKET set): the same records written to SQLite and to InfluxDB, and
every history query compared between the two.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp import web

from cloud.auth import FogRegistry
from cloud.config import HistorySettings, InfluxSettings
from cloud.influx import (
    InfluxHistory,
    batch_lines,
    flux_string,
    latest_summaries_flux,
    point_time_ns,
    record_line,
    spot_history_flux,
    summaries_flux,
)
from cloud.service import serve
from cloud.store import CloudStore
from proto import parking_pb2 as pb

HOUR_MS = 3_600_000


@dataclass
class FakeInflux:
    """Records every request; answers writes with 204 (or 503 while ``fail_writes``) and queries from a queue."""

    writes: list[dict[str, Any]] = field(default_factory=list)
    queries: list[dict[str, Any]] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    fail_writes: int = 0
    url: str = ""

    async def write(self, request: web.Request) -> web.Response:
        self.writes.append({"params": dict(request.query), "auth": request.headers.get("Authorization"),
                            "lines": (await request.text()).split("\n")})
        if self.fail_writes:
            self.fail_writes -= 1
            return web.json_response({"code": "unavailable", "message": "test says no"}, status=503)
        return web.Response(status=204)

    async def query(self, request: web.Request) -> web.Response:
        self.queries.append({"params": dict(request.query), "auth": request.headers.get("Authorization"),
                             "body": await request.json()})
        return web.Response(text=self.answers.pop(0) if self.answers else "\n", content_type="text/csv")

    async def ping(self, request: web.Request) -> web.Response:
        return web.Response(status=204)


@pytest.fixture
async def fake() -> AsyncIterator[FakeInflux]:
    influx = FakeInflux()
    app = web.Application()
    app.router.add_post("/api/v2/write", influx.write)
    app.router.add_post("/api/v2/query", influx.query)
    app.router.add_get("/ping", influx.ping)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    influx.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield influx
    await runner.cleanup()


def _settings(url: str, batch_size: int = 5000) -> InfluxSettings:
    return InfluxSettings(url=url, org="fogpark", bucket="history", token="influx-token-123", batch_size=batch_size)


@pytest.fixture
async def influx(fake: FakeInflux) -> AsyncIterator[InfluxHistory]:
    history = InfluxHistory(_settings(fake.url, batch_size=2))
    yield history
    await asyncio.to_thread(history.close)


def approx_rows(rows: Sequence[dict[str, Any]]) -> list[Any]:
    """Rows compared with float tolerance (sums come back from InfluxDB in another order of addition)."""
    return [pytest.approx(row) for row in rows]


def annotated_csv(columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]) -> str:
    """InfluxDB's annotated CSV for one table (the client's default dialect: datatype, group, default)."""
    names = ["result", "table", *(name for name, _ in columns)]
    types = ["string", "long", *(kind for _, kind in columns)]
    lines = ["#datatype," + ",".join(types), "#group," + ",".join("false" for _ in names),
             "#default,_result" + "," * (len(names) - 1), "," + ",".join(names)]
    lines += [",,0," + ",".join("" if v is None else str(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n\n"


# ---- line protocol ----------------------------------------------------------------------------


def test_line_protocol_tags_fields_and_time(kit: Any) -> None:
    summary = pb.Record(seq=7, summary=pb.LotSummary(
        lot_id="lot a", window_start_ms=kit.T0_MS, window_s=60, capacity=20, occupied=5, free=15, arrivals=3,
        departures=1, concentration=0.25, mean_interarrival_s=float("nan"), price_per_hour=2.5,
        unhealthy_sensors=0, zone="north,1"))
    assert record_line("fog=1", summary) == (
        "lot_summary,fog=fog\\=1,lot=lot\\ a,zone=north\\,1 capacity=20i,occupied=5i,free=15i,arrivals=3i,"
        "departures=1i,unhealthy_sensors=0i,window_s=60i,concentration=0.25,price_per_hour=2.5,seq=7i "
        f"{kit.T0_MS * 1_000_000 + 7}")
    event = pb.Record(seq=1_000_008, spot_event=pb.SpotEvent(
        lot_id="lot-a", spot_id='A "1"', at_ms=kit.T0_MS + 1, state="occupied", prev_duration_s=90, node_id=17,
        fcnt=1201, rssi_dbm=-97, snr_db=7.5, gateway_id=1))
    assert record_line("fog-a", event) == (
        'spot_event,fog=fog-a,lot=lot-a spot_id="A \\"1\\"",state="occupied",prev_duration_s=90i,node_id=17i,'
        f"fcnt=1201i,rssi_dbm=-97i,gateway_id=1i,snr_db=7.5,seq=1000008i {(kit.T0_MS + 1) * 1_000_000 + 8}")
    for kind in ("alert", "reservation", "node_health"):  # state-like records stay in SQLite only
        record = pb.Record(seq=1)
        getattr(record, kind).lot_id = "lot-a"
        assert record_line("fog-a", record) is None


def test_point_time_is_unique_per_record_and_stable(kit: Any) -> None:
    times = {point_time_ns(kit.T0_MS, seq) for seq in range(1, 2001)}
    assert len(times) == 2000  # 2000 records of one fog in the same millisecond keep their own points
    assert point_time_ns(kit.T0_MS, 5) == point_time_ns(kit.T0_MS, 5)  # a resend overwrites itself


def test_no_personal_or_session_ids_are_tags() -> None:
    batch = pb.Batch(fog_id="fog-a", first_seq=1, last_seq=2)
    batch.records.add(seq=1, spot_event=pb.SpotEvent(lot_id="l", spot_id="s", at_ms=1, state="empty"))
    batch.records.add(seq=2, summary=pb.LotSummary(lot_id="l", window_start_ms=1, zone="z"))
    for line in batch_lines(batch):
        tags = line.split(" ", 1)[0].split(",")[1:]
        assert {t.split("=")[0] for t in tags} <= {"fog", "lot", "zone"}


async def test_writes_are_batched_authenticated_and_exact(fake: FakeInflux, influx: InfluxHistory, kit: Any) -> None:
    batch = kit.batch(kit.FOG_A, [kit.spot_event(1), kit.spot_event(2),
                                  pb.Record(seq=3, alert=pb.Alert(lot_id=kit.LOT_A, alert_id="x")),
                                  kit.summary(4, window_start_ms=kit.T0_MS, occupied=5), kit.spot_event(5)])
    await asyncio.to_thread(influx.write_history, batch)
    assert [w["params"] for w in fake.writes] == [{"org": "fogpark", "bucket": "history", "precision": "ns"}] * 2
    assert {w["auth"] for w in fake.writes} == {"Token influx-token-123"}
    assert [w["lines"] for w in fake.writes] == [batch_lines(batch)[:2], batch_lines(batch)[2:]]
    assert [line.split(",", 1)[0] for w in fake.writes for line in w["lines"]] == [
        "spot_event", "spot_event", "lot_summary", "spot_event"]


# ---- Flux and the rows it comes back as ---------------------------------------------------------


def test_flux_strings_cannot_break_out() -> None:
    assert flux_string('a"b\\c${x}') == '"a\\"b\\\\c\\${x}"'


async def test_summaries_query_is_exact_and_parses_to_the_sqlite_rows(
    fake: FakeInflux, influx: InfluxHistory, store: CloudStore, kit: Any
) -> None:
    t0 = kit.T0_MS
    records = [kit.summary(i + 1, window_start_ms=t0 + m * 60_000, occupied=occ, arrivals=arr, capacity=cap)
               for i, (m, occ, arr, cap) in enumerate([(0, 4, 1, 20), (1, 6, 0, 20), (59, 8, 2, 20), (60, 10, 1, 30),
                                                       (61, 12, 0, 30)])]
    for r in records:
        r.summary.price_per_hour = 2.0
    store.ingest_batch(kit.batch(kit.FOG_A, records))
    expected = store.lot_summaries(kit.LOT_A, t0, t0 + 2 * HOUR_MS, 3600)
    # What InfluxDB computes for these points: per window the sums, the sample count and the max capacity.
    fake.answers.append(annotated_csv(
        [("_start", "dateTime:RFC3339"), ("_stop", "dateTime:RFC3339"), ("_time", "dateTime:RFC3339"),
         ("arrivals", "double"), ("capacity", "double"), ("concentration", "double"), ("departures", "double"),
         ("free", "double"), ("occupied", "double"), ("price_per_hour", "double"), ("samples", "double")],
        [["2024-05-01T08:00:00Z", "2024-05-01T10:00:00Z", "2024-05-01T08:00:00Z", 3, 20, 0.9, 0, 42, 18, 6, 3],
         ["2024-05-01T08:00:00Z", "2024-05-01T10:00:00Z", "2024-05-01T09:00:00Z", 1, 30, 22 / 30, 0, 38, 22, 4, 2]]))
    got = await asyncio.to_thread(influx.lot_summaries, kit.LOT_A, t0, t0 + 2 * HOUR_MS, 3600)
    assert got == approx_rows(expected)
    (sent,) = fake.queries
    assert sent["params"] == {"org": "fogpark"} and sent["auth"] == "Token influx-token-123"
    assert sent["body"]["query"] == summaries_flux("history", kit.LOT_A, "", t0, t0 + 2 * HOUR_MS, 3600)
    assert sent["body"]["dialect"]["annotations"] == ["datatype", "group", "default"]
    assert sent["body"]["query"] == """base = from(bucket: "history")
  |> range(start: 2024-05-01T08:00:00.000Z, stop: 2024-05-01T10:00:00.000Z)
  |> filter(fn: (r) => r._measurement == "lot_summary" and r.lot == "lot-a" and not exists r.zone)
  |> group(columns: ["_field"])
sums = base
  |> filter(fn: (r) => r._field == "occupied" or r._field == "free" or r._field == "arrivals" or r._field == "departures" or r._field == "concentration" or r._field == "price_per_hour")
  |> toFloat()
  |> aggregateWindow(every: 3600s, fn: sum, createEmpty: false, timeSrc: "_start")
samples = base
  |> filter(fn: (r) => r._field == "occupied")
  |> aggregateWindow(every: 3600s, fn: count, createEmpty: false, timeSrc: "_start")
  |> toFloat()
  |> set(key: "_field", value: "samples")
capacity = base
  |> filter(fn: (r) => r._field == "capacity")
  |> aggregateWindow(every: 3600s, fn: max, createEmpty: false, timeSrc: "_start")
  |> toFloat()
union(tables: [sums, samples, capacity])
  |> group()
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
  |> sort(columns: ["_time"])"""
    assert 'r.zone == "north"' in summaries_flux("history", kit.LOT_A, "north", t0, t0 + 1, 60)


async def test_spot_history_query_is_exact_and_parses_to_the_sqlite_rows(
    fake: FakeInflux, influx: InfluxHistory, store: CloudStore, kit: Any
) -> None:
    records = [kit.spot_event(1, spot="A-01"), kit.spot_event(2, spot="A-02", state="empty", rssi=-110)]
    store.ingest_batch(kit.batch(kit.FOG_A, records))
    expected = store.spot_history(kit.LOT_A, kit.T0_MS, kit.T0_MS + HOUR_MS)
    columns = [("_time", "dateTime:RFC3339Nano"), ("fog", "string"), ("lot", "string"), ("fcnt", "long"),
               ("gateway_id", "long"), ("node_id", "long"), ("prev_duration_s", "long"), ("rssi_dbm", "long"),
               ("seq", "long"), ("snr_db", "double"), ("spot_id", "string"), ("state", "string")]
    fake.answers.append(annotated_csv(columns, [
        ["2024-05-01T08:00:01.000000001Z", "fog-a", "lot-a", 1, 1, 17, 0, -97, 1, 7.5, "A-01", "occupied"],
        ["2024-05-01T08:00:02.000000002Z", "fog-a", "lot-a", 2, 1, 17, 0, -110, 2, 7.5, "A-02", "empty"]]))
    got = await asyncio.to_thread(influx.spot_history, kit.LOT_A, kit.T0_MS, kit.T0_MS + HOUR_MS, limit=5)
    assert got == expected
    assert fake.queries[0]["body"]["query"] == spot_history_flux("history", kit.LOT_A, kit.T0_MS,
                                                                 kit.T0_MS + HOUR_MS, 5)
    assert fake.queries[0]["body"]["query"].endswith('|> sort(columns: ["_time", "fog"])\n  |> limit(n: 5)')


async def test_latest_summaries_query_parses_to_the_sqlite_rows(
    fake: FakeInflux, influx: InfluxHistory, store: CloudStore, kit: Any
) -> None:
    store.ingest_batch(kit.batch(kit.FOG_A, [kit.summary(1, window_start_ms=kit.T0_MS, occupied=3),
                                            kit.summary(2, window_start_ms=kit.T0_MS + 60_000, occupied=4)]))
    expected = store.lots()
    for row in expected:
        row["price_per_hour"] = row["price_per_hour"] or 0.0
    columns = [("_time", "dateTime:RFC3339Nano"), ("fog", "string"), ("lot", "string"), ("arrivals", "long"),
               ("capacity", "long"), ("concentration", "double"), ("departures", "long"), ("free", "long"),
               ("occupied", "long"), ("price_per_hour", "double"), ("seq", "long"), ("unhealthy_sensors", "long"),
               ("window_s", "long"), ("mean_interarrival_s", "double")]
    fake.answers.append(annotated_csv(columns, [["2024-05-01T08:01:00.000000002Z", "fog-a", "lot-a", 0, 20, 0.2, 0,
                                                 16, 4, 0.0, 2, 0, 60, None]]))
    assert await asyncio.to_thread(influx.lots) == expected
    assert fake.queries[0]["body"]["query"] == latest_summaries_flux("history")


async def test_ping(fake: FakeInflux, influx: InfluxHistory) -> None:
    await asyncio.to_thread(influx.ping)
    broken = InfluxHistory(_settings("http://127.0.0.1:9"))  # discard port: nothing listens
    with pytest.raises(ConnectionError, match="does not answer"):
        await asyncio.to_thread(broken.ping)
    broken.close()


# ---- the service writes history before it acknowledges --------------------------------------------


async def test_service_writes_history_before_the_ack_and_recovers_through_a_resend(
    fake: FakeInflux, db_path: Path, registry: FogRegistry, kit: Any
) -> None:
    handle = await serve(db_path, registry, history=HistorySettings("influxdb", _settings(fake.url)))
    try:
        async with grpc.aio.insecure_channel(handle.target) as channel:
            fog = kit.client(channel, kit.FOG_A, kit.TOKEN_A)
            batch = kit.events(kit.FOG_A, 1, 3)
            assert (await fog.push(batch)).acked_seq == 3
            assert fake.writes[-1]["lines"] == batch_lines(batch)
            fake.fail_writes = 1
            second = kit.events(kit.FOG_A, 4, 6)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await fog.push(second)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "history backend unavailable" in (caught.value.details() or "")
            # The fog was not acknowledged, so it sends the batch again: the ledger has it already
            # (duplicates), and the history backend gets it this time.
            ack = await fog.push(second)
            assert (ack.acked_seq, ack.stored, ack.duplicates) == (6, 0, 3)
            assert fake.writes[-1]["lines"] == batch_lines(second)
    finally:
        await handle.stop()
    assert kit.stored_seqs(db_path, kit.FOG_A) == [1, 2, 3, 4, 5, 6]


# ---- a real InfluxDB 2.x server, when one is given ------------------------------------------------

REAL = os.environ.get("INFLUX_URL")


@pytest.mark.skipif(not REAL, reason="set INFLUX_URL, INFLUX_TOKEN, INFLUX_ORG, INFLUX_BUCKET to run against a "
                    "real InfluxDB 2.x server")
async def test_same_answers_from_sqlite_and_a_real_influxdb(store: CloudStore, kit: Any) -> None:
    settings = InfluxSettings(url=os.environ["INFLUX_URL"], org=os.environ["INFLUX_ORG"],
                              bucket=os.environ["INFLUX_BUCKET"], token=os.environ["INFLUX_TOKEN"], batch_size=500)
    lot = f"parity-{uuid.uuid4().hex[:8]}"  # fresh series each run
    t0 = kit.T0_MS
    records = [kit.summary(i + 1, lot=lot, window_start_ms=t0 + i * 60_000, occupied=i % 20, arrivals=i % 3,
                           capacity=20 + i // 200) for i in range(600)]
    records += [kit.summary(601 + i, lot=lot, zone="north", window_start_ms=t0 + i * 60_000, occupied=i % 5)
                for i in range(30)]
    records += [kit.spot_event(631 + i, lot=lot, spot=f"S{i % 7}", state=("occupied", "empty")[i % 2])
                for i in range(50)]
    for r in records[:600]:
        r.summary.price_per_hour = 1.5 + (r.seq % 4) * 0.25
        r.summary.mean_interarrival_s = 30.0 if r.seq % 2 else float("nan")
    batch = kit.batch("parity-fog", records)
    store.ingest_batch(batch)
    influx = InfluxHistory(settings)
    try:
        await asyncio.to_thread(influx.write_history, batch)
        await asyncio.to_thread(influx.write_history, batch)  # idempotent: the same points again
        for since, until, bucket, zone in ((t0, t0 + 10 * HOUR_MS, 3600, ""), (t0 + 1_234_567, t0 + 5 * HOUR_MS, 900, ""),
                                           (t0, t0 + HOUR_MS, 60, "north"), (t0, t0 + 10 * HOUR_MS, 86400, "")):
            want = store.lot_summaries(lot, since, until, bucket, zone=zone)
            got = await asyncio.to_thread(influx.lot_summaries, lot, since, until, bucket, zone=zone)
            assert got == approx_rows(want), (since, until, bucket, zone)
        want_events = store.spot_history(lot, t0, t0 + HOUR_MS, limit=40)
        assert await asyncio.to_thread(influx.spot_history, lot, t0, t0 + HOUR_MS, limit=40) == want_events
        mine = [r for r in await asyncio.to_thread(influx.lots) if r["lot_id"] == lot]
        assert mine == approx_rows([r for r in store.lots() if r["lot_id"] == lot])
    finally:
        influx.close()
