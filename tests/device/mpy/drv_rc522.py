"""The RC522 driver against the MFRC522 + ISO 14443-3A card model (MicroPython)."""

import machine
from drivers.rc522 import RC522
from emu_setup import result, setup
from rc522_model import RC522Model, crc_a

board, world, parts = setup()
r = board["radio"]
f = board["rfid"]
reader = parts["rfid"]
Pin = machine.Pin
spi = machine.SPI(1, baudrate=5000000, polarity=0, phase=0, sck=Pin(r["sck"]), mosi=Pin(r["mosi"]), miso=Pin(r["miso"]))
rfid = RC522(spi, Pin(f["cs"]), Pin(f["reset"]))
result("version", rfid.version)
result("crc_hlta", crc_a(b"\x50\x00"))  # ISO 14443-3: HLTA 50 00 57 CD

result("no_card", rfid.read_uid())
out = {}
for uid in ("deadbeef", "04a1b2c3d4e5f6", "0102030405060708090a"):
    world.set({"card_uid": uid})
    got = rfid.read_uid()
    again = rfid.read_uid()  # the card was halted: it stays quiet while it lies on the reader
    world.set({"card_uid": None})
    rfid.read_uid()
    world.set({"card_uid": uid})  # taken away and presented again: read again
    third = rfid.read_uid()
    out[uid] = [None if got is None else got.hex(), again, None if third is None else third.hex()]
    world.set({"card_uid": None})
result("cards", out)
result("reads", reader.reads)
result("antenna_after", reader.regs[0x14] & 0x03)  # off between reads (power)

# the radio on the same SPI bus still answers (separate chip selects)
from drivers.sx127x import SX127x  # noqa: E402

radio = SX127x(spi, Pin(r["cs"]), Pin(r["reset"]), Pin(r["dio0"]))
result("radio_version", radio.read_reg(0x42))
model = RC522Model(lambda: b"\x01\x02\x03\x04", machine.emu_clock_us)
model.regs[0x14] = 0x83
# a SELECT with a wrong CRC gets no answer (the card checks it)
model._card_answer(b"\x26", 7)
bad = model._card_answer(b"\x93\x70\x01\x02\x03\x04\x04\x00\x00", 0)
result("bad_crc_select", bad)
