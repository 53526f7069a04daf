"""Stand-in ``RPi`` package: only ``RPi.GPIO`` (see GPIO.py), for benches without a Raspberry Pi."""
