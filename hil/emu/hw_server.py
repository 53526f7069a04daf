"""The hardware server: the emulated parts of a firmware that runs in another process (MicroPython).

The other side is ``machine_link.py`` (its docstring has the wire format).
Each request is performed on the emulated ``machine`` (``machine.py``, wired
to the part models by ``node_main.build``) exactly as an in-process call
would be: the same pin levels, chip-selects, SPI bytes, I2C ACKs and NACKs,
pulse widths and sleeps. The clock is ``vtime`` (the script that starts the
server installs it as ``time`` first): a request's timestamp moves it
forward, a reply carries it back.

``serve(folder, on_mark)`` returns when the firmware process closes its
pipe; a reset (``machine.reset``, a watchdog, a deep sleep) is passed on as
the exit status, then the server exits with it too.
"""

import struct
import sys

import machine
import vtime

# The op codes of machine_link.py (there they are const() names with a leading underscore).
P_INIT = 1
P_SET = 2
S_INIT = 3
S_WRITE = 4
I_INIT = 5
A_INIT = 6
WDT_INIT = 7
WDT_FEED = 8
U_INIT = 9
U_WRITE = 10
MARK = 11
P_GET = 0x81
S_XFER = 0x82
I_WMEM = 0x84
I_SCAN = 0x85
PULSE = 0x86
ADC_READ = 0x87
RTC_MEM = 0x88
SLEEP = 0x89
RESET = 0x8A
CAUSE = 0x8B
IDLE = 0x8C
U_ANY = 0x8D
S_READ = 0xC1
I_RMEM = 0xC3
U_READ = 0xC4
REQ = "<BBBBHQ"
REP = "<BxHQ"


class Server:
    def __init__(self, folder, on_mark=None):
        # The firmware opens req then rep; opening in the same order means neither side waits forever.
        self.req = open(folder + "/req", "rb")
        self.rep = open(folder + "/rep", "wb")
        self.on_mark = on_mark
        self.pins = {}  # number -> machine.Pin
        self.buses = {}  # handle -> machine.SPI / I2C / UART
        self.adcs = {}  # pin -> machine.ADC
        self.wdt = None
        self.rtc = machine.RTC()
        self.deferred = None  # an error in a posted request, reported with the next reply
        self.requests = 0
        self.replies = 0
        self.head = bytearray(14)

    def pin(self, n):
        p = self.pins.get(n)
        if p is None:
            p = self.pins[n] = machine.Pin(n)
        return p

    def serve(self):
        """Answer requests until the firmware closes its end; returns the exit status to use (0: none)."""
        head = self.head
        exit_code = 0  # a reset happened: tell the firmware at its next request that waits, then stop
        while True:
            if self.req.readinto(head) != 14:
                return exit_code
            op, a, x, y, n, t = struct.unpack(REQ, head)
            if t > vtime._us[0]:
                vtime._us[0] = t
            data = self.req.read(n) if n and not op & 0x40 else b""
            self.requests += 1
            status = 0
            out = None
            if not exit_code:
                try:
                    out = self.do(op, a, x, y, n, data)
                except SystemExit as e:  # machine.py's reset: the process would end here
                    exit_code = e.args[0] if e.args else 0
                    status, out = 4, bytes([exit_code])
                except OSError as e:
                    status, out = 1, struct.pack("<H", e.args[0] if e.args else 5)
                except ValueError as e:
                    status, out = 2, str(e).encode()
                except AttributeError as e:
                    status, out = 3, str(e).encode()
                except Exception as e:  # noqa: BLE001 - passed to the firmware as it happened
                    status, out = 5, repr(e).encode()
            if status and (self.deferred is None or status == 4):
                self.deferred = (status, out)
            if not op & 0x80:
                continue
            if self.deferred is not None:
                status, out = self.deferred
                self.deferred = None
            out = out or b""
            self.rep.write(struct.pack(REP, status, len(out), vtime._us[0]))
            if out:
                self.rep.write(out)
            self.replies += 1
            if exit_code:
                return exit_code

    def do(self, op, a, x, y, n, data):
        """Perform one request on the emulated machine; the reply's payload (bytes or None)."""
        if op == P_SET:
            self.pin(a).value(x)
        elif op == P_GET:
            return bytes([self.pin(a).value()])
        elif op == S_WRITE:
            self.buses[a].write(data)
        elif op == S_XFER:
            buf = bytearray(len(data))
            self.buses[a].write_readinto(data, buf)
            return buf
        elif op == S_READ:
            buf = bytearray(n)
            self.buses[a].readinto(buf, x)
            return buf
        elif op == I_RMEM:
            return self.buses[a].readfrom_mem(x, y, n)
        elif op == I_WMEM:
            self.buses[a].writeto_mem(x, y, data)
        elif op == WDT_FEED:
            if self.wdt is not None:
                self.wdt.feed()
        elif op == SLEEP:
            ms = struct.unpack("<i", data)[0]
            (machine.deepsleep if x else machine.lightsleep)(None if ms < 0 else ms)
        elif op == PULSE:
            return struct.pack("<i", machine.time_pulse_us(a, x, struct.unpack("<i", data)[0]))
        elif op == ADC_READ:
            adc = self.adcs[a]
            return struct.pack("<i", adc.read_u16() if x else adc.read_uv())
        elif op == P_INIT:
            self.pin(a).init(_arg(x), _arg(y), value=data[0] if data else None)
        elif op == S_INIT:
            baud, pol, pha, bits, first, sck = struct.unpack("<iBBBBB", data)
            self.buses[a] = machine.SPI(1, baud, polarity=pol, phase=pha, bits=bits, firstbit=first, sck=sck)
        elif op == I_INIT:
            self.buses[a] = machine.I2C(0, scl=x, sda=y, freq=struct.unpack("<i", data)[0])
        elif op == I_SCAN:
            return bytes(self.buses[a].scan())
        elif op == A_INIT:
            adc = self.adcs.get(a)
            if adc is None:
                adc = self.adcs[a] = machine.ADC(a)
            adc.atten(x)
        elif op == WDT_INIT:
            self.wdt = machine.WDT(timeout=struct.unpack("<i", data)[0])
        elif op == RTC_MEM:
            if x:
                self.rtc.memory(data)
            else:
                return self.rtc.memory()
        elif op == CAUSE:
            return bytes([machine.reset_cause()])
        elif op == RESET:
            machine.reset()
        elif op == IDLE:
            machine.idle()
        elif op == U_INIT:
            uid, baud, tx, rx = struct.unpack("<iiBB", data)
            self.buses[a] = machine.UART(uid, baud, tx=tx, rx=rx)
        elif op == U_WRITE:
            self.buses[a].write(data)
        elif op == U_ANY:
            return bytes([self.buses[a].any()])
        elif op == U_READ:
            return self.buses[a].read(n) or b""
        elif op == MARK:
            if self.on_mark is not None:
                self.on_mark(struct.unpack("<I", data)[0])
        else:
            raise ValueError("unknown request " + str(op))
        return None


def _arg(code):
    return -1 if code == 0xFF else code


def serve(folder, on_mark=None):
    """Serve the firmware process on the pipes in ``folder``; exits with its reset status, if any."""
    server = Server(folder, on_mark)
    code = server.serve()
    if code:
        sys.exit(code)
    return server
