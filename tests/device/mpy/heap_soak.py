"""The whole firmware for N sample cycles on a small heap, in virtual time (run under MicroPython).

Runs from the precompiled .mpy trees (the test sets MICROPYPATH). Time is
``vtime``: sleeps advance a virtual clock, so a day of 1 s samples takes
seconds. The scenario exercises every path that allocates: parking and
leaving (occupancy frames, confirmed with ACKs from a scripted fog),
heartbeats, a CONFIG and a CALIBRATE downlink, RFID check-ins, magnet
tamper (saturation) and its clearing, duty-cycle waits. Prints RESULT
lines: cycles done, the least free heap seen after a collection, counts.
A MemoryError ends the run with RESULT memory_error.
"""

import sys

import vtime

sys.modules["time"] = vtime

import gc  # noqa: E402

from emu_setup import result, setup  # noqa: E402

CYCLES = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
board, world, parts = setup()
world.mag_noise_ut = 0.3
import machine  # noqa: E402

machine.emu_hook("sleep", vtime.sleep_ms)
radio = parts["radio"]
reader = parts.get("rfid")

from proto import frame  # noqa: E402

KEY = b"\x2b\x7e\x15\x16\x28\xae\xd2\xa6\xab\xf7\x15\x88\x09\xcf\x4f\x3c"
NODE_ID = 0x1234ABCD
tx_log = []
down = {"fcnt": 0, "queue": [], "sent": 0}
_print_tx = radio.on_tx


def on_tx(payload, s):
    if len(tx_log) > 4:
        tx_log.pop(0)
    tx_log.append(bytes(payload))
    down["last_tx"] = bytes(payload)


radio.on_tx = on_tx


def fog():
    """The scripted fog: answers in the receive window (ACKs for confirmed frames, queued downlinks)."""
    if radio.mode() != 5 or "last_tx" not in down:
        return
    up = down.pop("last_tx")
    if up[7] & frame.FLAG_ACK_REQUESTED and up[0] & 0x0F == frame.OCCUPANCY and down["fcnt"] % 3 != 2:
        fcnt16 = up[5] | (up[6] << 8)
        pkt = frame.encode_frame(frame.ACK, NODE_ID, down["fcnt"], frame.ack_payload(fcnt16, 0), KEY)
    elif down["queue"]:
        pkt = frame.encode_frame(down["queue"][0][0], NODE_ID, down["fcnt"], down["queue"].pop(0)[1], KEY)
    else:
        down["fcnt"] += 1  # a window the fog leaves empty (a lost ACK, every third time)
        return
    down["fcnt"] += 1
    down["sent"] += 1
    radio.inject(pkt, 868100000, 7, 125000, 0x12, -90.0, 7.5)


machine.emu_service(fog)
gc.collect()
emu_alloc = gc.mem_alloc()  # type: ignore[attr-defined]
result("emu_alloc", emu_alloc)  # the emulated hardware and this harness, before any firmware module

# main.py's boot sequence
import node_config  # noqa: E402

cfg = node_config.load("node.json")
del node_config
sys.modules.pop("node_config_check", None)
del sys.modules["node_config"]
gc.collect()
import node_app  # noqa: E402

node = node_app.Node(cfg)
node.setup()
gc.collect()
result("free_after_boot", gc.mem_free())  # type: ignore[attr-defined]
result("firmware_alloc_after_boot", gc.mem_alloc() - emu_alloc)  # type: ignore[attr-defined]
EARTH = (18.0, -4.0, 44.0)
CAR = (24.0, 3.0, 86.0)
least = gc.mem_free()  # type: ignore[attr-defined]
most_fw = 0
done = 0
try:
    for i in range(CYCLES):
        phase = i % 200
        if phase == 0:
            world.set({"field_ut": list(CAR), "distance_cm": 28.0})
        elif phase == 60:
            world.set({"card_uid": "04a1b2c3d4e5f6" if (i // 200) % 2 else "deadbeef"})
        elif phase == 70:
            world.set({"card_uid": None})
        elif phase == 100:
            world.set({"field_ut": list(EARTH), "distance_cm": None})
        elif phase == 150 and i % 1000 == 150:
            world.set({"field_ut": [900.0, 900.0, 900.0]})  # a magnet held to the sensor
        elif phase == 180 and i % 1000 == 180:
            world.set({"field_ut": list(EARTH)})
        if i == 1000:
            down["queue"].append((frame.CONFIG, frame.config_payload(7, [(2, b"\x0a\x00"), (4, b"\x0f"), (5, b"\x01")])))
        if i % 2500 == 2000:
            down["queue"].append((frame.COMMAND, frame.command_payload(frame.CMD_CALIBRATE, b"")))
        node.step()
        node.sleep(cfg.sample_ms)
        done += 1
        if i % 50 == 0:
            gc.collect()
            f = gc.mem_free()  # type: ignore[attr-defined]
            if f < least:
                least = f
                most_fw = gc.mem_alloc() - emu_alloc  # type: ignore[attr-defined]
except MemoryError as e:
    result("memory_error", [done, repr(e)])
gc.collect()
result("cycles", done)
result("least_free", least)
result("firmware_alloc_most", most_fw)  # what the firmware held when the heap was tightest
result("heap_total", gc.mem_free() + gc.mem_alloc())  # type: ignore[attr-defined]
result("tx_ok", node.up.tx_ok)
result("acked", node.up.acked)
result("gave_up", node.up.gave_up)
result("downlinks", down["sent"])
result("cfg_version", node.up.cfg_version)
result("sample_ms", cfg.sample_ms)
result("virtual_s", int(vtime.elapsed_s()))
