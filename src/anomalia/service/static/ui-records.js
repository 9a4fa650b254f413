// "Historial" tab: the filterable table of inspection records (GET /records, newest first, paged with
// next_cursor) and its CSV export (GET /records.csv). The detail is ui-record-detail.js, the charts
// ui-stats-chart.js. Owns the `records-*` ids.

import { call, fetchBlob } from "./ui-api.js";
import { $, debounce, saveBlob, showAlert } from "./ui-common.js";
import { fmt } from "./ui-format.js";
import { initRecordDetail, showRecord } from "./ui-record-detail.js";
import { isoFromLocal, localTime, productText, recordQuery, reviewText } from "./ui-record-text.js";
import { initStats, showStats } from "./ui-stats-chart.js";

const PAGE_SIZE = 50;
const state = { filters: {}, next: null, records: new Map(), selected: null, ticket: 0 };

export function initRecords() {
  initRecordDetail({ onReviewed });
  initStats();
  const form = $("records-filters");
  const reload = debounce(() => refreshRecords(), 150);
  form.addEventListener("submit", (event) => { event.preventDefault(); reload(); });
  form.addEventListener("change", reload);  // a select, or a text field left or confirmed with Enter
  form.addEventListener("reset", () => setTimeout(reload));  // after the browser has emptied the fields
  $("records-more").addEventListener("click", () => load(false));
  $("records-csv").addEventListener("click", downloadCsv);
  $("records-body").addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-id]");
    if (row) select(Number(row.dataset.id));
  });
}

/** Fill the product and region suggestions from /health's ``rois``. */
export function setRecordProducts(rois) {
  const pairs = Object.entries(rois || {}).flatMap(([role, list]) => list.map((roi) => [role, roi]));
  const option = (value) => new Option(value, value);
  $("records-roles").replaceChildren(...[...new Set(pairs.map(([role]) => role))].map(option));
  $("records-rois").replaceChildren(...[...new Set(pairs.map(([, roi]) => roi))].map(option));
}

/** Read the filters and load the first page and the charts again (when the tab is shown, or a filter changes). */
export function refreshRecords() {
  try {
    state.filters = filters();
  } catch (error) {
    showAlert($("records-error"), error.message);
    return;
  }
  load(true);
  showStats(state.filters);
}

function filters() {
  const text = (id) => $(id).value.trim();
  return {
    role_id: text("records-role"), roi_id: text("records-roi"), verdict: $("records-verdict").value,
    review: $("records-review").value, part_id: text("records-part"), station_id: text("records-station"),
    since: isoFromLocal($("records-since").value), until: isoFromLocal($("records-until").value),
  };
}

async function load(first) {
  const ticket = ++state.ticket;  // a newer search wins over an older answer still on its way
  const query = recordQuery(state.filters, { limit: PAGE_SIZE, cursor: first ? null : state.next });
  $("records-card").setAttribute("aria-busy", "true");
  $("records-more").disabled = true;
  try {
    const page = await call("GET", `records?${query}`);
    if (ticket !== state.ticket) return;
    showAlert($("records-error"), "");
    if (first) {
      state.records.clear();
      $("records-body").replaceChildren();
    }
    for (const record of page.items) state.records.set(record.id, record);
    $("records-body").append(...page.items.map(recordRow));
    state.next = page.next_cursor;
    showCount();
  } catch (error) {
    if (ticket === state.ticket) showAlert($("records-error"), error.message);
  } finally {
    if (ticket === state.ticket) {
      $("records-card").setAttribute("aria-busy", "false");
      $("records-more").disabled = false;
    }
  }
}

function showCount() {
  const shown = state.records.size;
  $("records-empty").hidden = shown > 0;
  $("records-more").hidden = !state.next;
  $("records-count").textContent = `${shown} inspecci${shown === 1 ? "ón" : "ones"}${state.next ? " (hay más)" : ""}`;
}

function recordRow(record) {
  const row = document.createElement("tr");
  row.dataset.id = String(record.id);
  row.dataset.verdict = record.verdict;
  row.dataset.review = record.review ? record.review.label : "none";
  if (record.id === state.selected) row.classList.add("selected");
  const open = Object.assign(document.createElement("button"), { type: "button", className: "link",
                                                                  textContent: localTime(record.created_at) });
  open.setAttribute("aria-label", `Ver la inspección #${record.id}`);
  const badge = Object.assign(document.createElement("span"), { className: "badge", textContent: record.verdict });
  badge.dataset.verdict = record.verdict;
  const reviewed = Object.assign(document.createElement("span"), {
    className: "review-state", textContent: reviewText(record.verdict, record.review) });
  reviewed.dataset.review = row.dataset.review;
  const cells = [thumbnail(record), open, productText(record), record.part_id || "—", record.station_id || "—",
                 fmt(record.score), badge, reviewed];
  for (const content of cells) {
    const cell = document.createElement("td");
    cell.append(content);
    row.append(cell);
  }
  return row;
}

function thumbnail(record) {
  if (!record.image_url) {
    return Object.assign(document.createElement("span"), { className: "thumb none", textContent: "sin imagen" });
  }
  return Object.assign(document.createElement("img"), { className: "thumb", src: record.image_url, loading: "lazy",
                                                        alt: `Pieza ${record.part_id || `#${record.id}`}` });
}

function select(id) {
  const record = state.records.get(id);
  if (!record) return;
  state.selected = id;
  for (const row of $("records-body").rows) row.classList.toggle("selected", row.dataset.id === String(id));
  showRecord(record, { scroll: true });
}

function onReviewed(record) {
  state.records.set(record.id, record);
  const old = $("records-body").querySelector(`tr[data-id="${record.id}"]`);
  if (old) old.replaceWith(recordRow(record));
  showStats(state.filters);  // the review totals changed
}

async function downloadCsv() {
  const button = $("records-csv");
  button.disabled = true;
  showAlert($("records-error"), "");
  try {
    const blob = await fetchBlob(`records.csv?${recordQuery(state.filters)}`);
    saveBlob(blob, "records.csv");
  } catch (error) {
    showAlert($("records-error"), error.message);
  } finally {
    button.disabled = false;
  }
}
