"""`--hardware`: the host side (hil/hardware.py) and the firmware's test mode (device/firmware/test_mode.py)
together, against a board emulated on a pty (hil/emu/pty_board.py) running the flashed firmware."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hil.hardware import HardwareNode, emulated_board, parse_hardware
from proto import frame

KEY = "fc2b840303e1f7ecd96ac7e633490033"
NODE = {"node_id": 0x00D30001, "key": KEY, "spot": "A01", "board": "unix_emulated", "heartbeat_s": 60,
        "boot_jitter_s": 0, "confirmed": True, "retries": 3, "retry_s": 2, "radio": {"rx_window_ms": 1000}}
DESK = {"field_ut": [5.0, 5.0, 5.0], "battery_mv": 4100}  # what the board's own sensors read on the desk


def test_parse_hardware_names_the_bad_spec() -> None:
    assert parse_hardware(["/dev/ttyACM0=A01", "/dev/ttyUSB1=B02"]) == {"A01": "/dev/ttyACM0", "B02": "/dev/ttyUSB1"}
    with pytest.raises(ValueError, match="PORT=SPOT"):
        parse_hardware(["/dev/ttyACM0"])


def _next(host: HardwareNode, kind: str, timeout: float = 10.0) -> frame.Frame:
    for _ in range(8):
        f = host.read_tx(timeout=timeout).frame()
        if f.type_name() == kind:
            return f
    raise AssertionError(f"no {kind} frame")


def test_a_board_in_test_mode_is_driven_and_heard_like_an_emulated_node(tmp_path: Path) -> None:
    board = emulated_board(tmp_path / "flash", NODE, world=DESK)
    host = HardwareNode(board.port, NODE, tmp_path / "host")
    try:
        host.start(timeout=10)  # PING answered by the firmware: the board runs in test mode
        hb = _next(host, "heartbeat", 15)
        assert hb.node_id == NODE["node_id"] and hb.verify(bytes.fromhex(KEY), hb.fcnt16)
        # the TX line's settings are the radio registers read back: the register model agrees
        emu_tx = [ln.split() for ln in board.emu_out.read_text().splitlines() if ln.startswith("TX ")]
        first = host.tx_log[0]
        assert emu_tx and emu_tx[0][1] == first.payload.hex()
        assert [int(x) for x in emu_tx[0][2:7]] == [first.freq_hz, first.sf, first.bw_hz, first.cr, first.power_dbm]

        host.park()  # WORLD over the serial port: a car's field over the baseline learnt from the bench
        occ = _next(host, "occupancy")
        fields = occ.fields()
        assert fields["state"] == frame.OCCUPIED and fields["mag_dev_ut"] >= 20  # the field, not only the range
        assert fields["flags"] & frame.FLAG_ACK_REQUESTED
        tx = host.tx_log[-1]
        ack = frame.encode_frame(frame.ACK, NODE["node_id"], 0, frame.ack_payload(tx.payload[5] | tx.payload[6] << 8, 0),
                                 bytes.fromhex(KEY))
        host.inject_downlink(ack)  # in the receive window, on the uplink's channel
        assert host.wait_console(r"confirmed: ACK for fcnt16", timeout=5)
        assert host.wait_event("rx", timeout=2) == {"result": "received", "len": len(ack)}
        n_rx = sum(1 for e, _ in host.events if e == "rx")
        host.inject_downlink(ack)  # outside any window: a radio asleep hears nothing
        assert host.wait_event("rx", timeout=3, after=n_rx) == {"result": "not_listening", "len": len(ack)}
        n_err = sum(1 for e, _ in host.events if e == "error")
        host.send_line('WORLD {"meteor": 1}')
        assert "unknown world key" in str(host.wait_event("error", timeout=3, after=n_err))

        host.leave()
        assert _next(host, "occupancy").fields()["state"] == frame.EMPTY
        host.set_world(battery_mv=3300)
        host.restart()  # a brownout: Ctrl-C, machine.reset() at the REPL, reconnect, world given again
        boot = _next(host, "heartbeat", 15).fields()
        assert boot["battery_mv"] == 3300 and boot["reboots"] >= 1 and boot["state"] & 0x0F == frame.EMPTY
    finally:
        host.stop()
        board.stop()


def test_test_mode_is_refused_where_it_cannot_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Deep sleep would stop the console; only LoRa has TX/RX lines: node.json says so before anything runs."""
    from device.cli import main as node_cli

    p = tmp_path / "node.json"
    p.write_text(json.dumps({**NODE, "test_mode": True}))
    assert node_cli(["check", str(p)]) == 0
    p.write_text(json.dumps({**NODE, "test_mode": True, "deep_sleep": True, "sample_ms": 5000}))
    assert node_cli(["check", str(p)]) != 0
    p.write_text(json.dumps({**NODE, "test_mode": True, "transport": "uart", "confirmed": False}))
    assert node_cli(["check", str(p)]) != 0
    out = capsys.readouterr()
    assert "'test_mode': keeps the board awake" in out.out + out.err
    assert "'test_mode': drives a LoRa node" in out.out + out.err
