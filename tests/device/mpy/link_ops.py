"""Each kind of request machine_link forwards, against the emulated board in link_hw.py (MicroPython).

Pin numbers are the unix_emulated board's. Ends with a watchdog that is not
fed: the reset must end both processes with 80 + WDT_RESET.
"""

import sys

import vtime

sys.modules["time"] = vtime

import json  # noqa: E402

import machine_link as machine  # noqa: E402

sys.modules["machine"] = machine


def result(name, value):
    sys.stdout.write("RESULT " + json.dumps({"name": name, "value": value}) + "\n")


Pin = machine.Pin
result("reset_cause", machine.reset_cause())
i2c = machine.I2C(0, scl=Pin(22), sda=Pin(21), freq=400000)
result("scan", i2c.scan())
one = bytearray(1)
i2c.readfrom_mem_into(0x0D, 0x0D, one)  # QMC5883L chip id
result("qmc_chip_id", one[0])
try:
    i2c.readfrom_mem_into(0x77, 0x00, one)
except OSError as e:
    result("nack_errno", e.args[0])
cs = Pin(18)
cs.init(Pin.OUT, value=1)
spi = machine.SPI(1, baudrate=5000000, polarity=0, phase=0, sck=Pin(5), mosi=Pin(27), miso=Pin(19))
r = bytearray(2)
cs.value(0)
spi.write_readinto(b"\x42\x00", r)  # RegVersion
cs.value(1)
result("sx_version", r[1])
spi.write_readinto(b"\x42\x00", r)  # chip-select high: nobody answers
result("deselected", r[1])
result("battery_uv", machine.ADC(Pin(35), atten=machine.ADC.ATTN_11DB).read_uv())
t0 = vtime.ticks_us()
result("pulse_no_trigger", machine.time_pulse_us(Pin(34), 1, 30000))
result("pulse_waited_us", vtime.ticks_diff(vtime.ticks_us(), t0))
trig = Pin(13)
trig.init(Pin.OUT, value=0)
trig.value(1)
vtime.sleep_us(10)
trig.value(0)
result("pulse_nothing_above", machine.time_pulse_us(Pin(34), 1, 100000))
rtc = machine.RTC()
rtc.memory(b"state")
result("rtc", rtc.memory().decode())
try:
    rtc.memory(bytes(3000))
except ValueError as e:
    result("rtc_too_big", str(e))
uart = machine.UART(1, 115200, tx=17, rx=16)
result("uart", [uart.write(b"x"), uart.any(), uart.read()])
t0 = vtime.ticks_ms()
machine.lightsleep(1500)
result("slept_ms", vtime.ticks_diff(vtime.ticks_ms(), t0))
wdt = machine.WDT(timeout=1000)
machine.lightsleep(5000)  # the watchdog pauses in light sleep
wdt.feed()
result("alive_after_lightsleep", True)
vtime.sleep_ms(1500)  # busy, unfed
machine.idle()
result("not_reached", True)
