"""The dashboard in a real headless Chromium, driven over the DevTools protocol (aiohttp websockets).

The cloud serves the API and the dashboard on 127.0.0.1 from a seeded store;
Chromium loads the page with an operator token in the URL fragment, and the
test reads the rendered DOM: every lot from the API with its availability and
price, the per-lot history chart after a click, and the bookings with a refused
one. Every request the page made is recorded from Network events and must go
to the test's own server. Chromium comes from Debian (deploy/cloud/install-chromium.sh
installs it when missing).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cloud.config import CloudConfig
from cloud.http_api import create_app, start_http
from cloud.metrics import Counters
from cloud.queries import Operations
from cloud.store import CloudStore, now_ms
from proto import parking_pb2 as pb

CHROMIUM = "/usr/bin/chromium"
INSTALLER = Path(__file__).resolve().parents[2] / "deploy" / "cloud" / "install-chromium.sh"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0", "--window-size=1280,900"]
MIN_MS = 60_000


def _chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        done = subprocess.run(["bash", str(INSTALLER)], capture_output=True, text=True, timeout=600)
        if done.returncode != 0 or not os.access(CHROMIUM, os.X_OK):
            pytest.fail(f"Chromium is missing and {INSTALLER} could not install it:\n{done.stdout}{done.stderr}")
    return CHROMIUM


class DevTools:
    """A minimal Chrome DevTools Protocol client: one page session, commands and recorded events."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            elif "method" in data:
                self.events.append(data)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[call_id] = future
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        await self.ws.send_json(message)
        reply = await asyncio.wait_for(future, 15)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float = 15) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for {expression}")
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def browser(tmp_path: Path) -> AsyncIterator[DevTools]:
    proc = await asyncio.create_subprocess_exec(
        _chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stderr is not None
        url = None
        async with asyncio.timeout(30):
            while url is None:
                line = (await proc.stderr.readline()).decode(errors="replace")
                if not line:
                    raise AssertionError("Chromium exited before opening DevTools")
                match = re.search(r"DevTools listening on (ws://\S+)", line)
                url = match[1] if match else None
        async with aiohttp.ClientSession() as session, session.ws_connect(url, max_msg_size=0) as ws:
            tools = DevTools(ws)
            target = await tools.send("Target.createTarget", url="about:blank")
            attached = await tools.send("Target.attachToTarget", targetId=target["targetId"], flatten=True)
            tools.session = attached["sessionId"]
            for domain in ("Network", "Page", "Runtime"):
                await tools.send(f"{domain}.enable")
            yield tools
            tools.reader.cancel()
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@pytest.fixture
def seeded_now(store: CloudStore, kit: Any) -> CloudStore:
    """Two lots with a day of recent minutes, and two cloud bookings: one admitted, one refused by the fog."""
    now = now_ms() // MIN_MS * MIN_MS
    minutes = 24 * 60
    for fog, lot, capacity in ((kit.FOG_A, kit.LOT_A, 20), (kit.FOG_B, kit.LOT_B, 10)):
        store.ingest_batch(kit.batch(fog, [pb.Record(seq=i + 1, summary=pb.LotSummary(
            lot_id=lot, window_start_ms=now - (minutes - i) * MIN_MS, window_s=60, capacity=capacity,
            occupied=(i // 30) % capacity, free=capacity - (i // 30) % capacity, concentration=0.5,
            price_per_hour=2.5 if lot == kit.LOT_A else 1.25)) for i in range(minutes)]))
    for n, status in enumerate(("admitted", "refused")):
        booking = pb.Booking(lot_id=kit.LOT_A, booking_id=f"cb-test-{n}", plan="occupancy",
                             start_ms=now + (4 + n) * 3_600_000, end_ms=now + (5 + n) * 3_600_000)
        store.create_booking(booking, kit.FOG_A, "test")
        store.ingest_batch(kit.batch(kit.FOG_A, [pb.Record(seq=minutes + 1 + n, reservation=pb.Reservation(
            lot_id=kit.LOT_A, reservation_id=booking.booking_id, status=status, plan="occupancy",
            start_ms=booking.start_ms, end_ms=booking.end_ms, updated_ms=now, source="cloud"))]))
    return store


async def test_dashboard_renders_the_city_from_the_api_and_stays_on_this_server(
    seeded_now: CloudStore, config: CloudConfig, kit: Any, tmp_path: Path
) -> None:
    http = await start_http(create_app(Operations(seeded_now, seeded_now, config), Counters()), "127.0.0.1", 0)
    origin = f"http://127.0.0.1:{http.port}"
    try:
        async with browser(tmp_path) as page:
            await page.send("Page.navigate", url=f"{origin}/dashboard/#token={kit.READ_TOKEN}")
            await page.wait_for("document.body?.dataset.ready === 'true'")
            lots = await page.evaluate(
                "[...document.querySelectorAll('#lots tr.lot')].map(tr => ({lot: tr.dataset.lot, "
                "cells: [...tr.cells].map(td => td.textContent)}))")
            assert [row["lot"] for row in lots] == [kit.LOT_A, kit.LOT_B]
            a, b = (row["cells"] for row in lots)
            assert (a[0], b[0]) == ("Lot A", "Lot B")
            assert re.fullmatch(r"\d+ / 20", a[1]) and re.fullmatch(r"\d+ / 10", b[1])
            assert (a[3], b[3]) == ("2.50 SAR", "1.25 SAR")
            assert await page.evaluate("document.querySelectorAll('#city-map g[data-lot]').length") == 2
            assert "token" not in await page.evaluate("location.href")  # taken out of the URL at once
            # Per-lot history: click the lot, the SVG chart draws the API's buckets.
            await page.evaluate(f"document.querySelector('tr[data-lot=\"{kit.LOT_B}\"]').click()")
            points = await page.wait_for(
                "Number(document.querySelector('#history-chart').dataset.points || 0)")
            assert points >= 3 * 90  # three series of 15-minute buckets over a day
            assert await page.evaluate("document.querySelectorAll('#history-chart path[data-series]').length") == 3
            assert await page.evaluate("document.querySelector('#lot-name').textContent") == "Lot B"
            statuses = await page.evaluate(
                "Object.fromEntries([...document.querySelectorAll('#bookings tr[data-booking]')]"
                ".map(tr => [tr.dataset.booking, tr.cells[3].textContent]))")
            assert statuses == {"cb-test-0": "admitted", "cb-test-1": "refused"}
            shot = await page.send("Page.captureScreenshot", format="png")
            (tmp_path / "dashboard.png").write_bytes(base64.b64decode(shot["data"]))
            if os.environ.get("FOGPARK_KEEP_SCREENSHOT"):
                shutil.copy(tmp_path / "dashboard.png", os.environ["FOGPARK_KEEP_SCREENSHOT"])
            urls = [e["params"]["request"]["url"] for e in page.events if e["method"] == "Network.requestWillBeSent"]
            assert any(u.endswith("/v1/city/lots") for u in urls)
            assert any("/summaries?" in u for u in urls)
            # Without a token the page asks for one, and works once it is given.
            await page.evaluate("sessionStorage.clear()")
            await page.send("Page.navigate", url=f"{origin}/dashboard/")
            await page.wait_for("document.querySelector('#login')?.hidden === false")
            assert await page.evaluate("document.querySelector('#main').hidden") is True
            await page.evaluate(f"document.querySelector('#token').value = '{kit.READ_TOKEN}';"
                                "document.querySelector('#login').requestSubmit()")
            await page.wait_for("document.body?.dataset.ready === 'true'")
            assert await page.evaluate("document.querySelectorAll('#lots tr.lot').length") == 2
            urls = [e["params"]["request"]["url"] for e in page.events if e["method"] == "Network.requestWillBeSent"]
            outside = [u for u in urls if not u.startswith(origin + "/")]
            assert outside == [], f"the page requested something outside {origin}: {outside}"
    finally:
        await http.stop()
