"""`--hardware`: the host side of a real board in test mode, against a board emulated on a pty."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.hardware import HardwareNode, PtyBoard, parse_hardware
from hil.node_process import EmulatedNode

NODE = {"node_id": 0x00D30001, "key": "fc2b840303e1f7ecd96ac7e633490033", "spot": "A01",
        "board": "unix_emulated", "heartbeat_s": 10, "boot_jitter_s": 0}


def test_parse_hardware_names_the_bad_spec() -> None:
    assert parse_hardware(["/dev/ttyACM0=A01", "/dev/ttyUSB1=B02"]) == {"A01": "/dev/ttyACM0", "B02": "/dev/ttyUSB1"}
    with pytest.raises(ValueError, match="PORT=SPOT"):
        parse_hardware(["/dev/ttyACM0"])


def test_a_board_on_serial_is_driven_and_heard_like_an_emulated_node(tmp_path: Path) -> None:
    board = PtyBoard(EmulatedNode(NODE, tmp_path / "board"), tmp_path / "ttyBOARD")
    board.start()
    host = HardwareNode(str(tmp_path / "ttyBOARD"), NODE, tmp_path / "host")
    try:
        host.start(timeout=5)  # PING answered through the pty: the board is in test mode
        assert host.running
        first = host.read_tx(timeout=15)  # boot heartbeat, as a TX line from the board
        assert first.frame().node_id == NODE["node_id"]
        host.park()  # a WORLD line over the serial port puts a car over the board's sensors
        for _ in range(5):
            f = host.read_tx(timeout=10).frame()
            if f.type_name() == "occupancy":
                break
        assert f.type_name() == "occupancy" and f.fields()["state"] == 1  # the board saw the car
    finally:
        host.stop()
        board.close()
    assert not board.node.running
