// The inspection shape (rect, circle, annulus in image pixels), drawn with the mouse (or moved with
// the keyboard) on a canvas that also shows the heatmap and the regions found. Owns the `shapes-*`
// ids; the geometry is pure functions, and the editor itself stays inside this module.

import { $, lineWidthFor, strokePolygons } from "./ui-common.js";

/** The numeric fields of each shape kind the page can draw (the server's /infer `shape` kinds);
 * the one list of kinds in the page's code (frozen: shared, never changed). */
export const SHAPE_FIELDS = Object.freeze({
  rect: Object.freeze(["x", "y", "w", "h"]),
  circle: Object.freeze(["cx", "cy", "r"]),
  annulus: Object.freeze(["cx", "cy", "r_inner", "r_outer"]),
});

const MIN_DRAG = 3;

export function fullRect(width, height) {
  return { kind: "rect", x: 0, y: 0, w: width, h: height };
}

/** Whether `shape` is a valid shape inside a width x height image (the server answers 400 otherwise). */
export function fits(shape, width, height) {
  if (!shape) return false;
  if (shape.kind === "rect") {
    return shape.w > 0 && shape.h > 0 && shape.x >= 0 && shape.y >= 0 && shape.x + shape.w <= width
      && shape.y + shape.h <= height;
  }
  if (shape.kind === "annulus" && !(shape.r_inner >= 0 && shape.r_inner < shape.r_outer)) return false;
  const r = shape.kind === "circle" ? shape.r : shape.r_outer;
  return r > 0 && shape.cx - r >= 0 && shape.cy - r >= 0 && shape.cx + r <= width && shape.cy + r <= height;
}

/** A shape typed as JSON: an object of a known kind whose fields are all finite numbers, else null. */
export function parseShape(text) {
  let shape;
  try {
    shape = JSON.parse(text);
  } catch {
    return null;
  }
  if (!shape || typeof shape !== "object" || !Object.hasOwn(SHAPE_FIELDS, shape.kind)) return null;
  return SHAPE_FIELDS[shape.kind].every((name) => Number.isFinite(shape[name])) ? shape : null;
}

/** "Rectángulo 40 × 30 px en (5, 6)", as the viewer describes a shape. */
export function describeShape(shape) {
  if (shape.kind === "rect") return `Rectángulo ${shape.w} × ${shape.h} px en (${shape.x}, ${shape.y})`;
  if (shape.kind === "circle") return `Círculo r = ${shape.r} px en (${shape.cx}, ${shape.cy})`;
  return `Anillo r ${shape.r_inner}–${shape.r_outer} px en (${shape.cx}, ${shape.cy})`;
}

/** The `tool` shape dragged from `[x0, y0]` to `[x1, y1]` on a width x height image: a rectangle
 * between the two points, or a circle / annulus centred on the first one that stays inside the
 * image (inner radius = `innerRatio` × outer); null when the drag is shorter than 3 px. */
export function shapeFromDrag(tool, [x0, y0], [x1, y1], { width, height, innerRatio = 0.5 }) {
  if (tool === "rect") {
    const w = Math.abs(x1 - x0);
    const h = Math.abs(y1 - y0);
    return w < MIN_DRAG || h < MIN_DRAG ? null : { kind: "rect", x: Math.min(x0, x1), y: Math.min(y0, y1), w, h };
  }
  const room = Math.min(x0, y0, width - x0, height - y0);
  const r = Math.floor(Math.min(Math.hypot(x1 - x0, y1 - y0), room));
  if (r < MIN_DRAG) return null;
  if (tool === "circle") return { kind: "circle", cx: x0, cy: y0, r };
  const inner = Math.max(1, Math.round(r * innerRatio));
  return inner >= r ? null : { kind: "annulus", cx: x0, cy: y0, r_inner: inner, r_outer: r };
}

const MOVES = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
const GROWS = { "+": 1, "=": 1, "-": -1, _: -1 };

/** `shape` after a key: arrows move it, + and - resize it, by `step` px; null for any other key. */
export function shapeAfterKey(shape, key, step) {
  const next = { ...shape };
  if (MOVES[key]) {
    const [dx, dy] = MOVES[key].map((unit) => unit * step);
    if (next.kind === "rect") { next.x += dx; next.y += dy; } else { next.cx += dx; next.cy += dy; }
    return next;
  }
  if (GROWS[key] === undefined) return null;
  const grow = GROWS[key] * step;
  if (next.kind === "rect") {
    next.w += grow; next.h += grow;
  } else if (next.kind === "circle") {
    next.r += grow;
  } else {
    next.r_outer += grow;
    next.r_inner = Math.max(0, Math.min(next.r_inner + grow, next.r_outer - 1));
  }
  return next;
}

const clamp = (value, low, high) => Math.min(high, Math.max(low, value));

class ShapeEditor {
  constructor(canvas, { onChange }) {
    this.canvas = canvas;
    this.onChange = onChange;
    this.image = null;
    this.heatmap = null;
    this.heatAlpha = 0.5;
    this.regions = [];
    this.areaThr = 0;
    this.shape = null;
    this.userDrawn = false;
    this.tool = "rect";
    this.innerRatio = 0.5;
    this.drag = null;
    canvas.addEventListener("pointerdown", (event) => this.start(event));
    canvas.addEventListener("pointermove", (event) => this.move(event));
    canvas.addEventListener("pointerup", (event) => this.end(event));
    canvas.addEventListener("pointercancel", () => { this.drag = null; this.render(); });
    canvas.addEventListener("keydown", (event) => this.key(event));
  }

  setImage(image) {
    this.image = image;
    this.heatmap = null;
    this.regions = [];
    const { naturalWidth: w, naturalHeight: h } = image;
    if (!fits(this.shape, w, h)) this.setShape(fullRect(w, h), false);
    this.render();
  }

  setShape(shape, userDrawn = true) {
    this.shape = shape;
    this.userDrawn = userDrawn;
    this.render();
    this.onChange(shape);
  }

  setResult(heatmap, regions, areaThr) {
    this.heatmap = heatmap;
    this.regions = regions || [];
    this.areaThr = areaThr || 0;
    this.render();
  }

  toImage(event) {
    const box = this.canvas.getBoundingClientRect();
    const x = ((event.clientX - box.left) * this.canvas.width) / box.width;
    const y = ((event.clientY - box.top) * this.canvas.height) / box.height;
    return [clamp(Math.round(x), 0, this.canvas.width), clamp(Math.round(y), 0, this.canvas.height)];
  }

  dragged(from, to) {
    return shapeFromDrag(this.tool, from, to,
      { width: this.canvas.width, height: this.canvas.height, innerRatio: this.innerRatio });
  }

  start(event) {
    if (!this.image || event.button !== 0) return;
    this.canvas.setPointerCapture(event.pointerId);
    this.canvas.focus();
    this.drag = { from: this.toImage(event), shape: null };
  }

  move(event) {
    if (!this.drag) return;
    this.drag.shape = this.dragged(this.drag.from, this.toImage(event));
    this.render();
  }

  end(event) {
    if (!this.drag) return;
    const shape = this.dragged(this.drag.from, this.toImage(event));
    this.drag = null;
    if (shape) this.setShape(shape);
    else this.render();
  }

  /** Arrows move the shape, + and - resize it (Shift: 10 px steps). */
  key(event) {
    if (!this.shape || !this.image) return;
    const next = shapeAfterKey(this.shape, event.key, event.shiftKey ? 10 : 1);
    if (!next) return;
    event.preventDefault();
    if (fits(next, this.canvas.width, this.canvas.height)) this.setShape(next);
  }

  render() {
    const { canvas, image } = this;
    if (!image) return;
    canvas.width = image.naturalWidth;
    canvas.height = image.naturalHeight;
    canvas.style.setProperty("--ar", String(image.naturalWidth / image.naturalHeight));
    const ctx = canvas.getContext("2d");
    ctx.drawImage(image, 0, 0);
    if (this.heatmap) {
      ctx.globalAlpha = this.heatAlpha;
      ctx.drawImage(this.heatmap, 0, 0, canvas.width, canvas.height);
      ctx.globalAlpha = 1;
    }
    const shape = (this.drag && this.drag.shape) || this.shape;
    if (shape) this.drawShape(ctx, shape, Boolean(this.drag));
    this.drawRegions(ctx);
    canvas.dataset.shape = JSON.stringify(this.shape);
  }

  drawShape(ctx, shape, dragging) {
    const path = new Path2D();
    if (shape.kind === "rect") path.rect(shape.x, shape.y, shape.w, shape.h);
    else {
      const outer = shape.kind === "circle" ? shape.r : shape.r_outer;
      path.arc(shape.cx, shape.cy, outer, 0, 2 * Math.PI);
      if (shape.kind === "annulus") {
        path.moveTo(shape.cx + shape.r_inner, shape.cy);
        path.arc(shape.cx, shape.cy, shape.r_inner, 0, 2 * Math.PI);
      }
    }
    const dim = new Path2D();
    dim.rect(0, 0, ctx.canvas.width, ctx.canvas.height);
    dim.addPath(path);
    ctx.save();
    ctx.fillStyle = "rgba(10, 20, 35, 0.45)";
    ctx.fill(dim, "evenodd");
    const width = lineWidthFor(ctx.canvas.width, ctx.canvas.height);
    ctx.lineWidth = width + 2;
    ctx.strokeStyle = "rgba(0, 0, 0, 0.7)";
    ctx.stroke(path);
    ctx.lineWidth = width;
    ctx.strokeStyle = "#00e5ff";
    if (dragging) ctx.setLineDash([6, 4]);
    ctx.stroke(path);
    ctx.restore();
  }

  drawRegions(ctx) {
    const width = lineWidthFor(ctx.canvas.width, ctx.canvas.height);
    this.regions.forEach((region, index) => {
      const big = region.area_mm2 >= this.areaThr;
      strokePolygons(ctx, [region.polygon], { colour: big ? "#ff1744" : "#ffb300", width,
        fill: big ? "rgba(255, 23, 68, 0.2)" : null });
      const [x, y] = region.bbox;
      ctx.save();
      ctx.font = `bold ${Math.max(12, width * 6)}px system-ui, sans-serif`;
      ctx.textBaseline = "top";
      ctx.lineWidth = 3;
      ctx.strokeStyle = "black";
      ctx.strokeText(String(index + 1), x + 2, y + 2);
      ctx.fillStyle = big ? "#ff8a80" : "#ffe082";
      ctx.fillText(String(index + 1), x + 2, y + 2);
      ctx.restore();
    });
  }
}

let editor = null;

/** Wire the viewer: the shape tools, the typed JSON, "Imagen completa" and the heatmap opacity. */
export function initShapes() {
  editor = new ShapeEditor($("shapes-canvas"), { onChange: showShape });
  for (const radio of document.querySelectorAll('input[name="shapes-tool"]')) {
    radio.addEventListener("change", () => {
      editor.tool = radio.value;
      $("shapes-inner").disabled = radio.value !== "annulus";
    });
  }
  $("shapes-inner").addEventListener("input", () => {
    editor.innerRatio = clamp(Number($("shapes-inner").value) / 100, 0.05, 0.95);
  });
  $("shapes-json").addEventListener("change", typedShape);
  $("shapes-reset").addEventListener("click", () => {
    if (editor.image) editor.setShape(fullRect(editor.image.naturalWidth, editor.image.naturalHeight), false);
  });
  $("shapes-heat-opacity").addEventListener("input", () => {
    editor.heatAlpha = Number($("shapes-heat-opacity").value) / 100;
    $("shapes-heat-opacity-value").textContent = `${$("shapes-heat-opacity").value} %`;
    editor.render();
  });
}

/** Show `image` in the viewer; the shape is kept when it still fits, else it becomes the whole image. */
export function showImage(image, caption) {
  editor.setImage(image);
  $("shapes-canvas").hidden = false;
  $("shapes-empty").hidden = true;
  $("shapes-caption").textContent =
    `${caption} · ${image.naturalWidth} × ${image.naturalHeight} px · arrastra con el ratón para dibujar la forma`;
}

/** Draw an inspection's heatmap (an image) and regions over the shown image. */
export function showResult(heatmap, regions, areaThr) {
  editor.setResult(heatmap, regions, areaThr);
}

/** The shape the operator drew, when it fits a width x height image; else null. */
export function drawnShapeFitting(width, height) {
  return editor.userDrawn && fits(editor.shape, width, height) ? editor.shape : null;
}

/** The shape for an image of this size: the drawn one when it fits, else the whole image. */
export function shapeFor(width, height) {
  return drawnShapeFitting(width, height) || fullRect(width, height);
}

/** The viewer's current shape (null before any image was shown). */
export function currentShape() {
  return editor.shape;
}

function showShape(shape) {
  const field = $("shapes-json");
  field.value = JSON.stringify(shape);
  field.removeAttribute("aria-invalid");
  $("shapes-error").textContent = "";
  $("shapes-kind").textContent = describeShape(shape);
}

function typedShape() {
  const field = $("shapes-json");
  const shape = parseShape(field.value);
  const image = editor.image;
  if (!shape || (image && !fits(shape, image.naturalWidth, image.naturalHeight))) {
    field.setAttribute("aria-invalid", "true");
    $("shapes-error").textContent = "Forma no válida o fuera de la imagen.";
    return;
  }
  editor.setShape(shape);
}
