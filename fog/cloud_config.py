"""Lot and tariff files sent by the cloud: validated, kept on disk, applied live, still active after a restart.

The cloud's update stream may carry a whole lot file (``lot_config_toml``) or
a tariff (``tariff_toml``). Each is written to ``<data_dir>/cloud-config/``
and validated exactly like a local file, so a refusal names the stored file,
the key and the problem. A valid one is checked against what the running lot
holds (`check_replacement`), recorded in ``cloud-config/active.json``
(written atomically: temporary file, fsync, rename) and then swapped in
between two cycles by `fog.daemon.FogDaemon.switch_lot`. From then on it is
the lot's configuration, after a restart too: `fog.config.load_fog_config`
lays it over the local lot file (`overlay`) before the node registry is
checked against the lot's spots.

Decisions (the issue is silent on these):

* A tariff document is the lot file's ``[tariff]`` table: a document with a
  ``[tariff]`` table, or that table's keys at the top level.
* A newer lot file from the cloud replaces an earlier cloud tariff (a lot file
  carries its own ``[tariff]``); a cloud tariff is laid over whichever lot is
  active, the cloud's or the local file.
* Refused, nothing changes: a lot file naming another lot id; a lot without a
  spot that a registered node watches or that a live reservation holds; a
  lot whose zone with live subscriptions has no subscriber spot left.
* A refusal is final for that version: the stream moves on (a bad file does
  not become good by resending it); the refusal is logged, counted
  (``fogpark_cloud_configs{kind,outcome}``) and raised as a ``config_refused``
  alert, synced to the cloud, until a later file of that kind applies.
* Back to the local file: delete ``cloud-config/active.json``, then restart
  or send SIGHUP.
* A stored cloud configuration that no longer loads at start (the local lot
  file now names another lot, say) is ignored: the fog runs on its local
  file, logs why, and ``/healthz`` reports ``cloud_config`` degraded.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fog.config import ConfigError, LotConfig, NodeEntry, load_lot, read_toml
from fog.reservations import Reservation

__all__ = ["ACTIVE_FILE", "CLOUD_DIR", "KINDS", "Staged", "check_replacement", "describe", "overlay", "prune",
           "read_active", "record", "replace_tariff", "require_lot_id", "stage", "tariff_table", "with_tariff",
           "write_active"]

CLOUD_DIR = "cloud-config"
ACTIVE_FILE = "active.json"
KINDS = ("lot", "tariff")


@dataclass(frozen=True)
class Staged:
    """A validated file from the cloud and the lot it makes (not yet active)."""

    kind: str  # "lot" or "tariff"
    version: int
    path: Path
    lot: LotConfig


def _dir(data_dir: Path) -> Path:
    return Path(data_dir) / CLOUD_DIR


def _write_atomic(path: Path, data: bytes) -> None:
    """Whole or not at all, even across a power cut: temporary file, fsync, rename, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def require_lot_id(lot: LotConfig, lot_id: str, where: Path) -> None:
    """Refuse a file for another lot than ``lot_id``."""
    if lot.id != lot_id:
        raise ConfigError(where, "lot.id", f"the file is for lot {lot.id!r}, not {lot_id!r}")


def tariff_table(path: Path) -> dict[str, Any]:
    """The tariff a cloud tariff file holds: its ``[tariff]`` table, or the whole document."""
    doc = read_toml(path)
    raw = doc.get("tariff", doc)
    if not isinstance(raw, dict):
        raise ConfigError(path, "tariff", f"expected a table, got {type(raw).__name__}")
    return raw


def with_tariff(lot: LotConfig, path: Path) -> LotConfig:
    """``lot`` with the tariff of the file at ``path`` (validated against the lot's spots)."""
    from fog.tariffs import parse_tariff  # fog.tariffs imports fog.config, as this module does

    raw = tariff_table(path)
    parse_tariff(path, raw, lot.spots)
    return replace_tariff(lot, raw)


def replace_tariff(lot: LotConfig, raw: Mapping[str, Any]) -> LotConfig:
    """``lot`` with the (validated) tariff table ``raw``; the same lanes, so the routing graph already
    built is kept (seconds at 45,000 spots)."""
    new = dataclasses.replace(lot, tariff=dict(raw))
    if "lane_graph" in lot.__dict__:
        new.__dict__["lane_graph"] = lot.__dict__["lane_graph"]
    return new


def stage(data_dir: Path, kind: str, version: int, text: str, current: LotConfig) -> Staged:
    """Write the cloud's file beside the store and validate it; raises ConfigError (file removed) if it is wrong.

    Blocking (file I/O, and building the lane graph of a big lot): run it off the event loop.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown cloud config kind {kind!r}")
    path = _dir(data_dir) / f"{kind}-v{version}.toml"
    _write_atomic(path, text.encode())
    try:
        lot = load_lot(path) if kind == "lot" else with_tariff(current, path)
        require_lot_id(lot, current.id, path)
    except ConfigError:
        path.unlink(missing_ok=True)
        raise
    return Staged(kind, version, path, lot)


def check_replacement(current: LotConfig, new: LotConfig, nodes: Mapping[int, NodeEntry],
                      live: Iterable[Reservation], where: Path) -> None:
    """Refuse a lot that would orphan what the running lot holds (registered nodes, live reservations)."""
    require_lot_id(new, current.id, where)
    spots = set(new.spot_ids())
    for node in sorted(nodes.values(), key=lambda n: n.node_id):
        if node.spot not in spots:
            raise ConfigError(where, "spots", f"spot {node.spot!r} is missing but node {node.node_id:#010x} "
                                              "watches it (retire the node first)")
    sub_zones = {s.zone for s in new.spots if s.kind == "subscriber"}
    for r in live:
        if r.kind == "subscription":
            if r.zone not in sub_zones:
                raise ConfigError(where, "spots", f"zone {r.zone!r} would have no subscriber spot but "
                                                  f"subscription {r.reservation_id} is live")
        elif r.spot_id and r.spot_id not in spots:
            raise ConfigError(where, "spots", f"spot {r.spot_id!r} is missing but reservation "
                                              f"{r.reservation_id} holds it")


def read_active(data_dir: Path) -> dict[str, Any]:
    """The record of the cloud's active files: ``{"lot": {"version", "file"}, "tariff": {...}}`` (either may miss)."""
    path = _dir(data_dir) / ACTIVE_FILE
    try:
        record_ = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise ConfigError(path, "", f"unreadable: {err}") from None
    if not isinstance(record_, dict):
        raise ConfigError(path, "", "expected a JSON object")
    return record_


def write_active(data_dir: Path, active: Mapping[str, Any]) -> None:
    """Replace the record of the active cloud files, durably (all or nothing)."""
    _write_atomic(_dir(data_dir) / ACTIVE_FILE, json.dumps(dict(active), indent=1, sort_keys=True).encode())


def record(data_dir: Path, staged: Staged) -> dict[str, Any]:
    """Make ``staged`` the active cloud file of its kind (durably); returns the new record."""
    active = read_active(data_dir)
    active[staged.kind] = {"version": staged.version, "file": staged.path.name}
    if staged.kind == "lot":
        active.pop("tariff", None)  # the lot file carries its own [tariff]
    write_active(data_dir, active)
    return active


def prune(data_dir: Path) -> None:
    """Drop the cloud files the record does not name: after a switch took, and a refused file."""
    keep = {entry.get("file") for entry in read_active(data_dir).values()} | {ACTIVE_FILE}
    for old in _dir(data_dir).glob("*.toml"):
        if old.name not in keep:
            old.unlink(missing_ok=True)


def describe(active: Mapping[str, Any]) -> str:
    """``"cloud lot v5 + cloud tariff v7"``, ``"lot file"`` — where the running lot configuration came from."""
    parts = [f"cloud {kind} v{active[kind]['version']}" for kind in KINDS if kind in active]
    return " + ".join(parts) if parts else "lot file"


def overlay(lot: LotConfig, data_dir: Path) -> tuple[LotConfig, str, str]:
    """The local ``lot`` with the cloud's active files laid over it: (lot, origin, problem).

    ``problem`` is "" when the stored files applied; otherwise the local lot is returned unchanged and
    ``problem`` says why (the daemon starts anyway and reports it on /healthz).
    """
    try:
        active = read_active(data_dir)
        result = lot
        for kind in KINDS:
            entry = active.get(kind)
            if entry is None:
                continue
            if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
                raise ConfigError(_dir(data_dir) / ACTIVE_FILE, kind, "expected {\"version\", \"file\"}")
            path = _dir(data_dir) / entry["file"]
            result = load_lot(path) if kind == "lot" else with_tariff(result, path)
            require_lot_id(result, lot.id, path)
        return result, describe(active), ""
    except ConfigError as err:
        return lot, "lot file", f"stored cloud configuration ignored: {err}"
