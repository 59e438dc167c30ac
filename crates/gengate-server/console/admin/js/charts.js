// Charts, drawn by uPlot (vendored under /console/admin/vendor with its licence; a
// classic script that defines `uPlot`, loaded before the modules). A canvas says
// nothing to a screen reader, so every chart comes with its numbers as a table.

import { h } from "../../js/dom.js";

export const COLORS = {
  blue: "#1f4fd1", green: "#1b6e3a", red: "#b3261e", amber: "#8a5a00", grey: "#4a5260",
};

const HEIGHT = 220;

/**
 * A chart figure. `x`: numbers (seconds since the epoch when `time`, else indices
 * into `labels`); `series`: `[{label, values, color, bars?}]`. `fmt` formats the
 * y values in the table and the axis; `counts` keeps the axis on whole numbers;
 * `stacked` piles the (bar) series on each other, the first at the bottom.
 */
export function chart({ title, x, series, time = true, labels = [], fmt = (v) => String(v), caption, counts = false, stacked = false }) {
  const box = h("div", { class: "chart-canvas", role: "img", "aria-label": `${title} (chart; the numbers are in the table below it)` });
  const xText = (v, i) => time ? new Date(v * 1000).toLocaleString() : labels[i] ?? String(v);
  const table = h("details", { class: "chart-data" },
    h("summary", {}, "The numbers"),
    h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, time ? "Time" : "Group"),
        series.map((s) => h("th", { scope: "col" }, s.label)))),
      h("tbody", {}, x.map((v, i) => h("tr", {}, h("td", {}, xText(v, i)),
        series.map((s) => h("td", { class: "num" }, s.values[i] === null ? "—" : fmt(s.values[i])))))))));
  const fig = h("figure", { class: "card chart" }, h("figcaption", {}, h("h2", {}, title), caption ? h("p", { class: "hint" }, caption) : null), box, table);
  if (!x.length) {
    box.replaceWith(h("p", { class: "muted empty-chart" }, "Nothing in this range yet."));
    return fig;
  }
  const U = globalThis.uPlot;
  if (!U) {
    box.replaceWith(h("p", { class: "muted" }, "The chart library did not load; the numbers are below."));
    table.open = true;
    return fig;
  }
  let plot = null;
  // Stacked: each series is drawn as the running total up to it, the tallest first,
  // so every series shows as its own band; the legend still reads the series' own values.
  const drawn = stacked
    ? series.map((s, i) => ({ ...s, own: s.values, values: x.map((_, j) => series.slice(0, i + 1).reduce((t, u) => t + (u.values[j] || 0), 0)) })).reverse()
    : series.map((s) => ({ ...s, own: s.values }));
  const nBars = stacked ? 1 : Math.max(1, series.filter((t) => t.bars).length);
  const opts = (width) => ({
    width,
    height: HEIGHT,
    scales: {
      x: { time, range: time ? undefined : () => [-0.5, x.length - 0.5] },
      // Counts start at zero, and an all-zero chart reads 0–1, not 0–100.
      y: counts ? { range: (_, _min, max) => [0, Math.max(1, Math.ceil(max * 1.1))] } : {},
    },
    axes: [
      time ? { stroke: COLORS.grey } : {
        stroke: COLORS.grey,
        splits: () => x,
        values: (_, splits) => splits.map((i) => shorten(labels[i] ?? "")),
      },
      { stroke: COLORS.grey, values: (_, splits) => splits.map(fmt), size: 60,
        incrs: counts ? [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 1e7, 1e8] : undefined },
    ],
    legend: { show: true },
    series: [{ label: time ? "Time" : "Group", value: (_, v) => v === null ? "—" : xText(v, x.indexOf(v)) },
      ...drawn.map((s) => ({
        label: s.label,
        stroke: s.color,
        fill: s.bars ? `${s.color}cc` : undefined,
        width: s.bars ? 1 : 2,
        points: { show: !s.bars && x.length < 60 },
        paths: s.bars ? U.paths.bars({ size: [0.8 / nBars, 48], align: 0 }) : undefined,
        value: (_, v, _si, i) => (i === null || i === undefined || s.own[i] === null || s.own[i] === undefined ? "—" : fmt(s.own[i])),
      }))],
  });
  const data = [x, ...drawn.map((s) => s.values)];
  // uPlot needs a width in pixels: draw once the box has one, and follow it.
  new ResizeObserver((entries) => {
    const w = Math.floor(entries[0].contentRect.width);
    if (w <= 0) return;
    if (plot) plot.setSize({ width: w, height: HEIGHT });
    else plot = new U(opts(w), data, box);
  }).observe(box);
  return fig;
}

function shorten(s) {
  return s.length > 14 ? `${s.slice(0, 13)}…` : s;
}

/** UTC hour starts (seconds) from `from` to `to` (ms), for filling empty buckets with zero. */
export function hours(fromMs, toMs) {
  const out = [];
  for (let t = Math.floor(fromMs / 3600000) * 3600000; t < toMs; t += 3600000) out.push(t / 1000);
  return out;
}

/** UTC day starts (seconds) from `from` to `to` (ms). */
export function days(fromMs, toMs) {
  const out = [];
  for (let t = Math.floor(fromMs / 86400000) * 86400000; t < toMs; t += 86400000) out.push(t / 1000);
  return out;
}

/** Usage rows keyed by their bucket's start in seconds. */
export function byBucket(rows) {
  const m = new Map();
  for (const r of rows) m.set(Date.parse(r.group) / 1000, r);
  return m;
}
