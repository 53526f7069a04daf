"""Cloud ingest and history-query benchmark; prints numbers and ratios against the targets.

1. Ingest: 50 concurrent fog clients (each its own fog id, token and lot, registered in
   a temp config) push batches of per-minute LotSummary records over real gRPC to one
   `fogpark-cloud serve` process with a temp SQLite store. Target >= 5000 records/s.
2. History: one year of per-minute summaries for one lot (525,600 rows, inserted through
   CloudStore), then the hourly-aggregated query over the whole year. Target <= 200 ms.
   Also printed: the same query cut mid-hour, and 30-minute buckets (which cannot use the
   hourly rollup and read raw minutes through the covering index), without a target.

Bounded: the ingest phase stops after INGEST_LIMIT_S even if batches remain.
Run: .venv/bin/python bench/bench_cloud_ingest.py
"""

from __future__ import annotations

import asyncio
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from cloud.store import CloudStore
from proto import parking_pb2 as pb
from proto import parking_pb2_grpc

FOGS = 50
BATCHES_PER_FOG = 12
RECORDS_PER_BATCH = 500
INGEST_LIMIT_S = 25.0
TARGET_RECORDS_PER_S = 5000
YEAR_MINUTES = 525_600
TARGET_QUERY_MS = 200.0
QUERY_RUNS = 7
T0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def summaries_batch(fog_id: str, lot_id: str, first_seq: int, count: int) -> pb.Batch:
    """``count`` consecutive per-minute summaries, seqs first_seq.., as a fog would send them."""
    batch = pb.Batch(fog_id=fog_id, first_seq=first_seq, last_seq=first_seq + count - 1)
    for seq in range(first_seq, first_seq + count):
        occupied = (seq * 7) % 120
        batch.records.add(seq=seq, summary=pb.LotSummary(
            lot_id=lot_id, window_start_ms=T0_MS + (seq - 1) * 60_000, window_s=60, capacity=120,
            occupied=occupied, free=120 - occupied, arrivals=seq % 4, departures=seq % 3,
            concentration=occupied / 120, mean_interarrival_s=40.0, price_per_hour=2.5,
        ))
    return batch


def write_config(path: Path) -> dict[str, str]:
    tokens = {f"bench-fog-{i:02d}": secrets.token_urlsafe(24) for i in range(FOGS)}
    lines = []
    for fog_id, token in tokens.items():
        lines += [f"[fogs.{fog_id}]", f'token = "{token}"', f'lots = ["lot-{fog_id[-2:]}"]', ""]
    path.write_text("\n".join(lines))
    return tokens


async def fog_client(target: str, fog_id: str, token: str, batches: list[pb.Batch], deadline: float,
                     latencies: list[float]) -> int:
    """Push this fog's batches in order, as one fog does; returns records acknowledged."""
    metadata = (("x-fogpark-fog", fog_id), ("authorization", f"Bearer {token}"))
    acked = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = parking_pb2_grpc.FogSyncStub(channel)
        for batch in batches:
            if time.perf_counter() > deadline:
                break
            started = time.perf_counter()
            ack = await stub.PushBatch(batch, metadata=metadata, timeout=30)
            latencies.append(time.perf_counter() - started)
            if ack.acked_seq != batch.last_seq or ack.stored != len(batch.records):
                raise RuntimeError(f"{fog_id}: unexpected ack {ack} for {batch.first_seq}..{batch.last_seq}")
            acked += ack.stored
    return acked


async def run_ingest(target: str, tokens: dict[str, str]) -> tuple[int, float, list[float]]:
    plans = {
        fog_id: [summaries_batch(fog_id, f"lot-{fog_id[-2:]}", 1 + b * RECORDS_PER_BATCH, RECORDS_PER_BATCH)
                 for b in range(BATCHES_PER_FOG)]
        for fog_id in tokens
    }
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + INGEST_LIMIT_S
    stored = await asyncio.gather(*(fog_client(target, fog_id, tokens[fog_id], plans[fog_id], deadline, latencies)
                                    for fog_id in tokens))
    return sum(stored), time.perf_counter() - started, latencies


def bench_ingest(tmp: Path) -> None:
    tokens = write_config(tmp / "cloud.toml")
    db = tmp / "ingest.db"
    server = subprocess.Popen(
        [sys.executable, "-m", "cloud.cli", "serve", "--config", str(tmp / "cloud.toml"), "--db", str(db),
         "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0", "--log-level", "warning"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        match = re.search(r"gRPC on (\S+) ", line)
        if not match:
            raise RuntimeError(f"server did not start: {line!r}")
        records, elapsed, latencies = asyncio.run(run_ingest(match[1], tokens))
    finally:
        server.terminate()
        server.wait(timeout=20)
    rate = records / elapsed
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    print(f"ingest: {FOGS} fogs x {RECORDS_PER_BATCH}-record batches over gRPC, one server, SQLite synchronous=FULL")
    print(f"  {records} records in {elapsed:.2f} s = {rate:,.0f} records/s "
          f"(target >= {TARGET_RECORDS_PER_S}/s, ratio {rate / TARGET_RECORDS_PER_S:.2f}x)")
    print(f"  batch latency p50 {p50:.1f} ms, p99 {p99:.1f} ms over {len(latencies)} batches")
    expected = FOGS * BATCHES_PER_FOG * RECORDS_PER_BATCH
    if records < expected:
        print(f"  (stopped at the {INGEST_LIMIT_S:.0f} s bound: {records} of {expected} records sent)")


def _median_ms(run: Callable[[], object], runs: int = QUERY_RUNS) -> tuple[float, float, float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), min(times), max(times)


def bench_year_query(tmp: Path) -> None:
    store = CloudStore(tmp / "year.db")
    started = time.perf_counter()
    for first in range(1, YEAR_MINUTES + 1, 5000):
        store.ingest_batch(summaries_batch("year-fog", "year-lot", first, min(5000, YEAR_MINUTES - first + 1)))
    loaded_s = time.perf_counter() - started
    until_ms = T0_MS + YEAR_MINUTES * 60_000
    buckets = store.lot_summaries("year-lot", T0_MS, until_ms, 3600)
    if len(buckets) != YEAR_MINUTES // 60 or any(b["samples"] != 60 for b in buckets):
        raise RuntimeError(f"wrong aggregation: {len(buckets)} buckets")
    hourly = _median_ms(lambda: store.lot_summaries("year-lot", T0_MS, until_ms, 3600))
    # The same year cut mid-hour at both ends: two raw-minute edges plus the rollup.
    cut = _median_ms(lambda: store.lot_summaries("year-lot", T0_MS + 1_800_000, until_ms - 1_800_000, 3600))
    # Buckets that are not whole hours cannot use the rollup: raw minutes through the covering index.
    raw = _median_ms(lambda: store.lot_summaries("year-lot", T0_MS, until_ms, 1800), runs=3)
    plans = {
        name: "; ".join(row["detail"] for row in store.db.query(f"EXPLAIN QUERY PLAN {sql}", params))
        for name, sql, params in (
            ("rollup", "SELECT SUM(samples) FROM summary_hours WHERE lot_id = ? AND zone = ? "
             "AND hour_ms >= ? AND hour_ms < ?", ("x", "", 0, 1)),
            ("raw", "SELECT COUNT(*) FROM summaries WHERE lot_id = ? AND zone = ? "
             "AND window_start_ms >= ? AND window_start_ms < ?", ("x", "", 0, 1)),
        )
    }
    store.close()
    median, low, high = hourly
    print(f"history: {YEAR_MINUTES} per-minute summaries of one lot loaded through CloudStore in {loaded_s:.1f} s")
    print(f"  hourly aggregation over the year ({len(buckets)} buckets): median {median:.0f} ms, "
          f"min {low:.0f}, max {high:.0f} over {QUERY_RUNS} runs "
          f"(target <= {TARGET_QUERY_MS:.0f} ms, {median / TARGET_QUERY_MS:.2f} of budget)")
    print(f"  same, window cut mid-hour at both ends: median {cut[0]:.0f} ms")
    print(f"  30-minute buckets (no rollup, raw minutes via covering index): median {raw[0]:.0f} ms "
          f"({raw[0] / TARGET_QUERY_MS:.2f} of budget)")
    for name, plan in plans.items():
        print(f"  plan ({name}): {plan}")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="fogpark-bench-cloud-") as tmp:
        bench_ingest(Path(tmp))
        bench_year_query(Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
