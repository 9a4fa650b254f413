// Pure threshold arithmetic of the "Inspeccionar" tab. No DOM access.

/** The threshold /predict will use: the manual one (?thr=) when set, else base × the mode's factor. */
export function expectedThreshold({ base, factor, manual }) {
  if (manual !== null && manual !== undefined) return manual;
  return typeof base === "number" && Number.isFinite(base) ? base * factor : null;
}

/** The smallest of 1, 2, 2.5, 5 × a power of ten that is ≥ `value` (1 for anything not > 0). */
export function niceCeil(value) {
  if (!(value > 0) || !Number.isFinite(value)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 2.5, 5].map((m) => m * power).find((candidate) => candidate >= value) ?? 10 * power;
}
