"""``network`` for the unix port (which has none): a Wi-Fi station that associates with the bench's AP.

Only the association is emulated: ``WLAN(STA_IF)`` connects when the
world has an access point (``WORLD {"wifi": {"ssid": ..., "password": ...,
"rssi": -60}}``) with that SSID and password, after ``ASSOC_MS``; then
``isconnected()`` is True and ``ifconfig()`` gives an address. Sockets are
the unix port's real ones: MQTT goes to a real broker on this machine.
Status codes are ESP32's.
"""

from time import ticks_diff, ticks_ms  # type: ignore[attr-defined]  # MicroPython

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
ASSOC_MS = 300

_world = [None]


def emu_world(world) -> None:
    _world[0] = world


class WLAN:
    def __init__(self, interface: int = STA_IF) -> None:
        self._active = False
        self._status = STAT_IDLE
        self._ssid = ""
        self._key = ""
        self._t0 = 0

    def active(self, on=None):
        if on is None:
            return self._active
        self._active = bool(on)
        if not on:
            self._status = STAT_IDLE
        return None

    def connect(self, ssid: str, key: str = "", *, bssid=None) -> None:
        if not self._active:
            raise OSError("Wifi Not Started")
        self._ssid = ssid
        self._key = key
        self._status = STAT_CONNECTING
        self._t0 = ticks_ms()

    def disconnect(self) -> None:
        self._status = STAT_IDLE

    def _ap(self):
        w = _world[0]
        return None if w is None else w.wifi

    def status(self, param=None):
        if self._status == STAT_CONNECTING and ticks_diff(ticks_ms(), self._t0) >= ASSOC_MS:
            ap = self._ap()
            if ap is None or ap.get("ssid") != self._ssid:
                self._status = STAT_NO_AP_FOUND
            elif ap.get("password", "") != self._key:
                self._status = STAT_WRONG_PASSWORD
            else:
                self._status = STAT_GOT_IP
        if self._status == STAT_GOT_IP and (self._ap() is None or self._ap().get("ssid") != self._ssid):
            self._status = STAT_NO_AP_FOUND  # the AP went away
        if param == "rssi":
            ap = self._ap()
            return int(ap.get("rssi", -60)) if ap and self._status == STAT_GOT_IP else 0
        return self._status

    def isconnected(self) -> bool:
        return self.status() == STAT_GOT_IP

    def ifconfig(self, config=None):
        if self.isconnected():
            return ("10.42.0.23", "255.255.255.0", "10.42.0.1", "10.42.0.1")
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def config(self, *args, **kw):
        if args == ("mac",):
            return b"\x24\x0a\xc4\xfe\x00\x01"
        return None
