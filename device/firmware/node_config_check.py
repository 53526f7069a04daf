"""The node.json rules (see node_config.py for the keys); loaded only when node.json must be checked.

On a node that is once per change of node.json (``node_config.load``): a
valid file's verdict is saved and the node restarts, so these tables and
messages never share the heap with the sampling loop.
"""

import binascii
import json

from node_config import SECTIONS, NodeConfig, forget, save, saved, summary

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

# US915 (FCC 15.247): at most 400 ms on air per transmission.
US915_DWELL_US = 400000
REGION_BANDS_HZ = {"EU868": (863000000, 870000000), "US915": (902000000, 928000000)}
REQUIRED = ("node_id", "key", "spot", "board")
TOP = SECTIONS[0][1]
# what a saved verdict holds (with "key" as hex): every setting of NodeConfig
FIELDS = ("node_id", "key", "spot", "board", "pins") + tuple(row[0] for row in TOP) + tuple(s for s, _t in SECTIONS[1:])


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


def check_file(path: str, raw: "bytes | None", board_dirs: "list | None" = None) -> NodeConfig:
    """Check node.json's bytes (None: no file); save the verdict when valid. Prints the summary or
    every problem."""
    if raw is None:
        cfg = new_config()
        _error(cfg, "(file)", path + " not found: provision the node (fogpark-node provision)")
    else:
        try:
            data = json.loads(raw)
        except ValueError as e:
            cfg = new_config()
            _error(cfg, "(file)", path + " is not valid JSON: " + str(e))
        else:
            cfg = check(data, board_dirs)
            if not cfg.errors:
                _save(path, raw, cfg, board_dirs)
    if cfg.errors:
        for problem in cfg.errors:
            print("config error: " + path + ": " + problem)
        print("config: transmit disabled until " + path + " is fixed")
    else:
        print("config ok: " + summary(cfg))
    return cfg


def _save(path: str, raw: bytes, cfg: NodeConfig, board_dirs: "list | None") -> None:
    """Save the verdict and read it back; only a verdict that reads back as this very config sets
    ``cfg.checked`` (so a node whose flash cannot keep it never restarts in a loop: it runs with the
    rules in RAM instead)."""
    board_file = _find_board_file(cfg.board, board_dirs)
    values = {}
    for name in FIELDS:
        values[name] = getattr(cfg, name)
    values["key"] = binascii.hexlify(cfg.key).decode()
    try:
        if board_file is None:
            raise OSError("the board profile is gone")
        save(path, raw, board_file, values)
    except OSError as e:
        print("config: cannot save " + path + ".checked (" + str(e) + "): node.json is checked at every boot")
        return
    again = saved(path, raw)
    if again is None or any(getattr(again, n) != getattr(cfg, n) for n in FIELDS):
        print("config: " + path + ".checked does not read back: node.json is checked at every boot")
        forget(path)
        return
    cfg.checked = True


def _type_name(v: object) -> str:
    if v is None:
        return "null"
    if v is True or v is False:
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _check_value(cfg: NodeConfig, path: str, kind: str, v: object, lo: object, hi: object) -> bool:
    if kind == "choice":
        if isinstance(v, str) and v in lo:  # type: ignore[operator]
            return True
        _error(cfg, path, "must be one of " + ", ".join(lo) + ", got " + repr(v))  # type: ignore[arg-type,call-overload]
        return False
    if kind == "str":
        if not isinstance(v, str):
            _error(cfg, path, "must be a string, got " + _type_name(v))
            return False
        if not lo <= len(v) <= hi:  # type: ignore[operator]
            _error(cfg, path, "must be " + str(lo) + " to " + str(hi) + " characters, got " + str(len(v)))
            return False
        return True
    if kind == "bool":
        if v is True or v is False:
            return True
        _error(cfg, path, "must be true or false, got " + _type_name(v))
        return False
    if v is True or v is False or not isinstance(v, (int, float)):
        want = "an integer" if kind == "int" else "a number"
        _error(cfg, path, "must be " + want + ", got " + _type_name(v))
        return False
    if kind == "int" and not isinstance(v, int):
        _error(cfg, path, "must be an integer, got " + repr(v))
        return False
    if v < lo or v > hi:  # type: ignore[operator]
        _error(cfg, path, "must be from " + str(lo) + " to " + str(hi) + ", got " + repr(v))
        return False
    return True


def _find_board_file(name: str, board_dirs: "list | None") -> "str | None":
    dirs = board_dirs
    if dirs is None:
        dirs = ["boards"]
        here = globals().get("__file__")
        if here:
            base = here.rsplit("/", 1)[0] if "/" in here else "."
            dirs.append(base + "/boards")  # a flashed tree: boards/ beside the modules
            dirs.append(base + "/../boards")  # the repository: device/firmware/../boards
    for d in dirs:
        path = d + "/" + name + ".json"
        try:
            with open(path) as f:
                f.read(1)
            return path
        except OSError:
            continue
    return None


BOARD_PIN_KEYS = (
    ("radio", ("spi", "sck", "mosi", "miso", "cs", "reset", "dio0")),
    ("i2c", ("id", "scl", "sda", "freq")),
)


def load_board(name: str, board_dirs: "list | None" = None) -> "tuple":
    """(profile dict, None) or (None, problem) for a board name."""
    if name not in KNOWN_BOARDS:
        return None, "unknown board " + repr(name) + " (known: " + ", ".join(KNOWN_BOARDS) + ")"
    path = _find_board_file(name, board_dirs)
    if path is None:
        return None, "no pin map boards/" + name + ".json on this node"
    try:
        with open(path) as f:
            prof = json.load(f)
    except ValueError as e:
        return None, "pin map " + path + " is not valid JSON: " + str(e)
    if not isinstance(prof, dict) or prof.get("board") != name:
        return None, "pin map " + path + " is not the profile of board " + repr(name)
    for section, keys in BOARD_PIN_KEYS:
        sec = prof.get(section)
        if not isinstance(sec, dict):
            return None, "pin map " + path + ": section " + repr(section) + " missing"
        for k in keys:
            v = sec.get(k)
            if not isinstance(v, int) or v is True or v is False:
                return None, "pin map " + path + ": " + section + "." + k + " must be an integer"
    return prof, None


def check(data: object, board_dirs: "list | None" = None) -> NodeConfig:
    """Check a parsed node.json; never raises. See the module docstring for keys."""
    cfg = new_config()
    if not isinstance(data, dict):
        _error(cfg, "(top level)", "must be a JSON object, got " + _type_name(data))
        return cfg

    for k in REQUIRED:
        if k not in data:
            _error(cfg, k, "missing (required)")

    v = data.get("node_id")
    if "node_id" in data:
        if v is True or v is False or not isinstance(v, int):
            _error(cfg, "node_id", "must be an integer, got " + _type_name(v))
        elif not 1 <= v <= 0xFFFFFFFF:
            _error(cfg, "node_id", "must be from 1 to 4294967295, got " + str(v))
        else:
            cfg.node_id = v

    v = data.get("key")
    if "key" in data:
        if not isinstance(v, str):
            _error(cfg, "key", "must be a string of 32 hex characters, got " + _type_name(v))
        elif len(v) != 32:
            _error(cfg, "key", "must be 32 hex characters (a 128-bit AES key), got " + str(len(v)))
        elif v.strip(HEX):  # strip, not a loop over the characters: each 1-character string would be interned for good
            _error(cfg, "key", "must contain only hex digits 0-9 a-f")
        elif v.strip("0") == "":
            _error(cfg, "key", "must not be all zeros")
        else:
            cfg.key = bytes(binascii.unhexlify(v))

    v = data.get("spot")
    if "spot" in data:
        if not isinstance(v, str):
            _error(cfg, "spot", "must be a string, got " + _type_name(v))
        elif not 1 <= len(v) <= 32:
            _error(cfg, "spot", "must be 1 to 32 characters, got " + str(len(v)))
        elif v.strip(SPOT_CHARS):
            _error(cfg, "spot", "may contain only letters, digits and - _ . : / #, got " + repr(v))
        else:
            cfg.spot = v

    defaults = {}  # type: dict
    v = data.get("board")
    if "board" in data:
        if not isinstance(v, str):
            _error(cfg, "board", "must be a string, got " + _type_name(v))
        else:
            prof, problem = load_board(v, board_dirs)
            if prof is None:
                _error(cfg, "board", str(problem))
            else:
                cfg.board = v
                cfg.pins = prof
                d = prof.get("defaults")
                if isinstance(d, dict):
                    defaults = d

    known = ["node_id", "key", "spot", "board"]
    for section, _table in SECTIONS:
        if section:
            known.append(section)
    for section, table in SECTIONS:
        if section:
            src = data.get(section, {})
            dsrc = defaults.get(section, {})
            if not isinstance(src, dict):
                _error(cfg, section, "must be an object, got " + _type_name(src))
                continue
            for k in src:
                if not any(k == row[0] for row in table):
                    _error(cfg, section + "." + k, "unknown key")
        else:
            src = data
            dsrc = defaults
        for name, kind, _default, lo, hi in table:
            known.append(name)
            path = section + "." + name if section else name
            if name in dsrc:
                if _check_value(cfg, "board default " + path, kind, dsrc[name], lo, hi):
                    _set(cfg, section, name, dsrc[name])
            if name in src:
                if _check_value(cfg, path, kind, src[name], lo, hi):
                    _set(cfg, section, name, src[name])
    for k in data:
        if k not in known:
            _error(cfg, str(k), "unknown key")

    # Cross-field rules.
    r = cfg.radio
    if r["bw_hz"] not in BANDWIDTHS_HZ:
        _error(cfg, "radio.bw_hz", "must be one of " + ", ".join(str(b) for b in BANDWIDTHS_HZ))
    if 17 < r["power_dbm"] < 20:
        _error(cfg, "radio.power_dbm", "must be 2 to 17, or 20, got " + str(r["power_dbm"]))
    d = cfg.detect
    if d["leave_ut"] > d["arrive_ut"]:
        _error(cfg, "detect.leave_ut", "must not exceed detect.arrive_ut (" + str(d["arrive_ut"]) + ")")
    if d["mag_range_gauss"] not in (2, 8):
        _error(cfg, "detect.mag_range_gauss", "must be 2 or 8, got " + str(d["mag_range_gauss"]))
    if 0 < cfg.wdt_ms < 1000:
        _error(cfg, "wdt_ms", "must be 0 (off) or at least 1000, got " + str(cfg.wdt_ms))
    _check_transport(cfg, data, defaults)

    cfg.tx_enabled = not cfg.errors
    return cfg


def _check_transport(cfg: NodeConfig, data: dict, defaults: dict) -> None:
    """Rules across keys: region and radio, confirmed uplinks, Wi-Fi, UART, deep sleep, RFID."""
    r = cfg.radio
    band = REGION_BANDS_HZ[cfg.region]
    pins = cfg.pins or {}
    if cfg.transport == "lora":
        if not band[0] <= r["freq_hz"] <= band[1]:
            _error(
                cfg,
                "radio.freq_hz",
                str(r["freq_hz"]) + " Hz is outside the " + cfg.region + " band (" + str(band[0]) + " .. " + str(band[1]) + " Hz)",
            )
        if cfg.region == "US915":
            if "duty_cycle_pct" not in data and "duty_cycle_pct" not in defaults:
                cfg.duty_cycle_pct = 100.0  # FCC: no duty cycle, a dwell limit instead
            from proto import airtime

            toa = airtime.time_on_air_us(16, r["sf"], r["bw_hz"], r["cr"], r["preamble"])
            if toa > US915_DWELL_US:
                _error(
                    cfg,
                    "radio.sf",
                    "SF" + str(r["sf"]) + " at " + str(r["bw_hz"] // 1000) + " kHz puts a 16-byte occupancy frame on air for "
                    + str(toa // 1000) + " ms, over the US915 dwell limit of 400 ms: use a lower SF or a wider bandwidth",
                )
        if cfg.confirmed and r["rx_window_ms"] <= 0:
            _error(cfg, "confirmed", "needs radio.rx_window_ms > 0 (the node listens for the ACK)")
    elif cfg.transport == "wifi":
        w = cfg.wifi
        if not pins.get("wifi"):
            _error(cfg, "transport", "board " + repr(cfg.board) + " has no Wi-Fi")
        for k in ("ssid", "broker", "lot"):
            if not w[k]:
                _error(cfg, "wifi." + k, "required for transport 'wifi'")
        for c in w["lot"]:
            if c in "+#/":
                _error(cfg, "wifi.lot", "must not contain '+', '#' or '/' (it is an MQTT topic level)")
                break
    if cfg.test_mode and cfg.deep_sleep:
        _error(cfg, "test_mode", "keeps the board awake to listen on its console: turn deep_sleep off")
    if cfg.test_mode and cfg.transport != "lora":
        _error(cfg, "test_mode", "drives a LoRa node (TX/RX lines are the radio's): transport must be 'lora'")
    if cfg.deep_sleep and cfg.sample_ms < 1000:
        _error(cfg, "sample_ms", "must be at least 1000 with deep_sleep (a wake costs a boot)")
    if cfg.rfid and not isinstance(pins.get("rfid"), dict):
        _error(cfg, "rfid", "board " + repr(cfg.board) + " has no RC522 wired (no 'rfid' pins in its profile)")


