// Entry point of the operator page: tabs, /health, the API-key button; each tab has its own module.

import { askForKey, call, storeKey, storedKey } from "./ui-api.js";
import { $ } from "./ui-common.js";
import { initInspect, setModelInfo } from "./ui-inspect.js";
import { initTeach, setKnownProducts } from "./ui-teach.js";

const TABS = ["inspect", "teach"];

function selectTab(name, focus = false) {
  for (const tab of TABS) {
    const button = $(`tab-${tab}`);
    const selected = tab === name;
    button.setAttribute("aria-selected", String(selected));
    button.tabIndex = selected ? 0 : -1;
    $(`${tab}-panel`).hidden = !selected;
    if (selected && focus) button.focus();
  }
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
}

function initTabs() {
  for (const tab of TABS) {
    const button = $(`tab-${tab}`);
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

function showKeyState() {
  const present = Boolean(storedKey());
  $("key-button").textContent = present ? "Clave API ✓" : "Clave API";
  $("key-button").setAttribute("aria-label", present ? "Clave API guardada: cambiar o borrar" : "Introducir la clave API");
  $("key-clear").hidden = !present;
}

async function refreshHealth() {
  const chip = $("health");
  try {
    const health = await call("GET", "health");
    chip.dataset.state = "ok";
    chip.textContent = `Servicio en línea · ${health.device} · v${health.version}`;
    setModelInfo(health);
    setKnownProducts(health.rois);
  } catch (error) {
    chip.dataset.state = "error";
    chip.textContent = `Servicio no disponible (${error.message})`;
  }
}

function init() {
  initTabs();
  initInspect();
  initTeach({ onModelChange: refreshHealth });
  $("key-button").addEventListener("click", () => askForKey(null));
  $("key-clear").addEventListener("click", () => {
    storeKey("");
    $("key-dialog").close("clear");
  });
  document.addEventListener("apikey-changed", showKeyState);
  showKeyState();
  refreshHealth();
}

init();
