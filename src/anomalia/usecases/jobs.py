"""Background jobs: teach and batch inspections that answer 202 at once and report progress as they run.

A job's row lives in the records database (:mod:`anomalia.store.jobs`); its progress events go to
the listeners of this process at once, and to the database at most every ``write_interval_s`` (and
at every new stage), so a watcher on another process still sees it move. ``owner`` names the process
(``hostname:pid``): at start-up a server fails the unfinished jobs of its host whose process is gone,
never those of a live sibling process sharing the database.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from anomalia.store.database import DatabaseUnavailable
from anomalia.store.jobs import Job, JobStore
from anomalia.usecases.errors import NotAllowed, RecordNotFound, UseCaseError
from anomalia.usecases.progress import Report, describe, overall
from anomalia.usecases.tokens import API_KEY_CALLER, Caller

log = structlog.get_logger("anomalia.jobs")

KINDS = ("teach", "predict_batch", "infer_batch")
JOB_SCOPES = {"teach": "teach", "predict_batch": "inspect", "infer_batch": "inspect"}
"""The scope that reads a job: the one that was needed to start it."""
JOB_ID = re.compile(r"[0-9a-f]{32}")
INTERRUPTED = "interrupted: the server process running this job stopped before it finished"
Event = dict[str, Any]
"""``{"type": "progress", "stage", "progress", "detail"}``, ``{"type": "done", "result"}`` or
``{"type": "failed", "error"}``."""
Listener = Callable[[str, Event], None]


class JobNotFound(RecordNotFound):
    """No job with this id that the caller may see (another token's job is not found either)."""


class JobStopped(UseCaseError):
    """The job was marked failed (the server is stopping) while it ran: its work stops at its next step."""


def process_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def final_event(job: Job) -> Event | None:
    """The last event of a finished job (None while it runs)."""
    if job.state == "done":
        return {"type": "done", "result": job.result}
    if job.state == "failed":
        return {"type": "failed", "error": job.error}
    return None


def progress_event(job: Job) -> Event:
    return {"type": "progress", "stage": job.stage, "progress": job.progress, "detail": job.detail}


@dataclass
class _Written:
    stage: str
    at: float


class Jobs:
    """Create, report on, finish and read jobs; listeners hear every event of the jobs of this process."""

    def __init__(self, store: JobStore, owner: str | None = None, write_interval_s: float = 0.5):
        self.store, self.owner, self.write_interval_s = store, owner or process_owner(), write_interval_s
        self._listeners: list[Listener] = []
        self._written: dict[str, _Written] = {}
        self._stopped: set[str] = set()
        self._lock = threading.Lock()

    def listen(self, listener: Listener) -> None:
        """``listener(job_id, event)`` for every event of this process's jobs, from whichever thread sends it."""
        self._listeners.append(listener)

    def create(self, kind: str, caller: Caller | None) -> Job:
        if kind not in KINDS:
            raise ValueError(f"job kind must be one of {', '.join(KINDS)}; got {kind!r}")
        job = self.store.create(kind, caller.token_id if caller is not None else None, self.owner)
        log.info("job_created", job_id=job.id, kind=kind)
        return job

    def reporter(self, job: Job) -> Report:
        """The ``report(stage, done, total)`` the job's use case calls: an event each time, a row write when
        the stage changes or ``write_interval_s`` has passed. A failed write is logged, never fatal. Once the
        job was failed (:meth:`fail`, at shutdown) it raises :class:`JobStopped`, so the work stops there
        (a teach before it saves anything)."""

        def report(stage: str, done: int, total: int) -> None:
            if job.id in self._stopped:
                raise JobStopped(f"job {job.id} was stopped")
            fraction, detail = overall(job.kind, stage, done, total), describe(stage, done, total)
            event = {"type": "progress", "stage": stage, "progress": fraction, "detail": detail}
            self._tell(job.id, event)
            now = time.monotonic()
            with self._lock:
                last = self._written.get(job.id)
                due = last is None or last.stage != stage or now - last.at >= self.write_interval_s
                if due:
                    self._written[job.id] = _Written(stage, now)
            if due:
                try:
                    self.store.progress(job.id, stage, fraction, detail)
                except DatabaseUnavailable as error:
                    log.warning("job_progress_not_written", job_id=job.id, error=str(error))

        return report

    def finish(self, job: Job, result: Any) -> None:
        self._forget(job.id)
        if self.store.finish(job.id, result):
            log.info("job_done", job_id=job.id, kind=job.kind)
            self._tell(job.id, {"type": "done", "result": result})

    def fail(self, job: Job, error: str) -> None:
        self._forget(job.id)
        with self._lock:
            self._stopped.add(job.id)
        if self.store.fail(job.id, error):
            log.warning("job_failed", job_id=job.id, kind=job.kind, error=error)
            self._tell(job.id, {"type": "failed", "error": error})

    def get(self, ident: str, caller: Caller | None) -> Job:
        """The job, if ``caller`` may see it: its own token's jobs (every job for the API key, and for anyone
        when authentication is off); ``JobNotFound`` otherwise, ``NotAllowed`` without the kind's scope."""
        job = self.store.get(ident) if isinstance(ident, str) and JOB_ID.fullmatch(ident) else None
        if job is None or not visible(job, caller):
            raise JobNotFound(f"no job with id {str(ident)[:64]!r}")
        scope = JOB_SCOPES[job.kind]
        if caller is not None and scope not in caller.scopes:
            raise NotAllowed(f"this credential lacks the {scope!r} scope needed here")
        if not job.finished and self._orphaned(job):
            self.store.fail(job.id, INTERRUPTED)
            job = self.store.get(job.id) or job
        return job

    def fail_interrupted(self) -> list[str]:
        """At start-up: fail this host's unfinished jobs whose process is gone (or is this new process, which
        cannot have started any yet). Returns their ids."""
        failed = [job.id for job in self.store.unfinished(self.owner.rsplit(":", 1)[0])
                  if self._orphaned(job, starting=True) and self.store.fail(job.id, INTERRUPTED)]
        for ident in failed:
            log.warning("job_interrupted", job_id=ident)
        return failed

    def _orphaned(self, job: Job, starting: bool = False) -> bool:
        """Whether the job's process is gone: same host, and its pid is dead, is now another process started
        after the job, or (at start-up) is this very process."""
        host, _, pid_text = job.owner.rpartition(":")
        if host != self.owner.rpartition(":")[0] or not pid_text.isdigit():
            return False
        pid = int(pid_text)
        if pid == os.getpid():
            return starting
        started_us = process_start_us(pid)
        return started_us is None or started_us > job.created_us + 1_000_000

    def _tell(self, ident: str, event: Event) -> None:
        for listener in self._listeners:
            listener(ident, event)

    def ended(self, job: Job) -> None:
        """The job's work has returned: nothing of it is kept in memory any more."""
        self._forget(job.id)
        with self._lock:
            self._stopped.discard(job.id)

    def _forget(self, ident: str) -> None:
        with self._lock:
            self._written.pop(ident, None)


def visible(job: Job, caller: Caller | None) -> bool:
    return caller is None or caller == API_KEY_CALLER or job.token_id == caller.token_id


def process_start_us(pid: int) -> int | None:
    """When process ``pid`` started (µs since the epoch), 0 when that cannot be read, None when it is gone
    (a zombie counts as gone: it will never report again)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if fields[0] in ("Z", "X"):
            return None
        boot_s = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                      if line.startswith("btime "))
        return int((boot_s + int(fields[19]) / os.sysconf("SC_CLK_TCK")) * 1_000_000)
    except (OSError, IndexError, ValueError, StopIteration):
        return 0  # alive, start unknown (not Linux): never failed by mistake
