// "Inspeccionar" tab: POST /predict with the mode selector and the ?thr= slider. Owns the `inspect-*` ids.
// Polygons come back in the uploaded image's own pixels, so they are drawn on a canvas the
// size of the original image, stacked over it together with the overlay PNG.

import { call } from "./ui-api.js";
import {
  $, debounce, lineWidthFor, loadImage, releaseImage, setVerdict, setupDropzone, showAlert, strokePolygons,
} from "./ui-common.js";
import { fileSummary, fmt, signed } from "./ui-format.js";
import { expectedThreshold, factorText, modeOptions, niceCeil } from "./ui-threshold.js";

// Names only: which modes exist and their factors come from /health (`mode_factors`).
const MODE_LABEL = { "": "Normal", sensitive: "Sensible", strict: "Estricto" };

const state = {
  file: null,
  image: null,
  base: null,          // THRESHOLD of the loaded model, from /health
  modes: modeOptions(null),  // normal only until /health names the modes and their factors
  manualThr: null,     // number when the operator moved the slider
  sliderMax: null,    // the slider only grows, so it never jumps under the operator's hand
  result: null,
  controller: null,
};

export function initInspect() {
  // Enter in a field must not post the form and leave the page (the answer is drawn here instead).
  $("inspect-form").addEventListener("submit", (event) => event.preventDefault());
  setupDropzone($("inspect-drop"), $("inspect-file"), (files) => selectFile(files[0]));
  $("inspect-mode-group").addEventListener("change", () => { describeThreshold(); analyse(); });
  const requery = debounce(analyse, 250);
  $("inspect-thr").addEventListener("input", () => {
    state.manualThr = Number($("inspect-thr").value);
    describeThreshold();
    requery();
  });
  $("inspect-thr-auto").addEventListener("click", () => {
    state.manualThr = null;
    describeThreshold();
    analyse();
  });
  $("inspect-opacity").addEventListener("input", applyOpacity);
  $("inspect-show-polygons").addEventListener("change", drawPolygons);
  applyOpacity();
  describeThreshold();
}

/** Called with /health's answer: the base threshold sets the slider's scale, `mode_factors` the modes. */
export function setModelInfo(health) {
  state.base = typeof health.threshold === "number" ? health.threshold : null;
  showModes(modeOptions(health.mode_factors));
  if (state.base !== null) growSlider(state.base * 2);
  $("inspect-model").textContent = health.backbone
    ? `${health.backbone} · ${health.weights || "?"} · img ${health.img_size}px · `
      + `versión ${health.model_version || "—"}`
    : "sin modelo cargado de ARTIFACTS_DIR";
  describeThreshold();
}

/** One radio per mode; without factors from the server only "Normal" is left, and disabled. */
function showModes(modes) {
  const current = mode();
  state.modes = modes;
  const group = $("inspect-mode-group");
  group.replaceChildren(group.querySelector("legend"), ...modes.map((option) => modeRadio(option, current)));
  group.disabled = modes.length < 2;
  if (!modes.some((option) => option.value === current)) group.querySelector("input").checked = true;
}

function modeRadio({ value, factor }, current) {
  const input = Object.assign(document.createElement("input"), { type: "radio", name: "inspect-mode", value });
  input.checked = value === current;
  const text = document.createElement("span");
  const small = document.createElement("small");
  small.textContent = factorText(factor);
  text.append(`${MODE_LABEL[value] || value} `, small);
  const label = document.createElement("label");
  label.append(input, text);
  return label;
}

function mode() {
  const checked = document.querySelector('input[name="inspect-mode"]:checked');
  return checked ? checked.value : "";
}

function modeFactor() {
  const option = state.modes.find(({ value }) => value === mode());
  return option ? option.factor : 1;
}


function describeThreshold() {
  const manual = state.manualThr !== null;
  const effective = state.result && !$("inspect-result").hidden ? state.result.threshold
    : expectedThreshold({ base: state.base, factor: modeFactor(), manual: state.manualThr });
  $("inspect-effective").textContent = fmt(effective);
  $("inspect-thr-source").textContent = manual
    ? "manual (?thr=): sustituye al modo"
    : `base ${fmt(state.base)} × ${modeFactor()} (modo ${(MODE_LABEL[mode()] || mode()).toLowerCase()})`;
  $("inspect-thr-auto").disabled = !manual;
  $("inspect-mode-group").classList.toggle("overridden", manual);
  if (!manual && effective !== null) $("inspect-thr").value = String(effective);
  $("inspect-thr-value").textContent = fmt(manual ? state.manualThr : effective);
}

function growSlider(value) {
  const nice = niceCeil(value);
  if (state.sliderMax !== null && nice <= state.sliderMax) return;
  state.sliderMax = nice;
  const slider = $("inspect-thr");
  slider.max = String(nice);
  slider.step = String(nice / 1000);
  $("inspect-thr-max").textContent = fmt(nice, 2);
}

async function selectFile(file) {
  state.file = file;
  state.result = null;
  $("inspect-file-name").textContent = fileSummary([file]);
  releaseImage(state.image);
  state.image = null;
  $("inspect-result").hidden = true;
  $("inspect-overlay").hidden = true;
  try {
    state.image = await loadImage(file);
    $("inspect-original").src = state.image.src;
    $("inspect-stage").style.setProperty("--ar", String(state.image.naturalWidth / state.image.naturalHeight));
    $("inspect-stage").hidden = false;
    $("inspect-empty").hidden = true;
    drawPolygons();  // the new image starts clean: no outline of the previous part
  } catch {
    $("inspect-stage").hidden = true;  // not displayable here: the server still gets to say why
    $("inspect-empty").hidden = false;
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
    $("inspect-result").hidden = true;
    $("inspect-gauge").hidden = true;
    $("inspect-verdict-text").textContent = "No se pudo analizar la imagen.";
    drawPolygons();
    setVerdict($("inspect-verdict"), "error", "Sin resultado");
    showAlert($("inspect-error"), error.message);
  } finally {
    if (controller === state.controller) busy(false);
  }
}

function busy(on) {
  $("inspect-panel-result").setAttribute("aria-busy", String(on));
  if (!on) return;
  setVerdict($("inspect-verdict"), "busy", "Analizando…");
  if (!state.result) $("inspect-verdict-text").textContent = "Analizando la imagen…";
}

function render(data) {
  state.result = data;
  showAlert($("inspect-error"), "");
  // a manual threshold never widens the scale: at the slider's end it would run away from the pointer
  growSlider(1.25 * Math.max(data.score, state.manualThr === null ? data.threshold : 0));
  const verdict = data.is_anomaly ? "NG" : "OK";
  setVerdict($("inspect-verdict"), verdict);
  $("inspect-verdict-text").textContent = data.is_anomaly ? "Anomalía detectada" : "Pieza correcta";
  $("inspect-score").textContent = fmt(data.score);
  $("inspect-threshold").textContent = fmt(data.threshold);
  $("inspect-margin").textContent = signed(data.score - data.threshold);
  $("inspect-regions").textContent = String(data.polygons.length);
  $("inspect-result").hidden = false;
  $("inspect-gauge").hidden = false;
  drawGauge(data);
  const overlay = $("inspect-overlay");
  overlay.hidden = !data.overlay_url;
  if (data.overlay_url) overlay.src = data.overlay_url;
  $("inspect-no-overlay").hidden = Boolean(data.overlay_url);
  describeThreshold();
  drawPolygons();
}

function drawGauge(data) {
  const scale = (value) => `${Math.min(100, (100 * value) / (state.sliderMax || 1)).toFixed(2)}%`;
  $("inspect-gauge-fill").style.width = scale(data.score);
  $("inspect-gauge-fill").dataset.verdict = data.is_anomaly ? "NG" : "OK";
  $("inspect-gauge-mark").style.left = scale(data.threshold);
}

function drawPolygons() {
  const canvas = $("inspect-canvas");
  const image = state.image;
  const polygons = state.result ? state.result.polygons : [];
  canvas.dataset.polygons = String(polygons.length);
  if (!image) return;
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!$("inspect-show-polygons").checked) return;
  const width = lineWidthFor(canvas.width, canvas.height);
  strokePolygons(ctx, polygons, { colour: "#ffffff", width: width + 2 });
  strokePolygons(ctx, polygons, { colour: "#e0102f", width, fill: "rgba(224, 16, 47, 0.18)" });
}

function applyOpacity() {
  const value = Number($("inspect-opacity").value);
  $("inspect-overlay").style.opacity = String(value / 100);
  $("inspect-opacity-value").textContent = `${value} %`;
}
