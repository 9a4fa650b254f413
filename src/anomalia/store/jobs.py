"""Background jobs in the records database: one row per job, updated as it runs, final once done or failed.

A job moves ``queued`` → ``running`` → ``done`` | ``failed``; a finished row is never changed again
(every write here only touches a row that is still unfinished), so a late report from a job that
was already marked interrupted cannot bring it back.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select, update

from anomalia.store.database import ensure_schema, translated_errors
from anomalia.store.records_schema import jobs

UNFINISHED = ("queued", "running")
STATES = (*UNFINISHED, "done", "failed")


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    state: str
    progress: float
    owner: str
    created_us: int
    updated_us: int
    stage: str | None = None
    detail: str | None = None
    result: Any = None
    error: str | None = None
    token_id: str | None = None

    @property
    def finished(self) -> bool:
        return self.state not in UNFINISHED


def _now_us() -> int:
    return time.time_ns() // 1000


def _job(row: Any) -> Job:
    return Job(id=row.id, kind=row.kind, state=row.state, progress=row.progress, owner=row.owner,
               created_us=row.created_us, updated_us=row.updated_us, stage=row.stage, detail=row.detail,
               result=row.result, error=row.error, token_id=row.token_id)


class JobStore:
    """The ``jobs`` table, next to the inspection records (same engine, same migrations)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def create(self, kind: str, token_id: str | None, owner: str) -> Job:
        """A new ``queued`` job with a random 32-hex-digit id."""
        ensure_schema(self.engine)
        now = _now_us()
        job = Job(id=secrets.token_hex(16), kind=kind, state="queued", progress=0.0, owner=owner, created_us=now,
                  updated_us=now, token_id=token_id)
        with translated_errors("creating a job"), self.engine.begin() as connection:
            connection.execute(insert(jobs).values(id=job.id, kind=kind, state=job.state, progress=0.0,
                                                   token_id=token_id, owner=owner, created_us=now, updated_us=now))
        return job

    def get(self, ident: str) -> Job | None:
        ensure_schema(self.engine)
        with translated_errors("reading a job"), self.engine.connect() as connection:
            row = connection.execute(select(jobs).where(jobs.c.id == ident)).first()
        return _job(row) if row is not None else None

    def progress(self, ident: str, stage: str, progress: float, detail: str | None) -> bool:
        """Mark the job ``running`` at this stage; False when it is already finished."""
        return self._unfinished_update(ident, "recording a job's progress", state="running", stage=stage,
                                       progress=progress, detail=detail)

    def finish(self, ident: str, result: Any) -> bool:
        """``done`` with the answer's JSON; False when the job had already finished (e.g. marked interrupted)."""
        return self._unfinished_update(ident, "finishing a job", state="done", progress=1.0, result=result,
                                       detail=None)

    def fail(self, ident: str, error: str) -> bool:
        return self._unfinished_update(ident, "failing a job", state="failed", error=error)

    def unfinished(self, host: str) -> list[Job]:
        """The queued or running jobs whose owner runs on ``host``."""
        ensure_schema(self.engine)
        with translated_errors("listing unfinished jobs"), self.engine.connect() as connection:
            rows = connection.execute(select(jobs).where(jobs.c.state.in_(UNFINISHED),
                                                         jobs.c.owner.startswith(f"{host}:", autoescape=True)))
            return [_job(row) for row in rows]

    def _unfinished_update(self, ident: str, action: str, **values: Any) -> bool:
        ensure_schema(self.engine)
        with translated_errors(action), self.engine.begin() as connection:
            done = connection.execute(update(jobs).where(jobs.c.id == ident, jobs.c.state.in_(UNFINISHED))
                                      .values(updated_us=_now_us(), **values))
        return bool(done.rowcount)
