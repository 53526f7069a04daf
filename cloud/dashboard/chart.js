// FogPark dashboard: a small SVG line chart, written for this page (no library, works offline).
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const step = Math.pow(10, Math.floor(Math.log10(value)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= value) return m * step;
  return 10 * step;
}

function timeLabel(ms, spanMs) {
  const d = new Date(ms);
  const hhmm = d.toISOString().slice(11, 16);
  return spanMs > 2 * 86400000 ? d.toISOString().slice(5, 10) + " " + hhmm : hhmm;
}

// series: [{name, color, points: [[t_ms, value], ...]}]; draws into `svg` (its viewBox gives the size).
function lineChart(svg, series, opts) {
  const box = svg.viewBox.baseVal;
  const W = box.width, H = box.height, m = { l: 44, r: 12, t: 12, b: 40 };
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const all = series.flatMap((s) => s.points);
  svg.setAttribute("data-points", String(all.length));
  if (all.length === 0) {
    svg.appendChild(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#656d76" },
      (opts && opts.empty) || "no data in this window"));
    return;
  }
  const t0 = (opts && opts.since) || Math.min(...all.map((p) => p[0]));
  const t1 = (opts && opts.until) || Math.max(...all.map((p) => p[0]));
  const yMax = niceMax(Math.max(...all.map((p) => p[1]), (opts && opts.yMin) || 0));
  const x = (t) => m.l + ((t - t0) / Math.max(1, t1 - t0)) * (W - m.l - m.r);
  const y = (v) => H - m.b - (v / yMax) * (H - m.t - m.b);
  const grid = svgEl("g", { class: "grid" }), axis = svgEl("g", { class: "axis" });
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    grid.appendChild(svgEl("line", { x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }));
    axis.appendChild(svgEl("text", { x: m.l - 6, y: y(v) + 4, "text-anchor": "end" }, String(Math.round(v * 10) / 10)));
  }
  for (let i = 0; i <= 5; i++) {
    const t = t0 + ((t1 - t0) * i) / 5;
    const anchor = i === 0 ? "start" : i === 5 ? "end" : "middle";
    axis.appendChild(svgEl("text", { x: x(t), y: H - m.b + 16, "text-anchor": anchor }, timeLabel(t, t1 - t0)));
  }
  axis.appendChild(svgEl("line", { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b, stroke: "#8c959f" }));
  svg.appendChild(grid);
  svg.appendChild(axis);
  const legend = svgEl("g", { class: "legend" });
  series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const d = s.points.map((p, j) => (j ? "L" : "M") + x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" ");
    svg.appendChild(svgEl("path", { d, fill: "none", stroke: s.color, "stroke-width": 2, "data-series": s.name }));
    legend.appendChild(svgEl("rect", { x: m.l + i * 130, y: H - 14, width: 10, height: 10, fill: s.color }));
    legend.appendChild(svgEl("text", { x: m.l + i * 130 + 14, y: H - 5 }, s.name));
  });
  svg.appendChild(legend);
}

window.FogParkChart = { lineChart, svgEl };
