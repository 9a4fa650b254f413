// Following a background job (POST …?background=true answered 202): its WebSocket /ws/jobs/{id} first,
// polling GET /jobs/{id} when the socket cannot be opened or closes before the final event.

import { ApiError, call, storedKey } from "./ui-api.js";

const POLL_MS = 1000;

/** Resolves with the job's result (what the endpoint answers without `background`); rejects with an Error
 * carrying the job's failure. `onProgress({stage, progress, detail})` hears each step. */
export async function followJob(jobId, onProgress) {
  const final = await watchSocket(jobId, onProgress).catch(() => null);
  const outcome = final || (await poll(jobId, onProgress));
  if (outcome.type === "failed") throw new ApiError(500, `el trabajo falló: ${outcome.error}`);
  return outcome.result;
}

/** The final event from the WebSocket, or null when the socket ended without one. */
function watchSocket(jobId, onProgress) {
  return new Promise((resolve) => {
    const url = new URL(`ws/jobs/${encodeURIComponent(jobId)}`, window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    let socket;
    try {
      socket = new WebSocket(url);
    } catch {
      resolve(null);
      return;
    }
    let final = null;
    socket.addEventListener("open", () => socket.send(JSON.stringify({ type: "auth", key: storedKey() })));
    socket.addEventListener("message", (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (event.type === "progress") onProgress(event);
      else final = event;
    });
    socket.addEventListener("close", () => resolve(final));
    socket.addEventListener("error", () => resolve(final));
  });
}

async function poll(jobId, onProgress) {
  for (;;) {
    const job = await call("GET", `jobs/${encodeURIComponent(jobId)}`);
    if (job.state === "done") return { type: "done", result: job.result };
    if (job.state === "failed") return { type: "failed", error: job.error };
    onProgress({ stage: job.stage, progress: job.progress, detail: job.detail });
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
