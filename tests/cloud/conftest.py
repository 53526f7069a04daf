"""Fixtures for the cloud tier: a test kit (fog identities, record builders), stores, real gRPC servers.

Test modules reach the kit through the ``kit`` fixture rather than importing
this file, so the suite does not depend on conftest module names.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest

from cloud.auth import FogRegistry, parse_registry
from cloud.config import CloudConfig, parse_config
from cloud.metrics import Counters
from cloud.service import ServerHandle, serve
from cloud.store import CloudStore
from proto import parking_pb2 as pb
from proto import parking_pb2_grpc


class FogClient:
    """A fog's side of FogSync over a real channel, with its credentials attached."""

    def __init__(self, channel: grpc.aio.Channel, fog_id: str, token: str | None) -> None:
        self.stub = parking_pb2_grpc.FogSyncStub(channel)
        self.fog_id = fog_id
        metadata = [("x-fogpark-fog", fog_id)]
        if token is not None:
            metadata.append(("authorization", f"Bearer {token}"))
        self.metadata = tuple(metadata)

    async def push(self, batch: pb.Batch) -> pb.Ack:
        return await self.stub.PushBatch(batch, metadata=self.metadata, timeout=10)

    async def cursor(self, fog_id: str | None = None) -> int:
        request = pb.CursorRequest(fog_id=self.fog_id if fog_id is None else fog_id)
        reply = await self.stub.GetCursor(request, metadata=self.metadata, timeout=10)
        return int(reply.acked_seq)

    def subscribe(self, after_version: int = 0, fog_id: str | None = None) -> Any:
        """The stream call; iterate it with ``async for`` or ``await call.read()``."""
        request = pb.SubscribeRequest(fog_id=self.fog_id if fog_id is None else fog_id, after_version=after_version)
        return self.stub.Subscribe(request, metadata=self.metadata)


class Kit:
    """Fog identities, records and batches as a fog would send them, and a raw look at the store."""

    FOG_A, TOKEN_A, LOT_A = "fog-a", "token-a-0123456789", "lot-a"
    FOG_B, TOKEN_B, LOT_B = "fog-b", "token-b-0123456789", "lot-b"
    READ_TOKEN, ADMIN_TOKEN = "read-token-0123456789", "admin-token-0123456789"
    T0_MS = 1_714_550_400_000  # 2024-05-01T08:00:00Z, a whole hour

    @staticmethod
    def spot_event(
        seq: int, *, lot: str = LOT_A, at_ms: int | None = None, spot: str = "A-01", state: str = "occupied",
        node: int = 17, fcnt: int | None = None, rssi: int = -97,
    ) -> pb.Record:
        return pb.Record(seq=seq, spot_event=pb.SpotEvent(
            lot_id=lot, spot_id=spot, at_ms=Kit.T0_MS + seq * 1000 if at_ms is None else at_ms, state=state,
            node_id=node, fcnt=seq if fcnt is None else fcnt, rssi_dbm=rssi, snr_db=7.5, gateway_id=1,
        ))

    @staticmethod
    def summary(
        seq: int, *, window_start_ms: int, occupied: int, lot: str = LOT_A, capacity: int = 20,
        arrivals: int = 0, departures: int = 0, zone: str = "", mean_interarrival_s: float = float("nan"),
    ) -> pb.Record:
        return pb.Record(seq=seq, summary=pb.LotSummary(
            lot_id=lot, window_start_ms=window_start_ms, window_s=60, capacity=capacity, occupied=occupied,
            free=capacity - occupied, arrivals=arrivals, departures=departures,
            concentration=occupied / capacity, mean_interarrival_s=mean_interarrival_s, zone=zone,
        ))

    @staticmethod
    def batch(fog_id: str, records: Sequence[pb.Record]) -> pb.Batch:
        batch = pb.Batch(fog_id=fog_id, records=records)
        if records:
            batch.first_seq, batch.last_seq = records[0].seq, records[-1].seq
        return batch

    @classmethod
    def events(cls, fog_id: str, first: int, last: int, lot: str = LOT_A) -> pb.Batch:
        """Spot events with seqs first..last inclusive."""
        return cls.batch(fog_id, [cls.spot_event(seq, lot=lot) for seq in range(first, last + 1)])

    @staticmethod
    def stored_seqs(db_path: Path, fog_id: str, table: str = "records") -> list[int]:
        """Seqs held for a fog, read with plain sqlite3 (independent of CloudStore); duplicates would show."""
        with sqlite3.connect(db_path) as conn:
            rows = conn.execute(f"SELECT seq FROM {table} WHERE fog_id = ? ORDER BY seq", (fog_id,))
            return [row[0] for row in rows]

    @staticmethod
    def client(channel: grpc.aio.Channel, fog_id: str, token: str | None) -> FogClient:
        return FogClient(channel, fog_id, token)


@pytest.fixture(scope="session")
def kit() -> type[Kit]:
    return Kit


@pytest.fixture
def registry() -> FogRegistry:
    return parse_registry(
        {"fogs": {
            Kit.FOG_A: {"token": Kit.TOKEN_A, "lots": [Kit.LOT_A]},
            Kit.FOG_B: {"token": Kit.TOKEN_B, "lots": [Kit.LOT_B]},
        }},
        "tests",
    )


def config_data() -> dict[str, Any]:
    """The cloud config of the tests: two fogs, a read-only and an admin operator, two lots with positions."""
    return {
        "fogs": {
            Kit.FOG_A: {"token": Kit.TOKEN_A, "lots": [Kit.LOT_A]},
            Kit.FOG_B: {"token": Kit.TOKEN_B, "lots": [Kit.LOT_B]},
        },
        "operators": {
            "viewer": {"token": Kit.READ_TOKEN, "role": "read"},
            "boss": {"token": Kit.ADMIN_TOKEN, "role": "admin"},
        },
        "lots": {
            Kit.LOT_A: {"name": "Lot A", "lat": 21.4225, "lon": 39.8262, "currency": "SAR"},
            Kit.LOT_B: {"name": "Lot B", "lat": 21.4300, "lon": 39.8300, "currency": "SAR"},
        },
    }


@pytest.fixture
def config_dict() -> dict[str, Any]:
    return config_data()


@pytest.fixture
def config() -> CloudConfig:
    return parse_config(config_data(), "tests", environ={})


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "cloud.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[CloudStore]:
    opened = CloudStore(db_path)
    yield opened
    opened.close()


@pytest.fixture
def counters() -> Counters:
    return Counters()


@pytest.fixture
async def server(db_path: Path, registry: FogRegistry, counters: Counters) -> AsyncIterator[ServerHandle]:
    handle = await serve(db_path, registry, metrics=counters)
    yield handle
    await handle.stop(grace_s=0.5)


@pytest.fixture
async def channel(server: ServerHandle) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.target) as opened:
        yield opened


@pytest.fixture
def fog_a(channel: grpc.aio.Channel) -> FogClient:
    return FogClient(channel, Kit.FOG_A, Kit.TOKEN_A)
