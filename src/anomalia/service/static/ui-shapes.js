// The inspection shape of seed 004 (rect, circle, annulus in image pixels), drawn with the mouse
// (or moved with the keyboard) on a canvas that also shows the heatmap and the regions found.

import { lineWidthFor, strokePolygons } from "./ui-common.js";

const MIN_DRAG = 3;

export function fullRect(width, height) {
  return { kind: "rect", x: 0, y: 0, w: width, h: height };
}

/** Whether `shape` lies inside a width x height image (the server answers 400 otherwise). */
export function fits(shape, width, height) {
  if (!shape) return false;
  if (shape.kind === "rect") {
    return shape.w > 0 && shape.h > 0 && shape.x >= 0 && shape.y >= 0 && shape.x + shape.w <= width
      && shape.y + shape.h <= height;
  }
  const r = shape.kind === "circle" ? shape.r : shape.r_outer;
  return r > 0 && shape.cx - r >= 0 && shape.cy - r >= 0 && shape.cx + r <= width && shape.cy + r <= height;
}

const clamp = (value, low, high) => Math.min(high, Math.max(low, value));

export class ShapeEditor {
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

  start(event) {
    if (!this.image || event.button !== 0) return;
    this.canvas.setPointerCapture(event.pointerId);
    this.canvas.focus();
    this.drag = { from: this.toImage(event), shape: null };
  }

  move(event) {
    if (!this.drag) return;
    this.drag.shape = this.shapeFromDrag(this.drag.from, this.toImage(event));
    this.render();
  }

  end(event) {
    if (!this.drag) return;
    const shape = this.shapeFromDrag(this.drag.from, this.toImage(event));
    this.drag = null;
    if (shape) this.setShape(shape);
    else this.render();
  }

  shapeFromDrag([x0, y0], [x1, y1]) {
    const { width, height } = this.canvas;
    if (this.tool === "rect") {
      const w = Math.abs(x1 - x0);
      const h = Math.abs(y1 - y0);
      return w < MIN_DRAG || h < MIN_DRAG ? null : { kind: "rect", x: Math.min(x0, x1), y: Math.min(y0, y1), w, h };
    }
    const room = Math.min(x0, y0, width - x0, height - y0);
    const r = Math.floor(Math.min(Math.hypot(x1 - x0, y1 - y0), room));
    if (r < MIN_DRAG) return null;
    if (this.tool === "circle") return { kind: "circle", cx: x0, cy: y0, r };
    const inner = Math.max(1, Math.round(r * this.innerRatio));
    return inner >= r ? null : { kind: "annulus", cx: x0, cy: y0, r_inner: inner, r_outer: r };
  }

  /** Arrows move the shape, + and - resize it (Shift: 10 px steps). */
  key(event) {
    if (!this.shape || !this.image) return;
    const step = event.shiftKey ? 10 : 1;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    const grow = { "+": step, "=": step, "-": -step, _: -step }[event.key];
    if (!moves[event.key] && grow === undefined) return;
    event.preventDefault();
    const next = { ...this.shape };
    if (moves[event.key]) {
      const [dx, dy] = moves[event.key];
      if (next.kind === "rect") { next.x += dx; next.y += dy; } else { next.cx += dx; next.cy += dy; }
    } else if (next.kind === "rect") {
      next.w += grow; next.h += grow;
    } else if (next.kind === "circle") {
      next.r += grow;
    } else {
      next.r_outer += grow;
      next.r_inner = Math.max(0, Math.min(next.r_inner + grow, next.r_outer - 1));
    }
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
