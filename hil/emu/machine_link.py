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

_d = bytearray(8)  # short replies land here


def _i32(v):
    """4 little-endian bytes (struct format strings would be more interned names: see _wire)."""
    return (v & 0xFFFFFFFF).to_bytes(4, "little")


def _s32():
    """The signed 32-bit reply in ``_d``."""
    v = int.from_bytes(_d[:4], "little")
    return v - 0x100000000 if v & 0x80000000 else v


def _wire():
    """The request function, its pipes and header kept as closure variables.

    Why so: MicroPython interns every module-level name and every short string of a module for
    good, and this module's names count in the firmware's heap although a board has none of them
    (its ``machine`` names are in ROM). Closure variables and locals are not interned."""
    head = bytearray(14)
    pipes: list = []  # [request pipe, reply pipe], opened at the first request
    handles = [0]

    def _op(code, a, x=0, y=0, data=None, into=None):
        """One request. ``data``: the payload, or for codes with bit 0x40 the number of bytes wanted.
        Codes with bit 0x80 wait for the reply: its length, the bytes in ``into`` (or ``_d``).
        ``a`` None: a new bus handle instead."""
        if a is None:
            handles[0] += 1
            return handles[0]
        if not pipes:
            import os

            folder = os.getenv("FOGPARK_EMU_LINK") or "."
            pipes.append(open(folder + "/req", "wb"))  # both sides open req first, so neither waits forever
            pipes.append(open(folder + "/rep", "rb"))
        n = data if code & 0x40 else 0 if data is None else len(data)
        head[0] = code
        head[1] = a & 0xFF
        head[2] = x & 0xFF
        head[3] = y & 0xFF
        head[4] = n & 0xFF
        head[5] = n >> 8
        head[6:14] = vtime._us[0].to_bytes(8, "little")
        pipes[0].write(head)
        if n and not code & 0x40:
            pipes[0].write(data)
        if not code & 0x80:
            return 0
        rep = pipes[1]
        if rep.readinto(memoryview(head)[:12]) != 12:
            print("machine_link: the hardware server is gone")
            sys.exit(3)
        status = head[0]
        n = head[2] | head[3] << 8
        t = int.from_bytes(head[4:12], "little")
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

    return _op


_op = _wire()


def _id(pin):
    return pin if isinstance(pin, int) else pin.id


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
        _op(_P_INIT, self.id, mode, pull, None if value is None else b"\x01" if value else b"\x00")

    def value(self, v=None):
        if v is None:
            _op(_P_GET, self.id)
            return _d[0]
        _op(_P_SET, self.id, 1 if v else 0)
        return None


class SPI:
    def __init__(self, id=1, baudrate=1000000, *, polarity=0, phase=0, bits=8, firstbit=0, sck=None, mosi=None, miso=None):
        if sck is None:
            raise ValueError("emulated SPI needs explicit sck/mosi/miso pins")
        self.id = _op(0, None)
        _op(_S_INIT, self.id, data=_i32(baudrate) + bytes((polarity, phase, bits, firstbit, _id(sck))))

    def write(self, buf):
        _op(_S_WRITE, self.id, data=buf)

    def write_readinto(self, write_buf, read_buf):
        if len(write_buf) != len(read_buf):
            raise ValueError("buffers must be the same length")
        _op(_S_XFER, self.id, data=write_buf, into=read_buf)

    def readinto(self, buf, write=0):
        _op(_S_READ, self.id, write, 0, len(buf), buf)


class I2C:
    def __init__(self, id=0, *, scl=None, sda=None, freq=400000):
        if scl is None or sda is None:
            raise ValueError("emulated I2C needs explicit scl and sda pins")
        self.id = _op(0, None)
        _op(_I_INIT, self.id, _id(scl), _id(sda), _i32(freq))

    def scan(self):
        got = bytearray(128)
        return list(got[: _op(_I_SCAN, self.id, into=got)])

    def writeto_mem(self, addr, memaddr, buf):
        _op(_I_WMEM, self.id, addr, memaddr, buf)

    def readfrom_mem_into(self, addr, memaddr, buf):
        _op(_I_RMEM, self.id, addr, memaddr, len(buf), buf)


def time_pulse_us(pin, pulse_level, timeout_us=1000000):
    _op(_PULSE, _id(pin), pulse_level, 0, _i32(timeout_us))
    return _s32()


class ADC:
    ATTN_11DB = 3

    def __init__(self, pin, *, atten=0):
        self.pin = _id(pin)
        self.atten(atten)

    def atten(self, atten):
        _op(_A_INIT, self.pin, atten)

    def read_uv(self):
        _op(_ADC_READ, self.pin, 0)
        return _s32()

    def read_u16(self):
        _op(_ADC_READ, self.pin, 1)
        return _s32()


class RTC:
    def memory(self, data=None):
        if data is None:
            buf = bytearray(2048)
            return bytes(buf[: _op(_RTC_MEM, 0, 0, 0, None, buf)])
        _op(_RTC_MEM, 0, 1, 0, data)
        return None


class WDT:
    def __init__(self, id=0, timeout=5000):
        if timeout < 1:
            raise ValueError("timeout must be positive")
        _op(_WDT_INIT, 0, data=_i32(timeout))

    def feed(self):
        _op(_WDT_FEED, 0)


class UART:
    def __init__(self, id, baudrate=115200, *, tx=None, rx=None, timeout=0):
        self.id = _op(0, None)
        _op(_U_INIT, self.id, data=_i32(id) + _i32(baudrate) + bytes((_id(tx), _id(rx))))

    def any(self):
        _op(_U_ANY, self.id)
        return _d[0]

    def read(self, nbytes=-1):
        buf = bytearray(256 if nbytes is None or nbytes < 1 else nbytes)
        n = _op(_U_READ, self.id, 0, 0, len(buf), buf)
        return bytes(buf[:n]) if n else None

    def write(self, buf):
        _op(_U_WRITE, self.id, data=buf)
        return len(buf)


def lightsleep(time_ms=None):
    _op(_SLEEP, 0, 0, 0, _i32(-1 if time_ms is None else time_ms))


def deepsleep(time_ms=None):
    """Ends in a reset: the server replies with the exit status."""
    _op(_SLEEP, 0, 1, 0, _i32(-1 if time_ms is None else time_ms))


def reset():
    _op(_RESET, 0)


soft_reset = reset


def reset_cause():
    _op(_CAUSE, 0)
    return _d[0]


def idle():
    _op(_IDLE, 0)


def emu_mark(value):
    """Not MicroPython API: tell the server's scenario where a bench script is (e.g. a cycle number)."""
    _op(_MARK, 0, data=_i32(value))
