"""A real `CycleEngine` on a temporary store, driven cycle by cycle with a controllable clock.

Used by tests/fog/test_fog_engine_*.py. Frames are real (encoded and MIC'd
with the node's key, admitted like any other); requests go through the lot
engine's queue and are answered after the cycle's commit, as in the daemon.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from pathlib import Path
from typing import Any

from fog.admission import Reception
from fog.cli_tools import lot_config_from_generated
from fog.config import DEMO_FOG_CONFIG, FogConfig, LotConfig, LotPolicy, NodeEntry, load_fog_config, load_lot
from fog.cycle import CycleEngine
from fog.engine.lot_generator import generate_lot
from fog.lot_engine import LotEngine, Outcome
from fog.metrics import FogMetrics
from fog.store import FogStore
from proto import frame as fr
from proto import parking_pb2 as pb

DEMO_LOT = DEMO_FOG_CONFIG.parent / "demo-lot.toml"


def demo_lot_text(tariff: str | None = None, subscriber_zone: bool = False, extra: str = "") -> str:
    """The demo lot file, optionally with another [tariff] block, A12/B12 as subscriber spots of zone S,
    and extra tables appended."""
    text = DEMO_LOT.read_text()
    # The demo states the default [reservations], [alerts] and [stats]; tests bring their own.
    text = re.sub(r"\n# Reservations, alerts.*?(?=\n\[\[spots\]\])", "\n", text, count=1, flags=re.S)
    if tariff is not None:
        text = re.sub(r"\[tariff\].*?(?=\n\[\[spots\]\])", tariff.strip() + "\n", text, count=1, flags=re.S)
    if subscriber_zone:
        for spot in ("A12", "B12"):
            text = text.replace(f'id = "{spot}"\nzone = "{spot[0]}"\nkind = "ev"',
                                f'id = "{spot}"\nzone = "S"\nkind = "subscriber"')
    return text + "\n" + extra


def write_lot(tmp_path: Path, text: str, name: str = "lot.toml") -> LotConfig:
    path = tmp_path / name
    path.write_text(text)
    return load_lot(path)


def generated_lot(spots: int, tariff: dict[str, Any], policy: LotPolicy | None = None) -> LotConfig:
    lot = lot_config_from_generated(generate_lot(spots, seed=1), f"gen{spots}", tariff)
    return dataclasses.replace(lot, policy=policy) if policy else lot


class Harness:
    """One fog's cycle engine; ``now`` starts at the wall clock and moves only when told."""

    def __init__(self, tmp_path: Path, lot: LotConfig | None = None, db: str = "fog.db") -> None:
        self.tmp_path, self.db = tmp_path, db
        base = load_fog_config(DEMO_FOG_CONFIG)
        lot = lot or base.lot
        if lot.id == base.lot.id and {s.id for s in lot.spots} == {s.id for s in base.lot.spots}:
            nodes = dict(base.nodes)
        else:
            nodes = {0x30000000 + i: NodeEntry(0x30000000 + i, s.id,
                                               hashlib.blake2s(s.id.encode(), digest_size=16).digest())
                     for i, s in enumerate(lot.spots)}
        self.cfg: FogConfig = dataclasses.replace(base, lot=lot, nodes=nodes, data_dir=tmp_path, cloud=None,
                                                  serial=())
        self.node_of = {n.spot: n for n in nodes.values()}
        self.fcnt = dict.fromkeys(nodes, 0)
        self.store = FogStore(tmp_path / db, synchronous="OFF")
        self.metrics = FogMetrics()
        self.now = int(time.time() * 1000)
        self.engine = CycleEngine(self.cfg, self.store, self.metrics)

    def restart(self) -> Harness:
        """A new fog process on the same store (the nodes keep counting)."""
        self.store.close()
        again = Harness(self.tmp_path, self.cfg.lot, self.db)
        again.fcnt = dict(self.fcnt)
        return again

    @property
    def lot_engine(self) -> LotEngine:
        return self.engine.lot_engine

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)

    def cycle(self, seconds: float = 0.0) -> None:
        self.advance(seconds)
        self.engine.run_once(self.now)

    def frame(self, spot: str, msg_type: int = fr.OCCUPANCY, state: int = fr.OCCUPIED,
              payload: bytes | None = None) -> None:
        node = self.node_of[spot]
        self.fcnt[node.node_id] += 1
        if payload is None:
            payload = (fr.occupancy_payload(state, fr.FLAG_RANGE_CONFIRMED, 30, 40, 25) if msg_type == fr.OCCUPANCY
                       else fr.heartbeat_payload(3300, 20.0, 100, -90, 5.0, state, 0))
        raw = fr.encode_frame(msg_type, node.node_id, self.fcnt[node.node_id], payload, node.key)
        self.engine.submit(Reception(raw, "test", received_ms=self.now))

    def set_states(self, occupied: set[str], cycle: bool = True) -> None:
        """Every spot reports: occupied if in ``occupied``, else empty."""
        for spot in self.node_of:
            self.frame(spot, state=fr.OCCUPIED if spot in occupied else fr.EMPTY)
        if cycle:
            self.cycle()

    def card(self, spot: str, uid_hex: str) -> None:
        self.frame(spot, fr.CHECKIN, payload=fr.checkin_payload(bytes.fromhex(uid_hex)))

    async def ask(self, kind: str, body: dict[str, Any], seconds: float = 0.0) -> Outcome:
        """Queue a request, run one cycle, return its answer (given after the commit)."""
        future = self.lot_engine.submit(kind, body, now_ms=self.now)
        self.cycle(seconds)
        assert future.done(), "the cycle did not answer"
        return future.result()

    def outbox(self, kind: str) -> list[Any]:
        rows = self.store.db.execute("SELECT body FROM outbox WHERE kind = ? ORDER BY seq", [kind]).fetchall()
        cls = {"reservation": pb.Reservation, "alert": pb.Alert, "summary": pb.LotSummary}[kind]
        out = []
        for (body,) in rows:
            msg = cls()
            msg.ParseFromString(body)
            out.append(msg)
        return out

    def count(self, table: str) -> int:
        return self.store.count(table)
