"""The data root's disk in domain words: room and write access checked before a long fit, the ``OSError``
of a write turned into :class:`StorageFull` or :class:`StorageReadOnly`, and what ``/health`` warns about."""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from anomalia.usecases.errors import StorageFull, StorageReadOnly

FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
NOT_WRITABLE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
WRITE_MARGIN_BYTES = 2**20
"""Room kept beyond a teach's estimate: manifests, the journal, file-system overhead."""
LOW_FREE_BYTES = 64 * 2**20
"""Below this much free space ``/health`` warns."""


@dataclass(frozen=True)
class StorageState:
    """The data root as ``/health`` shows it; read from the file system, nothing written."""

    data_root: str
    writable: bool
    free_bytes: int | None
    warnings: tuple[str, ...]


def _mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.1f} MiB"


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (the data root is created by the first teach)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def storage_state(root: Path) -> StorageState:
    folder = _existing(Path(root))
    writable = os.access(folder, os.W_OK)
    try:
        free: int | None = shutil.disk_usage(folder).free
    except OSError:
        free = None
    warnings = []
    if not writable:
        warnings.append(f"BACKEND_DATA_ROOT {root} is read-only or not writable by this server: /fit_ok and "
                        "/calibrate_ng answer 503 until it is writable; inspections work")
    if free is not None and free < LOW_FREE_BYTES:
        warnings.append(f"BACKEND_DATA_ROOT {root} has only {_mib(free)} free: a teach that needs more "
                        "answers 507")
    return StorageState(str(root), writable, free, tuple(warnings))


@contextmanager
def storage_errors(root: Path) -> Iterator[None]:
    """Turn a write's full-disk or read-only ``OSError`` into the domain error that says so."""
    try:
        yield
    except OSError as error:
        if error.errno in FULL:
            raise StorageFull(f"the disk of BACKEND_DATA_ROOT {root} is full ({error.strerror}); nothing was "
                              "saved: free some space and send the request again") from None
        if error.errno in NOT_WRITABLE:
            raise StorageReadOnly(f"BACKEND_DATA_ROOT {root} is read-only or not writable by this server "
                                  f"({error.strerror}); nothing was saved: make it writable and send the request "
                                  "again") from None
        raise


def check_room(root: Path, need_bytes: int) -> None:
    """Before a long write: a file can be written in ``root`` and about ``need_bytes`` are free."""
    root = Path(root)
    with storage_errors(root):
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-probe-{secrets.token_hex(4)}"
        try:
            with open(probe, "xb") as handle:
                handle.write(b"\0")
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            if probe.exists():
                probe.unlink()
        free = shutil.disk_usage(root).free
    wanted = need_bytes + WRITE_MARGIN_BYTES
    if free < wanted:
        raise StorageFull(f"BACKEND_DATA_ROOT {root} has {_mib(free)} free and this request needs about "
                          f"{_mib(wanted)}; nothing was computed or saved: free some space (older versions "
                          "under models/<role>/.versions/<roi>) and send it again")
