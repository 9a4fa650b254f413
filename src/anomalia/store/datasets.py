"""Uploaded teaching images kept per role/roi: ``datasets/<role>/<roi>/ok|ng/`` (seed 004 section 3).

Files are named by the server from their content (``<sha256 prefix>.<format>``), never
from the client's file name: the same image uploaded twice is stored once, and a
name can never escape its folder. Each file is written to a temporary name and
renamed, so a half-written image is never listed; a write that fails removes its
temporary file, and :meth:`DatasetStore.clean_stale` removes those of a killed process.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Sequence
from pathlib import Path

from anomalia.store.model_store import check_identifier, writer_gone

LABELS = ("ok", "ng")
_MAGIC = ((b"\x89PNG\r\n\x1a\n", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"BM", ".bmp"),
          (b"II*\x00", ".tif"), (b"MM\x00*", ".tif"), (b"GIF87a", ".gif"), (b"GIF89a", ".gif"))
NAME_HEX = 24
_NAME = re.compile(rf"[0-9a-f]{{{NAME_HEX}}}\.(?:png|jpg|bmp|tif|gif|webp|img)")
TEMPORARY_SUFFIX = ".tmp"


def write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` under a temporary name that carries this process's pid, fsync it, rename it into place:
    a reader never sees half a file, and a killed writer's leftover is found by :meth:`DatasetStore.clean_stale`
    (or any ``writer_gone`` check)."""
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}-{os.getpid()}{TEMPORARY_SUFFIX}")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def image_suffix(data: bytes) -> str:
    """File suffix from the bytes' signature; ``.img`` for other formats OpenCV decodes."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return next((suffix for magic, suffix in _MAGIC if data.startswith(magic)), ".img")


def image_name(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:NAME_HEX] + image_suffix(data)


class DatasetStore:
    """The ``datasets/`` tree: add and list images of one role/roi and label."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def folder(self, role: str, roi: str, label: str) -> Path:
        if label not in LABELS:
            raise ValueError(f"label must be one of {', '.join(LABELS)}; got {label!r}")
        return self.root / check_identifier("role_id", role) / check_identifier("roi_id", roi) / label

    def add(self, role: str, roi: str, label: str, data: bytes) -> str:
        """Store one image (already validated by decoding) and return its server-generated name."""
        folder = self.folder(role, roi, label)
        folder.mkdir(parents=True, exist_ok=True)
        name = image_name(data)
        target = folder / name
        if target.exists():
            return name
        write_atomically(target, data)
        return name

    def missing(self, role: str, roi: str, label: str, images: Sequence[bytes]) -> list[str]:
        """Names of the ``images`` not stored yet (what :meth:`add` would create), sorted."""
        stored = set(self.names(role, roi, label))
        return sorted({image_name(data) for data in images} - stored)

    def remove(self, role: str, roi: str, label: str, names: Sequence[str]) -> None:
        """Delete these images (a teach that did not happen), then the folders left empty; names that
        this store cannot have made are ignored."""
        names = [name for name in names if isinstance(name, str) and _NAME.fullmatch(name)]
        if not names:
            return
        for name in names:
            self.path(role, roi, label, name).unlink(missing_ok=True)
        folder = self.folder(role, roi, label)
        for empty in (folder, folder.parent, folder.parent.parent):
            try:
                empty.rmdir()
            except OSError:  # not empty (or absent): keep it and its parents
                break

    def clean_stale(self) -> list[Path]:
        """Remove the temporary files of writes that never finished: those of processes that no longer run
        (another server sharing the data root may be writing its own right now)."""
        removed = []
        for temporary in self.root.glob(f"*/*/*/.*{TEMPORARY_SUFFIX}"):
            if not writer_gone(temporary.name.removesuffix(TEMPORARY_SUFFIX)):
                continue
            temporary.unlink(missing_ok=True)
            removed.append(temporary)
        return removed

    def names(self, role: str, roi: str, label: str) -> list[str]:
        folder = self.folder(role, roi, label)
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))

    def path(self, role: str, roi: str, label: str, name: str) -> Path:
        if Path(name).name != name or name.startswith("."):
            raise ValueError(f"not a dataset image name: {name!r}")
        return self.folder(role, roi, label) / name
