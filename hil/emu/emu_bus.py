"""The buses and the ADC of the emulated ``machine`` (imported by ``machine.py``).

SPI: every byte goes to the one device whose chip-select the MCU drives low
on the bus of that SCK pin; the device gets nothing useful (MISO reads 0xFF)
if the bus runs in the wrong mode, too fast, or with two devices selected.
I2C: a transaction addresses the device on the bus of those SCL/SDA pins;
no device, or an unpowered one, is a NACK: OSError(ENODEV), as on ESP32.
ADC: the voltage a part puts on the pin, clipped to the full scale of the
attenuation (ESP32: 0.95 / 1.25 / 1.75 / 3.1 V for 0 / 2.5 / 6 / 11 dB).
UART: the bytes go to, and come from, the file named by FOGPARK_EMU_UART
(a pty the bench holds the other end of); without it the UART is a loop
to nowhere (writes vanish, nothing arrives).
"""

import machine as _m

_ENODEV = 19
_ETIMEDOUT = 116


class SPI:
    MSB = 0
    LSB = 1

    def __init__(self, id=1, baudrate=1000000, *, polarity=0, phase=0, bits=8, firstbit=0, sck=None, mosi=None, miso=None):
        self.id = id
        self.init(baudrate, polarity=polarity, phase=phase, bits=bits, firstbit=firstbit, sck=sck, mosi=mosi, miso=miso)

    def init(self, baudrate=1000000, *, polarity=0, phase=0, bits=8, firstbit=0, sck=None, mosi=None, miso=None):
        if sck is None:
            raise ValueError("emulated SPI needs explicit sck/mosi/miso pins")
        self.baudrate = baudrate
        self.mode = (polarity, phase)
        self.ok8 = bits == 8 and firstbit == 0
        self.sck = _m._pin_id(sck)

    def deinit(self):
        pass

    def _dev(self):
        found = None
        for sck, cs, dev in _m._spi:
            if sck == self.sck and _m.emu_output_level(cs) == 0:
                if found is not None:
                    return None  # two devices drive MISO: garbage
                found = dev
        if found is None or self.mode != found.spi_mode or self.baudrate > found.spi_max_hz or not self.ok8:
            return None
        return found

    def write_readinto(self, write_buf, read_buf):
        if len(write_buf) != len(read_buf):
            raise ValueError("buffers must be the same length")
        dev = self._dev()
        for i in range(len(write_buf)):
            read_buf[i] = dev.spi_byte(write_buf[i]) & 0xFF if dev else 0xFF

    def write(self, buf):
        dev = self._dev()
        if dev:
            for b in buf:
                dev.spi_byte(b)

    def readinto(self, buf, write=0):
        dev = self._dev()
        for i in range(len(buf)):
            buf[i] = dev.spi_byte(write) & 0xFF if dev else 0xFF

    def read(self, nbytes, write=0):
        buf = bytearray(nbytes)
        self.readinto(buf, write)
        return bytes(buf)


class SoftSPI(SPI):
    def __init__(self, baudrate=500000, *, polarity=0, phase=0, bits=8, firstbit=0, sck=None, mosi=None, miso=None):
        SPI.__init__(self, -1, baudrate, polarity=polarity, phase=phase, bits=bits, firstbit=firstbit, sck=sck, mosi=mosi, miso=miso)


class I2C:
    def __init__(self, id=0, *, scl=None, sda=None, freq=400000, timeout=50000):
        if scl is None or sda is None:
            raise ValueError("emulated I2C needs explicit scl and sda pins")
        self.bus = (_m._pin_id(scl), _m._pin_id(sda))
        self.freq = freq

    def _dev(self, addr):
        _m.service()
        dev = _m._i2c.get((self.bus[0], self.bus[1], addr))
        if dev is None or not dev.powered():
            raise OSError(_ENODEV)  # no ACK
        if self.freq > dev.i2c_max_hz:
            raise OSError(_ETIMEDOUT)
        return dev

    def scan(self):
        _m.service()
        return sorted(a for (c, d, a), dev in _m._i2c.items() if (c, d) == self.bus and dev.powered())

    def writeto(self, addr, buf, stop=True):
        self._dev(addr).i2c_write(bytes(buf))
        return len(buf)

    def readfrom_into(self, addr, buf, stop=True):
        data = self._dev(addr).i2c_read(len(buf))
        for i in range(len(buf)):
            buf[i] = data[i]

    def readfrom(self, addr, nbytes, stop=True):
        buf = bytearray(nbytes)
        self.readfrom_into(addr, buf)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        self._dev(addr).i2c_write(bytes([memaddr & 0xFF]) + bytes(buf))

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        dev = self._dev(addr)
        dev.i2c_write(bytes([memaddr & 0xFF]))
        data = dev.i2c_read(len(buf))
        for i in range(len(buf)):
            buf[i] = data[i]

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        buf = bytearray(nbytes)
        self.readfrom_mem_into(addr, memaddr, buf)
        return bytes(buf)


class SoftI2C(I2C):
    def __init__(self, scl=None, sda=None, *, freq=400000, timeout=50000):
        I2C.__init__(self, -1, scl=scl, sda=sda, freq=freq)


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    _FS_UV = (950000, 1250000, 1750000, 3100000)

    def __init__(self, pin, *, atten=0):
        self.pin = _m._pin_id(pin)
        self._atten = atten

    def atten(self, atten):
        self._atten = atten

    def read_uv(self):
        _m.service()
        fn = _m._adc.get(self.pin)
        uv = fn() if fn else 0
        fs = ADC._FS_UV[self._atten]
        return 0 if uv < 0 else uv if uv < fs else fs

    def read_u16(self):
        return self.read_uv() * 65535 // ADC._FS_UV[self._atten]


class UART:
    def __init__(self, id, baudrate=115200, *, bits=8, parity=None, stop=1, tx=None, rx=None, timeout=0, **kw):
        import os

        self.id = id
        self.baudrate = baudrate
        self.f = None
        self.poller = None
        path = os.getenv("FOGPARK_EMU_UART")
        if path:
            import select

            self.f = open(path, "r+b")
            self.poller = select.poll()
            self.poller.register(self.f, select.POLLIN)

    def any(self):
        _m.service()
        if self.poller is None:
            return 0
        return 1 if self.poller.poll(0) else 0

    def read(self, nbytes=-1):
        """What has arrived (up to ``nbytes``), without waiting; None when nothing has."""
        if self.f is None or self.poller is None:
            return None
        out = b""
        limit = 256 if nbytes is None or nbytes < 1 else nbytes
        while len(out) < limit and self.poller.poll(0):
            b = self.f.read(1)  # a file read waits for all it asks: ask only for what poll promised
            if not b:
                break
            out += b
        return out or None

    def write(self, buf):
        if self.f is None:
            return len(buf)
        return self.f.write(bytes(buf))

    def deinit(self):
        if self.f is not None:
            self.f.close()
            self.f = None
