"""Where ``/predict``'s visual outputs go: ``STATIC_DIR/OVERLAYS_SUBDIR``, served at ``/static/<subdir>/``.

Names are made here, never taken from the client: a sanitised base name plus a random
suffix, so two uploads called ``pieza.png`` never overwrite each other and ``../../x``
never leaves the folder. ``OVERLAY_RETENTION`` keeps the folder from filling the disk.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import structlog

from anomalia.viz.overlays import Visuals, encode_png

log = structlog.get_logger("anomalia.overlays")

KINDS = ("heat", "mask", "overlay")
"""Written in this order, so an ``*_overlay.png`` that exists always has its two siblings."""

MAX_STEM = 48
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_OURS = re.compile(r"^(?P<base>[A-Za-z0-9_-]+)_(?:heat|mask|overlay)\.png$")


def safe_stem(filename: str | None) -> str:
    """The client's file name reduced to ``[A-Za-z0-9_-]`` (no folders, no extension), or ``upload``."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, _ = name.rpartition(".")
    stem = stem if dot and stem else name
    return _UNSAFE.sub("_", stem).strip("_-")[:MAX_STEM].rstrip("_-") or "upload"


@dataclass
class OverlayFolder:
    """The overlays folder, its public URL prefix and its retention rule (files or seconds)."""

    folder: Path
    url_prefix: str
    max_files: int | None = None
    max_age_s: float | None = None
    _prune_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def inside(cls, static_dir: Path, subdir: str, *, max_files: int | None = None,
               max_age_s: float | None = None) -> "OverlayFolder":
        """Refuse an ``OVERLAYS_SUBDIR`` outside ``STATIC_DIR``: its files must be served from ``/static``."""
        static = Path(static_dir).resolve()
        folder = (static / subdir).resolve()
        if folder == static or not folder.is_relative_to(static):
            raise ValueError(f"OVERLAYS_SUBDIR must name a folder inside STATIC_DIR ({static_dir}); "
                             f"got {subdir!r}")
        prefix = "/static/" + quote(folder.relative_to(static).as_posix())
        return cls(folder=folder, url_prefix=prefix, max_files=max_files, max_age_s=max_age_s)

    def prepare(self) -> "OverlayFolder":
        """Create the folder, remove temporary files a killed process left, apply the retention rule."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for temporary in self.folder.glob(".*.png.*.tmp"):
            temporary.unlink(missing_ok=True)
        self.prune()
        return self

    def save(self, filename: str | None, visuals: Visuals) -> str:
        """Write ``<base>_heat.png``, ``<base>_mask.png``, ``<base>_overlay.png``; return the overlay's URL."""
        base = f"{safe_stem(filename)}_{secrets.token_hex(6)}"
        images = {"heat": visuals.heat, "mask": visuals.mask, "overlay": visuals.overlay}
        for kind in KINDS:
            self._write(f"{base}_{kind}.png", encode_png(images[kind]))
        self.prune(keep=base)
        return f"{self.url_prefix}/{base}_overlay.png"

    def _write(self, name: str, data: bytes) -> None:
        path = self.folder / name
        if path.resolve().parent != self.folder:
            raise ValueError(f"refusing to write {name!r} outside {self.folder}")
        tmp = self.folder / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def prune(self, *, keep: str | None = None, now: float | None = None) -> int:
        """Delete the oldest result sets beyond the retention rule; returns the number of files removed."""
        with self._prune_lock:
            groups = self._groups()
            doomed = self._doomed(groups, keep, time.time() if now is None else now)
            for base in doomed:
                for path in groups[base][1]:
                    path.unlink(missing_ok=True)
        removed = sum(len(groups[base][1]) for base in doomed)
        if removed:
            log.info("overlays_pruned", files=removed, max_files=self.max_files, max_age_s=self.max_age_s)
        return removed

    def _groups(self) -> dict[str, tuple[float, list[Path]]]:
        """base name → (newest mtime, its files), for the files this module writes."""
        groups: dict[str, tuple[float, list[Path]]] = {}
        for entry in os.scandir(self.folder):
            match = _OURS.match(entry.name)
            if not match or not entry.is_file(follow_symlinks=False):
                continue
            try:
                mtime = entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue
            newest, paths = groups.get(match["base"], (0.0, []))
            groups[match["base"]] = (max(newest, mtime), [*paths, Path(entry.path)])
        return groups

    def _doomed(self, groups: dict[str, tuple[float, list[Path]]], keep: str | None, now: float) -> list[str]:
        newest_first = sorted(groups, key=lambda base: groups[base][0], reverse=True)
        if self.max_age_s is not None:
            return [base for base in newest_first if base != keep and now - groups[base][0] > self.max_age_s]
        doomed, kept_files, full = [], 0, False
        for base in newest_first:
            count = len(groups[base][1])
            full = full or kept_files + count > (self.max_files or 0)
            if full and base != keep:
                doomed.append(base)
            else:
                kept_files += count
        return doomed
