// "Enseñar producto" tab: the product fields, teach (POST /fit_ok?background=true, followed over the job's
// WebSocket: ui-jobs.js) and calibrate (POST /calibrate_ng).
// The inspect step (POST /infer) is ui-product-inspect.js, the shape viewer ui-shapes.js and the
// score histogram ui-histogram.js. Owns the `teach-*` ids.

import { call } from "./ui-api.js";
import { $, loadImage, releaseImage, setupDropzone, showAlert } from "./ui-common.js";
import { fileSummary, fmt, formatScores, parseScores } from "./ui-format.js";
import { showHistogram } from "./ui-histogram.js";
import { followJob } from "./ui-jobs.js";
import { initProductInspect, showInViewer } from "./ui-product-inspect.js";
import { drawnShapeFitting, fullRect, shapeFor } from "./ui-shapes.js";

const state = {
  okFiles: [],
  ngFiles: [],
  ngScored: false,
  fit: null,
  onModelChange: () => {},
};

export function initTeach({ onModelChange }) {
  state.onModelChange = onModelChange;
  initProductInspect({ product });
  setupDropzone($("teach-ok-drop"), $("teach-ok-files"), selectOkFiles);
  setupDropzone($("teach-ng-drop"), $("teach-ng-files"), (files) => {
    state.ngFiles = files;
    state.ngScored = false;
    $("teach-ng-summary").textContent = fileSummary(files);
  });
  $("teach-fit").addEventListener("click", fit);
  $("teach-calibrate").addEventListener("click", calibrateStep);
}

/** Fill the role/roi suggestions from /health's ``rois``. */
export function setKnownProducts(rois) {
  const pairs = Object.entries(rois || {}).flatMap(([role, list]) => list.map((roi) => [role, roi]));
  const option = (value) => new Option(value, value);
  $("teach-roles").replaceChildren(...[...new Set(pairs.map(([role]) => role))].map(option));
  $("teach-rois").replaceChildren(...[...new Set(pairs.map(([, roi]) => roi))].map(option));
  $("teach-known").textContent = pairs.length
    ? `Modelos en el servidor: ${pairs.map(([role, roi]) => `${role}/${roi}`).join(", ")}`
    : "Aún no hay modelos de producto en el servidor.";
}

/** The product fields, validated by the browser first (the server checks them again). */
export function product() {
  const fields = ["teach-role", "teach-roi", "teach-mm"].map($);
  const invalid = fields.find((field) => !field.checkValidity());
  if (invalid) {
    invalid.reportValidity();
    invalid.focus();
    return null;
  }
  const operator = $("teach-operator").value.trim();
  return { role_id: fields[0].value.trim(), roi_id: fields[1].value.trim(), mm_per_px: Number(fields[2].value),
           operator_id: operator || null };
}

function productForm(ids) {
  const body = new FormData();
  body.append("role_id", ids.role_id);
  body.append("roi_id", ids.roi_id);
  body.append("mm_per_px", String(ids.mm_per_px));
  if (ids.operator_id) body.append("operator_id", ids.operator_id);
  return body;
}

async function selectOkFiles(files) {
  state.okFiles = files;
  $("teach-ok-summary").textContent = fileSummary(files);
  try {
    showInViewer(await loadImage(files[0]), "primera imagen OK", false);
  } catch (error) {
    showAlert($("teach-fit-error"), error.message);
  }
}

function setProgress(fraction, text) {
  const bar = $("teach-progress");
  bar.hidden = fraction === null && !text;
  if (fraction === null) bar.removeAttribute("value");  // indeterminate: the server is fitting
  else bar.value = fraction;
  $("teach-progress-text").textContent = text;
}

/** Mark a step busy; every primary button of the tab waits meanwhile. */
function setBusy(card, on) {
  $(card).setAttribute("aria-busy", String(on));
  for (const button of $(card).closest('[role="tabpanel"]').querySelectorAll("button.primary")) button.disabled = on;
}

async function fit() {
  showAlert($("teach-fit-error"), "");
  const ids = product();
  if (!ids) return;
  if (state.okFiles.length < 2) {
    showAlert($("teach-fit-error"), "Elige al menos 2 imágenes OK (una parte se reserva para las puntuaciones OK).");
    return;
  }
  const body = productForm(ids);
  for (const file of state.okFiles) body.append("images", file, file.name);
  const shape = await fitShape();
  if (shape) body.append("shape", JSON.stringify(shape));
  setBusy("teach-step-fit", true);
  setProgress(0, "Subiendo imágenes… 0 %");
  const fitting = `Ajustando el modelo con ${state.okFiles.length} imágenes en el servidor`;
  const onUploadProgress = (fraction) => {
    if (fraction < 1) setProgress(fraction, `Subiendo imágenes… ${Math.round(fraction * 100)} %`);
    else setProgress(null, `${fitting}…`);
  };
  const onJobProgress = (event) =>
    setProgress(event.progress, `${fitting}: ${stageText(event)} · ${Math.round(event.progress * 100)} %`);
  try {
    const accepted = await call("POST", "fit_ok?background=true", body, { onUploadProgress });
    const data = await followJob(accepted.job_id, onJobProgress);
    state.fit = { ...data, key: `${ids.role_id}/${ids.roi_id}` };
    setProgress(1, `Modelo enseñado en ${fmt(data.timings_s.total_s, 1)} s.`);
    showFit(data);
    state.onModelChange();
  } catch (error) {
    setProgress(0, "");
    $("teach-progress").hidden = true;
    showAlert($("teach-fit-error"), error.message);
  } finally {
    setBusy("teach-step-fit", false);
  }
}

const STAGE_TEXT = {
  embedding: "imágenes procesadas por la red",
  coreset: "seleccionando el banco de parches (coreset)",
  holdout: "puntuando las imágenes reservadas",
  saving: "guardando el modelo",
};

/** "imágenes procesadas por la red 4/8" from a progress event (its detail starts with the count). */
function stageText(event) {
  const words = STAGE_TEXT[event.stage] || event.stage || "en cola";
  const count = /^(\d+)\/(\d+)/.exec(event.detail || "");
  return count ? `${words} ${count[1]}/${count[2]}` : words;
}

/** The drawn shape goes with the OK images (their ok_scores then use it) when it fits the first one. */
async function fitShape() {
  const image = await loadImage(state.okFiles[0]).catch(() => null);
  const shape = image ? drawnShapeFitting(image.naturalWidth, image.naturalHeight) : null;
  releaseImage(image);
  return shape;
}

function showFit(data) {
  $("teach-fit-result").hidden = false;
  $("teach-fit-version").textContent = data.model_version;
  $("teach-fit-split").textContent = `${data.n_train} para aprender · ${data.n_holdout} reservadas`;
  $("teach-fit-bank").textContent =
    `${data.coreset_size} de ${data.n_embeddings} parches (${data.backbone}, ${data.weights})`;
  $("teach-ok-scores").value = formatScores(data.ok_scores);
  $("teach-ok-count").textContent = `${data.ok_scores.length} puntuaciones OK listas para calibrar`;
  state.ngScored = false;
  if (state.ngFiles.length) $("teach-ng-scores").value = "";  // they belong to the previous model
}

async function calibrateStep() {
  showAlert($("teach-cal-error"), "");
  const ids = product();
  if (!ids) return;
  let ok;
  let ng;
  try {
    ok = parseScores($("teach-ok-scores").value);
    ng = parseScores($("teach-ng-scores").value);
  } catch (error) {
    showAlert($("teach-cal-error"), `Puntuaciones: ${error.message}.`);
    return;
  }
  if (!ok.length) {
    showAlert($("teach-cal-error"), "Faltan las puntuaciones OK: enseña el modelo (paso 1) o escríbelas.");
    return;
  }
  setBusy("teach-step-calibrate", true);
  try {
    if (state.ngFiles.length && !state.ngScored) ng = await scoreNgImages(ids, ok);
    const data = await postCalibration(ids, ok, ng);
    $("teach-cal-status").textContent = "Calibrado.";
    showCalibration(data, ok, ng);
    state.onModelChange();
  } catch (error) {
    $("teach-cal-status").textContent = "";
    showAlert($("teach-cal-error"), error.message);
  } finally {
    setBusy("teach-step-calibrate", false);
  }
}

function postCalibration(ids, ok, ng) {
  const body = { ...ids, ok_scores: ok, area_mm2_thr: Number($("teach-area").value || 0) };
  const percentile = $("teach-percentile").value;
  if (percentile !== "") body.score_percentile = Number(percentile);  // empty: the server's default
  if (ng && ng.length) body.ng_scores = ng;
  if (!body.operator_id) delete body.operator_id;
  if (state.fit && state.fit.key === `${ids.role_id}/${ids.roi_id}`) body.model_version = state.fit.model_version;
  return call("POST", "calibrate_ng", body);
}

/** Score each NG image with /infer inside the drawn shape (the same rule as the OK scores). */
async function scoreNgImages(ids, ok) {
  const scores = [];
  for (const [index, file] of state.ngFiles.entries()) {
    $("teach-cal-status").textContent = `Puntuando imagen NG ${index + 1} de ${state.ngFiles.length}…`;
    scores.push(await scoreNg(ids, ok, file));
  }
  $("teach-ng-scores").value = formatScores(scores);
  state.ngScored = true;
  return scores;
}

/** /infer needs a calibrated model: on 428 calibrate on the OK scores alone first, then retry. */
async function scoreNg(ids, ok, file) {
  try {
    return (await call("POST", "infer", await ngForm(ids, file))).score;
  } catch (error) {
    if (error.status !== 428) throw error;
  }
  $("teach-cal-status").textContent = "Calibración provisional con las puntuaciones OK…";
  await postCalibration(ids, ok, null);
  return (await call("POST", "infer", await ngForm(ids, file))).score;
}

async function ngForm(ids, file) {
  const image = await loadImage(file).catch(() => null);
  const shape = image ? shapeFor(image.naturalWidth, image.naturalHeight) : fullRect(1, 1);
  releaseImage(image);
  const body = productForm(ids);
  body.append("image", file, file.name);
  body.append("shape", JSON.stringify(shape));
  return body;
}

function showCalibration(data, ok, ng) {
  const stats = data.statistics;
  $("teach-cal-result").hidden = false;
  $("teach-cal-threshold").textContent = fmt(data.threshold);
  $("teach-cal-method").textContent = stats.method === "ok_ng_midpoint"
    ? `punto medio entre p99 OK (${fmt(stats.ok_p99)}) y p5 NG (${fmt(stats.ng_p5)})`
    : `percentil ${stats.score_percentile} de OK (${fmt(stats.ok_percentile_value)}) × ${stats.safety_factor}`;
  $("teach-cal-area").textContent = `${fmt(data.area_mm2_thr, 2)} mm²`;
  $("teach-cal-version").textContent = data.model_version;
  const warnings = [...(data.warnings || [])];
  if (data.overlap && !warnings.length) warnings.push("Las puntuaciones OK y NG se solapan.");
  showAlert($("teach-cal-warnings"), warnings.join(" "), "warning");
  showHistogram({ ok, ng: ng || [], threshold: data.threshold });
}
