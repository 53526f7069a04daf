"""`make lint` as part of the suite: ruff and mypy stay clean on every tier."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MYPY_TARGETS = ["proto/frame.py", "proto/serial_link.py", "proto/airtime.py", "fog", "cloud", "hil",
                "device/cli.py", "device/traces.py", "deploy/gen_tls.py"]


def test_ruff_clean() -> None:
    out = subprocess.run([str(BIN / "ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.xdist_group("mypy")
def test_mypy_clean() -> None:
    out = subprocess.run([str(BIN / "mypy"), *MYPY_TARGETS], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
