// The product tab's inspect step (POST /infer): the image to inspect, the verdict and the regions.
// The shape comes from the viewer (ui-shapes.js), in image pixels; the heatmap comes back as a PNG
// the size of the image. Owns the `product-inspect-*` ids.

import { call } from "./ui-api.js";
import { $, loadImage, releaseImage, setVerdict, setupDropzone, showAlert } from "./ui-common.js";
import { fileSummary, fmt } from "./ui-format.js";
import { currentShape, fullRect, shapeFor, showImage, showResult } from "./ui-shapes.js";

const CAPTION = "imagen a inspeccionar";
const state = { product: null, inferFile: null, inferImage: null, shown: null };

/** `product`: returns the validated product fields, or null (it then tells the operator why). */
export function initProductInspect({ product }) {
  state.product = product;
  setupDropzone($("product-inspect-drop"), $("product-inspect-file"), (files) => selectInferFile(files[0]));
  $("product-inspect-run").addEventListener("click", infer);
}

/** Show an image in the viewer; any other image than the one to inspect hides the last result. */
export function showInViewer(image, caption, isInspection) {
  if (state.shown && state.shown !== state.inferImage) releaseImage(state.shown);
  state.shown = image;
  showImage(image, caption);
  if (!isInspection) $("product-inspect-result").hidden = true;
}

/** One line on why /infer answered this verdict (score against threshold, regions against area). */
export function explainVerdict(data) {
  const area = `${fmt(data.area_mm2_thr, 2)} mm²`;
  const big = data.regions.filter((region) => region.area_mm2 >= data.area_mm2_thr);
  if (data.is_ng) return `score ${fmt(data.score)} > umbral ${fmt(data.threshold)} y ${big.length} región(es) ≥ ${area}`;
  if (data.score > data.threshold) return `score sobre el umbral, pero ninguna región alcanza ${area}`;
  return `score ${fmt(data.score)} ≤ umbral ${fmt(data.threshold)}`;
}

async function selectInferFile(file) {
  state.inferFile = file;
  $("product-inspect-summary").textContent = fileSummary([file]);
  showAlert($("product-inspect-error"), "");
  $("product-inspect-result").hidden = true;
  releaseImage(state.inferImage);
  state.inferImage = null;
  try {
    state.inferImage = await loadImage(file);
    showInViewer(state.inferImage, CAPTION, true);
  } catch (error) {
    showAlert($("product-inspect-error"), `${error.message}; el servidor dirá si es una imagen válida.`);
  }
}

async function infer() {
  showAlert($("product-inspect-error"), "");
  const ids = state.product();
  if (!ids) return;
  if (!state.inferFile) {
    showAlert($("product-inspect-error"), "Elige la imagen a inspeccionar.");
    return;
  }
  if (state.inferImage && state.shown !== state.inferImage) showInViewer(state.inferImage, CAPTION, true);
  const image = state.inferImage;
  const shape = image ? shapeFor(image.naturalWidth, image.naturalHeight) : currentShape() || fullRect(1, 1);
  const body = new FormData();
  for (const [name, value] of Object.entries(ids)) if (value !== null) body.append(name, String(value));
  body.append("image", state.inferFile, state.inferFile.name);
  body.append("shape", JSON.stringify(shape));
  setVerdict($("product-inspect-verdict"), "busy", "Analizando…");
  $("product-inspect-step").setAttribute("aria-busy", "true");
  $("product-inspect-run").disabled = true;
  try {
    const data = await call("POST", "infer", body);
    await showInference(data);
  } catch (error) {
    setVerdict($("product-inspect-verdict"), "error", "Sin resultado");
    showAlert($("product-inspect-error"), error.message);
  } finally {
    $("product-inspect-step").setAttribute("aria-busy", "false");
    $("product-inspect-run").disabled = false;
  }
}

async function showInference(data) {
  const heat = new Image();
  heat.src = `data:image/png;base64,${data.heatmap_png_base64}`;
  await heat.decode().catch(() => null);
  showResult(heat, data.regions, data.area_mm2_thr);
  setVerdict($("product-inspect-verdict"), data.verdict);
  $("product-inspect-verdict-text").textContent = explainVerdict(data);
  $("product-inspect-score").textContent = fmt(data.score);
  $("product-inspect-threshold").textContent = fmt(data.threshold);
  $("product-inspect-area-thr").textContent = `${fmt(data.area_mm2_thr, 2)} mm²`;
  $("product-inspect-regions-count").textContent = String(data.regions.length);
  $("product-inspect-regions-body").replaceChildren(
    ...data.regions.map((region, i) => regionRow(region, i, data.area_mm2_thr)));
  $("product-inspect-regions-table").hidden = data.regions.length === 0;
  $("product-inspect-result").hidden = false;
}

function regionRow(region, index, areaThr) {
  const row = document.createElement("tr");
  if (region.area_mm2 >= areaThr) row.className = "counts";
  const cells = [String(index + 1), fmt(region.area_mm2, 2), fmt(region.area_px, 0), fmt(region.max_score),
                 region.bbox.join(", ")];
  for (const text of cells) {
    const cell = document.createElement("td");
    cell.textContent = text;
    row.append(cell);
  }
  return row;
}
