// Entry point of the operator page: tabs, /health and each module's init. Owns the `ui-*` ids
// (tabs, tab panels, the health chip); every other id belongs to the module of the same name.

import { call, initApiKey } from "./ui-api.js";
import { $ } from "./ui-common.js";
import { initInspect, setModelInfo } from "./ui-inspect.js";
import { initRecords, refreshRecords, setRecordProducts } from "./ui-records.js";
import { initShapes } from "./ui-shapes.js";
import { initTeach, setKnownProducts } from "./ui-teach.js";

const TABS = ["inspect", "teach", "history"];

function selectTab(name, focus = false) {
  for (const tab of TABS) {
    const button = $(`ui-tab-${tab}`);
    const selected = tab === name;
    button.setAttribute("aria-selected", String(selected));
    button.tabIndex = selected ? 0 : -1;
    $(`ui-panel-${tab}`).hidden = !selected;
    if (selected && focus) button.focus();
  }
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  if (name === "history") refreshRecords();  // each visit shows the inspections made since the last one
}

function initTabs() {
  for (const tab of TABS) {
    const button = $(`ui-tab-${tab}`);
    button.addEventListener("click", () => selectTab(tab));
    button.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      event.preventDefault();
      selectTab(TABS[(TABS.indexOf(tab) + step + TABS.length) % TABS.length], true);
    });
  }
  selectTab(TABS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "inspect");
}

async function refreshHealth() {
  const chip = $("ui-health");
  try {
    const health = await call("GET", "health");
    setModelInfo(health);
    setKnownProducts(health.rois);
    setRecordProducts(health.rois);
    chip.dataset.state = "ok";
    chip.textContent = `Servicio en línea · ${health.device} · v${health.version}`;
  } catch (error) {
    chip.dataset.state = "error";
    chip.textContent = `Servicio no disponible (${error.message})`;
  }
}

function init() {
  initApiKey();
  initInspect();
  initShapes();
  initTeach({ onModelChange: refreshHealth });
  initRecords();
  initTabs();  // last: opening on #history loads the records at once
  refreshHealth();
}

init();
