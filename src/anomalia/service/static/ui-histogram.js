// OK / NG score distributions of a calibration, as a histogram on a canvas with the threshold line.
// Owns the `histogram-*` ids; the binning and the axis are pure functions.

const OK_COLOUR = "rgba(22, 135, 74, 0.75)";
const NG_COLOUR = "rgba(211, 32, 52, 0.7)";
const INK = "#23303f";
const MUTED = "#6a7788";

/** The score axis: every finite score and the threshold, padded by 8 % of the spread (or 10 % of
 * the value, or 1, when all of them are equal); null when there is no finite value at all. */
export function scoreRange(ok, ng, threshold) {
  const values = [...ok, ...ng, threshold].filter(Number.isFinite);
  if (!values.length) return null;
  const low = Math.min(...values);
  const high = Math.max(...values);
  const pad = (high - low) * 0.08 || Math.abs(high) * 0.1 || 1;
  return { low: low - pad, high: high + pad };
}

/** How many bins for `n` scores: 3·⌈√n⌉, kept between 8 and 30. */
export function binCount(n) {
  return Math.max(8, Math.min(30, Math.ceil(Math.sqrt(n)) * 3));
}

/** How many `values` fall in each of `bins` equal bins over [low, high); values outside go to the
 * end bins, values that are not finite numbers to none. */
export function binCounts(values, low, high, bins) {
  const result = new Array(bins).fill(0);
  for (const value of values) {
    if (!Number.isFinite(value)) continue;
    const index = Math.floor(((value - low) / (high - low)) * bins);
    result[Math.min(bins - 1, Math.max(0, index))] += 1;
  }
  return result;
}

/** What the canvas shows for a calibration: the axis, the OK and NG counts per bin and the
 * tallest bar (at least 1); null when there is nothing to draw. */
export function histogram({ ok, ng, threshold }) {
  const range = scoreRange(ok, ng, threshold);
  if (!range) return null;
  const bins = binCount(ok.length + ng.length);
  const okCounts = binCounts(ok, range.low, range.high, bins);
  const ngCounts = binCounts(ng, range.low, range.high, bins);
  return { ...range, bins, okCounts, ngCounts, top: Math.max(1, ...okCounts, ...ngCounts) };
}

let shown = null;

/** Show a calibration's `ok` and `ng` scores and `threshold` on the page's histogram (redrawn on resize). */
export function showHistogram(calibration) {
  if (!shown) window.addEventListener("resize", () => draw(document.getElementById("histogram-canvas"), shown));
  shown = calibration;
  draw(document.getElementById("histogram-canvas"), calibration);
}

/** Draw on `canvas`, crisp on high-DPI screens. */
function draw(canvas, { ok, ng, threshold }) {
  const ratio = window.devicePixelRatio || 1;
  const cssWidth = canvas.clientWidth || 480;
  const cssHeight = canvas.clientHeight || 200;
  canvas.width = Math.round(cssWidth * ratio);
  canvas.height = Math.round(cssHeight * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, cssWidth, cssHeight);
  const bars = histogram({ ok, ng, threshold });
  if (!bars) return;
  const { low, high, bins, top } = bars;
  const box = { left: 40, right: cssWidth - 12, top: 26, bottom: cssHeight - 30 };
  const x = (value) => box.left + ((value - low) / (high - low)) * (box.right - box.left);
  const barWidth = (box.right - box.left) / bins;
  const barHeight = (count) => (count / top) * (box.bottom - box.top);
  drawAxes(ctx, box, low, high, top);
  [[bars.okCounts, OK_COLOUR], [bars.ngCounts, NG_COLOUR]].forEach(([series, colour]) => {
    ctx.fillStyle = colour;
    series.forEach((count, i) => {
      if (!count) return;
      const left = box.left + i * barWidth + 1;
      ctx.fillRect(left, box.bottom - barHeight(count), barWidth - 2, barHeight(count));
    });
  });
  if (Number.isFinite(threshold)) drawThreshold(ctx, box, x(threshold), threshold);
  drawLegend(ctx, box, ok.length, ng.length);
}

function drawAxes(ctx, box, low, high, top) {
  ctx.strokeStyle = "#c5ccd6";
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(box.left, box.top);
  ctx.lineTo(box.left, box.bottom);
  ctx.lineTo(box.right, box.bottom);
  ctx.stroke();
  ctx.fillStyle = MUTED;
  ctx.font = "12px system-ui, sans-serif";
  ctx.textBaseline = "top";
  for (let i = 0; i <= 4; i += 1) {
    const value = low + ((high - low) * i) / 4;
    const px = box.left + ((box.right - box.left) * i) / 4;
    ctx.textAlign = i === 0 ? "left" : i === 4 ? "right" : "center";
    ctx.fillText(value.toFixed(3), px, box.bottom + 6);
  }
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  ctx.fillText(String(top), box.left - 6, box.top);
  ctx.fillText("0", box.left - 6, box.bottom);
}

function drawThreshold(ctx, box, px, threshold) {
  ctx.save();
  ctx.strokeStyle = INK;
  ctx.lineWidth = 2;
  ctx.setLineDash([6, 4]);
  ctx.beginPath();
  ctx.moveTo(px, box.top - 4);
  ctx.lineTo(px, box.bottom);
  ctx.stroke();
  ctx.restore();
  ctx.fillStyle = INK;
  ctx.font = "bold 12px system-ui, sans-serif";
  ctx.textBaseline = "bottom";
  ctx.textAlign = px > (box.left + box.right) / 2 ? "right" : "left";
  ctx.fillText(`umbral ${threshold.toFixed(4)}`, px + (ctx.textAlign === "left" ? 6 : -6), box.top + 8);
}

function drawLegend(ctx, box, nOk, nNg) {
  ctx.font = "12px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  ctx.textAlign = "left";
  const entries = [[OK_COLOUR, `OK (${nOk})`]];
  if (nNg) entries.push([NG_COLOUR, `NG (${nNg})`]);
  let left = box.left;
  for (const [colour, label] of entries) {
    ctx.fillStyle = colour;
    ctx.fillRect(left, 6, 12, 12);
    ctx.fillStyle = INK;
    ctx.fillText(label, left + 16, 12);
    left += ctx.measureText(label).width + 34;
  }
}
