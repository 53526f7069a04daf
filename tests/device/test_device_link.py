"""``hil/emu/machine_link.py`` + ``hw_server.py``: the firmware's ``machine`` in one process, the parts in another.

The heap soak (test_device_heap.py) runs the whole firmware this way; here
each kind of request is checked on its own against the emulated board,
including the ones the soak does not use (RTC memory, UART, errors, a
reset that ends both processes).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

BOARD = str(Path(__file__).parents[2] / "device" / "boards" / "unix_emulated.json")
EMU = Path(__file__).parents[2] / "hil" / "emu"
WDT_RESET_EXIT = 80 + 3


def test_every_request_reaches_the_emulated_parts(mpy: Any, tmp_path: Path) -> None:
    proc, hw_text = mpy.run_linked(
        "link_ops.py", "link_hw.py", heapsize="256k", cwd=tmp_path, extra_env={"FOGPARK_EMU_BOARD": BOARD},
        status=WDT_RESET_EXIT,
    )
    r = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            d = json.loads(line[7:])
            r[d["name"]] = d["value"]
    assert r["reset_cause"] == 1  # power-on
    assert r["scan"] == [0x0D]  # the QMC5883L of the GY-271 module
    assert r["qmc_chip_id"] == 0xFF
    assert r["nack_errno"] == 19  # nothing at 0x77: ENODEV, as on ESP32
    assert r["sx_version"] == 0x12
    assert r["deselected"] == 0xFF  # chip-select high: MISO floats
    assert r["battery_uv"] == 3900 * 1000 // 2  # the world's battery behind the 1:2 divider
    assert r["pulse_no_trigger"] == -2 and r["pulse_waited_us"] >= 30000  # the server's wait is the firmware's
    assert r["pulse_nothing_above"] == 38000  # the HC-SR04's give-up pulse
    assert r["rtc"] == "state"
    assert "2048" in r["rtc_too_big"]
    assert r["uart"] == [1, 0, None]  # no pty behind it: writes vanish, nothing arrives
    assert r["slept_ms"] >= 1500
    assert r["alive_after_lightsleep"] is True
    assert "not_reached" not in r
    assert 'EMU wdt {"timeout_ms": 1000}' in hw_text
    assert 'EMU reset {"cause": 3}' in hw_text


def test_both_ends_of_the_link_name_the_same_op_codes() -> None:
    link = dict(re.findall(r"^_([A-Z_0-9]+) = const\((0x[0-9A-F]+|\d+)\)", (EMU / "machine_link.py").read_text(), re.M))
    server = dict(re.findall(r"^([A-Z_0-9]+) = (0x[0-9A-F]+|\d+)$", (EMU / "hw_server.py").read_text(), re.M))
    assert len(link) > 20
    assert {k: int(v, 0) for k, v in link.items()} == {k: int(v, 0) for k, v in server.items()}
