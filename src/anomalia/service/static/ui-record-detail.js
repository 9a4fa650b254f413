// The "Historial" tab's detail of one record: the kept image with its heatmap and the region
// polygons, the record's facts, and the operator's review (POST /records/{id}/review).
// Owns the `record-*` ids.

import { call } from "./ui-api.js";
import { $, lineWidthFor, setVerdict, showAlert, strokePolygons } from "./ui-common.js";
import { fmt } from "./ui-format.js";
import { localTime, productText, reviewChoices, reviewText } from "./ui-record-text.js";

const REVIEWER_STORAGE = "anomalia.reviewer";
const state = { record: null, onReviewed: () => {} };

/** `onReviewed(record)`: called with the updated record after each stored review. */
export function initRecordDetail({ onReviewed }) {
  state.onReviewed = onReviewed;
  $("record-reviewer").value = localStorage.getItem(REVIEWER_STORAGE) || "";
  $("record-review").addEventListener("submit", (event) => event.preventDefault());
  for (const id of ["record-review-ok", "record-review-ng"]) {
    $(id).addEventListener("click", () => review($(id).dataset.label));
  }
  $("record-show-polygons").addEventListener("change", drawPolygons);
  $("record-opacity").addEventListener("input", applyOpacity);
  $("record-image").addEventListener("load", drawPolygons);
  applyOpacity();
}

/** Show `record` (an item of GET /records); `scroll`: bring the detail into view. */
export function showRecord(record, { scroll = false } = {}) {
  const changed = !state.record || state.record.id !== record.id;
  state.record = record;
  $("record-detail").hidden = false;
  $("record-title").textContent = `Inspección #${record.id} · ${productText(record)}`;
  setVerdict($("record-verdict"), record.verdict);
  showImages(record, changed);
  showFacts(record);
  showRegions(record);
  showReview(record, changed);
  if (scroll) $("record-detail").scrollIntoView({ block: "start" });
}

function showImages(record, changed) {
  $("record-stage").hidden = !record.image_url;
  $("record-no-image").hidden = Boolean(record.image_url);
  if (!changed) return;  // same record (after a review): the images are already there
  const canvas = $("record-canvas");
  canvas.width = record.image.width;
  canvas.height = record.image.height;
  $("record-stage").style.setProperty("--ar", String(record.image.width / record.image.height));
  const image = $("record-image");
  if (record.image_url) image.src = record.image_url;
  else image.removeAttribute("src");
  const overlay = $("record-overlay");
  overlay.hidden = !record.overlay_url;
  if (record.overlay_url) overlay.src = record.overlay_url;
  else overlay.removeAttribute("src");
  drawPolygons();
}

function drawPolygons() {
  const canvas = $("record-canvas");
  const polygons = state.record ? state.record.regions.map((region) => region.polygon) : [];
  canvas.dataset.polygons = String(polygons.length);
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!$("record-show-polygons").checked) return;
  const width = lineWidthFor(canvas.width, canvas.height);
  strokePolygons(ctx, polygons, { colour: "#ffffff", width: width + 2 });
  strokePolygons(ctx, polygons, { colour: "#e0102f", width, fill: "rgba(224, 16, 47, 0.18)" });
}

function applyOpacity() {
  const value = Number($("record-opacity").value);
  $("record-overlay").style.opacity = String(value / 100);
  $("record-opacity-value").textContent = `${value} %`;
}

function showFacts(record) {
  const ms = (value) => (typeof value === "number" ? `${value.toFixed(0)} ms` : "—");
  const facts = [
    ["Fecha", localTime(record.created_at)],
    ["Score", fmt(record.score)],
    ["Umbral", `${fmt(record.threshold)}${record.mode ? ` (modo ${record.mode})` : ""}`],
    ["Área mín. NG", record.area_mm2_thr === null ? "—" : `${fmt(record.area_mm2_thr, 2)} mm²`],
    ["Regiones", String(record.n_regions)],
    ["Modelo", `${record.model_version || "—"} · banco ${record.bank_version || "—"}`],
    ["Pesos", `${record.backbone || "—"} · ${record.weights || "—"} · ${record.weights_fingerprint || "—"}`],
    ["Duración", ms(record.duration_ms)],
    ["Imagen", `${record.filename || "—"} · ${record.image.width}×${record.image.height} px`],
    ["Pieza · estación · operario", [record.part_id, record.station_id, record.operator_id]
      .map((value) => value || "—").join(" · ")],
    ["Petición", `${record.endpoint} · ${record.request_id || "—"}`],
  ];
  if (record.dataset_image) facts.push(["En el dataset", record.dataset_image]);
  $("record-facts").replaceChildren(...facts.map(([term, value]) => {
    const row = document.createElement("div");
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = term;
    dd.textContent = value;
    row.append(dt, dd);
    return row;
  }));
}

function showRegions(record) {
  $("record-regions-table").hidden = record.regions.length === 0;
  $("record-regions-body").replaceChildren(...record.regions.map((region, i) => {
    const row = document.createElement("tr");
    const area = typeof region.area_mm2 === "number" ? fmt(region.area_mm2, 2) : "—";
    for (const text of [String(i + 1), area, fmt(region.area_px, 0), fmt(region.max_score), region.bbox.join(", ")]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    return row;
  }));
}

function showReview(record, changed) {
  const { review } = record;
  $("record-review-state").textContent = review
    ? `· ${reviewText(record.verdict, review)}${review.reviewer ? ` por ${review.reviewer}` : ""}, `
      + `${localTime(review.reviewed_at)}`
    : "· sin revisar";
  const [ok, ng] = reviewChoices(record.verdict);
  $("record-review-ok").textContent = ok.text;
  $("record-review-ng").textContent = ng.text;
  const product = record.source === "product";
  const box = $("record-add-dataset");
  $("record-add-dataset-row").hidden = !product;
  box.disabled = !record.image_url;
  if (changed) {
    box.checked = false;
    $("record-comment").value = review && review.comment ? review.comment : "";
    showAlert($("record-review-error"), "");
    $("record-review-status").textContent = "";
  }
  $("record-add-dataset-help").textContent = !product ? ""
    : record.image_url ? "La imagen se guarda en el dataset OK o NG del producto (para reentrenar o calibrar)."
      : "Sin imagen guardada: no se puede añadir al dataset.";
}

async function review(label) {
  const record = state.record;
  if (!record) return;
  const reviewer = $("record-reviewer").value.trim();
  localStorage.setItem(REVIEWER_STORAGE, reviewer);
  const body = {
    label,
    comment: $("record-comment").value.trim() || null,
    reviewer: reviewer || null,
    add_to_dataset: record.source === "product" && $("record-add-dataset").checked,
  };
  showAlert($("record-review-error"), "");
  const buttons = [$("record-review-ok"), $("record-review-ng")];
  buttons.forEach((button) => { button.disabled = true; });
  try {
    const updated = await call("POST", `records/${record.id}/review`, body);
    $("record-add-dataset").checked = false;
    $("record-review-status").textContent = `Guardado: ${reviewText(updated.verdict, updated.review)}.`;
    if (state.record && state.record.id === updated.id) showRecord(updated);
    state.onReviewed(updated);
  } catch (error) {
    showAlert($("record-review-error"), error.message);
  } finally {
    buttons.forEach((button) => { button.disabled = false; });
  }
}
