"""Lot config keys of the engine, tariff validation at load, quotes, and the offline CLI tools."""

from __future__ import annotations

import zoneinfo
from pathlib import Path

import pytest
from fog_engine_harness import demo_lot_text, write_lot

from fog.cli import main as cli_main
from fog.cli_tools import lot_config_from_generated
from fog.config import ConfigError, load_lot
from fog.engine.lot_generator import generate_lot
from fog.tariffs import parse_tariff, quote

UTC = zoneinfo.ZoneInfo("UTC")
HYBRID_EXAMPLE = """[tariff]
plan = "hybrid"
first_hour = 8
per_hour = 4
discount_per_range = 0.05
hours_per_range = 2
max_ranges = 3
"""
OCCUPANCY_EXAMPLE = """[tariff]
plan = "occupancy"
operating_cost = 20
k = 0.5
"""


def _refused(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        write_lot(tmp_path, text)
    return info.value


def test_demo_lot_loads_with_its_policy_graph_and_tariff() -> None:
    lot = load_lot(Path(__file__).resolve().parents[2] / "fog/examples/demo-lot.toml")
    assert lot.lane_graph is not None and lot.entrances == ("entrance",)
    assert lot.policy.lead_s == 3 * 3600 and lot.policy.theta == 0.9 and lot.policy.always_open
    assert parse_tariff(lot.source, lot.tariff, lot.spots).plan == "hybrid"


@pytest.mark.parametrize(("tariff", "where", "words"), [
    (HYBRID_EXAMPLE.replace("max_ranges = 3", "max_ranges = 20"), "tariff.discount_per_range", "free or negative"),
    (HYBRID_EXAMPLE.replace("first_hour = 8", "first_hour = -1"), "tariff.first_hour", "negative"),
    (HYBRID_EXAMPLE.replace('"hybrid"', '"free"'), "tariff.plan", "not one of"),
    (HYBRID_EXAMPLE + "rate_per_hour = 2\n", "tariff.rate_per_hour", "plan 'hybrid' takes"),
    (HYBRID_EXAMPLE.replace("discount_per_range = 0.05", "discount_per_range = 0.3")
     .replace("hours_per_range = 2", "hours_per_range = 10"), "tariff.discount_per_range", "less than"),
    (OCCUPANCY_EXAMPLE.replace("operating_cost = 20", 'operating_cost = "20"'), "tariff.operating_cost",
     "expected a number"),
    ('[tariff]\nplan = "demand"\nrate_per_hour = 9\ncap = 6\n', "tariff.rate_per_hour", "outside floor..cap"),
    ('[tariff]\nplan = "demand"\nrate_per_hour = 2\ncap = 6\n[[tariff.bands]]\nid = "day"\nhours = "08:00-18:00"\n'
     '[[tariff.bands]]\nid = "eve"\nhours = "17:00-22:00"\n', "tariff.bands[1].hours", "overlaps band 'day'"),
    (HYBRID_EXAMPLE + "[tariff.auction]\ncap = 100\n", "tariff.auction.zone", "subscriber"),
])
def test_bad_tariffs_are_refused_at_load_naming_the_key(tmp_path: Path, tariff: str, where: str, words: str) -> None:
    err = _refused(tmp_path, demo_lot_text(tariff))
    assert err.where == where, err
    assert words in err.problem


def test_auction_offers_at_most_the_zones_subscriber_spots(tmp_path: Path) -> None:
    text = demo_lot_text(HYBRID_EXAMPLE + "[tariff.auction]\nzone = \"S\"\nspots = 3\ncap = 100\n",
                         subscriber_zone=True)
    err = _refused(tmp_path, text)
    assert err.where == "tariff.auction.spots" and "has 2 subscriber spots" in err.problem
    lot = write_lot(tmp_path, text.replace("spots = 3", "spots = 2"))
    terms = parse_tariff(lot.source, lot.tariff, lot.spots).auction
    assert terms is not None and (terms.spots, terms.zone, terms.floor, terms.cap) == (2, "S", 0.0, 100.0)


@pytest.mark.parametrize(("extra", "where", "words"), [
    ("[reservations]\nlead_hours = 3\n", "reservations.lead_hours", "unknown key"),
    ("[reservations]\ngrace_s = 7200\nwaiting_window_s = 3600\n", "reservations.waiting_window_s", "shorter"),
    ("[reservations]\ntheta = 1.5\n", "reservations.theta", "above the maximum"),
    ("[reservations]\ndefault_entrance = \"JA0\"\n", "reservations.default_entrance", "not a graph node of kind"),
    ("[alerts]\nheartbeat_s = \"3h\"\n", "alerts.heartbeat_s", "expected a number (s)"),
])
def test_policy_keys_are_validated_naming_the_key(tmp_path: Path, extra: str, where: str, words: str) -> None:
    err = _refused(tmp_path, demo_lot_text(extra=extra))
    assert err.where == where and words in err.problem


@pytest.mark.parametrize(("hours", "where", "words"), [
    ("25:00-26:00", "lot.opening_hours", "not a time of day"),
    ("07:00", "lot.opening_hours", "not a range"),
    ("07:00-12:00, 11:00-13:00", "lot.opening_hours", "overlap"),
])
def test_opening_hours_are_validated(tmp_path: Path, hours: str, where: str, words: str) -> None:
    text = demo_lot_text().replace('opening_hours = "00:00-24:00"', f'opening_hours = "{hours}"')
    err = _refused(tmp_path, text)
    assert err.where == where and words in err.problem


def test_overnight_hours_timezone_and_holidays_parse(tmp_path: Path) -> None:
    text = demo_lot_text().replace('opening_hours = "00:00-24:00"',
                                   'opening_hours = "22:00-06:00"\ntimezone = "Asia/Riyadh"\n'
                                   'holidays = ["2026-12-25", 2027-01-01]')
    policy = write_lot(tmp_path, text).policy
    assert policy.open_minutes == ((0, 360), (1320, 1440)) and policy.timezone == "Asia/Riyadh"
    assert [d.isoformat() for d in policy.holidays] == ["2026-12-25", "2027-01-01"]
    err = _refused(tmp_path, text.replace("Asia/Riyadh", "Mars/Olympus"))
    assert err.where == "lot.timezone"


def test_a_lane_graph_that_cannot_be_routed_is_refused(tmp_path: Path) -> None:
    text = demo_lot_text().replace('[[graph.edges]]\nfrom = "A12"\nto = "JA13"', '[[graph.edges]]\nfrom = "JA13"\nto = "A11"')
    err = _refused(tmp_path, text)
    assert err.where == "graph" and "A12" in err.problem and "no exit" in err.problem


def test_quotes_match_the_worked_examples(tmp_path: Path) -> None:
    hybrid = write_lot(tmp_path, demo_lot_text(HYBRID_EXAMPLE), "h.toml")
    q = quote(parse_tariff("x", hybrid.tariff), 10, 0, 24, at_s=0, tz=UTC)
    assert q.as_dict()["total"] == 38.6 and q.billed_hours == 10
    assert [line["amount"] for line in q.as_dict()["breakdown"]] == [8.0, 36.0, -5.4]
    occ = parse_tariff("x", {"plan": "occupancy", "operating_cost": 20, "k": 0.5})
    q = quote(occ, 1, 40, 100, at_s=0, tz=UTC, late_occupied=50)
    assert q.as_dict()["price_per_hour"] == 24.0 and [x["amount"] for x in q.as_dict()["breakdown"]] == [24.0, 12.0]
    assert q.as_dict()["total"] == 36.0
    assert occ.extension(24.0, 1, 1, 60, 100) == pytest.approx(38.4)
    fixed = parse_tariff("x", {"plan": "fixed", "rate_per_hour": 2.5})
    assert quote(fixed, 2.5, 0, 10, at_s=0, tz=UTC).as_dict()["total"] == 7.5  # 3 started hours


def test_demand_bands_price_by_local_time() -> None:
    t = parse_tariff("x", {"plan": "demand", "rate_per_hour": 2.0, "cap": 6,
                           "bands": [{"id": "day", "hours": "08:00-18:00", "rate_per_hour": 3.0}]})
    noon, night = 12 * 3600.0, 2 * 3600.0  # 1970-01-01 in UTC
    assert t.hourly_rate(0, 10, noon, UTC) == 3.0 and t.hourly_rate(0, 10, night, UTC) == 2.0
    assert t.hourly_rate(0, 10, noon, UTC, {"day": 3.25}) == 3.25


# ---------------------------------------------------------------- CLI
def test_cli_quote_prints_the_breakdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_lot(tmp_path, demo_lot_text(HYBRID_EXAMPLE), "h.toml")
    assert cli_main(["quote", str(tmp_path / "h.toml"), "--hours", "10"]) == 0
    out = capsys.readouterr().out
    assert "first hour" in out and "-5.40" in out and out.rstrip().endswith("38.60")
    write_lot(tmp_path, demo_lot_text(OCCUPANCY_EXAMPLE), "o.toml")
    assert cli_main(["quote", str(tmp_path / "o.toml"), "--hours", "2", "--occupied", "12",
                     "--late-occupied", "18"]) == 0
    out = capsys.readouterr().out  # P = 20 x (1 + 0.5 x 0.5) = 25; 2 h = 50; late 25 x 0.75 = 18.75
    assert "25.00" in out and "50.00" in out and "18.75" in out and out.rstrip().endswith("68.75")


def test_cli_quote_refuses_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_lot(tmp_path, demo_lot_text(OCCUPANCY_EXAMPLE), "o.toml")
    assert cli_main(["quote", str(tmp_path / "o.toml"), "--hours", "2", "--occupied", "25"]) == 2
    assert "--occupied must be within 0..24" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text(demo_lot_text(HYBRID_EXAMPLE.replace("max_ranges = 3", "max_ranges = 20")))
    assert cli_main(["quote", str(bad), "--hours", "1"]) == 2
    assert "tariff.discount_per_range" in capsys.readouterr().err


def test_cli_auction_rate_winners_revenue_and_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bids = tmp_path / "bids.csv"
    bids.write_text("client,amount,timestamp\na,120,1\nb,90,2\nc,150,3\nd,600,4\na,80,5\ne,40,6\nf,90,1\n")
    assert cli_main(["auction", str(bids), "--spots", "3", "--floor", "50", "--cap", "500"]) == 0
    out = capsys.readouterr().out
    # a's latest bid (80) counts; top 3 by amount then earlier timestamp: c 150, f 90 (t=1), b 90 (t=2).
    assert "rate     90.00" in out and "revenue  270.00" in out
    assert [line.split()[1] for line in out.splitlines() if ". " in line] == ["c", "f", "b"]
    assert "above the cap" in out and "below the floor" in out
    bids.write_text("a,12x\n")
    assert cli_main(["auction", str(bids), "--spots", "1"]) == 2
    assert "line 1: amount '12x' is not a number" in capsys.readouterr().err


def test_cli_lotgen_writes_a_lot_the_fog_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, nodes = tmp_path / "g.toml", tmp_path / "g-nodes.toml"
    assert cli_main(["lotgen", "--spots", "90", "--seed", "3", "--tariff", "occupancy", "--out", str(out),
                     "--nodes", str(nodes)]) == 0
    lot = load_lot(out)
    expected = lot_config_from_generated(generate_lot(90, seed=3), "gen90")
    assert lot.capacity == 90 and lot.graph_nodes == expected.graph_nodes and lot.edges == expected.edges
    assert lot.lane_graph is not None and lot.tariff["plan"] == "occupancy"
    assert cli_main(["check", str(_fog_file(tmp_path, out, nodes))]) == 0
    assert "90 spots" in capsys.readouterr().out
    assert cli_main(["quote", str(out), "--hours", "1", "--occupied", "45"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("2.50")  # 2 x (1 + 0.5 x 0.5)


def _fog_file(tmp_path: Path, lot: Path, nodes: Path) -> Path:
    path = tmp_path / "fog.toml"
    path.write_text(f'[fog]\nid = "g"\nlot = "{lot.name}"\nnodes = "{nodes.name}"\n')
    return path
