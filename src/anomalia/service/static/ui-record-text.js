// Pure text of the "Historial" tab: product names, review states, dates and the /records query.
// No DOM access, so tests/e2e/test_ui_helpers.py runs them in Chromium as they are.

/** "carcasa / tornillo" for a product record, "modelo único" for /predict's model (source=artifacts). */
export function productText({ source, role_id: role, roi_id: roi }) {
  if (source === "artifacts") return "modelo único";
  return [role, roi].filter(Boolean).join(" / ") || "—";
}

/** What the operator said about a verdict: the label ("ok"/"ng") read against the verdict ("OK"/"NG"). */
export function reviewText(verdict, review) {
  if (!review) return "Sin revisar";
  if (review.label === "ok") return verdict === "NG" ? "OK (falso NG)" : "OK confirmado";
  return verdict === "NG" ? "NG confirmado" : "NG no detectado";
}

/** The two review buttons of a record with this verdict: the label sent and the button's text. */
export function reviewChoices(verdict) {
  return [{ label: "ok", text: reviewText(verdict, { label: "ok" }) },
          { label: "ng", text: reviewText(verdict, { label: "ng" }) }];
}

/** A `datetime-local` value (local time, "2024-05-01T13:45") as ISO 8601 in UTC; "" for "".
 * Throws when the browser cannot read it as a date. */
export function isoFromLocal(value) {
  if (!value) return "";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new Error(`«${value}» no es una fecha`);
  return date.toISOString();
}

const pad = (n) => String(n).padStart(2, "0");

/** An ISO 8601 instant as local "2024-05-01 13:45:07" (the operator's clock); "—" when unreadable. */
export function localTime(iso) {
  const date = new Date(iso);
  if (!iso || Number.isNaN(date.getTime())) return "—";
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} `
    + `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** The query string of `filters` (name → value): empty or blank values left out, the rest trimmed,
 * `extra` (limit, cursor, bucket…) appended as given. */
export function recordQuery(filters, extra = {}) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries({ ...filters, ...extra })) {
    if (value === null || value === undefined) continue;
    const text = String(value).trim();
    if (text) params.set(name, text);
  }
  return params.toString();
}
