"""Emulated node hardware. Runs inside the MicroPython node process (see README.md);
``sx1276_model`` also imports under CPython (``from hil.emu import sx1276_model``)."""
