"""The radio frame contract: golden vectors on both interpreters, fuzzing, counters."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from frame_vectors_check import check_all
from hypothesis import given, settings
from hypothesis import strategies as st

from proto import frame

ROOT = Path(__file__).resolve().parents[2]
KEY = bytes(range(16))


def test_golden_and_rfc4493_vectors_cpython(vectors: dict) -> None:
    assert check_all(vectors) == len(vectors["frames"]) + len(vectors["rfc4493"]["cases"])


def test_golden_and_rfc4493_vectors_micropython(vectors: dict, micropython: Callable[..., Any]) -> None:
    out = micropython(str(ROOT / "tests/proto/frame_vectors_check.py"), str(ROOT / "proto/frame_vectors.json"),
                      timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.split() == ["PASS", str(len(vectors["frames"]) + len(vectors["rfc4493"]["cases"]))]
    assert "MicroPython" not in out.stdout  # really ran the script, not the REPL banner


def test_micropython_is_really_micropython(micropython: Callable[..., Any]) -> None:
    out = micropython("-c", "import sys; print(sys.implementation.name)")
    assert out.stdout.strip() == "micropython"


def test_micropython_keeps_one_aes_context_per_key(micropython: Callable[..., Any]) -> None:
    """A node signs every frame with one key: its AES context is made once, not per frame (each
    was a 320-byte block; in a 64 KiB heap the block the node ran out on). A new key gets its own."""
    script = (
        "from proto import frame\n"
        "a = bytes(range(16)); b = bytes(16)\n"
        "e = frame._aes_encryptor(a)\n"
        "print(e is frame._aes_encryptor(bytearray(a)), frame._aes_encryptor(b) is e, e(bytes(16)).hex())\n"
    )
    out = micropython("-c", script)
    # AES-128 of a zero block under key 00..0f (FIPS-197 style check value)
    assert out.stdout.split() == ["True", "False", "c6a13b37878f5b826f4f8162a1c8d879"], out.stdout + out.stderr


def test_occupancy_event_fits_in_16_bytes() -> None:
    payload = frame.occupancy_payload(frame.OCCUPIED, 0xF0, 10**9, 399, 9999)
    assert len(frame.encode_frame(frame.OCCUPANCY, 0xFFFFFFFF, 0xFFFFFFFF, payload, KEY)) == 16


@given(st.binary(max_size=80))
@settings(max_examples=800, deadline=None)
def test_parse_untrusted_bytes_raises_only_frame_error(data: bytes) -> None:
    try:
        parsed = frame.parse_frame(data)
        parsed.fields()
        parsed.verify(KEY, parsed.fcnt16)
    except frame.FrameError as err:
        assert err.reason  # every refusal says why


@given(
    st.sampled_from([frame.OCCUPANCY, frame.HEARTBEAT, frame.DIAGNOSTIC, frame.CONFIG_ACK, frame.ACK]),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.binary(min_size=12, max_size=12),
    st.integers(0, 15 * 8 + 7),
)
@settings(max_examples=300, deadline=None)
def test_any_single_bit_flip_is_detected(msg_type: int, node: int, fcnt: int, body: bytes, bit: int) -> None:
    size = {frame.OCCUPANCY: 5, frame.HEARTBEAT: 12, frame.DIAGNOSTIC: 7, frame.CONFIG_ACK: 3, frame.ACK: 3}
    payload = body[: size[msg_type]]
    if msg_type == frame.OCCUPANCY:
        payload = bytes([payload[0] & 0xF1]) + payload[1:]  # a valid state
    raw = bytearray(frame.encode_frame(msg_type, node, fcnt, payload, KEY))
    assert frame.parse_frame(bytes(raw)).verify(KEY, fcnt)
    raw[bit // 8 % len(raw)] ^= 1 << (bit % 8)
    try:
        parsed = frame.parse_frame(bytes(raw))
    except frame.FrameError:
        return
    assert not parsed.verify(KEY, fcnt)


def test_wrong_key_fails_mic() -> None:
    raw = frame.encode_frame(frame.OCCUPANCY, 7, 1, frame.occupancy_payload(1, 0, 5, 40, 30), KEY)
    assert not frame.parse_frame(raw).verify(bytes(16), 1)


@given(st.integers(-1, 2**32 - 2), st.integers(1, frame.MAX_FCNT_GAP))
def test_counter_reconstruction_forward(last: int, step: int) -> None:
    nxt = last + step
    if nxt > 2**32 - 1:
        return
    assert frame.reconstruct_fcnt(nxt & 0xFFFF, last) == (nxt if last >= 0 else nxt & 0xFFFF)


@given(st.integers(0, 2**32 - 1), st.integers(0, 65535))
def test_previous_counter_names_replays(last: int, back: int) -> None:
    old = last - back
    if old < 0:
        return
    assert frame.previous_fcnt(old & 0xFFFF, last) == old


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "too_short"),
        (bytes(65), "too_long"),
        (bytes([0x21]) + bytes(15), "bad_version"),
        (bytes([0x1F]) + bytes(15), "bad_type"),
        (bytes([0x11]) + bytes(14), "bad_length"),
        (bytes([0x14, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4, 5, 0, 0, 0, 0]), "bad_length"),
    ],
)
def test_refusals_name_their_reason(data: bytes, reason: str) -> None:
    with pytest.raises(frame.FrameError) as err:
        frame.parse_frame(data)
    assert err.value.reason == reason


@settings(max_examples=300, deadline=None)
@given(key=st.binary(min_size=16, max_size=16), msg=st.binary(max_size=80))
def test_the_fogs_openssl_cmac_equals_the_portable_code_the_firmware_runs(key: bytes, msg: bytes) -> None:
    assert frame._fast_cmac is not None  # CPython takes the fast path
    assert frame.aes_cmac(key, msg) == frame.portable_aes_cmac(key, msg)
