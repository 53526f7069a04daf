"""A thin ``machine`` for a firmware process whose hardware runs in another process (MicroPython).

Why: on the 64-bit unix port the emulated parts (register models, world,
``machine.py``: ~89 KB with the scripted fog) would share the firmware's heap; a heap
test must hold the firmware alone. Here every bus-level transaction (a pin
level, an SPI transfer with its chip-select edges, an I2C read or write, a
pulse measurement, an ADC read, a sleep) goes over a pair of named pipes to
``hw_server.py``, which performs it on the emulated ``machine`` and its
parts. The drivers still do all their register and pin work; only the wire
between MCU and parts is a pipe.

Only the part of ``machine`` the firmware calls is here (anything else is an
AttributeError), and the op codes are ``const()``: this module's RAM is
counted in the firmware's heap. Pin IRQs are not forwarded (the firmware
polls its pins).

Time is virtual on both sides (``vtime``): a request carries this process's
clock, a reply the server's (a sleep or a pulse advances it), and each side
keeps the later of the two.

Wire, little-endian. Request: ``op u8, a u8, x u8, y u8, n u16, t u64``, then
``n`` bytes (``a``: a pin number or a bus handle; ``x``, ``y``: small
arguments). Ops with bit 0x80 wait for a reply; the others are posted (an
error in one comes back with the next reply). For ops with bit 0x40 ``n`` is
the number of bytes wanted and nothing follows. Reply: ``status u8, pad u8,
n u16, t u64``, then ``n`` bytes; status 0 ok, 1 OSError (errno u16 in the
payload), 2 ValueError, 3 AttributeError, 4 SystemExit (the exit status: a
reset), 5 any other error (the message in the payload). ``hw_server.OPS``
names the op codes; a test checks the two tables agree.

``FOGPARK_EMU_LINK`` names the folder holding the pipes ``req`` and ``rep``.
The script that boots the firmware installs ``vtime`` as ``time``, then this
module as ``machine``.
"""

import struct
import sys

import vtime
from micropython import const

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

# posted
_P_INIT = const(1)  # a pin; x mode, y pull (0xFF: unchanged); payload: the level, or nothing
_P_SET = const(2)  # a pin; x level
_S_INIT = const(3)  # a bus; payload <iBBBBB: baudrate polarity phase bits firstbit sck
_S_WRITE = const(4)  # a bus; payload: the bytes
_I_INIT = const(5)  # a bus; x scl, y sda; payload <i: freq
_A_INIT = const(6)  # a pin; x attenuation
_WDT_INIT = const(7)  # payload <i: timeout ms
_WDT_FEED = const(8)
_U_INIT = const(9)  # a UART; payload <iiBB: id baudrate tx rx
_U_WRITE = const(10)  # a UART; payload: the bytes
_MARK = const(11)  # not hardware: a bench script's marker (payload <I) for the server's scenario
# replied
_P_GET = const(0x81)  # a pin -> its level, 1 byte
_S_XFER = const(0x82)  # a bus; payload written -> as many bytes read
_I_WMEM = const(0x84)  # a bus, x address, y register; payload written
_I_SCAN = const(0x85)  # a bus -> the addresses that answer
_PULSE = const(0x86)  # a pin, x level; payload <i timeout -> <i time_pulse_us
_ADC_READ = const(0x87)  # a pin, x 0: read_uv, 1: read_u16 -> <i
_RTC_MEM = const(0x88)  # x 0: read -> the bytes; x 1: write the payload
_SLEEP = const(0x89)  # x 0 light, 1 deep; payload <i ms (-1: none)
_RESET = const(0x8A)
_CAUSE = const(0x8B)  # -> 1 byte
_IDLE = const(0x8C)
_U_ANY = const(0x8D)  # a UART -> 1 byte
# replied, n = bytes wanted
_S_READ = const(0xC1)  # a bus, x the byte written while reading
_I_RMEM = const(0xC3)  # a bus, x address, y register
_U_READ = const(0xC4)  # a UART (the reply may be shorter)

_head = bytearray(14)
_d = bytearray(8)  # short replies land here
_io: list = []  # [request pipe, reply pipe], opened at the first request
_n = [0]  # the last handle given to a bus


def _post(op, a, x=0, y=0, data=None):
    """Send a request. ``data``: the payload, or for ops with bit 0x40 the number of bytes wanted."""
    if not _io:
        import os

        link = os.getenv("FOGPARK_EMU_LINK") or "."
        _io.append(open(link + "/req", "wb"))  # both sides open req first, so neither waits forever
        _io.append(open(link + "/rep", "rb"))
    n = data if op & 0x40 else 0 if data is None else len(data)
    struct.pack_into("<BBBBHQ", _head, 0, op, a & 0xFF, x & 0xFF, y & 0xFF, n, vtime._us[0])
    _io[0].write(_head)
    if n and not op & 0x40:
        _io[0].write(data)


def _ask(op, a, x=0, y=0, data=None, into=None):
    """Send a request and wait for its reply; its length. The bytes land in ``into`` (or ``_d``)."""
    _post(op, a, x, y, data)
    rep = _io[1]
    if rep.readinto(memoryview(_head)[:12]) != 12:
        print("machine_link: the hardware server is gone")
        sys.exit(3)
    status, n, t = struct.unpack_from("<BxHQ", _head)
    if t > vtime._us[0]:
        vtime._us[0] = t
    if into is None or status:
        into = _d if n <= 8 else bytearray(n)
    if n:
        rep.readinto(into if len(into) == n else memoryview(into)[:n])
    if status == 1:
        raise OSError(into[0] | into[1] << 8)
    if status == 4:
        sys.exit(into[0])
    if status:
        msg = bytes(into[:n]).decode()
        raise ValueError(msg) if status == 2 else AttributeError(msg) if status == 3 else RuntimeError(msg)
    return n


def _handle():
    _n[0] += 1
    return _n[0]


def _id(p):
    return p if isinstance(p, int) else p.id


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_DOWN = 1
    PULL_UP = 2

    def __init__(self, id, mode=-1, pull=-1, *, value=None):
        if not isinstance(id, int):
            raise ValueError("emulated pins are numbered")
        self.id = id
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None):
        _post(_P_INIT, self.id, mode, pull, None if value is None else b"\x01" if value else b"\x00")

    def value(self, v=None):
        if v is None:
            _ask(_P_GET, self.id)
            return _d[0]
        _post(_P_SET, self.id, 1 if v else 0)
        return None


class SPI:
    def __init__(self, id=1, baudrate=1000000, *, polarity=0, phase=0, bits=8, firstbit=0, sck=None, mosi=None, miso=None):
        if sck is None:
            raise ValueError("emulated SPI needs explicit sck/mosi/miso pins")
        self.h = _handle()
        _post(_S_INIT, self.h, data=struct.pack("<iBBBBB", baudrate, polarity, phase, bits, firstbit, _id(sck)))

    def write(self, buf):
        _post(_S_WRITE, self.h, data=buf)

    def write_readinto(self, write_buf, read_buf):
        if len(write_buf) != len(read_buf):
            raise ValueError("buffers must be the same length")
        _ask(_S_XFER, self.h, data=write_buf, into=read_buf)

    def readinto(self, buf, write=0):
        _ask(_S_READ, self.h, write, 0, len(buf), buf)


class I2C:
    def __init__(self, id=0, *, scl=None, sda=None, freq=400000):
        if scl is None or sda is None:
            raise ValueError("emulated I2C needs explicit scl and sda pins")
        self.h = _handle()
        _post(_I_INIT, self.h, _id(scl), _id(sda), struct.pack("<i", freq))

    def scan(self):
        got = bytearray(128)
        return list(got[: _ask(_I_SCAN, self.h, into=got)])

    def writeto_mem(self, addr, memaddr, buf):
        _ask(_I_WMEM, self.h, addr, memaddr, buf)

    def readfrom_mem_into(self, addr, memaddr, buf):
        _ask(_I_RMEM, self.h, addr, memaddr, len(buf), buf)


def time_pulse_us(pin, pulse_level, timeout_us=1000000):
    _ask(_PULSE, _id(pin), pulse_level, 0, struct.pack("<i", timeout_us))
    return struct.unpack_from("<i", _d)[0]


class ADC:
    ATTN_11DB = 3

    def __init__(self, pin, *, atten=0):
        self.pin = _id(pin)
        self.atten(atten)

    def atten(self, atten):
        _post(_A_INIT, self.pin, atten)

    def read_uv(self):
        _ask(_ADC_READ, self.pin, 0)
        return struct.unpack_from("<i", _d)[0]

    def read_u16(self):
        _ask(_ADC_READ, self.pin, 1)
        return struct.unpack_from("<i", _d)[0]


class RTC:
    def memory(self, data=None):
        if data is None:
            buf = bytearray(2048)
            return bytes(buf[: _ask(_RTC_MEM, 0, 0, 0, None, buf)])
        _ask(_RTC_MEM, 0, 1, 0, data)
        return None


class WDT:
    def __init__(self, id=0, timeout=5000):
        if timeout < 1:
            raise ValueError("timeout must be positive")
        _post(_WDT_INIT, 0, data=struct.pack("<i", timeout))

    def feed(self):
        _post(_WDT_FEED, 0)


class UART:
    def __init__(self, id, baudrate=115200, *, tx=None, rx=None, timeout=0):
        self.h = _handle()
        _post(_U_INIT, self.h, data=struct.pack("<iiBB", id, baudrate, _id(tx), _id(rx)))

    def any(self):
        _ask(_U_ANY, self.h)
        return _d[0]

    def read(self, nbytes=-1):
        buf = bytearray(256 if nbytes is None or nbytes < 1 else nbytes)
        n = _ask(_U_READ, self.h, 0, 0, len(buf), buf)
        return bytes(buf[:n]) if n else None

    def write(self, buf):
        _post(_U_WRITE, self.h, data=buf)
        return len(buf)


def lightsleep(time_ms=None):
    _ask(_SLEEP, 0, 0, 0, struct.pack("<i", -1 if time_ms is None else time_ms))


def deepsleep(time_ms=None):
    """Ends in a reset: the server replies with the exit status."""
    _ask(_SLEEP, 0, 1, 0, struct.pack("<i", -1 if time_ms is None else time_ms))


def reset():
    _ask(_RESET, 0)


def reset_cause():
    _ask(_CAUSE, 0)
    return _d[0]


def idle():
    _ask(_IDLE, 0)


def emu_mark(value):
    """Not MicroPython API: tell the server's scenario where a bench script is (e.g. a cycle number)."""
    _post(_MARK, 0, data=struct.pack("<I", value))
