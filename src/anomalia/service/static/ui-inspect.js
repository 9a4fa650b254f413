// "Inspeccionar" tab: seed 000's POST /predict with the mode selector and the ?thr= slider.
// Polygons come back in the uploaded image's own pixels, so they are drawn on a canvas the
// size of the original image, stacked over it together with the overlay PNG.

import { call } from "./ui-api.js";
import {
  $, debounce, fileSummary, fmt, lineWidthFor, loadImage, releaseImage, setVerdict, setupDropzone, showAlert,
  strokePolygons,
} from "./ui-common.js";

const MODE_FACTOR = { "": 1, sensitive: 0.8, strict: 1.2 };
const MODE_NAME = { "": "normal", sensitive: "sensible", strict: "estricto" };

const state = {
  file: null,
  image: null,
  base: null,          // THRESHOLD of the loaded model, from /health
  manualThr: null,     // number when the operator moved the slider
  sliderMax: null,    // the slider only grows, so it never jumps under the operator's hand
  result: null,
  controller: null,
};

export function initInspect() {
  setupDropzone($("insp-drop"), $("insp-file"), (files) => selectFile(files[0]));
  for (const radio of document.querySelectorAll('input[name="insp-mode"]')) {
    radio.addEventListener("change", () => { describeThreshold(); analyse(); });
  }
  const requery = debounce(analyse, 250);
  $("insp-thr").addEventListener("input", () => {
    state.manualThr = Number($("insp-thr").value);
    describeThreshold();
    requery();
  });
  $("insp-thr-auto").addEventListener("click", () => {
    state.manualThr = null;
    describeThreshold();
    analyse();
  });
  $("insp-opacity").addEventListener("input", applyOpacity);
  $("insp-show-polygons").addEventListener("change", drawPolygons);
  applyOpacity();
  describeThreshold();
}

/** Called with /health's answer: the base threshold sets the slider's scale. */
export function setModelInfo(health) {
  state.base = typeof health.threshold === "number" ? health.threshold : null;
  if (state.base !== null) growSlider(state.base * 2);
  $("insp-model").textContent = health.backbone
    ? `${health.backbone} · ${health.weights || "?"} · img ${health.img_size}px · `
      + `versión ${health.model_version || "—"}`
    : "sin modelo seed-000 cargado";
  describeThreshold();
}

function mode() {
  const checked = document.querySelector('input[name="insp-mode"]:checked');
  return checked ? checked.value : "";
}

function expectedThreshold() {
  if (state.manualThr !== null) return state.manualThr;
  return state.base === null ? null : state.base * MODE_FACTOR[mode()];
}

function describeThreshold() {
  const manual = state.manualThr !== null;
  const effective = state.result && !$("insp-result").hidden ? state.result.threshold : expectedThreshold();
  $("insp-effective").textContent = fmt(effective);
  $("insp-thr-source").textContent = manual
    ? "manual (?thr=): sustituye al modo"
    : `base ${fmt(state.base)} × ${MODE_FACTOR[mode()]} (modo ${MODE_NAME[mode()]})`;
  $("insp-thr-auto").disabled = !manual;
  $("insp-mode-group").classList.toggle("overridden", manual);
  if (!manual && effective !== null) $("insp-thr").value = String(effective);
  $("insp-thr-value").textContent = fmt(manual ? state.manualThr : effective);
}

function growSlider(value) {
  const nice = niceCeil(value);
  if (state.sliderMax !== null && nice <= state.sliderMax) return;
  state.sliderMax = nice;
  const slider = $("insp-thr");
  slider.max = String(nice);
  slider.step = String(nice / 1000);
  $("insp-thr-max").textContent = fmt(nice, 2);
}

function niceCeil(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 2.5, 5, 10].map((m) => m * power).find((candidate) => candidate >= value);
}

async function selectFile(file) {
  state.file = file;
  state.result = null;
  $("insp-file-name").textContent = fileSummary([file]);
  releaseImage(state.image);
  state.image = null;
  $("insp-result").hidden = true;
  $("insp-overlay").hidden = true;
  try {
    state.image = await loadImage(file);
    $("insp-original").src = state.image.src;
    $("insp-stage").style.setProperty("--ar", String(state.image.naturalWidth / state.image.naturalHeight));
    $("insp-stage").hidden = false;
    $("insp-empty").hidden = true;
    drawPolygons();  // the new image starts clean: no outline of the previous part
  } catch {
    $("insp-stage").hidden = true;  // not displayable here: the server still gets to say why
    $("insp-empty").hidden = false;
  }
  await analyse();
}

async function analyse() {
  if (!state.file) return;
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  const params = new URLSearchParams();
  if (mode()) params.set("mode", mode());
  if (state.manualThr !== null) params.set("thr", String(state.manualThr));
  const body = new FormData();
  body.append("file", state.file, state.file.name);
  busy(true);
  try {
    const query = params.toString();
    const data = await call("POST", query ? `predict?${query}` : "predict", body, { signal: controller.signal });
    if (controller === state.controller) render(data);
  } catch (error) {
    if (error.name === "AbortError") return;
    if (controller !== state.controller) return;
    state.result = null;
    $("insp-result").hidden = true;
    $("insp-gauge").hidden = true;
    $("insp-verdict-text").textContent = "No se pudo analizar la imagen.";
    drawPolygons();
    setVerdict($("insp-verdict"), "error", "Sin resultado");
    showAlert($("insp-error"), error.message);
  } finally {
    if (controller === state.controller) busy(false);
  }
}

function busy(on) {
  $("insp-panel-result").setAttribute("aria-busy", String(on));
  if (!on) return;
  setVerdict($("insp-verdict"), "busy", "Analizando…");
  if (!state.result) $("insp-verdict-text").textContent = "Analizando la imagen…";
}

function render(data) {
  state.result = data;
  showAlert($("insp-error"), "");
  // a manual threshold never widens the scale: at the slider's end it would run away from the pointer
  growSlider(1.25 * Math.max(data.score, state.manualThr === null ? data.threshold : 0));
  const verdict = data.is_anomaly ? "NG" : "OK";
  setVerdict($("insp-verdict"), verdict);
  $("insp-verdict-text").textContent = data.is_anomaly ? "Anomalía detectada" : "Pieza correcta";
  $("insp-score").textContent = fmt(data.score);
  $("insp-threshold").textContent = fmt(data.threshold);
  $("insp-margin").textContent = `${data.score > data.threshold ? "+" : ""}${fmt(data.score - data.threshold)}`;
  $("insp-regions").textContent = String(data.polygons.length);
  $("insp-result").hidden = false;
  $("insp-gauge").hidden = false;
  drawGauge(data);
  const overlay = $("insp-overlay");
  overlay.hidden = !data.overlay_url;
  if (data.overlay_url) overlay.src = data.overlay_url;
  $("insp-no-overlay").hidden = Boolean(data.overlay_url);
  describeThreshold();
  drawPolygons();
}

function drawGauge(data) {
  const scale = (value) => `${Math.min(100, (100 * value) / (state.sliderMax || 1)).toFixed(2)}%`;
  $("insp-gauge-fill").style.width = scale(data.score);
  $("insp-gauge-fill").dataset.verdict = data.is_anomaly ? "NG" : "OK";
  $("insp-gauge-mark").style.left = scale(data.threshold);
}

function drawPolygons() {
  const canvas = $("insp-canvas");
  const image = state.image;
  const polygons = state.result ? state.result.polygons : [];
  canvas.dataset.polygons = String(polygons.length);
  if (!image) return;
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!$("insp-show-polygons").checked) return;
  const width = lineWidthFor(canvas.width, canvas.height);
  strokePolygons(ctx, polygons, { colour: "#ffffff", width: width + 2 });
  strokePolygons(ctx, polygons, { colour: "#e0102f", width, fill: "rgba(224, 16, 47, 0.18)" });
}

function applyOpacity() {
  const value = Number($("insp-opacity").value);
  $("insp-overlay").style.opacity = String(value / 100);
  $("insp-opacity-value").textContent = `${value} %`;
}
