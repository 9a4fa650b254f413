"""Cross-process write locks per role/roi, so "one fit or calibration at a time" holds across servers.

Several server processes may share one data root (and one PostgreSQL). Inside a process a
set of busy keys refuses a second writer at once; these locks extend that to other
processes: an ``flock`` on ``models/.locks/<role>/<roi>.lock`` (released by the kernel
when a process dies, so a killed writer never leaves it held), plus a PostgreSQL
advisory lock when the records database is PostgreSQL (servers on other hosts).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from anomalia.store.database import is_postgresql, translated_errors
from anomalia.store.model_store import check_identifier


class LockHeld(RuntimeError):
    """Another process holds this role/roi's write lock."""


def advisory_key(role: str, roi: str) -> int:
    """A signed 64-bit key for ``pg_try_advisory_lock``, the same in every process."""
    digest = hashlib.sha256(f"anomalia-write/{role}/{roi}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class WriteLocks:
    """File locks under ``folder``, plus advisory locks on ``engine`` when it is PostgreSQL."""

    def __init__(self, folder: Path, engine: Engine | None = None):
        self.folder = Path(folder)
        self.engine = engine if engine is not None and is_postgresql(engine) else None

    @contextmanager
    def hold(self, role: str, roi: str) -> Iterator[None]:
        """Hold both locks for the block, or raise :class:`LockHeld` at once (never waits)."""
        with ExitStack() as stack:
            stack.enter_context(self._file_lock(role, roi))
            if self.engine is not None:
                stack.enter_context(self._advisory_lock(role, roi))
            yield

    @contextmanager
    def _file_lock(self, role: str, roi: str) -> Iterator[None]:
        path = self.folder / check_identifier("role_id", role) / f"{check_identifier('roi_id', roi)}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LockHeld(f"{role}/{roi} is being written by another server process") from None
            yield
        finally:
            os.close(descriptor)  # closing releases the lock

    @contextmanager
    def _advisory_lock(self, role: str, roi: str) -> Iterator[None]:
        assert self.engine is not None
        key = advisory_key(role, roi)
        with translated_errors("taking the write lock"):
            connection = self.engine.connect()
        try:
            with translated_errors("taking the write lock"):
                taken = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar_one()
                connection.commit()
            if not taken:
                raise LockHeld(f"{role}/{roi} is being written by another server (PostgreSQL advisory lock)")
            try:
                yield
            finally:
                with translated_errors("releasing the write lock"):
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    connection.commit()
        finally:
            connection.close()
