"""The fog daemon: wires ingest, the cycle, the store, cloud sync and the API.

Runs in one asyncio loop (ingest backends that block use threads and only
append to the cycle's queue). ``FogDaemon.run`` returns after SIGTERM/SIGINT
once the last cycle is committed and the API has stopped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from fog import api, cloud_config
from fog.admission import Reception
from fog.config import ConfigError, FogConfig, LotConfig, load_fog_config
from fog.cycle import CycleEngine
from fog.ingest.mqtt import MqttBrokerLink
from fog.ingest.serial_gateway import SerialGateway
from fog.ingest.spi_lora import SpiLoRaRadio
from fog.metrics import FogMetrics
from fog.sdnotify import SystemdNotifier
from fog.store import FogStore
from fog.sync import CloudSync
from proto import parking_pb2 as pb
from proto import serial_link as sl

log = logging.getLogger("fogpark.fog")


class FogDaemon:
    def __init__(self, cfg: FogConfig) -> None:
        self.cfg = cfg
        self.started_monotonic = time.monotonic()
        self.metrics = FogMetrics()
        self.store = FogStore(cfg.data_dir / f"{cfg.fog_id}.db", synchronous=cfg.durability)
        self.engine = CycleEngine(cfg, self.store, self.metrics)
        self.bad_requests: dict[int, int] = {}
        self.link_errors: dict[str, int] = {}
        self.gateways = [SerialGateway(s, self.engine.submit, self._link_error) for s in cfg.serial]
        # Other ingest backends: each has name, connected, last_error, start/stop/alive, stats().
        self.backends: list[MqttBrokerLink | SpiLoRaRadio] = []
        if cfg.mqtt:
            self.mqtt = MqttBrokerLink(cfg.mqtt, cfg.lot, self.engine.submit, lambda: self.engine.state,
                                       self._link_error)
            self.engine.on_commit.append(self.mqtt.publish_changes)
            self.backends.append(self.mqtt)
        if cfg.spi:  # pyLoRa (and RPi.GPIO, spidev) are imported by the radio's thread, only when configured
            self.backends.append(SpiLoRaRadio(cfg.spi, self.engine.submit, self._link_error))
        self.sync = CloudSync(cfg.fog_id, cfg.cloud, self.store, self.metrics) if cfg.cloud else None
        self.engine.send_downlink = self._send_downlink
        if self.sync:
            self.sync.on_update = self.apply_cloud_update
        self.downlinks_sent = 0
        self.stop_event = asyncio.Event()
        self.api_port: int | None = None
        self.notifier = SystemdNotifier()
        self._last_cycles = -1
        self.reloads = 0
        self._app: web.Application | None = None
        self.lot_switches = 0
        self.last_switch_s = 0.0
        if cfg.lot_problem:
            log.error("%s; running on the lot file %s", cfg.lot_problem, cfg.lot.source)

    def _link_error(self, gateway: str, reason: str) -> None:
        # Called from a serial thread: a dict update and a counter are thread-safe enough here.
        self.link_errors[reason] = self.link_errors.get(reason, 0) + 1
        self.metrics.link_errors.labels(gateway, reason).inc()

    def _send_downlink(self, rx: Reception, radio_frame: bytes) -> None:
        """Through the serial gateway that heard the uplink, on its channel."""
        for g in self.gateways:
            if g.cfg.gateway == rx.gateway and g.write(sl.encode_tx(radio_frame, rx.sf, rx.freq_hz)):
                self.downlinks_sent += 1
                return
        mqtt = getattr(self, "mqtt", None)
        if mqtt is not None and rx.gateway == mqtt.name and len(radio_frame) >= 5:
            if mqtt.send_downlink(int.from_bytes(radio_frame[1:5], "little"), radio_frame):
                self.downlinks_sent += 1

    async def apply_cloud_update(self, update: pb.CloudUpdate) -> bool:
        """Apply one update from the cloud's stream through the cycle (so it commits atomically).

        Models and bookings go to the lot engine; a booking the fog refuses is still
        "applied" (the refusal is reported back to the cloud). A whole lot or tariff
        file is validated and staged beside the running config for the operator to
        switch to: a lot's layout changes only with a restart (Decision).
        """
        kind = update.WhichOneof("body")
        engine = self.engine.lot_engine
        if kind == "model":
            m = update.model
            outcome = await engine.submit("model", {"season_key": m.season_key, "matrix": list(m.matrix),
                                                    "trained_ms": m.trained_ms, "brier": m.brier,
                                                    "brier_persistence": m.brier_persistence})
            return outcome.status < 500
        if kind == "booking":
            b = update.booking
            hours = max(1, -(-(b.end_ms - b.start_ms) // 3_600_000)) if b.end_ms > b.start_ms else 1
            body = {"id": b.booking_id, "kind": "booking" if b.start_ms <= time.time() * 1000 + 60_000 else
                    "reservation", "start_ms": b.start_ms, "hours": hours, "plate": b.plate,
                    "card_uid": b.card_uid_hex}
            outcome = await engine.submit("reserve", body)
            return outcome.status < 500
        if kind in ("lot_config_toml", "tariff_toml"):
            return await self.apply_cloud_config("lot" if kind == "lot_config_toml" else "tariff", update.version,
                                                 getattr(update, kind))
        return True

    async def apply_cloud_config(self, kind: str, version: int, text: str) -> bool:
        """A lot or tariff file from the cloud: validated off the loop, then made the running lot (fog/cloud_config.py).

        A file that is wrong, or would orphan a node or a live reservation, changes nothing: it is
        refused for good (logged, counted, alerted to the cloud) and the stream moves on (True).
        """
        data_dir = self.cfg.data_dir
        try:
            staged = await asyncio.to_thread(cloud_config.stage, data_dir, kind, version, text, self.cfg.lot)
            previous = cloud_config.read_active(data_dir)
            self.switch_lot(staged.lot, where=staged.path,
                            persist=lambda: cloud_config.describe(cloud_config.record(data_dir, staged)),
                            undo=lambda: cloud_config.write_active(data_dir, previous))
            cloud_config.prune(data_dir)
        except ConfigError as err:
            cloud_config.prune(data_dir)  # the refused file, if it got as far as the disk
            log.error("cloud %s v%d refused, nothing changed: %s", kind, version, err)
            self.metrics.cloud_configs.labels(kind, "refused").inc()
            await self.engine.lot_engine.submit("config_outcome", {"kind": kind, "version": version,
                                                                   "error": str(err)})
            return True
        except OSError as err:
            log.error("cloud %s v%d not applied (will retry): %s", kind, version, err)
            return False
        self.metrics.cloud_configs.labels(kind, "applied").inc()
        log.info("cloud %s v%d applied in %.3f s: lot %s now has %d spots (%s)", kind, version, self.last_switch_s,
                 self.cfg.lot.id, self.cfg.lot.capacity, self.cfg.lot_origin)
        await self.engine.lot_engine.submit("config_outcome", {"kind": kind, "version": version, "error": ""})
        return True

    def switch_lot(self, lot: LotConfig, origin: str = "", problem: str = "",
                   persist: Callable[[], str] | None = None, undo: Callable[[], None] | None = None,
                   where: Path | None = None) -> None:
        """Make ``lot`` the running lot between two cycles, all at once or not at all.

        Runs on the loop's thread and does not yield: the cycle never sees half of it. Every applied
        cycle is committed (and acknowledged) first; then ``lot`` is checked against what the store
        holds (raises ConfigError, nothing changed), ``persist`` records it durably, and the cycle's
        state, the lot engine and the MQTT count shadow are rebuilt from the store and ``lot``.
        ``origin`` says where ``lot`` came from (``persist`` returns it when it records the lot). If the
        engine cannot be built from ``lot``, ``undo`` takes the record back, the old lot is rebuilt and
        ConfigError says why. Raises OSError if the store cannot commit now.
        """
        engine = self.engine
        started = time.perf_counter()
        if not engine.flush():
            raise OSError("the store has not committed the last cycles; the new lot waits")
        cloud_config.check_replacement(self.cfg.lot, lot, self.cfg.nodes, engine.lot_engine.book.live.values(),
                                       where or lot.source)
        if persist is not None:
            origin = persist()
        old = self.cfg
        self.cfg = engine.cfg = dataclasses.replace(old, lot=lot, lot_origin=origin or old.lot_origin,
                                                    lot_problem=problem)
        try:
            engine.rebuild()
        except Exception as err:  # noqa: BLE001 - whatever the new lot breaks, the old one runs on
            log.exception("the engine could not be built from the new lot; keeping the old one")
            if undo is not None:
                undo()
            self.cfg = engine.cfg = old
            engine.rebuild()
            raise ConfigError(where or lot.source, "", f"the engine could not be built from it: {err!r}") from err
        mqtt = getattr(self, "mqtt", None)
        if mqtt is not None:
            mqtt.relot(lot, engine.state)
        self.lot_switches += 1
        self.last_switch_s = time.perf_counter() - started
        self.metrics.lot_switch_seconds.set(self.last_switch_s)
        if self._app is not None:
            api.broadcast(self._app, [{"type": "lot_config", "lot": lot.id, "capacity": lot.capacity,
                                       "origin": self.cfg.lot_origin}])

    def count_bad_request(self, status: int) -> None:
        self.bad_requests[status] = self.bad_requests.get(status, 0) + 1

    def stats(self) -> dict[str, Any]:
        e = self.engine
        return {
            "fog": self.cfg.fog_id,
            "lot": self.cfg.lot.id,
            "lot_config": {"origin": self.cfg.lot_origin, "capacity": self.cfg.lot.capacity,
                           "switches": self.lot_switches, "last_switch_s": round(self.last_switch_s, 4)},
            "cycles": e.cycles,
            "frames_refused": dict(e.refusals),
            "link_errors": dict(self.link_errors),
            "bad_requests": {str(k): v for k, v in self.bad_requests.items()},
            "events_stored": self.store.count("events"),
            "outbox_waiting": self.store.outbox_stats()[0],
            "acked_seq": self.store.acked_seq(),
            "gateways": {g.cfg.gateway: {"connected": g.connected, "packets": g.packets, "reopens": g.reopens,
                                         "last_error": g.last_error} for g in self.gateways},
            "ingest": {b.name: b.stats() for b in self.backends},
        }

    def health(self) -> dict[str, Any]:
        """What is degraded, in words an operator can act on."""
        problems = dict(self.engine.degraded)
        if self.cfg.lot_problem:
            problems["cloud_config"] = self.cfg.lot_problem
        for g in self.gateways:
            if not g.connected:
                problems[f"gateway:{g.cfg.gateway}"] = g.last_error or "not connected"
        for b in self.backends:
            if not b.connected:
                problems[f"ingest:{b.name}"] = b.last_error or "not connected"
        if self.sync and not self.sync.connected:
            problems["cloud"] = self.sync.last_error or "not connected yet"
        return {"status": "degraded" if problems else "ok", "problems": problems,
                "uptime_s": round(time.monotonic() - self.started_monotonic, 1)}

    async def start_api(self) -> web.AppRunner:
        app = self._app = api.make_app(self)
        self.engine.on_commit.append(lambda changes: api.broadcast(app, changes))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.cfg.api_host, self.cfg.api_port)
        await site.start()
        self.api_port = int(runner.addresses[0][1]) if runner.addresses else self.cfg.api_port
        log.info("fog API on http://%s:%d", self.cfg.api_host, self.api_port)
        return runner

    def _on_sighup(self) -> None:
        self.notifier.reloading()
        self.reload()
        self.notifier.ready()

    def watchdog_ok(self) -> bool:
        """Healthy enough to keep systemd's watchdog fed: the cycle advances,
        the store commits, and every ingest thread is alive."""
        advancing = self.engine.cycles > self._last_cycles
        self._last_cycles = self.engine.cycles
        threads_alive = all(g.alive() for g in self.gateways) and all(b.alive() for b in self.backends)
        return advancing and "store" not in self.engine.degraded and threads_alive

    async def _watchdog(self) -> None:
        period = (self.notifier.watchdog_s or 0) / 2
        while not self.stop_event.is_set() and period > 0:
            if self.watchdog_ok():
                self.notifier.watchdog()
            await asyncio.sleep(period)

    def reload(self) -> bool:
        """SIGHUP: re-read the config files; apply the node registry and the lot if all are valid, else nothing.

        The lot (with any cloud files laid over it) is swapped in like a cloud update; settings that need
        sockets or threads (API address, ingest backends, cloud targets) still need a restart.
        """
        try:
            cfg = load_fog_config(self.cfg.source, self.cfg.data_dir)
        except ConfigError as err:
            log.error("reload refused, keeping the running config: %s", err)
            return False
        nodes = dict(self.cfg.nodes)
        self.cfg.nodes.clear()
        self.cfg.nodes.update(cfg.nodes)  # the admission shares this dict
        if cfg.lot == self.cfg.lot:
            self.cfg = self.engine.cfg = dataclasses.replace(self.cfg, lot_origin=cfg.lot_origin,
                                                             lot_problem=cfg.lot_problem)
        else:
            try:
                self.switch_lot(cfg.lot, cfg.lot_origin, cfg.lot_problem)
            except (ConfigError, OSError) as err:
                self.cfg.nodes.clear()
                self.cfg.nodes.update(nodes)
                log.error("reload refused, keeping the running config: %s", err)
                return False
        self.reloads += 1
        log.info("reloaded: %d nodes registered, lot %s with %d spots (%s)", len(cfg.nodes), cfg.lot.id,
                 cfg.lot.capacity, cfg.lot_origin)
        return True

    async def run(self, install_signals: bool = True) -> None:
        loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.stop_event.set)
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        runner = await self.start_api()
        self.engine.start_writer(lambda: loop.call_soon_threadsafe(self.engine.reap))
        for g in self.gateways:
            g.start()
        for b in self.backends:
            b.start()
        tasks = [asyncio.create_task(self.engine.run(self.stop_event), name="cycle")]
        if self.sync:
            tasks.append(asyncio.create_task(self.sync.run(self.stop_event), name="sync"))
        if self.notifier.watchdog_s:
            tasks.append(asyncio.create_task(self._watchdog(), name="watchdog"))
        log.info("fog %s serving lot %s (%d spots, %d nodes)", self.cfg.fog_id, self.cfg.lot.id,
                 self.cfg.lot.capacity, len(self.cfg.nodes))
        self.notifier.ready(f"serving lot {self.cfg.lot.id}")
        try:
            await self.stop_event.wait()
        finally:
            self.notifier.stopping()
            self.stop_event.set()
            for g in self.gateways:
                await asyncio.to_thread(g.stop)
            for b in self.backends:
                await asyncio.to_thread(b.stop)
            await asyncio.gather(*tasks, return_exceptions=True)
            self.engine.run_once()  # commit whatever the gateways delivered last
            await asyncio.to_thread(self.engine.writer.wait_idle, 30.0)
            self.engine.stop_writer()  # delivers the last acknowledgements, then stops the thread
            await runner.cleanup()
            self.store.close()
            log.info("fog stopped cleanly")
