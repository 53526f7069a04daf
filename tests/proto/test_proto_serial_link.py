"""The gateway serial link: SLIP + CRC, resynchronisation, both interpreters."""

from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from proto import serial_link as sl


def test_crc16_check_value() -> None:
    assert sl.crc16(b"123456789") == 0x29B1


@given(st.binary(max_size=64), st.integers(0, 65535), st.integers(-140, 0), st.integers(-80, 60))
def test_rx_roundtrip(radio: bytes, gw: int, rssi: int, snr_q: int) -> None:
    wire = sl.encode_rx(radio, gw, rssi, snr_q / 4, 7, 868_100_000)
    (pkt,) = sl.SlipDecoder().feed(wire)
    assert pkt == {"kind": sl.RX, "gateway_id": gw, "rssi_dbm": rssi, "snr_db": snr_q / 4,
                   "sf": 7, "freq_hz": 868_100_000, "frame": radio}


@given(st.binary(max_size=300), st.lists(st.binary(max_size=64), min_size=1, max_size=5), st.integers(1, 9))
@settings(max_examples=200, deadline=None)
def test_resynchronises_after_garbage(garbage: bytes, frames: list[bytes], chunk: int) -> None:
    wire = garbage + b"".join(sl.encode_rx(f, 1, -90, 5.0, 7, 868_100_000) for f in frames)
    dec = sl.SlipDecoder()
    out: list = []
    for i in range(0, len(wire), chunk):  # arbitrary chunking as a serial port delivers
        out.extend(dec.feed(wire[i : i + chunk]))
    good = [p["frame"] for p in out if isinstance(p, dict)]
    # END always closes a packet (even mid-escape), so garbage never costs a real packet.
    assert good[-len(frames) :] == frames
    assert all(isinstance(p, (dict, sl.LinkError)) for p in out)


def test_damaged_packet_is_reported_and_next_is_kept() -> None:
    a = bytearray(sl.encode_rx(b"\x11" * 16, 1, -80, 1.0, 7, 868_100_000))
    a[5] ^= 0x01
    b = sl.encode_rx(b"\x22" * 16, 1, -80, 1.0, 7, 868_100_000)
    out = sl.SlipDecoder().feed(bytes(a) + b)
    assert isinstance(out[0], sl.LinkError) and out[0].reason == "bad_crc"
    assert out[-1]["frame"] == b"\x22" * 16


def test_oversize_is_dropped() -> None:
    out = sl.SlipDecoder(max_packet=32).feed(bytes([sl.END]) + bytes(100) + bytes([sl.END]))
    assert [e.reason for e in out] == ["oversize"]


@given(st.binary(max_size=400))
@settings(max_examples=500, deadline=None)
def test_decoder_never_raises(data: bytes) -> None:
    for item in sl.SlipDecoder().feed(data):
        assert isinstance(item, (dict, sl.LinkError))


def test_same_bytes_under_micropython(micropython: Callable[..., Any]) -> None:
    script = (
        "from proto import serial_link as sl\n"
        "w = sl.encode_rx(bytes(range(20)) + bytes([0xC0, 0xDB]), 513, -97, -7.25, 9, 868300000)\n"
        "print(w.hex())\n"
        "print(sl.SlipDecoder().feed(b'junk' + w)[-1]['frame'].hex())\n"
    )
    out = micropython("-c", script)
    assert out.returncode == 0, out.stderr
    wire_hex, frame_hex = out.stdout.split()
    radio = bytes(range(20)) + bytes([0xC0, 0xDB])
    assert wire_hex == sl.encode_rx(radio, 513, -97, -7.25, 9, 868_300_000).hex()
    assert frame_hex == radio.hex()
