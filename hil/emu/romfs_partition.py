"""An emulated ROMFS partition for a REPL board (``pty_board.py --romfs-size``) (MicroPython).

A board built with ``MICROPY_VFS_ROM`` has a flash partition for a ROMFS
image: ``vfs.rom_ioctl`` reports and writes it, and at boot the image is
mounted at /rom and put on ``sys.path``, so ``.mpy`` files run from it in
place. The unix port has ``vfs.VfsRom`` but no partition, so this module
adds one: a file (the partition's flash) loaded into a bytearray (its
memory map), and ``rom_ioctl`` with the operations ``mpremote romfs
query|deploy`` uses, as the ports implement them (1: partitions; 2: the
partition's memory; 6: its erase block; 3: prepare (erase) a range; 4:
write; 5: the write is done, here: save the file). ``install`` puts this
module in ``sys.modules["vfs"]``, so ``import vfs`` on the REPL finds
``rom_ioctl`` beside the real ``mount``, ``umount`` and ``VfsRom``.
"""

import sys

import vfs as _vfs

mount = _vfs.mount
umount = _vfs.umount
VfsRom = _vfs.VfsRom

BLOCK = 4096
_HEADER = b"\xd2\xcd\x31"
_part: list = [bytearray(), ""]  # [the partition's bytes, its file]


def rom_ioctl(op, *args):
    mem = _part[0]
    if op == 1:
        return 1
    if args and args[0] != 0:
        return -19  # ENODEV: one partition
    if op == 2:
        return memoryview(mem)
    if op == 6:
        return BLOCK
    if op == 3:  # prepare (erase) (id, length) or (id, offset, length)
        off, n = (0, args[1]) if len(args) == 2 else (args[1], args[2])
        if off < 0 or off + n > len(mem):
            return -22
        for i in range(off, off + n):
            mem[i] = 0xFF
        return 4  # the smallest write
    if op == 4:  # write (id, offset, data)
        off, data = args[1], args[2]
        if off < 0 or off + len(data) > len(mem):
            return -22
        mem[off : off + len(data)] = data
        return 0
    if op == 5:  # done: the flash keeps it
        with open(_part[1], "wb") as f:
            f.write(mem)
        return 0
    return -22


def install(path, size):
    """Load the partition from ``path`` (erased flash when there is none yet), serve ``rom_ioctl``,
    and mount a valid image at /rom, first on the import path after the current folder."""
    mem = bytearray(b"\xff" * size)
    try:
        with open(path, "rb") as f:
            f.readinto(mem)
    except OSError:
        pass
    _part[0] = mem
    _part[1] = path
    sys.modules["vfs"] = sys.modules[__name__]
    if bytes(mem[:3]) == _HEADER:
        _vfs.mount(VfsRom(memoryview(mem)), "/rom")
        sys.path.insert(1, "/rom")
