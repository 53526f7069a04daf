"""Published time-on-air checks, printed for the CPython side to compare (MicroPython)."""

import json

from proto import airtime


def result(name, value):
    print("RESULT " + json.dumps({"name": name, "value": value}))


result("sf7_12B", airtime.time_on_air_ms(12, 7, 125000, 5, 8, True, True))
result("sf12_12B", airtime.time_on_air_ms(12, 12, 125000, 5, 8, True, True))
result("sf12_12B_us", airtime.time_on_air_us(12, 12, 125000, 5, 8, True, True))
result("ldro_sf11", airtime.low_data_rate_optimize(11, 125000))
result("ldro_sf10", airtime.low_data_rate_optimize(10, 125000))
