"""Node configuration: ``node.json`` on the board's flash, validated at boot.

The same validator runs under CPython for ``fogpark-node check`` and
``fogpark-node provision``. A bad file never stops the node silently: every
problem is printed on the console naming the key and what is wrong, and the
returned config has ``tx_enabled`` False, so a node without a valid key
never transmits.

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

KNOWN_BOARDS = (
    "heltec_lora32_v2",
    "ttgo_lora32",
    "feather_esp32_v2_rfm95",
    "feather_rp2040_rfm95",
    "unix_emulated",
)
BANDWIDTHS_HZ = (7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000, 500000)
SPOT_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:/#"
HEX = "0123456789abcdefABCDEF"

# (key, kind, default, low, high) -- kind: "int", "float", "bool"
TOP = (
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
)
RADIO = (
    ("freq_hz", "int", 868100000, 137000000, 1020000000),
    ("sf", "int", 7, 7, 12),
    ("bw_hz", "int", 125000, 7800, 500000),
    ("cr", "int", 5, 5, 8),
    ("power_dbm", "int", 14, 2, 20),
    ("sync_word", "int", 0x12, 0, 255),
    ("preamble", "int", 8, 6, 65535),
    ("rx_window_ms", "int", 0, 0, 10000),
)
DETECT = (
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
)
WIFI = (
    ("ssid", "str", "", 0, 32),
    ("password", "str", "", 0, 63),
    ("broker", "str", "", 0, 253),
    ("port", "int", 1883, 1, 65535),
    ("lot", "str", "", 0, 64),
    ("keepalive_s", "int", 60, 0, 3600),
)
UART = (
    ("id", "int", 1, 0, 3),
    ("baudrate", "int", 115200, 1200, 3000000),
    ("tx", "int", 17, 0, 63),
    ("rx", "int", 16, 0, 63),
)
SECTIONS = (("", TOP), ("radio", RADIO), ("detect", DETECT), ("wifi", WIFI), ("uart", UART))
# US915 (FCC 15.247): at most 400 ms on air per transmission.
US915_DWELL_US = 400000
REGION_BANDS_HZ = {"EU868": (863000000, 870000000), "US915": (902000000, 928000000)}
REQUIRED = ("node_id", "key", "spot", "board")


class NodeConfig:
    """Validated settings; ``errors`` non-empty means ``tx_enabled`` is False.

    Deliberately without methods: once the config is loaded the firmware
    drops this module (``del sys.modules["node_config"]``) to free its RAM,
    and an instance must not keep the module's functions alive.
    """

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


def new_config() -> NodeConfig:
    """A config holding every default, no board and transmit disabled."""
    cfg = NodeConfig()
    cfg.errors = []
    cfg.tx_enabled = False
    cfg.node_id = 0
    cfg.key = b""
    cfg.spot = ""
    cfg.board = ""
    cfg.pins = None
    for name, _kind, default, _lo, _hi in TOP:
        setattr(cfg, name, default)
    for section, table in SECTIONS[1:]:
        d = {}
        for name, _kind, default, _lo, _hi in table:
            d[name] = default
        setattr(cfg, section, d)
    return cfg


def _error(cfg: NodeConfig, key: str, problem: str) -> None:
    cfg.errors.append("'" + key + "': " + problem)


def _set(cfg: NodeConfig, section: str, name: str, value: object) -> None:
    if section:
        getattr(cfg, section)[name] = value
    else:
        setattr(cfg, name, value)


def summary(cfg: NodeConfig) -> str:
    r = cfg.radio
    head = "node " + str(cfg.node_id) + " spot " + cfg.spot + " board " + (cfg.board or "?")
    if cfg.transport == "wifi":
        w = cfg.wifi
        return head + " wifi " + w["ssid"] + " mqtt " + w["broker"] + ":" + str(w["port"]) + " lot " + w["lot"]
    if cfg.transport == "uart":
        return head + " uart " + str(cfg.uart["id"]) + " " + str(cfg.uart["baudrate"]) + " baud"
    return (
        head
        + " "
        + cfg.region
        + " radio "
        + str(r["freq_hz"])
        + " Hz SF"
        + str(r["sf"])
        + " BW"
        + str(r["bw_hz"] // 1000)
        + " CR4/"
        + str(r["cr"])
        + " "
        + str(r["power_dbm"])
        + " dBm"
    )


def validate(data: object, board_dirs: "list | None" = None) -> NodeConfig:
    """Check a parsed node.json; never raises. Every problem is in ``errors``."""
    from node_config_check import check

    return check(data, board_dirs)


def load_board(name: str, board_dirs: "list | None" = None) -> tuple:
    """(profile dict, None) or (None, problem) for a board name."""
    from node_config_check import load_board as _load_board

    return _load_board(name, board_dirs)


def load(path: str = "node.json", board_dirs: "list | None" = None, quiet: bool = False) -> NodeConfig:
    """Read and validate ``path``; prints every problem on the console."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        cfg = new_config()
        _error(cfg, "(file)", path + " not found: provision the node (fogpark-node provision)")
    else:
        try:
            data = json.loads(text)
        except ValueError as e:
            cfg = new_config()
            _error(cfg, "(file)", path + " is not valid JSON: " + str(e))
        else:
            cfg = validate(data, board_dirs)
    if not quiet:
        if cfg.errors:
            for problem in cfg.errors:
                print("config error: " + path + ": " + problem)
            print("config: transmit disabled until " + path + " is fixed")
        else:
            print("config ok: " + summary(cfg))
    return cfg
