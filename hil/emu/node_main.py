"""Run the real node firmware under the MicroPython unix port, on emulated hardware.

    MICROPYPATH=.frozen:device/firmware:hil/emu:. micropython hil/emu/node_main.py

(``hil/node_process.py`` does this for the bench.) Steps: build the world,
instantiate the part models, wire them to the pins of the board profile
(``FOGPARK_EMU_BOARD``: a path to a ``device/boards/*.json``; default the
``unix_emulated`` board), install ``hil/emu/machine.py`` as ``machine``,
announce ``EMU boot``, then ``import main`` -- the firmware's entry point,
exactly as a board runs it. The working directory is the node's flash
(``node.json``, ``fcnt.dat``).

Environment: FOGPARK_EMU_BOARD, FOGPARK_EMU_WORLD (initial world, JSON),
FOGPARK_EMU_RESET_CAUSE, FOGPARK_EMU_SEED, FOGPARK_EMU_RTC_HEX,
FOGPARK_EMU_MAG (which chip the GY-271 module carries: qmc5883l, qmc5883p,
hmc5883l or none), FOGPARK_EMU_RTC_MEMORY (0: a port without RTC memory),
FOGPARK_EMU_UART (the pty behind machine.UART), FOGPARK_EMU_CONTROL
("none": no control lines on stdin, which is then the console of a REPL
board; see ``pty_board.py``).
"""

import binascii
import gc
import json
import os
import sys

# The pure protocol modules the firmware shares with the fog compile first, on
# an empty heap, as the firmware's main.py does on a board: the emulation's
# own RAM (which a board does not have) then does not distort their peak.
from proto import airtime, frame  # noqa: F401

gc.collect()
import machine  # noqa: E402 - hil/emu/machine.py: this script's folder is first on sys.path

sys.modules["machine"] = machine

import world as world_mod  # noqa: E402
from hcsr04_model import HCSR04Model  # noqa: E402
from sx1276_model import SX1276Model  # noqa: E402

MAG_MODELS = ("qmc5883l", "qmc5883p", "hmc5883l", "none")

_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."


def _load_board() -> dict:
    path = os.getenv("FOGPARK_EMU_BOARD") or (_HERE + "/../../device/boards/unix_emulated.json")
    with open(path) as f:
        return json.load(f)


def _print_tx(payload: bytes, s: dict) -> None:
    f = world_mod.out()
    f.write(
        "TX "
        + binascii.hexlify(payload).decode()
        + " "
        + str(s["freq_hz"])
        + " "
        + str(s["sf"])
        + " "
        + str(s["bw_hz"])
        + " "
        + str(s["cr"])
        + " "
        + str(s["power_dbm"])
        + " "
        + "0x{:02x}".format(s["sync_word"])  # noqa: UP032 - plain str.format reads best here
        + "\n"
    )
    if f is not sys.stdout:
        f.flush()


def build(board: dict, world: "world_mod.World") -> dict:
    """Wire the part models to the board's pins; returns them by name."""
    clock = machine.emu_clock_us
    parts = {}
    power = board.get("sensor_power")
    if power:
        pin, on = power["pin"], power["on"]

        def powered() -> bool:
            return machine.emu_output_level(pin) == on

    else:

        def powered() -> bool:
            return True

    r = board["radio"]
    radio = SX1276Model(on_tx=_print_tx, clock_us=clock, emit=world_mod.emit)
    machine.emu_spi(r["sck"], r["cs"], radio)
    machine.emu_watch(r["reset"], radio.nreset)
    machine.emu_drive(r["dio0"], radio.dio0)
    parts["radio"] = radio

    def on_rx(rest: str) -> None:
        f = rest.split()
        if len(f) < 7:
            raise ValueError("RX wants: <hex> <freq_hz> <sf> <bw_hz> <sync_word> <rssi_dbm> <snr_db> [crc_ok]")
        crc_ok = len(f) < 8 or f[7] not in ("0", "false", "bad")
        result = radio.inject(
            binascii.unhexlify(f[0]),
            int(f[1]),
            int(f[2]),
            int(f[3]),
            int(f[4], 0),
            float(f[5]),
            float(f[6]),
            crc_ok,
        )
        world_mod.emit("rx", {"result": result, "len": len(f[0]) // 2})

    world.handlers["RX"] = on_rx

    world.handlers["RADIO"] = lambda rest: world_mod.emit("radio", radio.stats())

    i = board["i2c"]
    kind = os.getenv("FOGPARK_EMU_MAG") or "qmc5883l"
    if kind not in MAG_MODELS:
        raise ValueError("FOGPARK_EMU_MAG must be one of " + ", ".join(MAG_MODELS))
    if kind == "qmc5883l":
        from qmc5883l_model import QMC5883LModel as Mag
    elif kind == "qmc5883p":
        from qmc5883p_model import QMC5883PModel as Mag  # type: ignore[assignment]
    elif kind == "hmc5883l":
        from hmc5883l_model import HMC5883LModel as Mag  # type: ignore[assignment]
    if kind != "none":
        mag = Mag(world.field_sample, world.temperature, powered)
        machine.emu_i2c(i["scl"], i["sda"], mag)
        parts["magnetometer"] = mag

    f = board.get("rfid")
    if f:
        from rc522_model import RC522Model

        reader = RC522Model(world.card, clock)
        machine.emu_spi(r["sck"], f["cs"], reader)
        if "reset" in f:
            machine.emu_watch(f["reset"], lambda level: reader.reset() if level else None)
        parts["rfid"] = reader

    import network

    network.emu_world(world)
    sys.modules["network"] = network

    rg = board.get("ranger")
    if rg:
        ranger = HCSR04Model(world.distance_sample, world.temperature, clock, lambda: world.no_echo_pulse_us)
        machine.emu_watch(rg["trig"], ranger.on_trig)
        machine.emu_drive(rg["echo"], ranger.echo_level)
        machine.emu_pulse(rg["echo"], ranger.pulse)
        parts["ranger"] = ranger

    b = board.get("battery")
    if b:
        divider = b.get("divider", 2.0)
        machine.emu_adc(b["adc"], lambda: int(world.battery_mv * 1000 / divider))

    machine.emu_service(world.poll)
    machine.emu_hook("sleep", world.wait_ms)
    machine.emu_hook("emit", world_mod.emit)
    return parts


def main() -> None:
    world = world_mod.World()
    init = os.getenv("FOGPARK_EMU_WORLD")
    if init:
        world.set(json.loads(init))
    board = _load_board()
    rtc = os.getenv("FOGPARK_EMU_RTC_HEX")
    if rtc:
        machine.emu_rtc_memory(binascii.unhexlify(rtc))
    build(board, world)
    gc.collect()
    world_mod.emit(
        "boot",
        {
            "board": board.get("board"),
            "reset_cause": machine.reset_cause(),
            "heap_free": gc.mem_free(),  # type: ignore[attr-defined]
            "cwd": os.getcwd(),
        },
    )
    import main as firmware_main  # noqa: F401 - runs the firmware, as a board's main.py


if __name__ == "__main__":  # tests import this module to reuse build()
    main()
