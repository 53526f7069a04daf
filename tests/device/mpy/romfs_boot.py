"""Boot from a ROMFS image as a board with a ROMFS partition does, then run a module from it (MicroPython).

``micropython -X heapsize=64k -m romfs_boot IMAGE MODULE [ARGS...]`` (precompiled; or as a script)

On a board with ROMFS (MicroPython >= 1.25 built with ``MICROPY_VFS_ROM``)
the image sits in memory-mapped flash, is mounted at /rom, and ``.mpy`` code
imported from it runs in place: bytecode and constants stay in flash, only
the objects the code makes use the heap. Here the "flash" is memory outside
the GC heap: the unused low end of a parked thread's stack (a mapping of its
own, found in /proc/self/maps; the thread only ever uses the top few KB).
The image is copied there, mounted with ``vfs.VfsRom`` and put first on
``sys.path``; then ``MODULE`` is imported from it with ``sys.argv`` =
``[MODULE, ARGS...]``.
"""

import _thread
import os
import sys

import uctypes
import vfs
from micropython import const

_STACK = const(512 * 1024)


def _park(lock):
    lock.acquire()  # never released: this thread's stack is the flash


def _mount(image):
    """Copy ``image`` outside the heap and mount it at /rom. All in one function: its names are
    locals, which a precompiled module does not intern (module globals it does, for good)."""
    maps = []
    for _ in range(2):  # the writable mappings before and after the parked thread starts
        found = set()
        with open("/proc/self/maps") as f:
            for line in f:
                span, perms = line.split()[:2]
                if perms.startswith("rw"):
                    lo, hi = span.split("-")
                    found.add((int(lo, 16), int(hi, 16)))
        maps.append(found)
        if len(maps) == 1:
            _thread.stack_size(_STACK)
            lock = _thread.allocate_lock()
            lock.acquire()
            _thread.start_new_thread(_park, (lock,))
    fresh = sorted(m for m in maps[1] - maps[0] if m[1] - m[0] >= _STACK // 2)
    if not fresh:
        print("romfs_boot: no thread stack mapping found")
        sys.exit(2)
    size = os.stat(image)[6]
    if size > _STACK // 2:
        print("romfs_boot: image too large for the stack region")
        sys.exit(2)
    flash = uctypes.bytearray_at(fresh[0][0] + 4096, size)
    with open(image, "rb") as f:
        f.readinto(flash)
    vfs.mount(vfs.VfsRom(flash), "/rom")
    sys.path.insert(0, "/rom")


_mount(sys.argv[1])
sys.argv[:] = sys.argv[2:]
__import__(sys.argv[0])
