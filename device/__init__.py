"""FogPark sensor nodes: the MicroPython firmware (``device/firmware``, flashed as-is),
board pin maps (``device/boards``) and the installer's tool ``fogpark-node`` (``device/cli.py``)."""
