"""Shared by the MicroPython test scripts: emulated board + world, no firmware main."""

import json
import sys

import node_main  # noqa: F401 - installs hil/emu/machine.py as machine; main() does not run on import
import world as world_mod


def setup(**world):
    w = world_mod.World(exit_on_eof=False)
    w.open = False  # scripts steer the world themselves: no control lines on stdin
    w.mag_noise_ut = 0.0
    w.set(world)
    board = node_main._load_board()
    parts = node_main.build(board, w)
    return board, w, parts


def result(name, value):
    sys.stdout.write("RESULT " + json.dumps({"name": name, "value": value}) + "\n")
