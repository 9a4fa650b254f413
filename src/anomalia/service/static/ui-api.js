// HTTP helpers shared by every tab: X-API-Key handling, upload progress, readable errors.
// Every request goes through `call` (or `fetchBlob`, for downloads), so a 401 anywhere asks for the key
// once and retries.
// Owns the `api-key-*` ids: the key dialog and the top bar's key button.

const KEY_STORAGE = "anomalia.apiKey";

const STATUS_TEXT = {
  0: "Sin conexión con el servidor",
  400: "Solicitud no válida",
  401: "Clave API necesaria",
  404: "No encontrado",
  409: "Conflicto",
  413: "Archivo demasiado grande",
  422: "Parámetros no válidos",
  428: "Modelo sin calibrar",
  500: "Error del servidor",
  503: "Servicio no disponible",
  507: "Disco lleno en el servidor",
};

export class ApiError extends Error {
  constructor(status, detail) {
    super(describeError(status, detail));
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
  }
}

export function storedKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function storeKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
  document.dispatchEvent(new CustomEvent("apikey-changed", { detail: { present: Boolean(key) } }));
}

/** "422 · Parámetros no válidos — mode: Input should be …" from a FastAPI error body. */
export function describeError(status, detail) {
  const label = STATUS_TEXT[status] || `Error ${status}`;
  const head = status ? `${status} · ${label}` : label;
  const text = detailText(detail);
  return text ? `${head}: ${text}` : head;
}

function detailText(detail) {
  if (detail == null || detail === "") return "";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((item) => {
      if (typeof item !== "object" || item === null) return String(item);
      const where = (item.loc || []).filter((part) => !["body", "query", "path"].includes(part)).join(".");
      return where ? `${where}: ${item.msg}` : item.msg;
    }).join("; ");
  }
  return JSON.stringify(detail);
}

/** One XMLHttpRequest (fetch cannot report upload progress); resolves with {status, data}. */
function send(method, url, body, { onUploadProgress, signal, json } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.responseType = "text";
    const key = storedKey();
    if (key) xhr.setRequestHeader("X-API-Key", key);
    if (json) xhr.setRequestHeader("Content-Type", "application/json");
    if (onUploadProgress) {
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) onUploadProgress(event.loaded / event.total);
      });
      xhr.upload.addEventListener("load", () => onUploadProgress(1));
    }
    xhr.addEventListener("load", () => resolve({ status: xhr.status, data: parseBody(xhr.responseText) }));
    xhr.addEventListener("error", () => resolve({ status: 0, data: { detail: "la petición no llegó al servidor" } }));
    xhr.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
    if (signal) {
      if (signal.aborted) { xhr.abort(); return; }
      signal.addEventListener("abort", () => xhr.abort(), { once: true });
    }
    xhr.send(json ? JSON.stringify(body) : body ?? null);
  });
}

function parseBody(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { detail: text.slice(0, 300) };
  }
}

/**
 * Call the API; on 401 ask for the key (once for all concurrent callers) and retry.
 * `body`: FormData, a plain object (sent as JSON) or null. Throws ApiError for any non-2xx.
 */
export async function call(method, path, body = null, options = {}) {
  const json = body !== null && !(body instanceof FormData);
  for (;;) {
    const { status, data } = await send(method, path, body, { ...options, json });
    if (status >= 200 && status < 300) return data;
    if (status === 401 && (await askForKey(data && data.detail))) continue;
    throw new ApiError(status, data ? data.detail : null);
  }
}

/** GET `path` as a Blob (a file to save, such as the CSV export): the key and the 401 retry of `call`.
 * (XMLHttpRequest is kept for `call` for its upload progress; a download needs none.) */
export async function fetchBlob(path) {
  for (;;) {
    const key = storedKey();
    let response;
    try {
      response = await fetch(path, { headers: key ? { "X-API-Key": key } : {} });
    } catch {
      throw new ApiError(0, "la petición no llegó al servidor");
    }
    if (response.ok) return response.blob();
    const data = parseBody(await response.text());
    if (response.status === 401 && (await askForKey(data && data.detail))) continue;
    throw new ApiError(response.status, data ? data.detail : null);
  }
}

let pendingAsk = null;

/** Shows the key dialog; resolves true when a key was entered, false when cancelled. */
export function askForKey(reason) {
  if (pendingAsk) return pendingAsk;
  const dialog = document.getElementById("api-key-dialog");
  const input = document.getElementById("api-key-input");
  const message = document.getElementById("api-key-reason");
  if (!reason) message.textContent = "Introduce la clave API del servidor (BACKEND_API_KEY).";
  else if (storedKey()) message.textContent = `El servidor rechazó la clave guardada (${reason}).`;
  else message.textContent = `El servidor pide una clave (${reason}).`;
  input.value = storedKey();
  pendingAsk = new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      pendingAsk = null;
      const accepted = dialog.returnValue === "save" && input.value.trim() !== "";
      if (accepted) storeKey(input.value.trim());
      resolve(accepted);
    }, { once: true });
  });
  dialog.returnValue = "";
  dialog.showModal();
  input.focus();
  return pendingAsk;
}

/** Wire the top bar's key button (enter, change or clear the stored key) and show whether one is stored. */
export function initApiKey() {
  const button = document.getElementById("api-key-button");
  button.addEventListener("click", () => askForKey(null));
  document.getElementById("api-key-clear").addEventListener("click", () => {
    storeKey("");
    document.getElementById("api-key-dialog").close("clear");
  });
  document.addEventListener("apikey-changed", showKeyState);
  showKeyState();
}

function showKeyState() {
  const present = Boolean(storedKey());
  const button = document.getElementById("api-key-button");
  button.textContent = present ? "Clave API ✓" : "Clave API";
  button.setAttribute("aria-label", present ? "Clave API guardada: cambiar o borrar" : "Introducir la clave API");
  document.getElementById("api-key-clear").hidden = !present;
}
