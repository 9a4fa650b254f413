// Small DOM helpers shared by every tab: drop zones, image loading, polygons, alerts, verdicts.
// (Text formatting is ui-format.js.)

export const $ = (id) => document.getElementById(id);

/** A file input wrapped in a drop zone: click, keyboard (the input keeps focus) or drag-and-drop. */
export function setupDropzone(zone, input, onFiles) {
  const accept = (files) => {
    const list = Array.from(files || []);
    if (list.length) onFiles(input.multiple ? list : list.slice(0, 1));
  };
  input.addEventListener("change", () => accept(input.files));
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  for (const type of ["dragleave", "dragend"]) zone.addEventListener(type, () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    accept(event.dataTransfer && event.dataTransfer.files);
  });
}

/** Decode a File in the browser; rejects with a readable message when it is not an image. */
export function loadImage(file) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    const url = URL.createObjectURL(file);
    image.onload = () => resolve(image);
    image.onerror = () => {
      URL.revokeObjectURL(url);
      reject(new Error(`el navegador no puede mostrar «${file.name}»`));
    };
    image.src = url;
  });
}

export function releaseImage(image) {
  if (image && image.src.startsWith("blob:")) URL.revokeObjectURL(image.src);
}

/** Draw closed polygons given in image pixels on a canvas sized to the image. */
export function strokePolygons(ctx, polygons, { colour = "#ff1744", width = 2, fill = null } = {}) {
  ctx.save();
  ctx.lineJoin = "round";
  ctx.lineWidth = width;
  ctx.strokeStyle = colour;
  for (const polygon of polygons) {
    if (!polygon.length) continue;
    ctx.beginPath();
    polygon.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.closePath();
    if (fill) {
      ctx.fillStyle = fill;
      ctx.fill();
    }
    ctx.stroke();
  }
  ctx.restore();
}

/** Line width that stays visible whatever the image's resolution. */
export function lineWidthFor(width, height) {
  return Math.max(2, Math.round(Math.max(width, height) / 220));
}

/** Show a message in an alert box (role=alert), or hide it when `message` is empty. */
export function showAlert(box, message, kind = "error") {
  box.hidden = !message;
  box.textContent = message || "";
  box.dataset.kind = kind;
}

/** Set a verdict badge: "OK", "NG", "busy" or "" (waiting). */
export function setVerdict(badge, verdict, text) {
  badge.dataset.verdict = verdict || "none";
  badge.textContent = text || verdict || "—";
  badge.setAttribute("aria-label", verdict === "OK" || verdict === "NG" ? `Veredicto: ${verdict}` : badge.textContent);
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Save a Blob as a file named `name` (through a blob: URL, allowed by the page's policy). */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = Object.assign(document.createElement("a"), { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
