"""node.json validation: the firmware's validator (under CPython), the CLI, and a node refusing to transmit."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from device.cli import firmware_module
from device.cli import main as cli_main


def validate(data: object) -> Any:
    return firmware_module("node_config_check").check(data)


def test_minimal_node_json_is_valid_with_board_defaults(node_json: Callable[..., dict[str, Any]]) -> None:
    cfg = validate(node_json())
    assert cfg.errors == []
    assert cfg.tx_enabled is True
    assert cfg.key == bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    # the emulated board profile's defaults: a park in 1-2 s, heartbeats every 10 s
    assert cfg.sample_ms == 500 and cfg.heartbeat_s == 10
    r = cfg.radio
    assert (r["freq_hz"], r["sf"], r["bw_hz"], r["cr"], r["power_dbm"], r["sync_word"]) == (
        868100000, 7, 125000, 5, 14, 0x12,
    )


def test_real_board_defaults(node_json: Callable[..., dict[str, Any]]) -> None:
    cfg = validate(node_json(board="heltec_lora32_v2"))
    assert cfg.errors == []
    assert cfg.heartbeat_s == 3 * 3600
    assert cfg.pins["sensor_power"] == {"pin": 21, "on": 0}


def test_every_board_profile_loads(node_json: Callable[..., dict[str, Any]]) -> None:
    for board in firmware_module("node_config_check").KNOWN_BOARDS:
        cfg = validate(node_json(board=board))
        assert cfg.errors == [], board


def test_file_values_override_defaults(node_json: Callable[..., dict[str, Any]]) -> None:
    cfg = validate(node_json(sample_ms=250, radio={"sf": 9}, detect={"occupied_below_cm": 60}))
    assert cfg.errors == []
    assert cfg.sample_ms == 250 and cfg.radio["sf"] == 9 and cfg.detect["occupied_below_cm"] == 60


BAD_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("missing key", {"key": None}, "'key': missing (required)"),
    ("short key", {"key": "abcd"}, "'key': must be 32 hex characters"),
    ("non-hex key", {"key": "zz" * 16}, "'key': must contain only hex digits"),
    ("zero key", {"key": "0" * 32}, "'key': must not be all zeros"),
    ("key not a string", {"key": 1234}, "'key': must be a string of 32 hex characters, got an integer"),
    ("node id as string", {"node_id": "12"}, "'node_id': must be an integer, got a string"),
    ("node id zero", {"node_id": 0}, "'node_id': must be from 1 to 4294967295, got 0"),
    ("node id too big", {"node_id": 2**32}, "'node_id': must be from 1 to 4294967295"),
    ("node id bool", {"node_id": True}, "'node_id': must be an integer, got a boolean"),
    ("unknown board", {"board": "esp8266"}, "'board': unknown board 'esp8266' (known: heltec_lora32_v2"),
    ("spot with space", {"spot": "A 1"}, "'spot': may contain only"),
    ("sf out of range", {"radio": {"sf": 13}}, "'radio.sf': must be from 7 to 12, got 13"),
    ("bandwidth", {"radio": {"bw_hz": 100000}}, "'radio.bw_hz': must be one of"),
    ("power 18 dBm", {"radio": {"power_dbm": 18}}, "'radio.power_dbm': must be 2 to 17, or 20"),
    ("sample_ms float", {"sample_ms": 500.5}, "'sample_ms': must be an integer, got 500.5"),
    ("threshold type", {"detect": {"arrive_ut": "12"}}, "'detect.arrive_ut': must be a number, got a string"),
    ("thresholds inverted", {"detect": {"arrive_ut": 5, "leave_ut": 8}}, "'detect.leave_ut': must not exceed"),
    ("unknown top key", {"heartbeat_sec": 60}, "'heartbeat_sec': unknown key"),
    ("unknown radio key", {"radio": {"frequency": 868}}, "'radio.frequency': unknown key"),
    ("section not object", {"radio": 7}, "'radio': must be an object, got an integer"),
]


@pytest.mark.parametrize(("over", "message"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES])
def test_bad_node_json_names_the_key(node_json: Callable[..., dict[str, Any]], over: dict[str, Any], message: str) -> None:
    data = node_json(**over)
    for k, v in over.items():
        if v is None:
            del data[k]
    cfg = validate(data)
    assert cfg.tx_enabled is False
    assert any(message in e for e in cfg.errors), cfg.errors


def test_not_an_object() -> None:
    cfg = validate([1, 2])
    assert cfg.tx_enabled is False
    assert cfg.errors == ["'(top level)': must be a JSON object, got a list"]


def test_load_reports_unparsable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nc = firmware_module("node_config")
    p = tmp_path / "node.json"
    p.write_text('{"node_id": 1,')
    cfg = nc.load(str(p))
    assert cfg.tx_enabled is False
    out = capsys.readouterr().out
    assert "is not valid JSON" in out and "transmit disabled" in out
    cfg = nc.load(str(tmp_path / "missing.json"))
    assert cfg.tx_enabled is False and "not found" in cfg.errors[0]


# --- checked once per change: the saved verdict (node.json.checked) --------------------------


def _same(a: Any, b: Any) -> bool:
    check = firmware_module("node_config_check")
    return all(getattr(a, n) == getattr(b, n) for n in check.FIELDS)


def test_a_valid_node_json_is_checked_once_then_read_from_its_verdict(
    tmp_path: Path, node_json: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    nc = firmware_module("node_config")
    check = firmware_module("node_config_check")
    p = tmp_path / "node.json"
    p.write_text(json.dumps(node_json(sample_ms=250, radio={"sf": 9})))
    first = nc.load(str(p))
    assert first.checked is True and first.errors == [] and first.tx_enabled
    assert (tmp_path / "node.json.checked").exists()

    def no_rules(*_a: Any, **_k: Any) -> None:
        raise AssertionError("the rules ran although node.json did not change")

    with monkeypatch.context() as m:
        m.setattr(check, "check_file", no_rules)
        second = nc.load(str(p))  # the verdict, without loading the rules
    assert second.checked is False and second.tx_enabled and second.errors == []
    assert _same(first, second) and second.key == bytes.fromhex(node_json()["key"])
    assert list(second.radio) == [row[0] for row in nc.SECTIONS[1][1]]  # every key, defaults filled in
    assert capsys.readouterr().out.count("config ok: node 305441741 spot T-001") == 2

    p.write_text(json.dumps(node_json(sample_ms=300)))  # a changed node.json: checked again
    third = nc.load(str(p))
    assert third.checked is True and third.sample_ms == 300 and third.radio["sf"] == 7


def test_a_changed_board_profile_or_a_torn_verdict_is_checked_again(
    tmp_path: Path, node_json: Callable[..., dict[str, Any]],
) -> None:
    nc = firmware_module("node_config")
    p = tmp_path / "node.json"
    p.write_text(json.dumps(node_json()))
    assert nc.load(str(p)).checked is True
    verdict = tmp_path / "node.json.checked"
    saved = json.loads(verdict.read_text())
    profile = tmp_path / "unix_emulated.json"  # the verdict pointed at a copy of the profile (same bytes)
    profile.write_text(Path(saved["board_file"]).read_text())
    verdict.write_text(json.dumps(saved | {"board_file": str(profile)}))
    assert nc.load(str(p)).checked is False  # same bytes: still valid
    profile.write_text(profile.read_text().replace('"sample_ms": 500', '"sample_ms": 700'))
    assert nc.load(str(p)).checked is True  # the profile changed: checked again
    verdict.write_text(verdict.read_text()[:40])  # torn by a power cut
    assert nc.load(str(p)).checked is True
    saved = json.loads(verdict.read_text())
    verdict.write_text(json.dumps(saved | {"sig": "0" * 64}))  # another node.json's, or another schema's
    assert nc.load(str(p)).checked is True


def test_a_bad_node_json_leaves_no_verdict_and_is_checked_at_every_boot(
    tmp_path: Path, node_json: Callable[..., dict[str, Any]], capsys: pytest.CaptureFixture[str],
) -> None:
    nc = firmware_module("node_config")
    p = tmp_path / "node.json"
    p.write_text(json.dumps(node_json(sample_ms=10)))
    for _ in range(2):
        cfg = nc.load(str(p))
        assert cfg.checked is False and cfg.tx_enabled is False
        assert not (tmp_path / "node.json.checked").exists()
    assert capsys.readouterr().out.count("config error: " + str(p) + ": 'sample_ms': must be from 50") == 2


def test_a_verdict_that_cannot_be_saved_means_no_restart(
    tmp_path: Path, node_json: Callable[..., dict[str, Any]], capsys: pytest.CaptureFixture[str],
) -> None:
    """A flash that cannot keep the verdict must not make the node restart in a loop: it runs with the
    rules in RAM, and says so."""
    nc = firmware_module("node_config")
    p = tmp_path / "node.json"
    p.write_text(json.dumps(node_json()))
    (tmp_path / "node.json.checked.tmp").mkdir()  # the write fails
    cfg = nc.load(str(p))
    assert cfg.tx_enabled and cfg.checked is False
    assert "node.json is checked at every boot" in capsys.readouterr().out
    assert not (tmp_path / "node.json.checked").exists()


# --- fogpark-node check / provision ------------------------------------------------------


def test_cli_check(tmp_path: Path, node_json: Callable[..., dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(node_json()))
    assert cli_main(["check", str(good)]) == 0
    assert "ok: node 305441741 spot T-001" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(node_json(radio={"sf": 4})))
    assert cli_main(["check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "'radio.sf': must be from 7 to 12, got 4" in err


def test_cli_provision_writes_node_json_and_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out1, out2, reg = tmp_path / "n1.json", tmp_path / "n2.json", tmp_path / "nodes.toml"
    assert cli_main(["provision", "--board", "ttgo_lora32", "--spot", "B-7", "--out", str(out1), "--registry", str(reg)]) == 0
    assert cli_main(
        ["provision", "--board", "unix_emulated", "--spot", "B-8", "--node-id", "77", "--out", str(out2), "--registry", str(reg)]
    ) == 0
    n1 = json.loads(out1.read_text())
    assert 1 <= n1["node_id"] <= 2**32 - 1
    assert len(n1["key"]) == 32 and int(n1["key"], 16) != 0
    assert n1["key"] not in capsys.readouterr().out  # the key is never printed
    assert out1.stat().st_mode & 0o777 == 0o600
    with reg.open("rb") as f:
        nodes = tomllib.load(f)["nodes"]
    assert [(n["node_id"], n["spot"]) for n in nodes] == [(n1["node_id"], "B-7"), (77, "B-8")]
    assert nodes[0]["key"] == n1["key"]
    assert json.loads(out2.read_text())["key"] == nodes[1]["key"] != nodes[0]["key"]
    # a taken node id, an existing file, a bad spot: refused, nothing written
    assert cli_main(["provision", "--board", "ttgo_lora32", "--spot", "B-9", "--node-id", "77",
                     "--out", str(tmp_path / "n3.json"), "--registry", str(reg)]) == 2
    assert cli_main(["provision", "--board", "ttgo_lora32", "--spot", "B-9", "--out", str(out1)]) == 2
    assert cli_main(["provision", "--board", "ttgo_lora32", "--spot", "B 9", "--out", str(tmp_path / "n4.json")]) == 2
    assert not (tmp_path / "n3.json").exists() and not (tmp_path / "n4.json").exists()
    with reg.open("rb") as f:
        assert len(tomllib.load(f)["nodes"]) == 2


def test_cli_help_lists_only_real_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("provision", "airtime", "check", "flash", "monitor", "calibrate", "battery"):
        assert cmd in out


# --- a node with a bad node.json never transmits -----------------------------------------


def test_bad_node_json_node_never_transmits(
    emulated_node: Callable[..., Any], node_json: Callable[..., dict[str, Any]]
) -> None:
    missing_key = node_json(sample_ms=200)
    del missing_key["key"]
    cases = {
        "missing_key": (missing_key, "'key': missing (required)"),
        "wrong_types": (node_json(node_id="12", sample_ms=200), "'node_id': must be an integer, got a string"),
        "unknown_board": (node_json(board="esp8266"), "'board': unknown board 'esp8266'"),
    }
    nodes = {name: emulated_node(data, name=name) for name, (data, _) in cases.items()}
    for name, node in nodes.items():
        line = node.wait_console(r"config error: node\.json: ", timeout=5)
        assert line is not None, node.console_lines()
        assert cases[name][1] in "\n".join(node.console_lines())
    for name, node in nodes.items():
        if name != "unknown_board":  # that one cannot drive any hardware: it idles
            assert node.wait_console(r"^state empty \(initial\)", timeout=5) is not None, node.console_lines()
        node.park()  # a state change would normally be sent at once
    for name, node in nodes.items():
        if name != "unknown_board":
            assert node.wait_console(r"^state occupied after", timeout=5) is not None, node.console_lines()
            assert node.wait_console(r"tx disabled: occupancy not sent", timeout=2) is not None
    for node in nodes.values():
        assert node.tx_log == []
        assert not any(line.startswith("TX ") for line in node.console_lines())
