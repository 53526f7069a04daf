"""Type-check the node firmware against MicroPython's ESP32 stubs: ``python -m device.lint_firmware``.

The firmware (``device/firmware``, plus the ``proto`` modules it imports)
is MicroPython code; checking it against CPython's typeshed would accept
calls MicroPython does not have (and reject ones it does, such as
``time.sleep_ms``). The micropython-stubs project ships the stubs as two
pip packages, used with mypy as its documentation describes:

* ``micropython-stdlib-stubs`` -- a reduced typeshed (``stdlib/``, ``stubs/``)
  for MicroPython's builtins and stdlib: mypy's ``--custom-typeshed-dir``;
* ``micropython-esp32-stubs`` -- the port's modules (``machine``,
  ``micropython``, ``time``, ...), top-level ``.pyi`` files: on MYPYPATH.

Both install their files loose into site-packages, which mypy refuses on
MYPYPATH, so this tool links them into a temporary folder laid out as mypy
expects, writes a config of its own (the project's CPython mypy settings
do not apply), and runs mypy with a separate cache. Errors inside the stub
files themselves (they have a few) are not the firmware's and are silenced
per stub module. Exit status is mypy's: non-zero when the firmware has type
errors, which are printed.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIRMWARE = REPO / "device" / "firmware"  # --firmware DIR checks another tree (tests use it)
EXTRA = [REPO / "proto" / "frame.py", REPO / "proto" / "airtime.py"]
PORT_STUBS = "micropython-esp32-stubs"
STDLIB_STUBS = "micropython-stdlib-stubs"


def _top_level(dist: md.Distribution) -> dict[str, Path]:
    """Top-level entries (files and folders) a distribution installed, by name."""
    out: dict[str, Path] = {}
    for f in dist.files or []:
        parts = f.parts
        if not parts or parts[0].endswith((".dist-info", ".data")) or parts[0] == "..":
            continue
        name = parts[0]
        if len(parts) == 1 and not name.endswith(".pyi"):
            continue  # README.md, LICENSE.md, pyproject.toml
        out[name] = Path(str(dist.locate_file(name)))
    return out


def _link(src: Path, dst: Path) -> None:
    try:
        os.symlink(src, dst)
    except OSError:  # no symlinks here: copy instead
        import shutil

        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy2(src, dst)


def firmware_files(firmware: Path = FIRMWARE) -> list[Path]:
    return sorted(firmware.rglob("*.py")) + EXTRA


def firmware_modules(firmware: Path = FIRMWARE) -> list[str]:
    """Module names as the node imports them (device/firmware and the repo root on the path)."""
    mods = []
    for p in firmware_files(firmware):
        base = firmware if firmware in p.parents else REPO
        rel = p.relative_to(base).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods.append(".".join(parts))
    return mods


def build_env(tmp: Path, firmware: Path = FIRMWARE) -> tuple[Path, list[str]]:
    """Lay out typeshed + stub path in ``tmp``; returns (config file, stub module names)."""
    try:
        port = md.distribution(PORT_STUBS)
        std = md.distribution(STDLIB_STUBS)
    except md.PackageNotFoundError as e:
        raise SystemExit("lint_firmware: " + str(e) + " is not installed (pip install micropython-esp32-stubs)") from None
    std_top = _top_level(std)
    typeshed = tmp / "typeshed"
    typeshed.mkdir()
    _link(std_top["stdlib"], typeshed / "stdlib")
    if "stubs" in std_top:
        _link(std_top["stubs"], typeshed / "stubs")
    else:
        (typeshed / "stubs").mkdir()
    stubs = tmp / "stubs"
    stubs.mkdir()
    names: list[str] = []
    entries = _top_level(port)
    if "_mpy_shed" in std_top:
        entries["_mpy_shed"] = std_top["_mpy_shed"]
    for name, src in sorted(entries.items()):
        _link(src, stubs / name)
        names.append(name[:-4] if name.endswith(".pyi") else name)
    ignore = ",".join(n + "," + n + ".*" for n in names)
    cfg = tmp / "mypy.ini"
    cfg.write_text(
        "[mypy]\n"
        "python_version = 3.11\n"
        "custom_typeshed_dir = " + str(typeshed) + "\n"
        "mypy_path = " + os.pathsep.join([str(stubs), str(firmware), str(REPO)]) + "\n"
        "no_site_packages = True\n"
        "check_untyped_defs = True\n"
        "warn_unused_ignores = False\n"
        "cache_dir = " + str(REPO / ".mypy_cache" / "firmware") + "\n"
        "\n[mypy-" + ignore + "]\nignore_errors = True\n"
        # proto/frame.py's CPython branch imports proto.frame_cpython (OpenSSL through cryptography),
        # which the firmware never sees: followed but not checked against the MicroPython stubs
        "\n[mypy-cryptography,cryptography.*]\nignore_missing_imports = True\n"
        "\n[mypy-proto.frame_cpython]\nignore_errors = True\nfollow_imports = skip\n"
    )
    return cfg, names


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m device.lint_firmware", description=__doc__.split("\n")[0])
    ap.add_argument("--firmware", type=Path, default=FIRMWARE, help="firmware tree to check (default: device/firmware)")
    args, extra_args = ap.parse_known_args(argv)
    firmware = args.firmware.resolve()
    with tempfile.TemporaryDirectory(prefix="fogpark-lint-") as d:
        cfg, _ = build_env(Path(d), firmware)
        mods: list[str] = []
        for m in firmware_modules(firmware):
            mods += ["-m", m]
        cmd = [sys.executable, "-m", "mypy", "--config-file", str(cfg), *extra_args, *mods]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    sys.stdout.write(out)
    if proc.returncode != 0:
        print("lint_firmware: type errors in the firmware (checked against " + PORT_STUBS + ")", file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
