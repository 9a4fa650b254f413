// Seed 004's inspect step (POST /infer) and the viewer where the operator draws the shape.
// The shape is in image pixels; the heatmap comes back as a PNG the size of the image.

import { call } from "./ui-api.js";
import {
  $, fileSummary, fmt, loadImage, releaseImage, setVerdict, setupDropzone, showAlert,
} from "./ui-common.js";
import { ShapeEditor, fits, fullRect } from "./ui-shapes.js";

export let editor = null;
const state = { product: null, inferFile: null, inferImage: null, shown: null };

export function initProductInspect({ product }) {
  state.product = product;
  editor = new ShapeEditor($("teach-canvas"), { onChange: showShape });
  for (const radio of document.querySelectorAll('input[name="teach-tool"]')) {
    radio.addEventListener("change", () => {
      editor.tool = radio.value;
      $("teach-inner").disabled = radio.value !== "annulus";
    });
  }
  $("teach-inner").addEventListener("input", () => {
    editor.innerRatio = Math.min(0.95, Math.max(0.05, Number($("teach-inner").value) / 100));
  });
  $("teach-shape-json").addEventListener("change", typedShape);
  $("teach-shape-reset").addEventListener("click", () => {
    if (editor.image) editor.setShape(fullRect(editor.image.naturalWidth, editor.image.naturalHeight), false);
  });
  $("teach-heat-opacity").addEventListener("input", () => {
    editor.heatAlpha = Number($("teach-heat-opacity").value) / 100;
    $("teach-heat-opacity-value").textContent = `${$("teach-heat-opacity").value} %`;
    editor.render();
  });
  setupDropzone($("teach-img-drop"), $("teach-img-file"), (files) => selectInferFile(files[0]));
  $("teach-infer").addEventListener("click", infer);
}

/** Show an image in the viewer; the shape is kept when it still fits, else it becomes the whole image. */
export function showInViewer(image, caption, isInspection) {
  if (state.shown && state.shown !== state.inferImage) releaseImage(state.shown);
  state.shown = image;
  editor.setImage(image);
  $("teach-canvas").hidden = false;
  $("teach-viewer-empty").hidden = true;
  $("teach-viewer-caption").textContent =
    `${caption} · ${image.naturalWidth} × ${image.naturalHeight} px · arrastra con el ratón para dibujar la forma`;
  if (!isInspection) $("teach-infer-result").hidden = true;
}

/** The shape for an image of this size: the drawn one when it fits, else the whole image. */
export function shapeFor(width, height) {
  return editor.userDrawn && fits(editor.shape, width, height) ? editor.shape : fullRect(width, height);
}

function showShape(shape) {
  const field = $("teach-shape-json");
  field.value = JSON.stringify(shape);
  field.removeAttribute("aria-invalid");
  $("teach-shape-error").textContent = "";
  $("teach-shape-kind").textContent = describeShape(shape);
}

function describeShape(shape) {
  if (shape.kind === "rect") return `Rectángulo ${shape.w} × ${shape.h} px en (${shape.x}, ${shape.y})`;
  if (shape.kind === "circle") return `Círculo r = ${shape.r} px en (${shape.cx}, ${shape.cy})`;
  return `Anillo r ${shape.r_inner}–${shape.r_outer} px en (${shape.cx}, ${shape.cy})`;
}

function typedShape() {
  const field = $("teach-shape-json");
  let shape;
  try {
    shape = JSON.parse(field.value);
  } catch {
    shape = null;
  }
  const image = editor.image;
  const valid = shape && ["rect", "circle", "annulus"].includes(shape.kind)
    && (!image || fits(shape, image.naturalWidth, image.naturalHeight));
  if (!valid) {
    field.setAttribute("aria-invalid", "true");
    $("teach-shape-error").textContent = "Forma no válida o fuera de la imagen.";
    return;
  }
  editor.setShape(shape);
}

async function selectInferFile(file) {
  state.inferFile = file;
  $("teach-img-summary").textContent = fileSummary([file]);
  showAlert($("teach-infer-error"), "");
  $("teach-infer-result").hidden = true;
  releaseImage(state.inferImage);
  state.inferImage = null;
  try {
    state.inferImage = await loadImage(file);
    showInViewer(state.inferImage, "imagen a inspeccionar", true);
  } catch (error) {
    showAlert($("teach-infer-error"), `${error.message}; el servidor dirá si es una imagen válida.`);
  }
}

async function infer() {
  showAlert($("teach-infer-error"), "");
  const ids = state.product();
  if (!ids) return;
  if (!state.inferFile) {
    showAlert($("teach-infer-error"), "Elige la imagen a inspeccionar.");
    return;
  }
  if (state.inferImage && state.shown !== state.inferImage) showInViewer(state.inferImage, "imagen a inspeccionar", true);
  const image = state.inferImage;
  const shape = image ? shapeFor(image.naturalWidth, image.naturalHeight) : editor.shape || fullRect(1, 1);
  const body = new FormData();
  for (const [name, value] of Object.entries(ids)) if (value !== null) body.append(name, String(value));
  body.append("image", state.inferFile, state.inferFile.name);
  body.append("shape", JSON.stringify(shape));
  setVerdict($("teach-verdict"), "busy", "Analizando…");
  $("teach-step-infer").setAttribute("aria-busy", "true");
  $("teach-infer").disabled = true;
  try {
    const data = await call("POST", "infer", body);
    await showInference(data);
  } catch (error) {
    setVerdict($("teach-verdict"), "error", "Sin resultado");
    showAlert($("teach-infer-error"), error.message);
  } finally {
    $("teach-step-infer").setAttribute("aria-busy", "false");
    $("teach-infer").disabled = false;
  }
}

async function showInference(data) {
  const heat = new Image();
  heat.src = `data:image/png;base64,${data.heatmap_png_base64}`;
  await heat.decode().catch(() => null);
  editor.setResult(heat, data.regions, data.area_mm2_thr);
  setVerdict($("teach-verdict"), data.verdict);
  $("teach-verdict-text").textContent = explain(data);
  $("teach-score").textContent = fmt(data.score);
  $("teach-thr").textContent = fmt(data.threshold);
  $("teach-area-thr").textContent = `${fmt(data.area_mm2_thr, 2)} mm²`;
  $("teach-regions-count").textContent = String(data.regions.length);
  $("teach-regions-body").replaceChildren(...data.regions.map((region, i) => regionRow(region, i, data.area_mm2_thr)));
  $("teach-regions-table").hidden = data.regions.length === 0;
  $("teach-infer-result").hidden = false;
}

function explain(data) {
  const area = `${fmt(data.area_mm2_thr, 2)} mm²`;
  const big = data.regions.filter((region) => region.area_mm2 >= data.area_mm2_thr);
  if (data.is_ng) return `score ${fmt(data.score)} > umbral ${fmt(data.threshold)} y ${big.length} región(es) ≥ ${area}`;
  if (data.score > data.threshold) return `score sobre el umbral, pero ninguna región alcanza ${area}`;
  return `score ${fmt(data.score)} ≤ umbral ${fmt(data.threshold)}`;
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
