"""The firmware alone through N sample cycles in a small heap, its hardware in another process (MicroPython).

Runs from the precompiled .mpy trees (the test sets MICROPYPATH). Time is
``vtime``: sleeps advance a virtual clock, so hours of 1 s samples take
seconds. ``machine`` is ``machine_link``: every pin, SPI, I2C, pulse, ADC
and sleep goes to the emulated parts in ``heap_soak_hw.py``'s process, so
this heap holds the interpreter, this script, ``vtime``, the link and the
firmware, nothing else. Before each cycle ``emu_mark`` tells the hardware
side which cycle comes (its world and its fog follow a script by cycle).
Boots as main.py does, then steps the node. Prints RESULT lines: what the
link and the firmware hold, cycles done, the least free heap seen after a
collection, counts. A MemoryError ends the run with RESULT memory_error.
"""

import sys

import vtime

sys.modules["time"] = vtime

import gc  # noqa: E402
import json  # noqa: E402

import micropython  # noqa: E402


def result(name, value):
    """A RESULT line. Names over 10 characters and one format string: MicroPython interns shorter
    string constants for good, and this script's names count in the measured heap."""
    sys.stdout.write(f'RESULT {{"name": "{name}", "value": {json.dumps(value)}}}\n')


def main(cycles):
    """The soak in a function: its names are locals (slots), not globals MicroPython would intern."""
    gc.collect()
    start = gc.mem_alloc()  # type: ignore[attr-defined]  # the interpreter, this script, vtime
    import machine_link

    sys.modules["machine"] = machine_link
    gc.collect()
    base = gc.mem_alloc()  # type: ignore[attr-defined]
    result("harness_alloc", start)
    result("link_alloc_bytes", base - start)
    # main.py's boot sequence
    from proto import frame

    gc.collect()
    import node_config

    cfg = node_config.boot("node.json")  # a new node.json: checked, saved, and a soft reset (exit 85) here
    del node_config
    sys.modules.pop("node_config_check", None)
    del sys.modules["node_config"]
    gc.collect()
    import node_app

    node = node_app.Node(cfg)
    node.setup()
    gc.collect()
    micropython.qstr_info()  # "qstr pool: n_pool=.., n_qstr=..": the interned names after boot
    result("free_after_boot", gc.mem_free())  # type: ignore[attr-defined]
    result("firmware_alloc_after_boot", gc.mem_alloc() - base)  # type: ignore[attr-defined]
    least = gc.mem_free()  # type: ignore[attr-defined]
    most_fw = gc.mem_alloc() - base  # type: ignore[attr-defined]
    done = 0
    try:
        for i in range(cycles):
            machine_link.emu_mark(i)
            node.step()
            node.sleep(cfg.sample_ms)
            done += 1
            if i % 50 == 0:
                gc.collect()
                f = gc.mem_free()  # type: ignore[attr-defined]
                if f < least:
                    least = f
                    most_fw = gc.mem_alloc() - base  # type: ignore[attr-defined]
    except MemoryError as e:
        result("memory_error", [done, repr(e)])
    gc.collect()
    micropython.qstr_info()  # and at the end
    result("cycles_done", done)
    result("least_free_bytes", least)
    result("firmware_alloc_most", most_fw)  # what the firmware held when the heap was tightest
    result("heap_total_bytes", gc.mem_free() + gc.mem_alloc())  # type: ignore[attr-defined]
    result("tx_ok", node.up.tx_ok)
    result("acked", node.up.acked)
    result("gave_up", node.up.gave_up)
    result("cfg_version", node.up.cfg_version)
    result("sample_ms", cfg.sample_ms)
    result("virtual_seconds", int(vtime.elapsed_s()))
    result("firmware_file", frame.__file__)  # where the firmware was imported from (/rom/... from a ROMFS)


main(int(sys.argv[1]) if len(sys.argv) > 1 else 10000)
