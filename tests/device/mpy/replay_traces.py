"""Replay trace files through the firmware's detect.py under MicroPython (``device/trace_replay.py``).

Arguments: sample period in seconds, then trace files. Prints one line per
trace: ``EVENTS <file name> <index>:<state> ...`` (the committed changes).
"""

import sys

import trace_replay

sample_s = int(sys.argv[1])
for path in sys.argv[2:]:
    with open(path, "rb") as f:
        data = f.read()
    events = trace_replay.replay(data, {}, sample_s)
    name = path.rsplit("/", 1)[-1]
    sys.stdout.write("EVENTS " + name + "".join(" " + str(i) + ":" + str(s) for i, s in events) + "\n")
