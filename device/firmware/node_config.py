"""Node configuration: ``node.json`` on the board's flash, validated at boot.

The same validator (``node_config_check.check``) runs under CPython for
``fogpark-node check`` and ``fogpark-node provision``. A bad file never
stops the node silently: every problem is printed on the console naming the
key and what is wrong, and the returned config has ``tx_enabled`` False, so
a node without a valid key never transmits.

Checked once per change: the rules are ~100 names and messages that
MicroPython interns for good when it loads them (a few KB of a 64 KiB heap,
kept until the next reset). So the node checks node.json only when it, its
board profile or ``SCHEMA`` changed: a valid file's verdict is saved in
``node.json.checked`` (the settings with every default filled in, and a
SHA-256 over node.json, the profile and ``_SCHEMA``), ``cfg.checked`` says
the rules ran, and ``boot`` (main.py's call) then soft-resets on a heap
under 128 KiB so the sampling loop starts with a clean heap. Every later boot (and every
deep-sleep wake, which no longer pays for checking) reads the saved verdict
after comparing the hash, without loading the rules. A bad file is never
saved: it is checked, and its problems printed, at every boot.
``fogpark-node flash`` deletes the saved verdict (new firmware may bring
new rules or defaults).

node.json (every key but the first four is optional; defaults below, then
the board profile's "defaults", then the file)::

    {
      "node_id": 305419896,                 1 .. 2^32-1
      "key": "00112233445566778899aabbccddeeff",   AES-128, 32 hex chars
      "spot": "A-017",                      1..32 chars: letters digits - _ . : / #
      "board": "heltec_lora32_v2",          a file in device/boards/
      "sample_ms": 1000,                    50 .. 600000, between samples
      "heartbeat_s": 10800,                 10 .. 86400
      "boot_jitter_s": 30,                  0 .. 600, random wait before the first heartbeat after boot
      "low_battery_mv": 3400,               2500 .. 4500, sets FLAG_LOW_BATTERY
      "duty_cycle_pct": 1.0,                0.01 .. 100, airtime budget per hour
      "temp_offset_c": 0.0,                 -50 .. 50, magnetometer die-temperature offset
      "wdt_ms": 30000,                      0 (off) or 1000 .. 600000
      "fcnt_block": 16,                     1 .. 1024 frame counters per flash write
      "ranger": true,                       use the board's HC-SR04 when wired
      "rfid": false,                        poll the board's RC522 reader; a card sends CHECKIN
      "region": "EU868",                    EU868 (1 % duty cycle) or US915 (400 ms dwell, no duty cycle)
      "transport": "lora",                  lora, wifi (MQTT through a broker) or uart (SLIP, wired rigs)
      "deep_sleep": false,                  deep sleep between samples (sample_ms >= 1000): RAM is lost,
                                            state kept in RTC memory (flash where the port has none)
      "confirmed": false,                   occupancy frames ask for an ACK (needs radio.rx_window_ms)
      "retries": 3,                         0 .. 8 retransmissions of an unacknowledged occupancy frame
      "retry_s": 8,                         1 .. 3600 s, first retry delay (doubles each time, + jitter)
      "tamper_s": 120,                      0 (off) .. 86400 s a fault must last to be a tamper
      "debug": false,                       print "FRAME TX <hex>" / "FRAME RX <hex>" console lines
      "test_mode": false,                   the HIL bench drives the sensor readings over the console
                                            (test_mode.py, hil/BENCH.md); LoRa only, no deep sleep
      "radio": {
        "freq_hz": 868100000,               137 MHz .. 1020 MHz
        "sf": 7,                            7 .. 12
        "bw_hz": 125000,                    7800 10400 15600 20800 31250 41700 62500 125000 250000 500000
        "cr": 5,                            5 .. 8, coding rate 4/cr
        "power_dbm": 14,                    2 .. 17, or 20 (PA_BOOST)
        "sync_word": 18,                    0 .. 255 (0x12 private networks)
        "preamble": 8,                      6 .. 65535 symbols
        "rx_window_ms": 0                   0 .. 10000, listen for a downlink after each uplink
      },
      "detect": {
        "arrive_ut": 12.0,                  0.5 .. 500 uT deviation to call a car
        "leave_ut": 6.0,                    0.5 .. 500 uT, <= arrive_ut (hysteresis)
        "occupied_below_cm": 80.0,          5 .. 400, ultrasonic confirmation
        "hold_samples": 2,                  1 .. 20 samples before a change is committed
        "ema_shift": 5,                     1 .. 12, baseline EMA alpha = 1/2^ema_shift
        "calib_samples": 4,                 1 .. 100 samples averaged for the first baseline
        "rebaseline_samples": 40,           0 (off) .. 10000, drift recovery (ranger only)
        "range_every": 20,                  1 .. 1000, fire the ranger at least this often
        "mag_range_gauss": 8,               2 or 8
        "short_below_cm": 8.0               2 .. 50, closer is "something on the sensor"
      },
      "wifi": {                             transport "wifi" (ESP32): Wi-Fi station + MQTT, QoS 1
        "ssid": "", "password": "",         1..32 / 0..63 characters
        "broker": "", "port": 1883,         MQTT broker host (name or address) and port
        "lot": "", "keepalive_s": 60        topic fogpark/<lot>/up/<node_id hex>; downlinks on .../down/...
      },
      "uart": {                             transport "uart": SLIP packets of proto/serial_link.py
        "id": 1, "baudrate": 115200, "tx": 17, "rx": 16
      }
    }

"deep_sleep", "rfid" and "transport" other than lora depend on the board
profile (``deep_sleep`` key, ``rfid`` pins, ``wifi`` capability).
"""

import json

try:
    from micropython import const
except ImportError:  # CPython: unit tests and the CLI

    def const(expr):  # type: ignore[no-redef,misc]
        return expr


_SCHEMA = const("fogpark-node-config 1")  # bump with the rules or defaults: a saved verdict is then checked again
_CHECKED = const(".checked")  # node.json.checked: the node's own verdict on node.json

# The keys, with the rules node_config_check applies: (section, ((key, kind, default, low, high), ...)),
# kind "int", "float", "bool", "choice" (low: the choices) or "str" (low..high characters); section ""
# is the top level. Here, not there: loading this module interns the names, so json.load of a saved
# verdict reuses them instead of allocating a string per key (~56 bytes each on this port). One
# table, not one per section: every module-level name is one more interned name.
SECTIONS = (
    (
        "",
        (
            ("sample_ms", "int", 1000, 50, 600000),
            ("heartbeat_s", "int", 10800, 10, 86400),
            ("boot_jitter_s", "int", 30, 0, 600),
            ("low_battery_mv", "int", 3400, 2500, 4500),
            ("duty_cycle_pct", "float", 1.0, 0.01, 100.0),
            ("temp_offset_c", "float", 0.0, -50.0, 50.0),
            ("wdt_ms", "int", 30000, 0, 600000),
            ("fcnt_block", "int", 16, 1, 1024),
            ("ranger", "bool", True, 0, 0),
            ("rfid", "bool", False, 0, 0),
            ("region", "choice", "EU868", ("EU868", "US915"), 0),
            ("transport", "choice", "lora", ("lora", "wifi", "uart"), 0),
            ("deep_sleep", "bool", False, 0, 0),
            ("confirmed", "bool", False, 0, 0),
            ("retries", "int", 3, 0, 8),
            ("retry_s", "int", 8, 1, 3600),
            ("tamper_s", "int", 120, 0, 86400),
            ("debug", "bool", False, 0, 0),
            ("test_mode", "bool", False, 0, 0),
        ),
    ),
    (
        "radio",
        (
            ("freq_hz", "int", 868100000, 137000000, 1020000000),
            ("sf", "int", 7, 7, 12),
            ("bw_hz", "int", 125000, 7800, 500000),
            ("cr", "int", 5, 5, 8),
            ("power_dbm", "int", 14, 2, 20),
            ("sync_word", "int", 0x12, 0, 255),
            ("preamble", "int", 8, 6, 65535),
            ("rx_window_ms", "int", 0, 0, 10000),
        ),
    ),
    (
        "detect",
        (
            ("arrive_ut", "float", 12.0, 0.5, 500.0),
            ("leave_ut", "float", 6.0, 0.5, 500.0),
            ("occupied_below_cm", "float", 80.0, 5.0, 400.0),
            ("hold_samples", "int", 2, 1, 20),
            ("ema_shift", "int", 5, 1, 12),
            ("calib_samples", "int", 4, 1, 100),
            ("rebaseline_samples", "int", 40, 0, 10000),
            ("range_every", "int", 20, 1, 1000),
            ("mag_range_gauss", "int", 8, 2, 8),
            ("short_below_cm", "float", 8.0, 2.0, 50.0),
        ),
    ),
    (
        "wifi",
        (
            ("ssid", "str", "", 0, 32),
            ("password", "str", "", 0, 63),
            ("broker", "str", "", 0, 253),
            ("port", "int", 1883, 1, 65535),
            ("lot", "str", "", 0, 64),
            ("keepalive_s", "int", 60, 0, 3600),
        ),
    ),
    (
        "uart",
        (
            ("id", "int", 1, 0, 3),
            ("baudrate", "int", 115200, 1200, 3000000),
            ("tx", "int", 17, 0, 63),
            ("rx", "int", 16, 0, 63),
        ),
    ),
)


class NodeConfig:
    """Validated settings; ``errors`` non-empty means ``tx_enabled`` is False.

    Deliberately without methods: once the config is loaded the firmware
    drops this module (``del sys.modules["node_config"]``) to free its RAM,
    and an instance must not keep the module's functions alive.
    """

    checked = False  # the rules ran on this boot and the verdict was saved (``boot`` may restart to drop them)
    errors: "list[str]"
    tx_enabled: bool
    node_id: int
    key: bytes
    spot: str
    board: str  # board name, "" when unknown
    pins: "dict | None"  # the board profile (device/boards/<board>.json)
    sample_ms: int
    heartbeat_s: int
    boot_jitter_s: int
    low_battery_mv: int
    duty_cycle_pct: float
    temp_offset_c: float
    wdt_ms: int
    fcnt_block: int
    ranger: bool
    rfid: bool
    region: str
    transport: str
    deep_sleep: bool
    confirmed: bool
    retries: int
    retry_s: int
    tamper_s: int
    debug: bool
    test_mode: bool
    radio: dict
    detect: dict
    wifi: dict
    uart: dict


def summary(cfg: NodeConfig) -> str:
    """One line for the console. f-strings: MicroPython compiles one into a single format string (a
    constant of the module), where the short pieces of a concatenation would each be an interned name."""
    head = f"node {cfg.node_id} spot {cfg.spot} board {cfg.board or '?'}"
    if cfg.transport == "wifi":
        w = cfg.wifi
        return f"{head} wifi {w['ssid']} mqtt {w['broker']}:{w['port']} lot {w['lot']}"
    if cfg.transport == "uart":
        u = cfg.uart
        return f"{head} uart {u['id']} {u['baudrate']} baud"
    r = cfg.radio
    return f"{head} {cfg.region} radio {r['freq_hz']} Hz SF{r['sf']} BW{r['bw_hz'] // 1000} CR4/{r['cr']} {r['power_dbm']} dBm"


def signature(raw: bytes, board: bytes) -> str:
    """What a saved verdict is valid for: node.json, its board profile and the rules' ``_SCHEMA``."""
    import binascii
    import hashlib

    h = hashlib.sha256(_SCHEMA.encode())
    for part in (raw, board):
        h.update(b"\0")
        h.update(part)
    return binascii.hexlify(h.digest()).decode()


def save(path: str, raw: bytes, board_file: str, values: dict) -> None:
    """Write the verdict for node.json ``raw`` (atomically: a torn file would only be checked again).
    ``values``: the settings, the key in hex. Raises OSError."""
    import os

    with open(board_file, "rb") as f:
        board = f.read()
    where = path + _CHECKED
    with open(where + ".tmp", "w") as f:
        f.write(json.dumps({"sig": signature(raw, board), "board_file": board_file, "cfg": values}))
    try:
        os.remove(where)  # FAT will not rename over a file
    except OSError:
        pass
    os.rename(where + ".tmp", where)


def forget(path: str) -> None:
    """Delete a saved verdict (one that did not read back)."""
    import os

    try:
        os.remove(path + _CHECKED)
    except OSError:
        pass


def saved(path: str, raw: bytes) -> "NodeConfig | None":
    """The verdict saved by an earlier boot if it is for exactly this node.json and profile, else None."""
    import binascii

    try:
        with open(path + _CHECKED) as f:
            verdict = json.load(f)
        with open(verdict["board_file"], "rb") as f:
            board = f.read()
        if verdict["sig"] != signature(raw, board):
            return None
        cfg = NodeConfig()
        for name, value in verdict["cfg"].items():
            setattr(cfg, name, value)
        cfg.key = bytes(binascii.unhexlify(cfg.key))
        for section, table in SECTIONS[1:]:  # the keys as the interned names (see SECTIONS)
            src = getattr(cfg, section)
            d = {}
            for row in table:
                d[row[0]] = src[row[0]]
            setattr(cfg, section, d)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # none saved, unreadable or torn: check node.json again
    cfg.errors = []
    cfg.tx_enabled = True
    return cfg


def boot(path: str) -> NodeConfig:
    """What a node runs at boot (main.py): ``load``, and after a check, on a heap under 128 KiB (an ESP32
    without PSRAM), a soft reset: the rules' interned names would cost it ~6 KB for good, and the next
    boot reads the verdict. With more RAM a second boot buys nothing."""
    cfg = load(path)
    if cfg.checked:
        import gc

        if gc.mem_alloc() + gc.mem_free() < 131072:  # type: ignore[attr-defined]
            import machine

            print("config: node.json checked and saved; restarting with a clean heap")
            machine.soft_reset()
    return cfg


def load(path: str) -> NodeConfig:
    """The node's config: the saved verdict when node.json is unchanged, else checked (and saved when
    valid, ``cfg.checked`` True). Prints the summary, or every problem, on the console."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        raw = None
    cfg = None if raw is None else saved(path, raw)
    if cfg is None:
        from node_config_check import check_file

        return check_file(path, raw)
    print("config ok: " + summary(cfg))
    return cfg
