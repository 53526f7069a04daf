"""The fog-facing gRPC service (``fogpark.v1.FogSync``) and the server that runs it.

Store calls are blocking SQLite, so each server runs them on its own single
worker thread: the event loop never waits on the disk, and writes from one
replica never contend with each other (replicas contend through SQLite's lock).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import sqlite3
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from cloud.auth import AUTH_HEADER, FOG_HEADER, AuthError, Fog, FogRegistry
from cloud.config import HistorySettings
from cloud.history import HistoryStore, open_history
from cloud.metrics import Counters
from cloud.records import BatchError, LotNotAllowed
from cloud.store import CloudStore
from proto import parking_pb2, parking_pb2_grpc

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
SUBSCRIBE_POLL_S = 0.5
SUBSCRIBE_PAGE = 100
SERVICE_NAME = parking_pb2.DESCRIPTOR.services_by_name["FogSync"].full_name

T = TypeVar("T")


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    """End the call with ``code``; context.abort always raises, this makes that visible to mypy."""
    await context.abort(code, message)
    raise AssertionError("context.abort returned")


class FogSyncService(parking_pb2_grpc.FogSyncServicer):
    """PushBatch / GetCursor / Subscribe for authenticated fogs, each confined to its own data."""

    def __init__(
        self, store: CloudStore, registry: FogRegistry, metrics: Counters, executor: ThreadPoolExecutor,
        history: HistoryStore | None = None,
    ) -> None:
        self._store = store
        self._history: HistoryStore = store if history is None else history
        self._registry = registry
        self._metrics = metrics
        self._executor = executor
        self._stopping = False
        self._listeners: defaultdict[str, set[asyncio.Event]] = defaultdict(set)

    async def _run(
        self, context: grpc.aio.ServicerContext, rpc: str, fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        """Run a blocking store call on this server's store thread.

        A failing store (locked past the busy timeout, disk full, closed) is UNAVAILABLE:
        the fog keeps its records and retries, nothing was acknowledged.
        """
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, partial(fn, *args, **kwargs))
        except sqlite3.Error as exc:
            log.error("%s: store failed: %s: %s", rpc, type(exc).__name__, exc)
            await self._refuse(context, rpc, grpc.StatusCode.UNAVAILABLE, "store_error",
                               f"cloud store unavailable ({type(exc).__name__}); retry later")

    async def _refuse(
        self, context: grpc.aio.ServicerContext, rpc: str, code: grpc.StatusCode, reason: str, message: str
    ) -> NoReturn:
        self._metrics.reject(f"grpc.{rpc}", reason)
        log.warning("%s refused (%s, %s): %s", rpc, code.name, reason, message)
        await _abort(context, code, message)

    async def _authenticate(self, context: grpc.aio.ServicerContext, rpc: str) -> Fog:
        """The calling fog, proved by its metadata."""
        metadata = {key: value for key, value in (context.invocation_metadata() or ())}
        try:
            return self._registry.authenticate(metadata.get(FOG_HEADER), metadata.get(AUTH_HEADER))
        except AuthError as exc:
            await self._refuse(context, rpc, grpc.StatusCode.UNAUTHENTICATED, exc.code, str(exc))

    async def _require_own(self, context: grpc.aio.ServicerContext, rpc: str, fog: Fog, fog_id: str) -> None:
        """A fog speaks only for itself."""
        if fog_id != fog.fog_id:
            await self._refuse(
                context, rpc, grpc.StatusCode.PERMISSION_DENIED, "fog_mismatch",
                f"request fog_id {fog_id!r} differs from the authenticated fog {fog.fog_id!r}",
            )

    async def PushBatch(self, request: parking_pb2.Batch, context: grpc.aio.ServicerContext) -> parking_pb2.Ack:
        fog = await self._authenticate(context, "PushBatch")
        if request.fog_id:  # an empty one is a malformed batch (INVALID_ARGUMENT below), not someone else's
            await self._require_own(context, "PushBatch", fog, request.fog_id)
        try:
            ack = await self._run(context, "PushBatch", self._store.ingest_batch, request, allowed_lots=fog.lots)
        except LotNotAllowed as exc:
            await self._refuse(context, "PushBatch", grpc.StatusCode.PERMISSION_DENIED, exc.code, exc.reason)
        except BatchError as exc:
            await self._refuse(context, "PushBatch", grpc.StatusCode.INVALID_ARGUMENT, exc.code, exc.reason)
        if self._history is not self._store:
            # The whole batch, duplicates included: if an earlier write failed after the ledger
            # committed, the fog's resend is what brings the history backend up to date.
            # Points are keyed per record, so rewriting them is harmless.
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self._executor, self._history.write_history, request)
            except Exception as exc:  # noqa: BLE001 - any backend failure: the fog keeps its records, retries
                log.error("PushBatch: history backend failed: %s: %s", type(exc).__name__, exc)
                await self._refuse(context, "PushBatch", grpc.StatusCode.UNAVAILABLE, "history_error",
                                   f"history backend unavailable ({type(exc).__name__}); retry later")
        self._metrics.inc("fogpark_cloud_batches_total")
        self._metrics.inc("fogpark_cloud_records_stored_total", ack.stored)
        self._metrics.inc("fogpark_cloud_records_duplicate_total", ack.duplicates)
        return ack

    async def GetCursor(
        self, request: parking_pb2.CursorRequest, context: grpc.aio.ServicerContext
    ) -> parking_pb2.Cursor:
        fog = await self._authenticate(context, "GetCursor")
        await self._require_own(context, "GetCursor", fog, request.fog_id)
        acked = await self._run(context, "GetCursor", self._store.cursor, fog.fog_id)
        return parking_pb2.Cursor(fog_id=fog.fog_id, acked_seq=acked)

    async def Subscribe(
        self, request: parking_pb2.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[parking_pb2.CloudUpdate]:
        """Stream updates after ``after_version``, then wait for more until the call or the server ends.

        Waits on an in-process wake-up (set by ServerHandle.enqueue_update) and polls
        every SUBSCRIBE_POLL_S for updates queued by other processes or replicas.
        """
        fog = await self._authenticate(context, "Subscribe")
        await self._require_own(context, "Subscribe", fog, request.fog_id)
        after = request.after_version
        wake = asyncio.Event()
        self._listeners[fog.fog_id].add(wake)
        try:
            while not self._stopping:
                wake.clear()
                updates = await self._run(
                    context, "Subscribe", self._store.updates_after, fog.fog_id, after, SUBSCRIBE_PAGE
                )
                for update in updates:
                    yield update
                    after = update.version
                if len(updates) == SUBSCRIBE_PAGE:
                    continue
                try:
                    await asyncio.wait_for(wake.wait(), SUBSCRIBE_POLL_S)
                except TimeoutError:
                    pass
        finally:
            self._listeners[fog.fog_id].discard(wake)

    def close_stores(self) -> None:
        """Close the history backend (when separate) and the store."""
        if self._history is not self._store:
            self._history.close()
        self._store.close()

    def notify(self, fog_id: str) -> None:
        """Wake this server's Subscribe streams of ``fog_id`` now instead of at the next poll."""
        for wake in self._listeners.get(fog_id, ()):
            wake.set()

    def begin_shutdown(self) -> None:
        """Let every open Subscribe stream finish cleanly (status OK) instead of being cancelled."""
        self._stopping = True
        for listeners in self._listeners.values():
            for wake in listeners:
                wake.set()


@dataclass
class ServerHandle:
    """A running FogSync server: where it listens and how to stop it."""

    server: grpc.aio.Server
    service: FogSyncService
    health: health.aio.HealthServicer
    store: CloudStore
    executor: ThreadPoolExecutor
    host: str
    port: int
    secure: bool

    @property
    def target(self) -> str:
        """``host:port`` for a client channel."""
        return join_host_port(self.host, self.port)

    async def enqueue_update(self, fog_id: str, update: parking_pb2.CloudUpdate) -> int:
        """Queue an update for a fog and wake its streams here; returns the assigned version."""
        version = await asyncio.get_running_loop().run_in_executor(
            self.executor, self.store.enqueue_update, fog_id, update
        )
        self.service.notify(fog_id)
        return version

    async def stop(self, grace_s: float = 2.0) -> None:
        """Refuse new calls, let running ones finish (up to ``grace_s``), close the store."""
        await self.health.enter_graceful_shutdown()
        self.service.begin_shutdown()
        await self.server.stop(grace_s)
        await asyncio.get_running_loop().run_in_executor(self.executor, self.service.close_stores)
        self.executor.shutdown(wait=True)


def split_host_port(address: str) -> tuple[str, int]:
    """``"127.0.0.1:50051"`` / ``"[::1]:50051"`` -> (host, port); ValueError with the reason."""
    host, sep, port_text = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"bad address {address!r}: expected HOST:PORT, e.g. 127.0.0.1:50051")
    return host, int(port_text)


def join_host_port(host: str, port: int) -> str:
    """The inverse of split_host_port (IPv6 hosts in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: addresses no other machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def serve(
    db_path: str | Path,
    registry: FogRegistry,
    *,
    address: str = "127.0.0.1:0",
    metrics: Counters | None = None,
    tls_cert: str | Path | None = None,
    tls_key: str | Path | None = None,
    allow_insecure_remote: bool = False,
    busy_timeout_s: float = 10.0,
    history: HistorySettings | None = None,
) -> ServerHandle:
    """Start a FogSync server on ``address`` over the store at ``db_path``; port 0 picks a free port.

    Without a certificate the server is plaintext and, unless ``allow_insecure_remote``,
    only on a loopback address: tokens must not cross a network in clear.
    ``busy_timeout_s``: how long a write waits for another replica's lock before the
    call fails with UNAVAILABLE. ``history``: the history backend batches are also
    written to before the ack (default: SQLite only).
    """
    host, port = split_host_port(address)
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("TLS needs both a certificate and a key (got only one)")
    secure = tls_cert is not None
    if not secure and not is_loopback(host) and not allow_insecure_remote:
        raise ValueError(
            f"refusing plaintext gRPC on non-loopback {host!r}: give a TLS certificate and key, "
            "or allow insecure explicitly (only behind a TLS-terminating proxy)"
        )
    credentials = None
    if tls_cert is not None and tls_key is not None:
        credentials = grpc.ssl_server_credentials([(Path(tls_key).read_bytes(), Path(tls_cert).read_bytes())])

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cloud-store")
    loop = asyncio.get_running_loop()
    try:
        store = await loop.run_in_executor(executor, partial(CloudStore, db_path, busy_timeout_s=busy_timeout_s))
    except BaseException:
        executor.shutdown(wait=False)
        raise
    try:
        history_store = open_history(history or HistorySettings(), store)
    except BaseException:
        await loop.run_in_executor(executor, store.close)
        executor.shutdown(wait=False)
        raise
    service = FogSyncService(store, registry, metrics or Counters(), executor, history_store)
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),  # a second replica on a taken port must fail, not share it
        ]
    )
    parking_pb2_grpc.add_FogSyncServicer_to_server(service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    bind = join_host_port(host, port)
    try:
        try:
            bound = server.add_secure_port(bind, credentials) if credentials else server.add_insecure_port(bind)
        except RuntimeError as exc:  # grpc reports a failed bind this way
            raise OSError(f"cannot listen on {bind} (in use, or not an address of this machine)") from exc
        await server.start()
    except BaseException:
        await loop.run_in_executor(executor, service.close_stores)
        executor.shutdown(wait=False)
        raise
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("FogSync listening on %s:%d (%s), store %s", host, bound, "TLS" if secure else "plaintext", db_path)
    return ServerHandle(server, service, health_servicer, store, executor, host, bound, secure)
