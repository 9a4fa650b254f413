"""Images kept with inspection records: content-addressed files under ``records/images`` with a retention rule.

A file is named by the sha256 of its bytes (``ab/ab12….png``), so an image inspected twice
is kept once and a name never comes from a client. ``max_files``, ``max_bytes`` and
``max_age_s`` bound the folder: the oldest files go first, and a record whose image was
pruned still reads (its image URL is simply absent).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from anomalia.store.datasets import image_suffix, write_atomically

log = structlog.get_logger("anomalia.record_images")

_NAME = re.compile(r"[0-9a-f]{64}\.(?:png|jpg|bmp|tif|gif|webp|img)")


@dataclass(frozen=True)
class Retention:
    """Limits of the archive; None means no limit of that kind."""

    max_files: int | None = 10_000
    max_bytes: int | None = 2 * 1024**3
    max_age_s: float | None = None


@dataclass
class RecordImages:
    """The archive folder, its retention and an in-memory index of what it holds (oldest first)."""

    folder: Path
    retention: Retention = field(default_factory=Retention)
    _index: dict[str, tuple[float, int]] | None = field(default=None, repr=False)
    """name -> (mtime, bytes), oldest first: insertion order is age order, so pruning never sorts."""
    _bytes: int = field(default=0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @staticmethod
    def name_of(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest() + image_suffix(data)

    def path(self, name: str) -> Path | None:
        """Where a stored file is, or None for a name this archive cannot have made."""
        if not _NAME.fullmatch(name):
            return None
        return self.folder / name[:2] / name

    def exists(self, name: str | None) -> bool:
        path = self.path(name) if name else None
        return path is not None and path.is_file()

    def keep(self, data: bytes) -> str:
        """Store ``data`` (a no-op when already kept, which refreshes its age) and prune; returns its name."""
        name = self.name_of(data)
        target = self.path(name)
        assert target is not None
        if target.is_file():
            os.utime(target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(target, data)
        with self._lock:
            index = self._loaded()
            previous = index.pop(name, None)
            self._bytes += len(data) - (previous[1] if previous else 0)
            index[name] = (time.time(), len(data))
            self._prune(index)
        return name

    def _loaded(self) -> dict[str, tuple[float, int]]:
        """The index, read from disk once (name -> (mtime, bytes)), kept oldest first."""
        if self._index is None:
            found = []
            for path in self.folder.glob("??/*"):
                if _NAME.fullmatch(path.name):
                    stat = path.stat()
                    found.append((stat.st_mtime, path.name, stat.st_size))
            self._index = {name: (mtime, size) for mtime, name, size in sorted(found)}
            self._bytes = sum(size for _, _, size in found)
        return self._index

    def _prune(self, index: dict[str, tuple[float, int]]) -> None:
        """Drop the oldest files until every limit holds (the newest file always stays)."""
        rule = self.retention
        cutoff = time.time() - rule.max_age_s if rule.max_age_s is not None else None
        while len(index) > 1:
            name = next(iter(index))
            mtime, size = index[name]
            too_many = rule.max_files is not None and len(index) > rule.max_files
            too_big = rule.max_bytes is not None and self._bytes > rule.max_bytes
            too_old = cutoff is not None and mtime < cutoff
            if not (too_many or too_big or too_old):
                return
            path = self.path(name)
            if path is not None:
                path.unlink(missing_ok=True)
            del index[name]
            self._bytes -= size
            log.info("record_image_pruned", name=name, too_many=too_many, too_big=too_big, too_old=too_old)
