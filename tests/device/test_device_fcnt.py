"""The persisted frame counter: unit tests under CPython, then across restarts of a node process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from device.cli import firmware_module
from proto import frame


def store(path: Path, block: int = 16) -> Any:
    return firmware_module("fcnt_store").FcntStore(str(path), block)


def test_counters_increase_and_flash_is_written_once_per_block(tmp_path: Path) -> None:
    s = store(tmp_path / "fcnt.dat", block=16)
    got = [s.take() for _ in range(40)]
    assert got == list(range(40))
    assert s.writes == 3  # boot reservation + 2 more blocks for 40 counters
    assert (tmp_path / "fcnt.dat").read_text() == "fcnt1 48 1\n"


def test_reboot_skips_to_the_next_block(tmp_path: Path) -> None:
    s = store(tmp_path / "fcnt.dat")
    used = [s.take() for _ in range(5)]
    s2 = store(tmp_path / "fcnt.dat")  # power cut after 5 frames, reboot
    assert s2.take() == 16 > max(used)
    assert s2.boots == 2
    s3 = store(tmp_path / "fcnt.dat")  # reboot before sending anything
    assert s3.take() == 32


def test_corrupt_file_refuses_rather_than_reuse(tmp_path: Path) -> None:
    p = tmp_path / "fcnt.dat"
    p.write_text("garbage")
    with pytest.raises(OSError, match="corrupt"):
        store(p)


def test_exhausted_counter_raises(tmp_path: Path) -> None:
    p = tmp_path / "fcnt.dat"
    p.write_text("fcnt1 4294967295 3\n")
    s = store(p)
    assert s.take() == 0xFFFFFFFF
    with pytest.raises(OSError, match="exhausted"):
        s.take()


def _counters(node: Any, key: bytes, n: int, last: int) -> list[int]:
    out = []
    for _ in range(n):
        tx = node.read_tx(timeout=6)
        f = tx.frame()
        fcnt = frame.reconstruct_fcnt(f.fcnt16, last)
        assert f.verify(key, fcnt)
        out.append(fcnt)
        last = fcnt
    return out


def test_counters_strictly_increase_across_node_restarts(
    emulated_node: Callable[..., Any], node_json: Callable[..., dict[str, Any]], key: bytes
) -> None:
    node = emulated_node(node_json(sample_ms=200, heartbeat_s=10, detect={"calib_samples": 2}))
    first = _counters(node, key, 1, -1)  # the boot heartbeat
    node.park()
    first += _counters(node, key, 1, first[-1])
    node.stop()
    node.start()  # power cycle: RAM gone, flash (fcnt.dat) kept
    second = _counters(node, key, 1, first[-1])
    node.leave()
    second += _counters(node, key, 1, second[-1])
    seq = first + second
    assert seq == sorted(set(seq)), seq
    assert second[0] >= 16  # the second boot started at the next reserved block
    hb = node.tx_log[-2].frame()
    assert hb.msg_type == frame.HEARTBEAT and hb.fields()["reboots"] == 1
