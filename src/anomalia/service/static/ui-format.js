// Pure text helpers of the page: numbers, file lists and score lists. No DOM access here, so
// tests/e2e/test_ui_helpers.py runs them in Chromium as they are.

/** `value` with `digits` decimals, or "—" when it is not a finite number. */
export function fmt(value, digits = 4) {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "—";
}

/** A difference with its sign: "+0.1250" above zero, "-0.0300" below, "—" when not a number. */
export function signed(value, digits = 4) {
  return `${value > 0 ? "+" : ""}${fmt(value, digits)}`;
}

/** "pieza.png · 12 KB" for one file, "3 imágenes · 1.2 MB" for several (anything with name and size). */
export function fileSummary(files) {
  const bytes = files.reduce((sum, file) => sum + file.size, 0);
  const size = bytes > 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MB` : `${Math.ceil(bytes / 1024)} KB`;
  return files.length === 1 ? `${files[0].name} · ${size}` : `${files.length} imágenes · ${size}`;
}

/** Scores as the score boxes show them: "0.12345, 0.23456". */
export function formatScores(scores) {
  return scores.map((score) => score.toFixed(5)).join(", ");
}

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/** The numbers of a hand-edited score list (commas, semicolons or spaces between them).
 * Throws on the first part that is not a plain decimal number ("abc", "NaN", "0x10", "Infinity"). */
export function parseScores(text) {
  const parts = text.split(/[\s,;]+/).filter(Boolean);
  const bad = parts.find((part) => !DECIMAL.test(part) || !Number.isFinite(Number(part)));
  if (bad !== undefined) throw new Error(`«${bad}» no es un número`);
  return parts.map(Number);
}
