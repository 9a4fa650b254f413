"""``GET /jobs/{id}`` and the WebSocket ``/ws/jobs/{id}``: follow a background teach or batch.

A WebSocket cannot carry the browser's headers, so its credential comes as the first message
``{"type": "auth", "key": "..."}`` (or, less safely since URLs end up in logs, ``?key=``).
Close codes: 4400 a malformed message, 4401 no or a wrong credential, 4403 a credential without
the job's scope, 4404 no such job (or another token's), 1011 the database is unreachable.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field

from anomalia.service.auth import Unauthorised, caller_of
from anomalia.service.dependencies import BackgroundDep, CallerDep, RuntimeDep, get_background
from anomalia.service.runtime import Runtime
from anomalia.service.schemas import error_responses
from anomalia.store.database import DatabaseUnavailable
from anomalia.store.jobs import Job
from anomalia.usecases.errors import NotAllowed
from anomalia.usecases.jobs import Event, JobNotFound, final_event, progress_event
from anomalia.usecases.records import iso
from anomalia.usecases.tokens import Caller

router = APIRouter(tags=["background jobs"])

AUTH_TIMEOUT_S = 10.0
"""How long a WebSocket may take to send its credential."""
POLL_S = 1.0
"""Without an event for this long, a watcher reads the job's row (a job of another server process)."""
CLOSE_MALFORMED, CLOSE_UNAUTHORISED, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND = 4400, 4401, 4403, 4404
CLOSE_UNAVAILABLE = 1011


class JobResponse(BaseModel):
    id: str
    kind: str = Field(description="teach, predict_batch or infer_batch")
    state: str = Field(description="queued, running, done or failed")
    stage: str | None = Field(description="embedding, coreset, holdout, saving (teach); scoring, recording "
                                          "(batches)")
    progress: float = Field(description="fraction of the whole job done, 0 to 1")
    detail: str | None = Field(description='the stage in words, e.g. "3/8 images embedded"')
    result: Any = Field(description="once done: the JSON the synchronous endpoint answers")
    error: str | None = Field(description="once failed: why (\"interrupted: …\" when its server stopped)")
    created_at: str
    updated_at: str


def job_response(job: Job) -> JobResponse:
    return JobResponse(id=job.id, kind=job.kind, state=job.state, stage=job.stage, progress=job.progress,
                       detail=job.detail, result=job.result, error=job.error, created_at=iso(job.created_us) or "",
                       updated_at=iso(job.updated_us) or "")


@router.get("/jobs/{job_id}", response_model=JobResponse, responses=error_responses({
    401: "authentication is on and the credential is missing or wrong",
    403: "the credential lacks the job's scope (teach for a teach, inspect for a batch)",
    404: "no job with this id, or a job another token started",
    503: "the records database (which holds the jobs) is unreachable",
}))
async def get_job(job_id: str, runtime: RuntimeDep, background: BackgroundDep, caller: CallerDep) -> JobResponse:
    """A background job's state and progress, and once finished its result or error."""
    return job_response(await runtime.io(background.jobs.get, job_id, caller))


class _Closed(Exception):
    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


def parse_frame(message: Mapping[str, Any]) -> dict[str, Any]:
    """A client message as the protocol allows it (only ``{"type": "auth", "key": str}``), else ``_Closed``."""
    text = message.get("text")
    if text is None:
        raise _Closed(CLOSE_MALFORMED, 'binary frames are not accepted; send {"type":"auth","key":"..."} as text')
    try:
        frame = json.loads(text)
    except ValueError:
        raise _Closed(CLOSE_MALFORMED, "the message is not JSON") from None
    if not isinstance(frame, dict) or frame.get("type") != "auth" or not isinstance(frame.get("key"), str):
        raise _Closed(CLOSE_MALFORMED, 'the only message accepted is {"type":"auth","key":"..."}')
    return frame


async def _receive_frame(websocket: WebSocket) -> dict[str, Any] | None:
    """The next client message, parsed; None when the client has gone."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return None
    return parse_frame(message)


async def _authenticate(websocket: WebSocket, runtime: Runtime) -> Caller | None:
    """The caller, from ``?key=``, or when authentication is on from the first message."""
    presented = websocket.query_params.get("key")
    try:
        if presented is not None:
            return await caller_of(runtime, presented)
        try:
            return await caller_of(runtime, "")
        except Unauthorised:
            pass
        with anyio.move_on_after(AUTH_TIMEOUT_S):
            frame = await _receive_frame(websocket)
            if frame is None:
                raise WebSocketDisconnect()
            return await caller_of(runtime, frame["key"])
        raise _Closed(CLOSE_UNAUTHORISED, f"no credential within {AUTH_TIMEOUT_S:g} s")
    except Unauthorised:
        raise _Closed(CLOSE_UNAUTHORISED, "missing or invalid credential") from None
    except DatabaseUnavailable:
        raise _Closed(CLOSE_UNAVAILABLE, "the database is unavailable; credentials cannot be checked") from None


@router.websocket("/ws/jobs/{job_id}")
async def job_events(websocket: WebSocket, job_id: str, runtime: RuntimeDep) -> None:
    """Progress events of a job, then ``done`` (with the result) or ``failed``, then the socket closes."""
    await websocket.accept()
    try:
        if runtime.background is None:
            raise _Closed(CLOSE_UNAVAILABLE, "the server is still starting")
        caller = await _authenticate(websocket, runtime)
        await _stream(websocket, runtime, job_id, caller)
        closing = _Closed(1000, "")
    except _Closed as closed:
        closing = closed
    except (WebSocketDisconnect, OSError):
        return  # the watcher left; the job goes on
    with suppress(RuntimeError, OSError):  # the client may be gone already
        await websocket.close(closing.code, closing.reason)


async def _read_job(runtime: Runtime, job_id: str, caller: Caller | None) -> Job:
    try:
        return await runtime.io(get_background(runtime).jobs.get, job_id, caller)
    except JobNotFound:
        raise _Closed(CLOSE_NOT_FOUND, "no such job") from None
    except NotAllowed as error:
        raise _Closed(CLOSE_FORBIDDEN, str(error)[:120]) from None
    except DatabaseUnavailable:
        raise _Closed(CLOSE_UNAVAILABLE, "the database is unavailable") from None


async def _stream(websocket: WebSocket, runtime: Runtime, job_id: str, caller: Caller | None) -> None:
    """Send the job's events until its final one, reading the client's messages meanwhile (a malformed one
    ends the stream with 4400; a client that leaves ends it quietly: the job goes on)."""
    with runtime.job_hub.subscribe(job_id) as events:
        job = await _read_job(runtime, job_id, caller)  # after subscribing: no event falls in between
        final = final_event(job)
        if final is not None:
            await websocket.send_json(final)
            return
        ended: list[BaseException] = []
        async with anyio.create_task_group() as group:

            async def read_frames() -> None:
                try:
                    while await _receive_frame(websocket) is not None:
                        pass  # a late auth message is allowed and changes nothing
                    ended.append(WebSocketDisconnect())
                except _Closed as closed:
                    ended.append(closed)
                group.cancel_scope.cancel()

            async def send_events() -> None:
                try:
                    await _send_until_final(websocket, runtime, job, caller, events)
                except (_Closed, WebSocketDisconnect) as error:
                    ended.append(error)
                except OSError:  # the client went away while an event was being sent
                    ended.append(WebSocketDisconnect())
                group.cancel_scope.cancel()

            group.start_soon(read_frames)
            group.start_soon(send_events)
        if ended:
            raise ended[0]


async def _send_until_final(websocket: WebSocket, runtime: Runtime, job: Job, caller: Caller | None,
                            events: asyncio.Queue[Event]) -> None:
    sent = progress_event(job)
    await websocket.send_json(sent)
    while True:
        event: Event | None = None
        with anyio.move_on_after(POLL_S):
            event = await events.get()
        if event is None:  # quiet: the row says how the job is (another process's job, or an interrupted one)
            job = await _read_job(runtime, job.id, caller)
            event = final_event(job) or progress_event(job)
            if event["type"] == "progress" and (event["progress"], event["stage"]) == (sent["progress"],
                                                                                   sent["stage"]):
                continue
        if event["type"] == "progress" and event["progress"] < sent.get("progress", 0):
            continue  # an older row read after a newer event
        await websocket.send_json(event)
        sent = event
        if event["type"] != "progress":
            return
