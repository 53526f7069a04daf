"""The emulated board behind a firmware process, for link tests (MicroPython; see hw_server.py)."""

import sys

import vtime

sys.modules["time"] = vtime

import os  # noqa: E402

from emu_setup import setup  # noqa: E402

board, world, parts = setup(distance_cm=None, battery_mv=3900)
import hw_server  # noqa: E402
import machine  # noqa: E402

machine.emu_hook("sleep", vtime.sleep_ms)
hw_server.serve(os.getenv("FOGPARK_EMU_LINK") or ".")
