"""The fog's fixed-rate cycle: drain ingest, admit, apply, hand to the writer — every period.

Ingest threads only append to a deque; everything else happens here, on the
event loop's thread. Each cycle's changes become a ``Batch`` for the store
writer (fog/store_writer.py), which commits off the cycle; what a cycle
acknowledges — transport acks, ACK downlinks, answers to API write requests,
WebSocket/MQTT pushes, frame counters — goes out only when its batch is
durable. The API reads state only when no commit is in flight
(``settled``), so it never shows what a crash could take back.

A failed commit (disk full, I/O error) fails its batch and every later one
in flight; the cycle puts all their frames and requests back at the head of
the queues and rebuilds its state from the store: nothing is half-applied.
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
from fog.store_writer import Batch, InlineWriter, ThreadWriter
from proto import frame as fr

log = logging.getLogger("fogpark.fog.cycle")

ALERTING_REFUSALS = ("bad_mic", "replay", "fcnt_gap", "unknown_node")
TAMPER_CODES = (fr.DIAG_RANGE_BLIND, fr.DIAG_RANGE_SHORT, fr.DIAG_MAG_SATURATED)


def wall_ms() -> int:
    return int(time.time() * 1000)


class CycleEngine:
    """Owns the lot state, the admission counters and the write path."""

    def __init__(self, cfg: FogConfig, store: FogStore, metrics: FogMetrics, max_frames_per_cycle: int = 5000,
                 max_inflight: int = 4):
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
        # Commits: inline until the daemon starts a writer thread (tools and tests step the cycle by hand).
        self.writer: InlineWriter | ThreadWriter = InlineWriter(store)
        self.inflight: deque[Batch] = deque()
        self.max_inflight = max_inflight
        self.epoch = 0
        self.commits_durable = 0
        self._settle_waiters: list[asyncio.Future[None]] = []
        self._children: dict[tuple[int, str], Any] = {}
        self.disk = DiskGuard(cfg.disk, cfg.data_dir, store)
        self._disk_due = 0.0
        self._summary_due_ms = 0
        self._arrival_times: list[int] = []
        self._last_arrivals = 0
        self._last_departures = 0
        self.rebuild()

    def rebuild(self) -> None:
        """(Re)build in-memory state from the store and `cfg`: at start, after a failed commit, on a new lot."""
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

    def start_writer(self, wake: Callable[[], object] | None = None) -> None:
        """Commit on a thread of its own from now on; ``wake`` is called after each commit (any thread)."""
        self.flush()
        self.writer = ThreadWriter(self.store, wake, self.metrics.commit_seconds.observe)

    def stop_writer(self) -> None:
        """Commit what is in flight, deliver it, and go back to inline commits."""
        self.flush()
        self.writer.close()
        self.writer = InlineWriter(self.store)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every applied cycle is committed (or failed) and its outcome delivered."""
        ok = self.writer.wait_idle(timeout)
        self.reap()
        return ok and not self.inflight

    async def settled(self, timeout: float) -> bool:
        """Wait until no applied change is uncommitted (True), or ``timeout`` seconds (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.inflight:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            waiter: asyncio.Future[None] = loop.create_future()
            self._settle_waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                return not self.inflight
        return True

    def _wake_settled(self) -> None:
        waiters, self._settle_waiters = self._settle_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def run_once(self, now_ms: int | None = None) -> int:
        """Apply what is queued and hand it to the writer; returns the number of frames taken."""
        self.reap()
        if len(self.inflight) >= self.max_inflight:
            self.metrics.commit_backpressure.inc()
            return 0  # the disk is behind: frames wait in the ingest queue, bounded by max_queue
        now_ms = wall_ms() if now_ms is None else now_ms
        w = CycleWrite()
        batch = Batch(w, self.epoch)
        batch.saved = (self._summary_due_ms, self._last_arrivals, self._last_departures, list(self._arrival_times))
        while self.queue and len(batch.taken) < self.max_frames:
            rx = self.queue.popleft()
            batch.taken.append(rx)
            self._handle(rx, w, batch.changes)
        self.lot_engine.tick(now_ms, w)  # timers, selection/booking requests, statistics, engine alerts
        self._maybe_summarise(now_ms, w)
        self._check_disk(now_ms, w)
        batch.acks, self._acks = self._acks, []
        batch.requests, batch.answers = self.lot_engine.take_requests()
        if w.empty() and not (batch.taken or batch.requests):
            return 0  # an idle cycle: nothing to write, nothing waits on it
        batch.applied_at = time.monotonic()
        self.inflight.append(batch)
        self.writer.submit(batch)
        self.reap()
        return 0 if batch.error is not None else len(batch.taken)  # (an inline writer has failed it already)

    def reap(self) -> int:
        """Deliver the outcome of every commit that finished, in order; returns how many succeeded."""
        ok = 0
        for batch in self.writer.completed():
            if batch.epoch != self.epoch or not self.inflight or self.inflight[0] is not batch:
                continue  # a batch of a failed epoch: already put back with the rest
            if batch.error is not None:
                self._rollback(batch.error)
                continue
            self.inflight.popleft()
            self.commits_durable += 1
            self.metrics.commit_lag_seconds.observe(max(0.0, batch.committed_at - batch.applied_at))
            self.degraded.pop("store", None)
            self.lot_engine.after_commit(batch.answers)  # answers its requests: their effects are durable now
            self._after_commit(batch)
            ok += 1
        if not self.inflight and self._settle_waiters:
            self._wake_settled()
        return ok

    def _rollback(self, err: BaseException) -> None:
        """A commit failed: everything in flight goes back, in order; the state is rebuilt from the store."""
        if "store" not in self.degraded:
            log.error("commit failed, will retry: %s", err)
        self.degraded["store"] = f"commit failed: {err}"
        first = self.inflight[0]
        self._summary_due_ms, self._last_arrivals, self._last_departures, self._arrival_times = first.saved
        taken = [rx for b in self.inflight for rx in b.taken]
        requests = [req for b in self.inflight for req in b.requests]
        self.inflight.clear()
        self.epoch += 1  # whatever of the old epoch still waits in the writer fails unwritten
        self.queue.extendleft(reversed(taken))
        self.lot_engine.requeue(requests)
        self.rebuild()
        self._wake_settled()  # nothing in flight: readers see the store's state again

    def _after_commit(self, batch: Batch) -> None:
        w, taken, changes = batch.write, batch.taken, batch.changes
        for rx in taken:
            if rx.on_commit is not None:
                try:
                    rx.on_commit()
                except Exception:  # noqa: BLE001 - a transport's ack failing must not stop the cycle
                    log.exception("transport acknowledgement failed")
        if batch.acks and self.send_downlink is not None:
            for v, down_fcnt in batch.acks:
                self.send_downlink(v.rx, ack_frame(v, down_fcnt))
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
        compacted = self.disk.compacted_events
        try:
            reason = self.disk.check(now_ms)
            self.metrics.store_bytes.set(self.store.db_bytes())
            self.metrics.disk_free_bytes.set(self.disk.free_bytes())
        except Exception as err:  # noqa: BLE001 - a failing check is itself a disk problem
            reason = f"disk check failed: {err}"
        self.metrics.events_compacted.inc(self.disk.compacted_events - compacted)
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
