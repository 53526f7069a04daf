"""Board entry point: MicroPython runs main.py after boot.py; so does hil/emu/node_main.py.

The import order keeps the RAM peak low on a node that compiles its .py
files itself: the largest module (the frame codec) first, while the heap is
emptiest; then node.json is loaded and the config modules dropped from RAM;
then the sampling code and drivers. When node.json had to be checked (it
changed since the last boot) and the heap is under 128 KiB, the node
restarts once before sampling: the rules' names stay interned until a reset
(node_config.py says why).
"""

import gc
import sys
import time

import machine

print("fogpark node firmware booting (" + sys.implementation.name + ")")
try:
    from proto import frame  # noqa: F401

    gc.collect()
    import node_config

    cfg = node_config.boot("node.json")
    del node_config
    sys.modules.pop("node_config_check", None)
    del sys.modules["node_config"]
    gc.collect()
    import node_app

    node_app.run(cfg)
except KeyboardInterrupt:
    print("stopped (Ctrl-C): REPL")
except Exception as e:  # noqa: BLE001 - a node must come back by itself
    sys.print_exception(e)  # type: ignore[attr-defined]
    print("fatal error: rebooting in 5 s")
    time.sleep_ms(5000)
    machine.reset()
