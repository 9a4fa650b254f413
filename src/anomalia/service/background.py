"""Background jobs in the server: run a job's work as a task of its own (it outlives the request and
any watcher), and bring its events from worker threads to the WebSockets on the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from anomalia.store.database import DatabaseUnavailable
from anomalia.store.jobs import Job
from anomalia.usecases.errors import UseCaseError
from anomalia.usecases.jobs import Event, Jobs
from anomalia.usecases.progress import Report
from anomalia.usecases.tokens import Caller

log = structlog.get_logger("anomalia.jobs")

Work = Callable[[Report], Awaitable[Any]]
"""A job's work: given its ``report``, returns the JSON the synchronous endpoint would have answered."""
BACKGROUND_DOC = ("answer 202 at once with a job id and run in the background: follow it with GET /jobs/{id} "
                  "or the WebSocket /ws/jobs/{id} (progress events, then the same JSON this endpoint answers)")


class JobAccepted(BaseModel):
    """A background job was created: where to follow it."""

    job_id: str = Field(description="32 hexadecimal digits")
    state: str = Field(description="queued")
    status_url: str = Field(description="GET it for the job's state, progress and, once done, its result")
    events_url: str = Field(description="WebSocket of the job's progress events")


ACCEPTED: dict[int | str, dict[str, Any]] = {202: {"model": JobAccepted, "description": "with `background=true`: the job was created and runs in "
                                                       "the background (input was checked first)"}}


class JobHub:
    """Events of this process's jobs, to every WebSocket watching one (each holds a queue)."""

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[Event]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish(self, job_id: str, event: Event) -> None:
        """From any thread: hand the event to the loop, which queues it for each watcher."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._deliver, job_id, event)

    def _deliver(self, job_id: str, event: Event) -> None:
        for queue in self._queues.get(job_id, ()):
            queue.put_nowait(event)

    @contextmanager
    def subscribe(self, job_id: str) -> Iterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._queues.setdefault(job_id, set()).add(queue)
        try:
            yield queue
        finally:
            watchers = self._queues.get(job_id, set())
            watchers.discard(queue)
            if not watchers:
                self._queues.pop(job_id, None)


def failure_text(error: BaseException) -> str:
    """What a failed job says: the use case's own words, or the kind of an unexpected error."""
    if isinstance(error, (UseCaseError, DatabaseUnavailable)) or type(error).__module__.startswith("anomalia"):
        return str(error)
    return f"internal error ({type(error).__name__}); see the server log"


class BackgroundJobs:
    """Start jobs as tasks of the event loop; at shutdown, let them finish for the grace period, then fail
    those still running in this process."""

    def __init__(self, jobs: Jobs, hub: JobHub, io: Callable[..., Awaitable[Any]]):
        self.jobs, self.hub, self._io = jobs, hub, io
        self._running: dict[str, tuple[Job, asyncio.Task[None]]] = {}
        jobs.listen(hub.publish)

    async def start(self, kind: str, caller: Caller | None, work: Work,
                    on_exit: Callable[[], None] | None = None) -> Job:
        """Create the job's row, then run ``work`` in a task of its own; ``on_exit`` runs when it ends (or
        at once when the row cannot be created)."""
        try:
            job = await self._io(self.jobs.create, kind, caller)
        except BaseException:
            if on_exit is not None:
                on_exit()
            raise
        task = asyncio.create_task(self._run(job, work, on_exit), name=f"job-{job.id}")
        self._running[job.id] = (job, task)
        return job

    async def _run(self, job: Job, work: Work, on_exit: Callable[[], None] | None) -> None:
        try:
            try:
                result = await work(self.jobs.reporter(job))
            except Exception as error:
                if not isinstance(error, UseCaseError):
                    log.exception("job_error", job_id=job.id)
                await self._io(self.jobs.fail, job, failure_text(error))
            else:
                await self._io(self.jobs.finish, job, result)
        except DatabaseUnavailable as error:  # the row cannot be written: a restart marks it interrupted
            log.error("job_not_recorded", job_id=job.id, error=str(error))
        finally:
            self._running.pop(job.id, None)
            self.jobs.ended(job)
            if on_exit is not None:
                on_exit()

    def running(self) -> list[Job]:
        return [job for job, _ in self._running.values()]

    async def drain(self, timeout_s: float) -> None:
        """At shutdown: let the running jobs finish for up to ``timeout_s`` seconds."""
        tasks = [task for _, task in self._running.values()]
        if tasks:
            log.info("jobs_draining", n_jobs=len(tasks), grace_s=timeout_s)
            await asyncio.wait(tasks, timeout=timeout_s)

    def interrupt_all(self, reason: str) -> None:
        """At shutdown: fail every job of this process still running (a late result no longer counts)."""
        for job in self.running():
            try:
                self.jobs.fail(job, reason)
            except DatabaseUnavailable as error:
                log.error("job_not_recorded", job_id=job.id, error=str(error))


def accepted(job: Job) -> JSONResponse:
    body = JobAccepted(job_id=job.id, state=job.state, status_url=f"/jobs/{job.id}", events_url=f"/ws/jobs/{job.id}")
    return JSONResponse(body.model_dump(), status_code=202, headers={"Location": body.status_url})
