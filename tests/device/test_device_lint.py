"""``python -m device.lint_firmware``: mypy against the MicroPython ESP32 stubs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from device import lint_firmware


def test_firmware_is_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert lint_firmware.main([]) == 0, capsys.readouterr().out
    assert "Success" in capsys.readouterr().out


def test_type_errors_fail_the_lint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fw = tmp_path / "firmware"
    shutil.copytree(lint_firmware.FIRMWARE, fw, ignore=shutil.ignore_patterns("__pycache__"))
    src = (fw / "detect.py").read_text()
    # MicroPython's time.sleep_ms takes an int (CPython has no sleep_ms at all)
    (fw / "detect.py").write_text("import time\n" + src + '\ntime.sleep_ms("soon")\n')
    assert lint_firmware.main(["--firmware", str(fw)]) != 0
    out = capsys.readouterr().out
    assert "detect.py" in out and 'Argument 1 to "sleep_ms" has incompatible type "str"' in out
