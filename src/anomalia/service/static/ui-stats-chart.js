// The "Historial" tab's charts from GET /stats: the NG rate over time (one line per product/region)
// and the score distribution of each product/region, drawn by hand on canvases. Owns the `stats-*` ids.

import { call } from "./ui-api.js";
import { $, showAlert } from "./ui-common.js";
import { productText, recordQuery } from "./ui-record-text.js";

const COLOURS = ["#1c5fd0", "#c8102e", "#12804a", "#9a5b00", "#7b3fc4", "#00838f"];
const BUCKET_MS = { hour: 3_600_000, day: 86_400_000 };
const INK = "#23303f";
const MUTED = "#6a7788";
const FONT = "11px system-ui, sans-serif";

const state = { filters: {}, stats: null, ticket: 0 };

export function initStats() {
  $("stats-bucket").addEventListener("change", () => showStats(state.filters));
  window.addEventListener("resize", () => { if (state.stats) draw(state.stats); });
}

/** Load /stats for `filters` (product, region, part, station: not verdict, review or dates, which the
 * chart's own period replaces) and draw it. */
export async function showStats(filters) {
  state.filters = filters;
  const ticket = ++state.ticket;
  const { role_id, roi_id, part_id, station_id } = filters;
  $("stats-card").setAttribute("aria-busy", "true");
  try {
    const stats = await call("GET", `stats?${recordQuery({ role_id, roi_id, part_id, station_id },
                                                          { bucket: $("stats-bucket").value })}`);
    if (ticket !== state.ticket) return;
    showAlert($("stats-error"), "");
    state.stats = stats;
    draw(stats);
  } catch (error) {
    if (ticket === state.ticket) showAlert($("stats-error"), error.message);
  } finally {
    if (ticket === state.ticket) $("stats-card").setAttribute("aria-busy", "false");
  }
}

/** The points of each series: x = the bucket's middle in ms since the epoch, kept within the period (the
 * current bucket is not over yet), y = its NG rate (0..1); `start` tells consecutive buckets apart. */
export function ratePoints(stats) {
  const width = BUCKET_MS[stats.bucket] || BUCKET_MS.hour;
  const [since, until] = [Date.parse(stats.since), Date.parse(stats.until)];
  return stats.series.map((series) => ({
    name: productText(series),
    points: series.buckets.map((b) => {
      const start = Date.parse(b.start);
      return { x: Math.min(until, Math.max(since, start + width / 2)), y: b.ng_rate, n: b.n, start };
    }),
  }));
}

function draw(stats) {
  const totals = stats.totals;
  $("stats-totals").textContent = `${totals.n} inspecciones · ${totals.n_ng} NG (${(100 * totals.ng_rate).toFixed(1)} %)`
    + ` · ${totals.n_reviewed} revisadas · ${totals.n_false_ng} falsos NG · ${totals.n_missed_ng} NG no detectados`;
  drawRate($("stats-rate-canvas"), stats);
  const scores = $("stats-scores");
  scores.replaceChildren(...stats.scores.map((group) => scoreFigure(group)));
  scores.querySelectorAll("canvas").forEach((canvas, i) => drawScores(canvas, stats.scores[i]));
  if (!stats.scores.length) scores.textContent = "Sin inspecciones en este periodo.";
}

/** A canvas sized for crisp drawing at this screen's pixel ratio; returns its context and CSS size. */
function prepare(canvas, fallbackHeight) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 320;
  const height = canvas.clientHeight || fallbackHeight;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = FONT;
  return { ctx, width, height };
}

function axes(ctx, box) {
  ctx.strokeStyle = "#c5ccd6";
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(box.left, box.top);
  ctx.lineTo(box.left, box.bottom);
  ctx.lineTo(box.right, box.bottom);
  ctx.stroke();
}

function label(ctx, text, x, y, align, baseline = "top", colour = MUTED) {
  ctx.fillStyle = colour;
  ctx.textAlign = align;
  ctx.textBaseline = baseline;
  ctx.fillText(text, x, y);
}

function drawRate(canvas, stats) {
  const { ctx, width, height } = prepare(canvas, 170);
  const lines = ratePoints(stats);
  const box = { left: 42, right: width - 8, top: 8 + 14 * Math.ceil(lines.length / 2), bottom: height - 20 };
  const since = Date.parse(stats.since);
  const until = Date.parse(stats.until);
  const x = (ms) => box.left + ((ms - since) / Math.max(1, until - since)) * (box.right - box.left);
  const y = (rate) => box.bottom - rate * (box.bottom - box.top);
  axes(ctx, box);
  label(ctx, "100 %", box.left - 4, box.top, "right", "middle");
  label(ctx, "0 %", box.left - 4, box.bottom, "right", "middle");
  const day = stats.bucket === "day";
  const when = (ms) => {
    const d = new Date(ms);
    return day ? `${d.getDate()}/${d.getMonth() + 1}` : `${d.getHours()}:${String(d.getMinutes()).padStart(2, "0")}`;
  };
  label(ctx, when(since), box.left, box.bottom + 4, "left");
  label(ctx, when(until), box.right, box.bottom + 4, "right");
  if (!lines.length) {
    label(ctx, "Sin inspecciones en este periodo", (box.left + box.right) / 2, (box.top + box.bottom) / 2,
          "center", "middle");
    return;
  }
  const step = BUCKET_MS[stats.bucket] || BUCKET_MS.hour;
  lines.forEach(({ name, points }, i) => {
    const colour = COLOURS[i % COLOURS.length];
    ctx.strokeStyle = colour;
    ctx.fillStyle = colour;
    ctx.lineWidth = 2;
    points.forEach((point, j) => {
      const previous = points[j - 1];
      if (previous && point.start - previous.start === step) {  // a gap (no inspection) is not a line
        ctx.beginPath();
        ctx.moveTo(x(previous.x), y(previous.y));
        ctx.lineTo(x(point.x), y(point.y));
        ctx.stroke();
      }
      ctx.beginPath();
      ctx.arc(x(point.x), y(point.y), 3.5, 0, 2 * Math.PI);
      ctx.fill();
    });
    const legendX = box.left + (i % 2) * (box.right - box.left) / 2;
    const legendY = 4 + 14 * Math.floor(i / 2);
    ctx.fillRect(legendX, legendY + 2, 10, 10);
    label(ctx, name, legendX + 14, legendY + 1, "left", "top", INK);
  });
}

function scoreFigure(group) {
  const figure = document.createElement("figure");
  figure.className = "score-chart";
  const caption = document.createElement("figcaption");
  caption.textContent = `${productText(group)} · ${group.n} inspecciones · p50 ${group.p50.toFixed(4)}`
    + ` · p99 ${group.p99.toFixed(4)}`;
  const canvas = document.createElement("canvas");
  canvas.className = "chart small";
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `Histograma de puntuaciones de ${productText(group)}`);
  figure.append(caption, canvas);
  return figure;
}

function drawScores(canvas, group) {
  const { ctx, width, height } = prepare(canvas, 110);
  const { edges, counts } = group.histogram;
  const box = { left: 28, right: width - 8, top: 6, bottom: height - 18 };
  const top = Math.max(1, ...counts);
  const low = edges[0];
  const high = edges[edges.length - 1];
  const x = (value) => box.left + ((value - low) / ((high - low) || 1)) * (box.right - box.left);
  axes(ctx, box);
  ctx.fillStyle = "rgba(28, 95, 208, 0.75)";
  counts.forEach((count, i) => {
    if (!count) return;
    const left = x(edges[i]);
    const barWidth = Math.max(2, x(edges[i + 1]) - left - 1);
    const barHeight = (count / top) * (box.bottom - box.top);
    ctx.fillRect(left, box.bottom - barHeight, barWidth, barHeight);
  });
  label(ctx, String(top), box.left - 4, box.top, "right", "top");
  label(ctx, low.toFixed(3), box.left, box.bottom + 4, "left");
  label(ctx, high.toFixed(3), box.right, box.bottom + 4, "right");
}
