"""Bookings and reservations on a scenario's timeline: drivers using the fog's API, and what they then do.

Each ``[[bookings]]`` entry (``hil/scenarios/README.md``) is a driver: at its
time it asks the fog (``POST /v1/lots/{lot}/reservations``) for a booking
(starts now, a spot held at once) or a reservation (starts later; the fog
holds a spot ``hold_before_s`` ahead). The bench learns the held spot from
the API, keeps random cars off it (a reserved bay is signed as such), and
then plays the driver: parks on it (and badges the card on the bay's RC522
when the booking has one), leaves, cancels, or never comes.

Random arrivals pause while the fog chooses a spot for a booking, so the
ground truth never puts a random car on a spot in the instant it becomes
held. A probe asks the fog for a spot every few seconds (``POST .../select``
as one guided vehicle) and counts any answer that was a spot held for a
reservation before and after the question: the selector must never hand one
out. The verdict (``hil/verdict.py``) compares what each booking should have
become with what the fog and the cloud recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from hil.scenario import Booking, Scenario, TruthTraffic
from hil.stack import Stack

PROBE_EVERY_S = 2.0  # wall seconds between two selection probes
QUIET_BEFORE_S = 4.0  # wall s without random arrivals before the fog picks a spot: its view has caught up
BADGE_AFTER_S = 2.0  # wall seconds from parking to the card on the reader (the driver gets out)
BADGE_FOR_S = 5.0  # wall seconds the card stays on the reader
RELEASE_MARGIN_S = 5.0  # wall seconds after a no-show deadline before random cars may take the spot


@dataclass
class BookingRun:
    """One booking as the bench drove it (epoch seconds), and the fog's record of it at the end."""

    index: int
    spec: Booking
    requested: float | None = None
    http_status: int | None = None
    answer: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    spot: str | None = None
    held_at: float | None = None  # when the bench saw the spot held
    start: float | None = None  # the booking's start (epoch s)
    arrived: float | None = None  # the booked car parked (ground truth)
    badged: float | None = None
    left: float | None = None
    cancelled: float | None = None
    final: dict[str, Any] = field(default_factory=dict)  # GET .../reservations/{id} at the end
    notes: list[str] = field(default_factory=list)


class BookingDriver:
    """Plays a scenario's bookings against a running stack, beside the truth traffic."""

    def __init__(self, stack: Stack, sc: Scenario, traffic: TruthTraffic) -> None:
        self.stack = stack
        self.sc = sc
        self.traffic = traffic
        self.acc = sc.acceleration
        self.policy_wall = {k: v / self.acc for k, v in sc.policy.items() if k != "theta"}
        self.runs = [BookingRun(i, b) for i, b in enumerate(sc.bookings)]
        self.probes = 0
        self.probe_errors = 0
        self.held_handed_out: list[dict[str, Any]] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.t0 = 0.0  # loop time the traffic phase started
        self.epoch0 = 0.0
        self.stopped_at = float("inf")  # epoch s the drivers were stopped (the traffic phase ended)
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"{self.stack.fog_url}/v1/lots/{self.stack.lot_id}"

    def start(self, t0: float) -> None:
        """Schedule every booking and the probe; ``t0`` is the loop time the traffic phase started."""
        self.t0 = t0
        self.epoch0 = time.time() - (asyncio.get_running_loop().time() - t0)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        for run in self.runs:
            self.tasks.append(asyncio.create_task(self._drive(run), name=f"booking-{run.index}"))
        if self.runs and self.stack.cfg.lot.entrances:
            self.tasks.append(asyncio.create_task(self._probe(), name="select-probe"))

    async def stop(self) -> None:
        self.stopped_at = min(self.stopped_at, time.time())
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []

    async def collect(self) -> None:
        """The fog's record of every booking, at the end of the run (the fog is still up)."""
        for run in self.runs:
            if run.id:
                with contextlib.suppress(Exception):
                    run.final = await self._get(f"{self.url}/reservations/{run.id}")
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- helpers -------------------------------------------------------------------

    def _wall(self, epoch: float) -> float:
        """Epoch seconds -> the truth traffic's clock (wall s since the traffic phase started)."""
        return epoch - self.epoch0

    async def _sleep_until(self, epoch: float) -> None:
        await asyncio.sleep(max(0.0, epoch - time.time()))

    async def _get(self, url: str) -> Any:
        assert self._session is not None
        async with self._session.get(url) as r:
            r.raise_for_status()
            return await r.json()

    async def _post(self, url: str, body: dict[str, Any]) -> tuple[int, Any]:
        """POST, retried while the fog is down (a fog_kill fault): a driver's app tries again."""
        assert self._session is not None
        for _ in range(20):
            try:
                async with self._session.post(url, json=body) as r:
                    return r.status, await r.json()
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.5)
        raise RuntimeError(f"POST {url}: the fog did not answer")

    # --- one driver --------------------------------------------------------------------

    async def _drive(self, run: BookingRun) -> None:
        try:
            await self._drive_one(run)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - reported in the verdict, the run goes on
            run.notes.append(f"bench error: {type(err).__name__}: {err}")
        finally:
            self.traffic.paused.pop(run.index, None)

    async def _drive_one(self, run: BookingRun) -> None:
        b = run.spec
        tr = self.traffic
        at = self.epoch0 + b.at_s / self.acc
        hold_before = self.policy_wall.get("hold_before_s", 900.0)
        if b.kind == "booking" or b.start_in_s / self.acc <= hold_before + 1.0:
            # The fog picks the spot at the request: no random car parks in the seconds before, so the
            # fog's view of the lot (a detection delay behind the truth) is the truth when it picks.
            await self._sleep_until(at - QUIET_BEFORE_S)
            tr.paused[run.index] = self._wall(at) + 30.0
        await self._sleep_until(at)
        now = time.time()
        body: dict[str, Any] = {"kind": b.kind, "hours": b.hours, "client": f"hil-{run.index}"}
        if b.card_uid:
            body["card_uid"] = b.card_uid
        if b.kind == "reservation":
            run.start = now + b.start_in_s / self.acc
            body["start"] = int(run.start * 1000)
            hold_at = max(now, run.start - hold_before)
        else:
            hold_at = now
        run.requested = now
        try:
            run.http_status, run.answer = await self._post(f"{self.url}/reservations", body)
        finally:
            if b.kind == "booking" or run.http_status != 201:
                tr.paused.pop(run.index, None)
        if run.http_status != 201:
            return
        run.id = str(run.answer.get("id"))
        if b.kind == "booking":
            run.start = int(run.answer["start_ms"]) / 1000
        run.spot = run.answer.get("spot_id")
        if run.spot is None:  # a reservation: its spot is chosen when its hold starts
            await self._sleep_until(hold_at - QUIET_BEFORE_S)
            tr.paused[run.index] = self._wall(max(time.time(), hold_at)) + 30.0
            try:
                deadline = hold_at + 10.0
                while run.spot is None and time.time() < deadline:
                    with contextlib.suppress(Exception):
                        run.spot = (await self._get(f"{self.url}/reservations/{run.id}")).get("spot_id")
                    if run.spot is None:
                        await asyncio.sleep(0.2)
            finally:
                tr.paused.pop(run.index, None)
        if run.spot is None:
            run.notes.append("the fog held no spot for it")
            return
        run.held_at = time.time()
        tr.held.add(run.spot)
        assert run.start is not None
        if b.cancel_after_s is not None:
            await self._sleep_until(run.requested + b.cancel_after_s / self.acc)
            status, answer = await self._post(f"{self.url}/reservations/{run.id}/cancel", {})
            run.cancelled = time.time()
            if status != 200:
                run.notes.append(f"cancel answered {status}: {answer}")
            tr.held.discard(run.spot)
            return
        if b.arrive_after_s is None:  # a no-show: the spot is the fog's to release
            window = self.policy_wall.get("waiting_window_s", 3 * 3600.0)
            await self._sleep_until(run.start + window + RELEASE_MARGIN_S)
            tr.held.discard(run.spot)
            return
        tr.script(self._wall(run.start + b.arrive_after_s / self.acc), run.spot, "park")
        while run.spot not in tr.scripted:
            await asyncio.sleep(0.1)
        run.arrived = self.epoch0 + tr.occupied[run.spot]
        if b.card_uid and b.badge:
            node = self.stack.nodes.get(run.spot)
            await self._sleep_until(run.arrived + BADGE_AFTER_S)
            if node is not None and node.running:
                node.set_world(card_uid=b.card_uid)
                run.badged = time.time()
                await asyncio.sleep(BADGE_FOR_S)
                node.set_world(card_uid=None)
            else:
                run.notes.append(f"no emulated node at {run.spot} to read the card")
        if b.stay_s is not None:
            tr.script(self._wall(run.arrived + b.stay_s / self.acc), run.spot, "leave")
            while run.spot in tr.scripted:
                await asyncio.sleep(0.1)
            run.left = time.time()
            tr.held.discard(run.spot)

    # --- the selection probe -----------------------------------------------------------

    async def _held(self) -> set[str]:
        rows = await self._get(f"{self.url}/reservations?status=admitted&limit=1000")
        return {r["spot_id"] for r in rows if r.get("spot_id")}

    async def _probe(self) -> None:
        """A vehicle asks for a spot every PROBE_EVERY_S; a spot held before and after must never be the answer."""
        entrance = self.stack.cfg.lot.entrances[0]
        while True:
            await asyncio.sleep(PROBE_EVERY_S)
            try:
                before = await self._held()
                status, answer = await self._post(f"{self.url}/select",
                                                  {"entrance": entrance, "vehicle": "hil-probe"})
                after = await self._held()
            except Exception:  # noqa: BLE001 - the fog is down on purpose now and then
                self.probe_errors += 1
                continue
            self.probes += 1
            spot = answer.get("spot") if status == 200 else None
            if spot is not None and spot in before and spot in after:
                self.held_handed_out.append({"t": round(time.time() - self.epoch0, 1), "spot": spot})
