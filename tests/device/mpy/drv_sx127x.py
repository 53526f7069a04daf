"""SX127x driver against the register-level SX1276 model (run under MicroPython)."""

import time

import machine
from drivers.sx127x import SX127x
from emu_setup import result, setup

board, world, parts = setup()
radio_model = parts["radio"]
r = board["radio"]
Pin = machine.Pin
spi = machine.SPI(r["spi"], baudrate=r["baudrate"], polarity=0, phase=0,
                  sck=Pin(r["sck"]), mosi=Pin(r["mosi"]), miso=Pin(r["miso"]))
radio = SX127x(spi, Pin(r["cs"]), Pin(r["reset"]), Pin(r["dio0"]))
result("version", radio.read_reg(0x42))
result("mode_after_init", radio.read_reg(0x01))

t0 = time.ticks_ms()
ok = radio.send(b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c")
result("send_sf7", {"ok": ok, "ms": time.ticks_diff(time.ticks_ms(), t0), "mode": radio.read_reg(0x01),
                    "irq": radio.read_reg(0x12)})

radio.configure(freq_hz=869525000, sf=12, bw_hz=125000, cr=8, power_dbm=20, sync_word=0x34)
result("ldro_sf12", radio.read_reg(0x26))
t0 = time.ticks_ms()
ok = radio.send(b"\xaa" * 12)
result("send_sf12", {"ok": ok, "ms": time.ticks_diff(time.ticks_ms(), t0)})

# a downlink arriving while the RX window is open (injected by a service hook after 100 ms)
radio.configure(freq_hz=868100000, sf=7, bw_hz=125000, cr=5, power_dbm=14, sync_word=0x12)
state = {"t": time.ticks_ms(), "done": None}


def inject():
    if state["done"] is None and time.ticks_diff(time.ticks_ms(), state["t"]) > 100:
        state["done"] = radio_model.inject(b"downlink!", 868100000, 7, 125000, 0x12, -97.0, -3.5)


machine.emu_service(inject)
got = radio.rx_window(600)
result("rx", {"payload": None if got is None else got.decode(), "rssi": radio.last_rssi_dbm,
              "snr": radio.last_snr_db, "inject": state["done"], "mode": radio.read_reg(0x01)})

# a packet on another SF is not received
state["t"] = time.ticks_ms()
state["done"] = None


def inject_wrong():
    if state["done"] is None and time.ticks_diff(time.ticks_ms(), state["t"]) > 50:
        state["done"] = radio_model.inject(b"other", 868100000, 9, 125000, 0x12, -80.0, 5.0)


machine._services[-1] = inject_wrong
got = radio.rx_window(300)
result("rx_wrong_sf", {"payload": got, "inject": state["done"]})

# the radio held in reset answers nothing (a driver probing it would find no chip)
Pin(r["reset"]).value(0)
result("in_reset_version", radio.read_reg(0x42))
Pin(r["reset"]).value(1)
