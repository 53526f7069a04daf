"""fogpark-cloud commands: history, cursor, help texts, and serve as a real process."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import selectors
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest

from cloud.cli import main
from cloud.store import CloudStore, now_ms
from cloud.timeparse import format_ms

MINUTE_MS = 60_000


@pytest.fixture
def recent(db_path: Path, kit: Any) -> dict[str, int]:
    """A store with three spot events and five per-minute summaries in the last ten minutes."""
    now = now_ms()
    base = now - 8 * MINUTE_MS
    store = CloudStore(db_path)
    try:
        store.ingest_batch(kit.batch(kit.FOG_A, [
            kit.spot_event(1, at_ms=base, spot="A-01", state="occupied", node=17, fcnt=1201, rssi=-97),
            kit.spot_event(2, at_ms=base + 30_000, spot="A-02", state="empty", node=18, fcnt=77, rssi=-110),
            kit.spot_event(3, at_ms=now - 60 * MINUTE_MS, spot="OLD", state="empty"),  # outside --since 10m
            *[kit.summary(4 + i, window_start_ms=base - base % MINUTE_MS + i * MINUTE_MS, occupied=5 + i,
                          arrivals=2) for i in range(5)],
        ]))
    finally:
        store.close()
    return {"base": base}


def test_history_table_prints_each_event(
    db_path: Path, kit: Any, recent: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "--lot", kit.LOT_A, "--since", "10m", "--db", str(db_path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    event_lines = [line for line in lines if " A-0" in line]
    assert len(event_lines) == 2
    when = recent["base"]
    stamp = re.escape(format_ms(when))
    assert re.match(rf"{stamp}\s+A-01\s+occupied\s+17\s+1201\s+-97 dBm$", event_lines[0])
    assert re.search(r"A-02\s+empty\s+18\s+77\s+-110 dBm$", event_lines[1])
    assert "OLD" not in out
    assert "spot events: 2" in out
    assert re.search(r"summaries, 1m buckets: 5", out)
    assert sum(1 for line in lines if re.match(r"\d{4}-\d\d-\d\dT.*Z\s+1\s+\d+\.\d", line)) == 5


def test_history_says_clearly_when_there_is_nothing(
    db_path: Path, recent: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "--lot", "nowhere", "--since", "10m", "--db", str(db_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("nothing stored for lot 'nowhere' in ")
    assert "no spot events, no summaries" in out


def test_history_json_and_csv(
    db_path: Path, kit: Any, recent: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "--lot", kit.LOT_A, "--since", "10m", "--db", str(db_path), "--format", "json",
                 "--bucket", "1h"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert [e["spot_id"] for e in body["spot_events"]] == ["A-01", "A-02"]
    assert body["bucket_s"] == 3600
    assert sum(b["samples"] for b in body["summaries"]) == 5
    assert main(["history", "--lot", kit.LOT_A, "--since", "10m", "--db", str(db_path), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["spot_id"], r["state"], r["rssi_dbm"]) for r in rows] == [("A-01", "occupied", "-97"),
                                                                        ("A-02", "empty", "-110")]


def test_history_limit_says_more_exist(
    db_path: Path, kit: Any, recent: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "--lot", kit.LOT_A, "--since", "10m", "--db", str(db_path), "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "spot events: 1 (more not shown" in out
    assert "A-02" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "10x"], "--since: bad time '10x'"),
        (["--since", "10m", "--until", "1h"], "--since: since (") ,
        (["--since", "10m", "--bucket", "hourly"], "--bucket: bad duration"),
    ],
)
def test_history_bad_options_exit_2_with_the_reason(
    db_path: Path, recent: dict[str, int], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["history", "--lot", "lot-a", "--db", str(db_path), *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


def test_missing_store_is_an_error_not_a_new_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    absent = tmp_path / "absent" / "cloud.db"
    assert main(["cursor", "--fog", "demo-fog", "--db", str(absent)]) == 2
    assert "no cloud store there" in capsys.readouterr().err
    assert not absent.parent.exists()


def test_cursor(db_path: Path, kit: Any, capsys: pytest.CaptureFixture[str]) -> None:
    store = CloudStore(db_path)
    store.ingest_batch(kit.events(kit.FOG_A, 1, 12))
    store.ingest_batch(kit.events(kit.FOG_A, 20, 25))
    store.close()
    assert main(["cursor", "--fog", kit.FOG_A, "--db", str(db_path)]) == 0
    assert capsys.readouterr().out.strip() == "fog 'fog-a': acked_seq 12 (the fog resumes at seq 13)"
    assert main(["cursor", "--fog", "fog-new", "--db", str(db_path)]) == 0
    assert "nothing stored yet" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ([], ["serve", "history", "cursor", "lots", "occupancy", "stats", "revenue", "reservations", "no-shows",
              "alerts", "nodes", "recommend", "book", "bookings", "model", "export"]),
        (["serve"], ["--config", "--db", "--grpc", "--http", "--tls-cert", "SIGTERM", "demo-token"]),
        (["history"], ["--lot", "--since", "--until", "--format", "table,json,csv", "ISO-8601"]),
        (["cursor"], ["--fog", "--db", "resumes"]),
    ],
)
def test_help(
    command: list[str], expected: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # no line breaks inside words like demo-token
    with pytest.raises(SystemExit) as caught:
        main([*command, "--help"])
    assert caught.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for word in expected:
        assert word in out


def test_serve_refuses_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "cloud.toml"
    config.write_text('[fogs.a]\ntoken = "short"\nlots = ["x"]\n')
    assert main(["serve", "--config", str(config), "--db", str(tmp_path / "c.db")]) == 2
    assert f"{config}: fogs.a.token: must be a string of at least 8" in capsys.readouterr().err
    assert not (tmp_path / "c.db").exists()


def _first_line(proc: subprocess.Popen[str], timeout_s: float = 30) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            proc.kill()
            raise AssertionError("serve printed nothing")
    return proc.stdout.readline()


async def _push_demo(target: str, kit: Any) -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        client = kit.client(channel, "demo-fog", "demo-token")
        ack = await client.push(kit.events("demo-fog", 1, 4, lot="demo"))
        return int(ack.acked_seq)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_runs_until_signalled_then_exits_0(tmp_path: Path, kit: Any, signum: int) -> None:
    db = tmp_path / "var" / "cloud.db"  # parents are created
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloud.cli", "serve", "--db", str(db), "--grpc", "127.0.0.1:0", "--http",
         "127.0.0.1:0", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = _first_line(proc)
        match = re.search(r"gRPC on (127\.0\.0\.1:\d+) \(plaintext\), HTTP on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        assert asyncio.run(_push_demo(match[1], kit)) == 4
        with urllib.request.urlopen(f"{match[2]}/v1/lots/demo/history?since=2024-05-01T07:00:00Z", timeout=10) as r:
            assert json.load(r)["count"] == 4
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out.rstrip().endswith("fogpark-cloud: stopped")
    assert kit.stored_seqs(db, "demo-fog") == [1, 2, 3, 4]


# ---- operator commands over the same functions as the HTTP API -------------------------------------------


@pytest.fixture
def city(db_path: Path, kit: Any, tmp_path: Path) -> list[str]:
    """A store with fresh summaries for lot-a and lot-b, a node report, and a config naming both lots."""
    now = now_ms()
    store = CloudStore(db_path)
    try:
        store.ingest_batch(kit.batch(kit.FOG_A, [
            kit.summary(1, window_start_ms=now - 2 * MINUTE_MS, occupied=15),
            kit.summary(2, window_start_ms=now - MINUTE_MS, occupied=16),
            kit.spot_event(3, at_ms=now - 30_000, spot="A-07", state="occupied"),
        ]))
        store.ingest_batch(kit.batch(kit.FOG_B, [kit.summary(1, lot=kit.LOT_B, window_start_ms=now - MINUTE_MS,
                                                             occupied=2, capacity=10)]))
    finally:
        store.close()
    config = tmp_path / "cloud.toml"
    config.write_text(
        f'[fogs.{kit.FOG_A}]\ntoken = "{kit.TOKEN_A}"\nlots = ["{kit.LOT_A}"]\n'
        f'[fogs.{kit.FOG_B}]\ntoken = "{kit.TOKEN_B}"\nlots = ["{kit.LOT_B}"]\n'
        f'[lots.{kit.LOT_A}]\nname = "Lot A"\nx_m = 0.0\ny_m = 0.0\n'
        f'[lots.{kit.LOT_B}]\nname = "Lot B"\nlat = 21.4\nlon = 39.8\n')
    return ["--db", str(db_path), "--config", str(config)]


def test_lots_table_json_and_csv(city: list[str], kit: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lots", *city]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["lot_id", "name", "lat"]
    assert re.match(r"lot-a\s+Lot A\s+-\s+-\s+0\s+0\s+20\s+16\s+4\s+0\.8\s", lines[1])
    assert main(["lots", *city, "--format", "json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert [(lot["lot_id"], lot["free"], lot["stale"]) for lot in body["lots"]] == [
        (kit.LOT_A, 4, False), (kit.LOT_B, 8, False)]
    assert main(["lots", *city, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["fogs"] for r in rows] == [kit.FOG_A, kit.FOG_B]


def test_recommend_book_and_bookings(city: list[str], kit: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recommend", "--x-m", "10", "--y-m", "0", *city, "--format", "json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert [r["lot_id"] for r in body["ranking"]] == [kit.LOT_A]
    assert body["excluded"] == [{"lot_id": kit.LOT_B, "reason": "position uses the other kind of coordinates"}]
    assert main(["recommend", "--x-m", "10", *city]) == 2
    assert "--destination: give the destination as lat and lon" in capsys.readouterr().err
    start = format_ms(now_ms() + 4 * 3_600_000)
    end = format_ms(now_ms() + 5 * 3_600_000)
    assert main(["book", "--lot", kit.LOT_A, "--start", start, "--end", end, "--plate", "XY 9", *city]) == 0
    assert "forwarded to fog fog-a" in capsys.readouterr().out
    assert main(["bookings", *city, "--format", "csv"]) == 0
    (row,) = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert (row["lot_id"], row["status"], row["created_by"]) == (kit.LOT_A, "forwarded", "cli")
    assert main(["book", "--lot", kit.LOT_A, "--start", end, "--end", start, *city]) == 2
    assert "--end: end must be after start" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "expected"),
    [(["occupancy", "--lot", "lot-a", "--since", "10m", "--bucket", "1m"], "mean_free"),
     (["stats", "--lot", "lot-a"], "concentration_now"),
     (["revenue"], "no plans"),
     (["reservations", "--status", "refused"], "no reservations"),
     (["no-shows"], "no no shows"),
     (["alerts", "--active"], "no alerts"),
     (["nodes"], "no nodes")],
)
def test_operator_views(city: list[str], command: list[str], expected: str,
                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, *city]) == 0
    assert expected in capsys.readouterr().out


def test_export_ngsi_ld(city: list[str], kit: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "entities.jsonld"
    assert main(["export", "ngsi-ld", *city, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "written to" in err
    assert f"skipped urn:ngsi-ld:OffStreetParking:{kit.LOT_A}: no lat/lon" in err
    entities = json.loads(out.read_text())
    assert [e["id"] for e in entities] == [f"urn:ngsi-ld:OffStreetParking:{kit.LOT_B}"]
    with pytest.raises(SystemExit) as caught:  # argparse refuses an unknown type
        main(["export", "ngsi-ld", "--type", "Car", *city])
    assert caught.value.code == 2
