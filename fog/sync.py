"""Store-and-forward to the cloud over gRPC (proto/parking.proto).

The outbox's row id is the record sequence. On every (re)connect the fog asks
the cloud for its cursor and resumes after it; each batch is a contiguous
range, so a batch repeated after a lost acknowledgement is harmless (the cloud
deduplicates by (fog, seq)). Failures back off exponentially with jitter and
fail over to the next configured cloud address.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

import grpc

from fog.config import CloudTarget
from fog.metrics import FogMetrics
from fog.records import to_record
from fog.store import FogStore
from proto import parking_pb2 as pb
from proto import parking_pb2_grpc as pb_grpc

log = logging.getLogger("fogpark.fog.sync")


class CloudSync:
    def __init__(self, fog_id: str, cfg: CloudTarget, store: FogStore, metrics: FogMetrics,
                 backoff_base_s: float = 0.2, backoff_max_s: float = 30.0, keepalive_s: float = 2.0) -> None:
        self.fog_id = fog_id
        self.cfg = cfg
        self.store = store
        self.metrics = metrics
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.keepalive_s = keepalive_s
        self.connected = False
        self.last_error = ""
        self.target_index = 0
        self.batches_sent = 0
        self.wakeup = asyncio.Event()
        # Applies one CloudUpdate; True once its effect is committed (then the version is recorded).
        self.on_update: Callable[[pb.CloudUpdate], Awaitable[bool]] | None = None
        self.updates_applied = 0
        self._metadata = (("authorization", f"Bearer {cfg.token}"), ("x-fogpark-fog", fog_id))

    def _channel(self, target: str) -> grpc.aio.Channel:
        if self.cfg.tls_ca:
            creds = grpc.ssl_channel_credentials(root_certificates=self.cfg.tls_ca.read_bytes())
            return grpc.aio.secure_channel(target, creds)
        return grpc.aio.insecure_channel(target)

    def update_lag_metrics(self) -> None:
        waiting, _, oldest = self.store.outbox_stats()
        self.metrics.outbox_depth.set(waiting)
        self.metrics.sync_lag.set(max(0.0, time.time() - oldest / 1000) if oldest else 0.0)
        self.metrics.acked_seq.set(self.store.acked_seq())

    async def run(self, stop: asyncio.Event) -> None:
        delay = self.backoff_base_s
        while not stop.is_set():
            target = self.cfg.targets[self.target_index % len(self.cfg.targets)]
            try:
                async with self._channel(target) as channel:
                    await self._session(pb_grpc.FogSyncStub(channel), stop)
            except (grpc.aio.AioRpcError, OSError) as err:
                why = f"{target}: {_describe(err)}"
                if why != self.last_error:
                    log.warning("cloud sync down (%s); retrying with backoff", why)
                self.last_error = why
                self.connected = False
                self.target_index += 1  # fail over to the next cloud address
                await _sleep_or_stop(stop, delay * (0.5 + random.random()))
                delay = min(delay * 2, self.backoff_max_s)
                continue
            delay = self.backoff_base_s
        self.connected = False

    async def _session(self, stub: pb_grpc.FogSyncStub, stop: asyncio.Event) -> None:
        updates = asyncio.create_task(self._updates(stub)) if self.on_update else None
        try:
            await self._push(stub, stop)
        finally:
            if updates:
                updates.cancel()
                await asyncio.gather(updates, return_exceptions=True)

    async def _updates(self, stub: pb_grpc.FogSyncStub) -> None:
        """The cloud's stream of configs, models and bookings, resumed after the last applied version."""
        assert self.on_update is not None
        while True:
            try:
                call = stub.Subscribe(pb.SubscribeRequest(fog_id=self.fog_id, after_version=self.store.cloud_version()),
                                      metadata=self._metadata)
                async for update in call:
                    if await self.on_update(update):
                        self.store.set_cloud_version(update.version)
                        self.updates_applied += 1
                    else:
                        log.warning("cloud update %d (%s) not applied; will retry on resume",
                                    update.version, update.WhichOneof("body"))
                        break
            except grpc.aio.AioRpcError as err:
                log.info("cloud update stream ended (%s); resuming", _describe(err))
            await asyncio.sleep(1.0)

    async def _push(self, stub: pb_grpc.FogSyncStub, stop: asyncio.Event) -> None:
        cursor = await stub.GetCursor(pb.CursorRequest(fog_id=self.fog_id), metadata=self._metadata, timeout=5)
        self.store.set_acked(cursor.acked_seq)
        if not self.connected:
            log.info("cloud sync connected; cloud holds up to seq %d", cursor.acked_seq)
        self.connected = True
        self.last_error = ""
        idle_since = time.monotonic()
        while not stop.is_set():
            self.update_lag_metrics()
            rows = self.store.outbox_after(self.store.acked_seq(), self.cfg.batch_max)
            if not rows:
                if time.monotonic() - idle_since >= self.keepalive_s:
                    # Nothing to send: ask for the cursor anyway, so a dead cloud shows on /healthz.
                    await stub.GetCursor(pb.CursorRequest(fog_id=self.fog_id), metadata=self._metadata, timeout=5)
                    idle_since = time.monotonic()
                self.wakeup.clear()
                try:
                    await asyncio.wait_for(self.wakeup.wait(), timeout=0.5)
                except TimeoutError:
                    pass
                continue
            idle_since = time.monotonic()
            batch = pb.Batch(fog_id=self.fog_id, first_seq=rows[0][0], last_seq=rows[-1][0],
                             records=[to_record(seq, kind, body) for seq, kind, body in rows])
            ack = await stub.PushBatch(batch, metadata=self._metadata, timeout=15)
            self.batches_sent += 1
            self.store.set_acked(ack.acked_seq)
            if ack.acked_seq < batch.last_seq:
                # The cloud is missing something before this batch: resend from its cursor.
                log.warning("cloud acknowledged %d of %d..%d; resending from its cursor",
                            ack.acked_seq, batch.first_seq, batch.last_seq)
                await _sleep_or_stop(stop, 0.2)


def _describe(err: Exception) -> str:
    if isinstance(err, grpc.aio.AioRpcError):
        return f"{err.code().name} {err.details()}"
    return str(err)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
