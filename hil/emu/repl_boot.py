"""Boot of a REPL board (``pty_board.py``): emulated hardware, then ``main.py``, then the REPL.

Run as ``micropython -i repl_boot.py`` with the board's flash as working
directory. With FOGPARK_EMU_ROMFS the board has a ROMFS partition
(``romfs_partition.py``), mounted at /rom first. Then the emulated parts
are wired as ``node_main.py`` wires them, but stdin is the serial console (FOGPARK_EMU_CONTROL=none: no control lines)
and the emulator's own lines go to FOGPARK_EMU_OUT. Then, as a board does
after a reset, ``main.py`` from the flash runs (unless
FOGPARK_BOARD_SKIP_MAIN=1: a soft reset from the raw REPL skips it, as on
a board); when it returns (Ctrl-C stops the firmware) ``-i`` leaves the
REPL, where mpremote finds its raw REPL.
"""

import json
import os

rom = os.getenv("FOGPARK_EMU_ROMFS")  # "PATH:SIZE": a ROMFS partition (pty_board.py --romfs-size)
if rom:
    import romfs_partition

    romfs_partition.install(rom.rsplit(":", 1)[0], int(rom.rsplit(":", 1)[1]))

import node_main  # noqa: E402 - after /rom is mounted: the firmware (and proto) may come from there
import world as world_mod  # noqa: E402

w = world_mod.World(exit_on_eof=False)
w.open = False
init = os.getenv("FOGPARK_EMU_WORLD")
if init:
    w.set(json.loads(init))
node_main.build(node_main._load_board(), w)
if os.getenv("FOGPARK_BOARD_SKIP_MAIN") != "1":
    try:
        os.stat("main.py")
        has_main = True
    except OSError:
        has_main = False
    if has_main:
        import main  # noqa: F401 - the firmware, as a board runs it after reset
