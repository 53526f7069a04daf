"""Boot from a ROMFS image as a board with a ROMFS partition does, then run a module from it (MicroPython).

``micropython -X heapsize=64k romfs_boot.py IMAGE MODULE [ARGS...]``

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

STACK = 512 * 1024


def _maps():
    out = set()
    with open("/proc/self/maps") as f:
        for line in f:
            span, perms = line.split()[:2]
            if perms.startswith("rw"):
                lo, hi = span.split("-")
                out.add((int(lo, 16), int(hi, 16)))
    return out


def _park(lock):
    lock.acquire()  # never released: this thread's stack is the flash


def _mount(image):
    """Copy ``image`` outside the heap and mount it at /rom. In a function: its names are
    locals, which MicroPython does not intern (module globals it does, for good)."""
    before = _maps()
    _thread.stack_size(STACK)
    lock = _thread.allocate_lock()
    lock.acquire()
    _thread.start_new_thread(_park, (lock,))
    fresh = sorted(m for m in _maps() - before if m[1] - m[0] >= STACK // 2)
    if not fresh:
        print("romfs_boot: no thread stack mapping found")
        sys.exit(2)
    size = os.stat(image)[6]
    if size > STACK // 2:
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
