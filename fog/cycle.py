"""The fog's fixed-rate cycle: drain ingest, admit, apply, commit — every period.

Ingest threads only append to a deque; everything else happens here, on the
event loop's thread, so the API never sees a change before it is committed
(the cycle does not await between applying and committing). A failed commit
(disk full, I/O error) rolls the in-memory state back to the store's and puts
the frames back at the head of the queue: nothing is half-applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from fog import records
from fog.admission import Accepted, Duplicate, FrameAdmission, Reception, Refused
from fog.alert_rules import AlertBook
from fog.config import FogConfig
from fog.disk_guard import DiskGuard
from fog.downlink import ack_frame, wants_ack
from fog.engine.lot_stats import mean_inter_arrival
from fog.lot_engine import LotEngine
from fog.lot_state import LotState
from fog.metrics import FogMetrics
from fog.store import CycleWrite, FogStore
from proto import frame as fr

log = logging.getLogger("fogpark.fog.cycle")

ALERTING_REFUSALS = ("bad_mic", "replay", "fcnt_gap", "unknown_node")
TAMPER_CODES = (fr.DIAG_RANGE_BLIND, fr.DIAG_RANGE_SHORT, fr.DIAG_MAG_SATURATED)


def wall_ms() -> int:
    return int(time.time() * 1000)


class CycleEngine:
    """Owns the lot state, the admission counters and the write path."""

    def __init__(self, cfg: FogConfig, store: FogStore, metrics: FogMetrics, max_frames_per_cycle: int = 5000):
        self.cfg = cfg
        self.store = store
        self.metrics = metrics
        self.max_frames = max_frames_per_cycle
        self.queue: deque[Reception] = deque()
        self.on_commit: list[Callable[[list[dict[str, Any]]], None]] = []
        self.logged_once: set[tuple[int | None, str]] = set()
        self.degraded: dict[str, str] = {}
        self.cycles = 0
        self.max_queue = 200_000
        # Downlinks go out only after the commit that made their frames durable.
        self.send_downlink: Callable[[Reception, bytes], None] | None = None
        self._acks: list[tuple[Accepted, int]] = []
        self._children: dict[tuple[int, str], Any] = {}
        self.disk = DiskGuard(cfg.disk, cfg.data_dir, store)
        self._disk_due = 0.0
        self._summary_due_ms = 0
        self._arrival_times: list[int] = []
        self._last_arrivals = 0
        self._last_departures = 0
        self._reload()

    def _reload(self) -> None:
        """(Re)build in-memory state from the store: at start and after a failed commit."""
        self.admission = FrameAdmission(self.cfg.nodes, self.store.load_counters(),
                                        int(self.cfg.dedup_window_s * 1000))
        self.state = LotState(self.cfg.lot, {n.node_id: n.spot for n in self.cfg.nodes.values()})
        self.state.restore(self.store.load_spots())
        self.refusals = self.store.load_refusals()
        self.down_counters = self.store.load_down_counters()
        self.alerts = self.store.load_alerts()
        self.alert_book = AlertBook(self.cfg.lot.id, self.alerts)  # the same raise/clear the lot engine uses
        self.lot_engine = LotEngine(self.cfg, self.store, self.state, self.alerts, self.metrics,
                                    previous=getattr(self, "lot_engine", None))
        self._last_arrivals = self._last_departures = 0  # the rebuilt LotState counts from zero

    # --- ingest side (any thread) ---------------------------------------------

    def submit(self, rx: Reception) -> None:
        if len(self.queue) >= self.max_queue:
            # The store has been failing for long: bound memory, drop the oldest, count it.
            self.queue.popleft()
            self.metrics.frames_refused.labels("queue_overflow").inc()
        self.queue.append(rx)  # deque.append is atomic: ingest threads need no lock

    # --- one cycle ------------------------------------------------------------------

    def run_once(self, now_ms: int | None = None) -> int:
        """Process what is queued, commit it; returns the number of frames handled."""
        now_ms = wall_ms() if now_ms is None else now_ms
        w = CycleWrite()
        taken: list[Reception] = []
        changes: list[dict[str, Any]] = []
        while self.queue and len(taken) < self.max_frames:
            rx = self.queue.popleft()
            taken.append(rx)
            self._handle(rx, w, changes)
        self.lot_engine.tick(now_ms, w)  # timers, selection/booking requests, statistics, engine alerts
        saved = (self._summary_due_ms, self._last_arrivals, self._last_departures, list(self._arrival_times))
        self._maybe_summarise(now_ms, w)
        self._check_disk(now_ms, w)
        try:
            self.store.commit_cycle(w)
        except Exception as err:  # noqa: BLE001 - any store failure: roll back, keep serving
            self._summary_due_ms, _, _, self._arrival_times = saved
            self._acks.clear()
            self._rollback(taken, err)
            return 0
        self.degraded.pop("store", None)
        self.lot_engine.after_commit()  # answers its requests: their effects are durable now
        self._after_commit(w, taken, changes)
        return len(taken)

    def _rollback(self, taken: list[Reception], err: Exception) -> None:
        if "store" not in self.degraded:
            log.error("commit failed, will retry: %s", err)
        self.degraded["store"] = f"commit failed: {err}"
        self.queue.extendleft(reversed(taken))
        self._reload()

    def _after_commit(self, w: CycleWrite, taken: list[Reception], changes: list[dict[str, Any]]) -> None:
        for rx in taken:
            if rx.on_commit is not None:
                try:
                    rx.on_commit()
                except Exception:  # noqa: BLE001 - a transport's ack failing must not stop the cycle
                    log.exception("transport acknowledgement failed")
        if self._acks and self.send_downlink is not None:
            for v, down_fcnt in self._acks:
                self.send_downlink(v.rx, ack_frame(v, down_fcnt))
        self._acks.clear()
        for rx in taken:
            self._labelled(self.metrics.frames_received, rx.gateway).inc()
        for reason, n in w.refusals.items():
            self.refusals[reason] = self.refusals.get(reason, 0) + n
            self.metrics.frames_refused.labels(reason).inc(n)
        for state in ("empty", "occupied", "unknown"):
            self.metrics.spots.labels(state).set(self.state.counts.get(state, 0))
        if changes:
            for listener in self.on_commit:
                try:
                    listener(changes)
                except Exception:  # noqa: BLE001 - a listener must not stop the cycle
                    log.exception("state listener failed")

    def _handle(self, rx: Reception, w: CycleWrite, changes: list[dict[str, Any]]) -> None:
        verdict = self.admission.admit(rx)
        if isinstance(verdict, Duplicate):
            self.metrics.frames_duplicate.inc()
            return
        if isinstance(verdict, Refused):
            self._refuse(verdict, w)
            return
        self._accept(verdict, w, changes)

    def _refuse(self, v: Refused, w: CycleWrite) -> None:
        w.refusals[v.reason] = w.refusals.get(v.reason, 0) + 1
        key = (v.node_id, v.reason)
        if key not in self.logged_once:  # logged once per node and reason, counted always
            self.logged_once.add(key)
            log.warning("refused frame from %s via %s: %s (%s)",
                        f"{v.node_id:#010x}" if v.node_id is not None else "?", v.rx.gateway, v.reason, v.detail)
        if v.reason in ALERTING_REFUSALS and v.node_id is not None:
            self._raise_alert(w, v.reason, v.node_id, None, v.rx.received_ms, v.detail)

    def _raise_alert(self, w: CycleWrite, kind: str, node_id: int, spot: str | None, at_ms: int,
                     detail: str) -> None:
        # Raised once, not per frame (the cloud hears of it once); later frames touch last_seen.
        self.alert_book.raise_alert(w, f"{kind}:{node_id:08x}", kind, at_ms, node_id=node_id, spot=spot,
                                    detail=detail)

    def _accept(self, v: Accepted, w: CycleWrite, changes: list[dict[str, Any]]) -> None:
        self._labelled(self.metrics.frames_accepted, fr.TYPE_NAMES[v.msg_type]).inc()
        rx, node, f = v.rx, v.node, v.fields
        w.counters[node.node_id] = self.admission.counters[node.node_id]
        if wants_ack(v):
            down = self.down_counters.get(node.node_id, -1) + 1
            self.down_counters[node.node_id] = w.down_counters[node.node_id] = down
            self._acks.append((v, down))
        spot = self.state.spots[node.spot]
        spot.rssi_dbm, spot.snr_db = rx.rssi_dbm, rx.snr_db
        spot.last_seen_ms = rx.received_ms
        event: dict[str, Any] = {"at_ms": rx.received_ms, "kind": fr.TYPE_NAMES[v.msg_type], "spot_id": node.spot,
                 "node_id": node.node_id, "fcnt": v.fcnt, "rssi_dbm": rx.rssi_dbm, "snr_db": rx.snr_db,
                 "gateway": rx.gateway}
        if v.msg_type == fr.OCCUPANCY:
            self._apply_state(v, f["state"], f["prev_duration_s"], w, changes, always_record=True)
            event.update(state=spot.state, prev_duration_s=f["prev_duration_s"])
        elif v.msg_type == fr.HEARTBEAT:
            spot.battery_mv, spot.temp_c = f["battery_mv"], f["temp_c"]
            # A heartbeat restates the bay: it corrects a lost occupancy frame and gives the state after boot.
            if self._apply_state(v, f["state"] & 0x03, 0, w, changes, always_record=False):
                event["state"] = spot.state
            w.outbox.append((*records.node_health(self.cfg.lot.id, node.node_id, node.spot, rx.received_ms, f,
                                                  bool(spot.tamper)), rx.received_ms))
        elif v.msg_type == fr.DIAGNOSTIC:
            event["detail"] = fr.DIAG_NAMES.get(f["code"], str(f["code"]))
            if f["code"] in TAMPER_CODES:
                spot.tamper = 1
                self._raise_alert(w, "tamper", node.node_id, node.spot, rx.received_ms, event["detail"])
            elif f["code"] == fr.DIAG_TAMPER_CLEARED:
                self._clear_tamper(w, node.node_id, spot, rx.received_ms)
        elif v.msg_type == fr.CHECKIN:
            event["detail"] = f["uid"].hex()
        if v.msg_type in (fr.OCCUPANCY, fr.HEARTBEAT):
            # Every state report carries the tamper flag: a lost diagnostic frame is made up for by the
            # next heartbeat, and a report without the flag clears the alert.
            flags = f["flags"] if v.msg_type == fr.OCCUPANCY else f["state"] & 0xF0
            if flags & fr.FLAG_TAMPER and not spot.tamper:
                spot.tamper = 1
                self._raise_alert(w, "tamper", node.node_id, node.spot, rx.received_ms, "tamper flag set")
            elif not flags & fr.FLAG_TAMPER and spot.tamper:
                self._clear_tamper(w, node.node_id, spot, rx.received_ms)
        w.events.append(event)
        w.spots[node.spot] = spot.row()
        self.lot_engine.on_frame(node.node_id, spot, v.msg_type, f, rx.received_ms, w)

    def _apply_state(self, v: Accepted, state_code: int, prev_duration_s: int, w: CycleWrite,
                     changes: list[dict[str, Any]], always_record: bool) -> bool:
        """Set the spot's state from a node's report; records a spot event when asked or when it changed."""
        rx, node = v.rx, v.node
        spot, changed = self.state.apply_occupancy(node.spot, state_code, rx.received_ms)
        if changed and spot.state == "occupied":
            self._arrival_times.append(rx.received_ms)
        if changed or always_record:
            w.outbox.append((*records.spot_event(
                self.cfg.lot.id, node.spot, rx.received_ms, spot.state, prev_duration_s, node.node_id,
                v.fcnt, rx.rssi_dbm, rx.snr_db, rx.gateway_id), rx.received_ms))
        if changed:
            changes.append({"type": "spot", "spot": node.spot, "state": spot.state, "at_ms": rx.received_ms})
        return changed

    def _check_disk(self, now_ms: int, w: CycleWrite) -> None:
        """Every disk.check_s: relieve pressure, and raise or clear the disk_pressure alert."""
        now = time.monotonic()
        if now < self._disk_due:
            return
        self._disk_due = now + self.cfg.disk.check_s
        try:
            reason = self.disk.check(now_ms)
        except Exception as err:  # noqa: BLE001 - a failing check is itself a disk problem
            reason = f"disk check failed: {err}"
        if reason:
            self.degraded["disk"] = reason
            self._raise_alert(w, "disk_pressure", 0, None, now_ms, reason)
        else:
            self.degraded.pop("disk", None)
            self.alert_book.clear(w, "disk_pressure:00000000", now_ms)

    def _labelled(self, metric: Any, label: str) -> Any:
        """A metric's child for one label, looked up once (``labels()`` per frame is measurable)."""
        key = (id(metric), label)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(label)
        return child

    def _clear_tamper(self, w: CycleWrite, node_id: int, spot: Any, at_ms: int) -> None:
        spot.tamper = 0
        self.alert_book.clear(w, f"tamper:{node_id:08x}", at_ms)

    def _maybe_summarise(self, now_ms: int, w: CycleWrite) -> None:
        cloud = self.cfg.cloud
        period_ms = int((cloud.summary_period_s if cloud else 60) * 1000)
        if self._summary_due_ms == 0:
            self._summary_due_ms = (now_ms // period_ms + 1) * period_ms
            return
        if now_ms < self._summary_due_ms:
            return
        start = self._summary_due_ms - period_ms
        arrivals = [t for t in self._arrival_times if start <= t < self._summary_due_ms]
        lam = mean_inter_arrival(arrivals)  # §1; None (sent as NaN) with fewer than two arrivals
        mean_ia = lam / 1000 if lam is not None else float("nan")
        s = self.state
        w.outbox.append((*records.lot_summary(
            self.cfg.lot.id, start, period_ms // 1000, s.capacity, s.occupied, s.free,
            s.arrivals - self._last_arrivals, s.departures - self._last_departures, mean_ia,
            price_per_hour=self.lot_engine.price_per_hour(now_ms),
            unhealthy_sensors=self.lot_engine.unhealthy_count), now_ms))
        self._last_arrivals, self._last_departures = s.arrivals, s.departures
        self._arrival_times = [t for t in self._arrival_times if t >= self._summary_due_ms]
        self._summary_due_ms = (now_ms // period_ms + 1) * period_ms

    # --- the fixed-rate loop ----------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Fixed rate on the monotonic clock; overruns and skipped slots are counted."""
        period = self.cfg.cycle_ms / 1000
        next_t = time.monotonic()
        while not stop.is_set():
            t0 = time.monotonic()
            self.run_once()
            dt = time.monotonic() - t0
            self.cycles += 1
            self.metrics.cycle_seconds.observe(dt)
            self.metrics.queue_depth.set(len(self.queue))
            if dt > period:
                self.metrics.cycle_overruns.inc()
            next_t += period
            now = time.monotonic()
            if now > next_t:
                missed = int((now - next_t) / period)
                if missed:
                    self.metrics.cycles_skipped.inc(missed)
                next_t += missed * period
            await asyncio.sleep(max(0.0, next_t - now))
