"""Shared fixtures for the contract tests."""

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "proto" / "frame_vectors.json"
MICROPYTHON = str(Path(sys.executable).with_name("micropython"))


@pytest.fixture(scope="session")
def vectors() -> dict:
    return json.loads(VECTORS.read_text())


@pytest.fixture(scope="session")
def micropython() -> Callable[..., subprocess.CompletedProcess]:
    """Runs the MicroPython unix port with ``proto/`` importable (``micropython("-c", script)``)."""

    def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([MICROPYTHON, *args], env={"MICROPYPATH": f"{ROOT}:.frozen"},
                              capture_output=True, text=True, timeout=timeout)

    return run
