"""FogSync over real gRPC on 127.0.0.1: ingest, refusals, cursor, Subscribe, replicas, health, TLS."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from cloud.auth import FogRegistry
from cloud.metrics import Counters
from cloud.service import SERVICE_NAME, ServerHandle, serve
from cloud.store import CloudStore
from proto import parking_pb2 as pb

REJECTED = "fogpark_cloud_rejected_total"


async def _refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_push_acks_and_counts(fog_a: Any, kit: Any, counters: Counters, db_path: Path) -> None:
    ack = await fog_a.push(kit.events(kit.FOG_A, 1, 10))
    assert (ack.fog_id, ack.acked_seq, ack.stored, ack.duplicates) == (kit.FOG_A, 10, 10, 0)
    assert await fog_a.cursor() == 10
    assert kit.stored_seqs(db_path, kit.FOG_A) == list(range(1, 11))
    assert counters.value("fogpark_cloud_records_stored_total") == 10


async def test_repeated_batch_same_ack_nothing_stored_twice(
    fog_a: Any, kit: Any, db_path: Path, counters: Counters
) -> None:
    batch = kit.events(kit.FOG_A, 1, 10)
    first, again = await fog_a.push(batch), await fog_a.push(batch)
    assert first.acked_seq == again.acked_seq == 10
    assert (again.stored, again.duplicates) == (0, 10)
    assert kit.stored_seqs(db_path, kit.FOG_A) == list(range(1, 11))
    assert counters.value("fogpark_cloud_records_duplicate_total") == 10


async def test_overlapping_batch(fog_a: Any, kit: Any, db_path: Path) -> None:
    await fog_a.push(kit.events(kit.FOG_A, 1, 10))
    ack = await fog_a.push(kit.events(kit.FOG_A, 8, 14))
    assert (ack.acked_seq, ack.stored, ack.duplicates) == (14, 4, 3)
    assert kit.stored_seqs(db_path, kit.FOG_A, "spot_events") == list(range(1, 15))


async def test_out_of_order_batches_ack_jumps_when_gap_fills(fog_a: Any, kit: Any, db_path: Path) -> None:
    assert (await fog_a.push(kit.events(kit.FOG_A, 1, 5))).acked_seq == 5
    after_gap = await fog_a.push(kit.events(kit.FOG_A, 11, 20))
    assert (after_gap.acked_seq, after_gap.stored) == (5, 10)
    assert await fog_a.cursor() == 5
    assert (await fog_a.push(kit.events(kit.FOG_A, 6, 10))).acked_seq == 20
    assert kit.stored_seqs(db_path, kit.FOG_A) == list(range(1, 21))


@pytest.mark.parametrize(
    ("case", "code"),
    [("gap", "not_contiguous"), ("empty", "empty"), ("no_body", "no_body"), ("no_fog_id", "no_fog_id"),
     ("first_seq", "first_seq_mismatch")],
)
async def test_malformed_batch_is_invalid_argument_and_stores_nothing(
    fog_a: Any, kit: Any, db_path: Path, counters: Counters, case: str, code: str
) -> None:
    batches = {
        "gap": kit.batch(kit.FOG_A, [kit.spot_event(1), kit.spot_event(2), kit.spot_event(4)]),
        "empty": kit.batch(kit.FOG_A, []),
        "no_body": kit.batch(kit.FOG_A, [kit.spot_event(1), pb.Record(seq=2)]),
        "no_fog_id": kit.events("", 1, 2),
        "first_seq": pb.Batch(fog_id=kit.FOG_A, first_seq=0, last_seq=2, records=kit.events(kit.FOG_A, 1, 2).records),
    }
    error = await _refused(fog_a.push(batches[case]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details()
    assert kit.stored_seqs(db_path, kit.FOG_A) == []
    assert await fog_a.cursor() == 0
    assert counters.value(REJECTED, surface="grpc.PushBatch", reason=code) == 1


async def test_gap_reason_is_sent_back(fog_a: Any, kit: Any) -> None:
    error = await _refused(fog_a.push(kit.batch(kit.FOG_A, [kit.spot_event(1), kit.spot_event(3)])))
    assert error.details() == "records[1].seq is 3, expected 2 (seqs must be contiguous)"


async def test_batch_for_another_fog_is_permission_denied(
    fog_a: Any, kit: Any, db_path: Path, counters: Counters
) -> None:
    error = await _refused(fog_a.push(kit.events(kit.FOG_B, 1, 3, lot=kit.LOT_B)))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "fog-b" in error.details() and "fog-a" in error.details()
    assert kit.stored_seqs(db_path, kit.FOG_B) == []
    assert counters.value(REJECTED, surface="grpc.PushBatch", reason="fog_mismatch") == 1


async def test_records_for_a_lot_not_registered_are_permission_denied(
    fog_a: Any, kit: Any, db_path: Path, counters: Counters
) -> None:
    error = await _refused(fog_a.push(kit.batch(kit.FOG_A, [kit.spot_event(1), kit.spot_event(2, lot="lot-z")])))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "lot-z" in error.details()
    assert kit.stored_seqs(db_path, kit.FOG_A) == []
    assert counters.value(REJECTED, surface="grpc.PushBatch", reason="lot_not_allowed") == 1


@pytest.mark.parametrize(
    ("fog_id", "token", "reason"),
    [("fog-a", None, "missing_credentials"), ("fog-x", "token-a-0123456789", "unknown_fog"),
     ("fog-a", "token-b-0123456789", "bad_token")],
)
async def test_bad_credentials_are_unauthenticated_and_store_nothing(
    channel: grpc.aio.Channel, kit: Any, db_path: Path, counters: Counters, fog_id: str, token: str | None,
    reason: str,
) -> None:
    client = kit.client(channel, fog_id, token)
    error = await _refused(client.push(kit.events(fog_id, 1, 3)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert kit.stored_seqs(db_path, fog_id) == []
    assert (await _refused(client.cursor())).code() == grpc.StatusCode.UNAUTHENTICATED
    assert counters.value(REJECTED, surface="grpc.PushBatch", reason=reason) == 1


async def test_no_metadata_at_all_is_unauthenticated(channel: grpc.aio.Channel, kit: Any) -> None:
    client = kit.client(channel, kit.FOG_A, kit.TOKEN_A)
    error = await _refused(client.stub.PushBatch(kit.events(kit.FOG_A, 1, 1)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_cursor_and_updates_of_another_fog_are_denied(fog_a: Any, kit: Any) -> None:
    assert (await _refused(fog_a.cursor(kit.FOG_B))).code() == grpc.StatusCode.PERMISSION_DENIED
    stream = fog_a.subscribe(0, fog_id=kit.FOG_B)
    assert (await _refused(stream.read())).code() == grpc.StatusCode.PERMISSION_DENIED


async def test_oversized_message_is_refused_by_the_server(fog_a: Any, kit: Any, db_path: Path) -> None:
    batch = kit.batch(kit.FOG_A, [kit.spot_event(seq, spot="S" * 1000) for seq in range(1, 4501)])
    assert batch.ByteSize() > 4 * 1024 * 1024
    error = await _refused(fog_a.push(batch))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert kit.stored_seqs(db_path, kit.FOG_A) == []


async def test_cursor_survives_a_server_restart(db_path: Path, registry: FogRegistry, kit: Any) -> None:
    first = await serve(db_path, registry)
    async with grpc.aio.insecure_channel(first.target) as channel:
        fog = kit.client(channel, kit.FOG_A, kit.TOKEN_A)
        await fog.push(kit.events(kit.FOG_A, 1, 10))
        await fog.push(kit.events(kit.FOG_A, 15, 20))
    await first.stop()
    second = await serve(db_path, registry)
    try:
        async with grpc.aio.insecure_channel(second.target) as channel:
            fog = kit.client(channel, kit.FOG_A, kit.TOKEN_A)
            assert await fog.cursor() == 10
            assert (await fog.push(kit.events(kit.FOG_A, 11, 14))).acked_seq == 20
    finally:
        await second.stop()


async def _read(stream: Any, count: int) -> list[pb.CloudUpdate]:
    return [await asyncio.wait_for(stream.read(), 5) for _ in range(count)]


async def test_subscribe_resumes_after_reconnect(server: ServerHandle, fog_a: Any, kit: Any, db_path: Path) -> None:
    for text in ("t1", "t2", "t3"):
        await server.enqueue_update(kit.FOG_A, pb.CloudUpdate(tariff_toml=text))
    stream = fog_a.subscribe(0)
    assert [(u.version, u.tariff_toml) for u in await _read(stream, 3)] == [(1, "t1"), (2, "t2"), (3, "t3")]
    stream.cancel()

    # Queued while the fog is away, by another replica (another connection): found by polling.
    other = CloudStore(db_path)
    other.enqueue_update(kit.FOG_A, pb.CloudUpdate(tariff_toml="t4"))
    other.enqueue_update(kit.FOG_B, pb.CloudUpdate(tariff_toml="not for fog-a"))
    other.enqueue_update(kit.FOG_A, pb.CloudUpdate(lot_config_toml="c5"))
    other.close()

    stream = fog_a.subscribe(after_version=3)
    resumed = await _read(stream, 2)
    assert [(u.version, u.WhichOneof("body")) for u in resumed] == [(4, "tariff_toml"), (5, "lot_config_toml")]
    # The stream stays open: a later update arrives on it.
    await server.enqueue_update(kit.FOG_A, pb.CloudUpdate(booking=pb.Booking(lot_id=kit.LOT_A, booking_id="b-1")))
    (live,) = await _read(stream, 1)
    assert (live.version, live.booking.booking_id) == (6, "b-1")
    # Queued by another replica while the stream waits: no wake-up here, the poll finds it.
    other = CloudStore(db_path)
    other.enqueue_update(kit.FOG_A, pb.CloudUpdate(tariff_toml="t7"))
    other.close()
    (polled,) = await _read(stream, 1)
    assert (polled.version, polled.tariff_toml) == (7, "t7")
    stream.cancel()


async def test_stop_ends_open_streams_cleanly(db_path: Path, registry: FogRegistry, kit: Any) -> None:
    handle = await serve(db_path, registry)
    async with grpc.aio.insecure_channel(handle.target) as channel:
        await handle.enqueue_update(kit.FOG_A, pb.CloudUpdate(tariff_toml="t1"))
        stream = kit.client(channel, kit.FOG_A, kit.TOKEN_A).subscribe(0)
        assert (await _read(stream, 1))[0].version == 1  # the stream is open and now waiting for more
        # With a long grace, stop() returns promptly only if streams end by themselves.
        await asyncio.wait_for(handle.stop(grace_s=30), 10)
        assert await stream.read() is grpc.aio.EOF
        assert await stream.code() == grpc.StatusCode.OK


async def test_two_replicas_on_one_file_store_every_record_once(
    db_path: Path, registry: FogRegistry, kit: Any
) -> None:
    replicas = [await serve(db_path, registry), await serve(db_path, registry)]
    assert replicas[0].port != replicas[1].port
    try:
        async with (grpc.aio.insecure_channel(replicas[0].target) as ch0,
                    grpc.aio.insecure_channel(replicas[1].target) as ch1):
            fogs = [kit.client(ch, kit.FOG_A, kit.TOKEN_A) for ch in (ch0, ch1)]
            plan = [(1, 50), (51, 100), (40, 120), (150, 200), (121, 149), (1, 200)]
            acks = [await fogs[i % 2].push(kit.events(kit.FOG_A, lo, hi)) for i, (lo, hi) in enumerate(plan)]
            assert [a.acked_seq for a in acks] == [50, 100, 120, 120, 200, 200]
            # The same and overlapping batches through both replicas at once.
            batches = [(201, 300), (201, 300), (250, 350), (301, 400), (201, 400)]
            acks = await asyncio.gather(*(fogs[i % 2].push(kit.events(kit.FOG_A, lo, hi))
                                          for i, (lo, hi) in enumerate(batches)))
            assert sum(a.stored for a in acks) == 200
            assert [await fog.cursor() for fog in fogs] == [400, 400]
    finally:
        for replica in replicas:
            await replica.stop()
    assert kit.stored_seqs(db_path, kit.FOG_A) == list(range(1, 401))
    assert kit.stored_seqs(db_path, kit.FOG_A, "spot_events") == list(range(1, 401))


async def test_store_locked_past_busy_timeout_is_unavailable_then_recovers(
    db_path: Path, registry: FogRegistry, kit: Any, counters: Counters
) -> None:
    handle = await serve(db_path, registry, metrics=counters, busy_timeout_s=0.2)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        async with grpc.aio.insecure_channel(handle.target) as channel:
            fog = kit.client(channel, kit.FOG_A, kit.TOKEN_A)
            blocker.execute("BEGIN IMMEDIATE")  # another replica holding the write lock
            error = await _refused(fog.push(kit.events(kit.FOG_A, 1, 3)))
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert counters.value(REJECTED, surface="grpc.PushBatch", reason="store_error") == 1
            blocker.execute("ROLLBACK")
            assert (await fog.push(kit.events(kit.FOG_A, 1, 3))).acked_seq == 3
    finally:
        blocker.close()
        await handle.stop()
    assert kit.stored_seqs(db_path, kit.FOG_A) == [1, 2, 3]


async def test_health_and_reflection(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", SERVICE_NAME):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    reply = await call.read()
    names = {s.name for s in reply.list_services_response.service}
    assert {"fogpark.v1.FogSync", "grpc.health.v1.Health"} <= names


async def test_plaintext_on_a_public_address_is_refused(db_path: Path, registry: FogRegistry) -> None:
    with pytest.raises(ValueError, match="refusing plaintext"):
        await serve(db_path, registry, address="0.0.0.0:0")
    assert not db_path.exists()


async def test_a_taken_port_is_an_error_not_a_shared_port(server: ServerHandle, db_path: Path,
                                                          registry: FogRegistry) -> None:
    with pytest.raises(OSError, match="cannot listen"):
        await serve(db_path, registry, address=f"127.0.0.1:{server.port}")


def _gen_tls() -> Any:
    """deploy/gen_tls.py, the generator operators use (deploy/ is not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "deploy" / "gen_tls.py"
    spec = importlib.util.spec_from_file_location("fogpark_gen_tls", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_tls_with_material_from_gen_tls(tmp_path: Path, db_path: Path, registry: FogRegistry, kit: Any) -> None:
    """A private CA and server pair from deploy/gen_tls.py; fogs verify with the CA and still need their token."""
    tls = tmp_path / "tls"
    _gen_tls().generate(tls, ["localhost", "127.0.0.1"], [kit.FOG_A])
    handle = await serve(db_path, registry, address="127.0.0.1:0", tls_cert=tls / "server.pem",
                         tls_key=tls / "server.key")
    assert handle.secure
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=(tls / "ca.pem").read_bytes())
        async with grpc.aio.secure_channel(handle.target, credentials) as channel:
            ack = await kit.client(channel, kit.FOG_A, kit.TOKEN_A).push(kit.events(kit.FOG_A, 1, 3))
            assert ack.acked_seq == 3
            # TLS is the channel; the per-fog token is still the identity.
            wrong = await _refused(kit.client(channel, kit.FOG_A, kit.TOKEN_B).push(kit.events(kit.FOG_A, 4, 4)))
            assert wrong.code() == grpc.StatusCode.UNAUTHENTICATED
            health = health_pb2_grpc.HealthStub(channel)
            assert (await health.Check(health_pb2.HealthCheckRequest())).status == health_pb2.HealthCheckResponse.SERVING
        async with grpc.aio.insecure_channel(handle.target) as channel:  # a plaintext client is refused
            error = await _refused(kit.client(channel, kit.FOG_A, kit.TOKEN_A).push(kit.events(kit.FOG_A, 4, 4),))
            assert error.code() == grpc.StatusCode.UNAVAILABLE
        other_ca = tmp_path / "other"
        _gen_tls().generate(other_ca, ["localhost"], [])
        untrusting = grpc.ssl_channel_credentials(root_certificates=(other_ca / "ca.pem").read_bytes())
        async with grpc.aio.secure_channel(handle.target, untrusting) as channel:  # a server it cannot verify
            error = await _refused(kit.client(channel, kit.FOG_A, kit.TOKEN_A).push(kit.events(kit.FOG_A, 4, 4)))
            assert error.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await handle.stop()
    assert kit.stored_seqs(db_path, kit.FOG_A) == [1, 2, 3]


async def test_tls_needs_both_halves(tmp_path: Path, db_path: Path, registry: FogRegistry) -> None:
    with pytest.raises(ValueError, match="both a certificate and a key"):
        await serve(db_path, registry, tls_cert=tmp_path / "cert.pem")
