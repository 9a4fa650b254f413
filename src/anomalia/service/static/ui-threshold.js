// Pure threshold arithmetic of the "Inspeccionar" tab. The modes and their factors are the
// server's (GET /health `mode_factors`); nothing here knows a factor. No DOM access.

/** The choices for `mode_factors` from /health: normal (no mode, the base threshold) first, then
 * each server mode with a finite positive factor, in the server's order. */
export function modeOptions(modeFactors) {
  const options = [{ value: "", factor: 1 }];
  if (!modeFactors || typeof modeFactors !== "object" || Array.isArray(modeFactors)) return options;
  for (const [value, factor] of Object.entries(modeFactors)) {
    if (value && typeof factor === "number" && Number.isFinite(factor) && factor > 0) options.push({ value, factor });
  }
  return options;
}

/** How a factor reads next to its mode: "× 1", "−20 %", "+20 %". */
export function factorText(factor) {
  const percent = Math.round((factor - 1) * 100);
  if (percent === 0) return "× 1";
  return `${percent < 0 ? "−" : "+"}${Math.abs(percent)} %`;
}

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
