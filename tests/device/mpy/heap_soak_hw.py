"""The hardware side of the heap soak: the emulated parts, the world and a scripted fog (MicroPython).

Runs in its own process with a large heap; ``heap_soak.py`` (the firmware
alone, in the small heap) reaches these parts through ``machine_link`` and
``hw_server``. The scenario follows the firmware's sample cycles (its
``emu_mark`` before each one): parking and leaving, RFID cards, a magnet held
to the sensor and taken away, a CONFIG downlink at cycle 1000 and a
CALIBRATE command every 2500 cycles; the fog answers confirmed uplinks with
an ACK in the receive window, except every third window (a lost ACK).
"""

import sys

import vtime

sys.modules["time"] = vtime

import gc  # noqa: E402
import os  # noqa: E402

from emu_setup import result, setup  # noqa: E402

board, world, parts = setup()
world.mag_noise_ut = 0.3
import hw_server  # noqa: E402
import machine  # noqa: E402

machine.emu_hook("sleep", vtime.sleep_ms)
radio = parts["radio"]

from proto import frame  # noqa: E402

KEY = b"\x2b\x7e\x15\x16\x28\xae\xd2\xa6\xab\xf7\x15\x88\x09\xcf\x4f\x3c"
NODE_ID = 0x1234ABCD
EARTH = [18.0, -4.0, 44.0]
CAR = [24.0, 3.0, 86.0]
down = {"fcnt": 0, "queue": [], "sent": 0}


def on_tx(payload, s):
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


def on_cycle(i):
    """The world and the fog's queue before the firmware's sample cycle ``i``."""
    phase = i % 200
    if phase == 0:
        world.set({"field_ut": CAR, "distance_cm": 28.0})
    elif phase == 60:
        world.set({"card_uid": "04a1b2c3d4e5f6" if (i // 200) % 2 else "deadbeef"})
    elif phase == 70:
        world.set({"card_uid": None})
    elif phase == 100:
        world.set({"field_ut": EARTH, "distance_cm": None})
    elif phase == 150 and i % 1000 == 150:
        world.set({"field_ut": [900.0, 900.0, 900.0]})  # a magnet held to the sensor
    elif phase == 180 and i % 1000 == 180:
        world.set({"field_ut": EARTH})
    if i == 1000:
        down["queue"].append((frame.CONFIG, frame.config_payload(7, [(2, b"\x0a\x00"), (4, b"\x0f"), (5, b"\x01")])))
    if i % 2500 == 2000:
        down["queue"].append((frame.COMMAND, frame.command_payload(frame.CMD_CALIBRATE, b"")))


machine.emu_service(fog)
gc.collect()
result("emu_alloc", gc.mem_alloc())  # type: ignore[attr-defined]  # the emulated hardware, the fog and the server
server = hw_server.serve(os.getenv("FOGPARK_EMU_LINK") or ".", on_cycle)
result("downlinks", down["sent"])
result("link_requests", server.requests)
result("link_replies", server.replies)
result("hw_virtual_s", int(vtime.elapsed_s()))
