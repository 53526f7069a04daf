"""Sensor and radio drivers, one chip per file (flashed to the board as /drivers/)."""
