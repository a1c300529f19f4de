// The throughput chart: an inline SVG drawn from the per-minute counts, with the same
// numbers in a table for screen readers and for reading exact values.
import { h, table } from "./dom.js";

const SERIES = [
  ["accepted", "Accepted"],
  ["delivered", "Delivered"],
  ["failed", "Failed attempts"],
  ["dead", "Dead"],
];
const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** A "nice" upper bound for the y axis: 1, 2, 5 × 10^n. */
function niceMax(value) {
  if (value <= 5) return 5;
  const p = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= value);
}

const hhmm = (iso) => {
  const d = new Date(iso);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
};

export function throughputChart(minutes) {
  const W = 720;
  const H = 220;
  const left = 44;
  const right = 10;
  const top = 10;
  const bottom = 26;
  const max = niceMax(Math.max(...minutes.flatMap((m) => SERIES.map(([k]) => m[k]))));
  const x = (i) => left + (i * (W - left - right)) / Math.max(1, minutes.length - 1);
  const y = (v) => top + (H - top - bottom) * (1 - v / max);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "chart-title" });
  chart.append(svg("title", { id: "chart-title" }, "Accepted messages, deliveries, failed attempts and dead deliveries per minute over the last hour"));
  for (const tick of [0, max / 2, max]) {
    chart.append(svg("line", { class: "axis", x1: left, x2: W - right, y1: y(tick), y2: y(tick) }));
    chart.append(svg("text", { x: left - 6, y: y(tick) + 4, "text-anchor": "end" }, tick.toLocaleString("en-US")));
  }
  for (let i = 0; i < minutes.length; i += 15) {
    chart.append(svg("text", { x: x(i), y: H - 8, "text-anchor": "middle" }, hhmm(minutes[i].minute)));
  }
  chart.append(svg("text", { x: x(minutes.length - 1), y: H - 8, "text-anchor": "end" }, "now"));
  for (const [key] of SERIES) {
    const d = minutes.map((m, i) => `${i === 0 ? "M" : "L"}${x(i).toFixed(1)},${y(m[key]).toFixed(1)}`).join(" ");
    chart.append(svg("path", { d, class: `s-${key}` }));
  }
  const totals = Object.fromEntries(SERIES.map(([k]) => [k, minutes.reduce((n, m) => n + m[k], 0)]));
  const busy = minutes.filter((m) => SERIES.some(([k]) => m[k] > 0)).reverse();
  return h(
    "div",
    { class: "chart" },
    chart,
    h(
      "ul",
      { class: "legend" },
      SERIES.map(([k, label]) => h("li", {}, h("span", { class: `swatch s-${k}` }), `${label}: ${totals[k].toLocaleString("en-US")}`)),
    ),
    h(
      "details",
      {},
      h("summary", {}, "Per-minute numbers"),
      table(
        [{ label: "Minute" }, ...SERIES.map(([, label]) => ({ label, class: "num" }))],
        busy.map((m) => [hhmm(m.minute), ...SERIES.map(([k]) => m[k].toLocaleString("en-US"))]),
        { empty: "Nothing happened in the last hour." },
      ),
    ),
  );
}
