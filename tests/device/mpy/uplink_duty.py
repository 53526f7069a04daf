"""The uplink's airtime budget and frame counters, on the emulated radio (run under MicroPython)."""

import node_config_check
from emu_setup import result, setup
from uplink import Uplink

from proto import frame

board, world, parts = setup()
cfg = node_config_check.check(
    {
        "node_id": 99,
        "key": "2b7e151628aed2a6abf7158809cf4f3c",
        "spot": "D-1",
        "board": "unix_emulated",
        "duty_cycle_pct": 0.01,  # 360 ms of airtime per hour
    }
)
result("errors", cfg.errors)
up = Uplink(cfg)
up.setup(board)
result("budget_us", up.budget_us)
payload = frame.occupancy_payload(frame.OCCUPIED, 0, 5, 30.0, 40)  # 16-byte frame: 51.5 ms at SF7
sent = 0
while up.send(frame.OCCUPANCY, payload):
    sent += 1
    if sent > 20:
        break
result("sent_before_waiting", sent)
result("tx_lines", parts["radio"].tx_count)
up.queue_occupancy(payload)
result("flush_while_broke", up.flush(lambda: b""))
for _ in range(600):  # ten minutes at 0.01 %: 60 ms of airtime back
    up.second()
result("flush_after_refill", up.flush(lambda: b""))
result("tx_lines_after", parts["radio"].tx_count)
result("fcnt_next", up.fcnt.next)
