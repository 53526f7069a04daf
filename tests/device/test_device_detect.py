"""The detection state machine: the same cases under CPython and MicroPython, plus allocation."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from device.cli import firmware_module

CASES_FILE = Path(__file__).parent / "mpy" / "detect_cases.py"


def _cases() -> ModuleType:
    firmware_module("detect")  # puts device/firmware on sys.path, as on the node
    spec = importlib.util.spec_from_file_location("fogpark_detect_cases", CASES_FILE)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


CASES = _cases()


@pytest.mark.parametrize("case", CASES.CASES, ids=lambda c: c.__name__)
def test_detect_cpython(case: Any) -> None:
    case()


@pytest.fixture(scope="module")
def micropython_run(mpy: Any) -> list[str]:
    return mpy.run("detect_cases.py").stdout.splitlines()


def test_detect_micropython_all_cases_pass(micropython_run: list[str]) -> None:
    passed = {ln.split()[1] for ln in micropython_run if ln.startswith("PASS ")}
    failed = [ln for ln in micropython_run if ln.startswith("FAIL ")]
    assert not failed
    assert passed == {c.__name__ for c in CASES.CASES}


def test_detect_update_allocates_nothing_under_micropython(micropython_run: list[str]) -> None:
    alloc = [ln for ln in micropython_run if ln.startswith("ALLOC ")]
    assert alloc == ["ALLOC 0"]


def test_detect_rejects_inverted_thresholds() -> None:
    detect = firmware_module("detect")
    with pytest.raises(ValueError):
        detect.Detector(arrive_ut=5, leave_ut=8)


def test_isqrt() -> None:
    detect = firmware_module("detect")
    for n in (0, 1, 2, 15, 16, 17, 10**6, 123456789):
        r = detect.isqrt(n)
        assert r * r <= n < (r + 1) * (r + 1)
