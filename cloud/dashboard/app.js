// FogPark dashboard: city view of lots (live availability and price) and per-lot history.
// Talks only to this server's /v1 API with the operator's token (kept in this tab's sessionStorage).
"use strict";

const REFRESH_MS = 10000;
const state = { token: null, lot: null, lots: [] };
const $ = (sel) => document.querySelector(sel);

function takeTokenFromUrl() {
  const m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem("fogpark-token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);  // keep it out of history and logs
  }
  state.token = sessionStorage.getItem("fogpark-token");
}

class AuthNeeded extends Error {}

async function api(path) {
  const headers = state.token ? { Authorization: "Bearer " + state.token } : {};
  const r = await fetch(path, { headers, cache: "no-store" });
  if (r.status === 401 || r.status === 403) throw new AuthNeeded((await r.json()).error);
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

function setStatus(text, bad) {
  const el = $("#status");
  el.textContent = text;
  el.className = bad ? "status-refused" : "";
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function money(value, currency) {
  return value === null || value === undefined ? "–" : value.toFixed(2) + " " + (currency || "");
}

function renderLots(lots) {
  const body = $("#lots tbody");
  body.replaceChildren();
  for (const lot of lots) {
    const tr = document.createElement("tr");
    tr.className = "lot" + (lot.lot_id === state.lot ? " selected" : "");
    tr.dataset.lot = lot.lot_id;
    cell(tr, lot.name).title = lot.lot_id;
    cell(tr, lot.free === null ? "–" : lot.free + " / " + lot.capacity, "free");
    const occ = cell(tr, "");
    if (lot.concentration !== null) {
      const bar = document.createElement("span");
      bar.className = "bar";
      const fill = document.createElement("i");
      fill.style.width = Math.round(lot.concentration * 100) + "%";
      fill.style.background = lot.concentration > 0.8 ? "var(--busy)" : lot.concentration > 0.6 ? "var(--mid)" : "var(--free)";
      bar.appendChild(fill);
      occ.appendChild(bar);
      occ.appendChild(document.createTextNode(" " + Math.round(lot.concentration * 100) + " %"));
    } else occ.textContent = "–";
    cell(tr, money(lot.price_per_hour, lot.currency), "price");
    cell(tr, lot.updated ? lot.updated.slice(11, 19) + (lot.stale ? " (stale)" : "") : "no data", lot.stale ? "stale" : "");
    tr.addEventListener("click", () => selectLot(lot.lot_id));
    body.appendChild(tr);
  }
  renderMap(lots);
}

function renderMap(lots) {
  const { svgEl } = window.FogParkChart;
  const svg = $("#city-map");
  svg.replaceChildren();
  const placed = lots.map((l) => ({ l, x: l.lon ?? l.x_m, y: l.lat ?? l.y_m })).filter((p) => p.x !== null && p.y !== null);
  if (placed.length === 0) return;
  const xs = placed.map((p) => p.x), ys = placed.map((p) => p.y);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (v) => 30 + (x1 > x0 ? ((v - x0) / (x1 - x0)) * 340 : 170);
  const sy = (v) => 230 - (y1 > y0 ? ((v - y0) / (y1 - y0)) * 200 : 100);
  for (const p of placed) {
    const c = p.l.concentration;
    const color = c === null ? "#8c959f" : c > 0.8 ? "#cf222e" : c > 0.6 ? "#bf8700" : "#1a7f37";
    const g = svgEl("g", { "data-lot": p.l.lot_id });
    g.appendChild(svgEl("circle", { cx: sx(p.x), cy: sy(p.y), r: 9, fill: color }));
    const right = sx(p.x) > 250;  // label on the side with room
    g.appendChild(svgEl("text", { x: sx(p.x) + (right ? -12 : 12), y: sy(p.y) + 4, "font-size": 11,
                                  "text-anchor": right ? "end" : "start" },
      p.l.name + (p.l.free !== null ? " · " + p.l.free + " free" : "")));
    g.addEventListener("click", () => selectLot(p.l.lot_id));
    svg.appendChild(g);
  }
}

async function selectLot(lotId) {
  state.lot = lotId;
  renderLots(state.lots);
  const lot = state.lots.find((l) => l.lot_id === lotId);
  $("#lot-detail").hidden = false;
  $("#lot-name").textContent = lot ? lot.name : lotId;
  await loadHistory();
}

async function loadHistory() {
  if (!state.lot) return;
  const range = $("#range").value;
  const bucket = range === "7d" ? "1h" : range === "1d" ? "15m" : "5m";
  const data = await api("/v1/lots/" + encodeURIComponent(state.lot) + "/summaries?since=" + range + "&bucket=" + bucket);
  const pts = (key) => data.buckets.map((b) => [b.bucket_start_ms, b[key]]);
  window.FogParkChart.lineChart($("#history-chart"), [
    { name: "free spots", color: "#1a7f37", points: pts("mean_free") },
    { name: "occupied", color: "#cf222e", points: pts("mean_occupied") },
    { name: "price / h", color: "#0969da", points: pts("mean_price_per_hour") },
  ], { since: data.since_ms, until: data.until_ms });
  $("#history-note").textContent = data.buckets.length + " buckets of " + bucket + " (UTC-aligned means)";
}

async function loadSide() {
  const [bookings, nodes, alerts] = await Promise.all([
    api("/v1/bookings"), api("/v1/nodes"), api("/v1/alerts?active=true")]);
  const body = $("#bookings tbody");
  body.replaceChildren();
  for (const b of bookings.bookings.slice(0, 20)) {
    const tr = document.createElement("tr");
    tr.dataset.booking = b.booking_id;
    cell(tr, b.booking_id);
    cell(tr, b.lot_id);
    cell(tr, b.start.slice(5, 16).replace("T", " "));
    cell(tr, b.status, "status-" + b.status);
    body.appendChild(tr);
  }
  $("#nodes-summary").textContent = nodes.count + " nodes · " + nodes.silent + " silent · " +
    nodes.battery_low + " low battery";
  const list = $("#alerts");
  list.replaceChildren();
  for (const a of alerts.alerts.slice(0, 20)) {
    const li = document.createElement("li");
    li.textContent = a.lot_id + ": " + a.kind + (a.spot_id ? " at " + a.spot_id : "") + " since " + a.first_seen.slice(0, 16);
    list.appendChild(li);
  }
}

async function refresh() {
  try {
    const city = await api("/v1/city/lots");
    state.lots = city.lots;
    renderLots(city.lots);
    $("#as-of").textContent = "as of " + new Date(city.as_of_ms).toISOString().slice(11, 19) + " UTC";
    await loadSide();
    if (state.lot) await loadHistory();
    $("#main").hidden = false;
    $("#login").hidden = true;
    setStatus(city.lots.length + " lots · live");
    document.body.dataset.ready = "true";
  } catch (err) {
    if (err instanceof AuthNeeded) {
      $("#main").hidden = true;
      $("#login").hidden = false;
      setStatus(state.token ? "token refused: " + err.message : "sign in with an operator token", true);
    } else setStatus("cannot reach the cloud: " + err.message, true);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  takeTokenFromUrl();
  $("#login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.token = $("#token").value.trim();
    sessionStorage.setItem("fogpark-token", state.token);
    refresh();
  });
  $("#range").addEventListener("change", () => loadHistory().catch((e) => setStatus(e.message, true)));
  refresh();
  setInterval(refresh, REFRESH_MS);
});
