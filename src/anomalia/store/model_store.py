"""Versioned model folders per product role and region (seed 004 section 3).

Layout under ``<BACKEND_DATA_ROOT>/models``::

    <role>/<roi>                      -> symlink to .versions/<roi>/<model_version>
    <role>/.versions/<roi>/<version>/ embeddings.npy  coreset.faiss  manifest.json  [calibration.json]
    <role>/.versions/<roi>/.staging-<version>-<pid>/   a version being written (never loaded)
    <role>/.versions/<roi>/.intent-<version>-<pid>.json  that write's journal, until the symlink is switched

``models/<role>/<roi>/`` shows the seed's four files because it is a symlink to the
current version. A version is written in a staging folder, renamed into
``.versions`` and then the symlink is swapped with ``rename(2)``, which is atomic:
readers see the old version or the new one, never a mix. Versions are immutable
(files are made read-only); calibrating derives a new version that hard-links the
unchanged bank files.

Every write keeps a journal (the intent file) from before its staging folder exists until
the symlink is switched, with notes on what else it writes (a teach's new dataset images).
A process killed half-way leaves a staging folder, or a version renamed into place but not
switched to, plus its journal; :meth:`ModelStore.recover` undoes those (and lets the caller
undo what the notes name) and :meth:`ModelStore.clean_stale` removes what remains, so the
tree is as if the write never started. The switch is the commit point: a write killed after
it is complete.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anomalia.store.manifest import EMBEDDINGS, INDEX, MANIFEST, new_model_version

IDENTIFIER = re.compile(r"[A-Za-z0-9_-]{1,64}")
VERSIONS = ".versions"
STAGING_PREFIX = ".staging-"
INTENT_PREFIX = ".intent-"
CALIBRATION = "calibration.json"
BANK_FILES = (EMBEDDINGS, INDEX)


@dataclass(frozen=True)
class Interrupted:
    """A write that a killed process left before its switch; ``notes`` name what else it wrote."""

    role: str
    roi: str
    version: str
    notes: dict[str, Any] = field(default_factory=dict)


class InvalidIdentifier(ValueError):
    """A role or roi id that is not ``[A-Za-z0-9_-]{1,64}`` (so never a path)."""


def check_identifier(kind: str, value: object) -> str:
    """Return ``value`` when it is a safe identifier; raise before anything touches the disk."""
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        raise InvalidIdentifier(f"{kind} must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'; got {value!r}")
    return value


def _fsync_folder(folder: Path) -> None:
    """Flush every file and the folder itself, so a rename publishes complete data."""
    for path in folder.iterdir():
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _make_read_only(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_file():
            path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


def _plain_version(folder: Path) -> str | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return str(manifest.get("model_version") or folder.name)


def _write_synced(path: Path, data: dict) -> None:
    """Write JSON under a temporary name, fsync it, rename it into place and fsync the folder."""
    temporary = path.with_name(f"{path.name}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        _unlink_quietly(temporary)
        raise
    _fsync_dir(path.parent)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _remove_empty(folder: Path, stop: Path) -> None:
    """Remove ``folder`` and its parents up to (not including) ``stop`` while they are empty."""
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def writer_gone(name: str) -> bool:
    """Whether the process whose pid ends ``name`` (``...-<pid>``) no longer runs (or is this one)."""
    pid = name.rsplit("-", 1)[-1]
    return not pid.isdigit() or not _pid_alive(int(pid)) or int(pid) == os.getpid()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ModelStore:
    """The ``models/`` tree: find, stage, commit and derive immutable versions."""

    def __init__(self, root: Path):
        self.root = Path(root)

    # -- paths ----------------------------------------------------------------------------
    def link(self, role: str, roi: str) -> Path:
        """``models/<role>/<roi>``: the symlink to the current version."""
        return self.root / check_identifier("role_id", role) / check_identifier("roi_id", roi)

    def versions_dir(self, role: str, roi: str) -> Path:
        return self.root / check_identifier("role_id", role) / VERSIONS / check_identifier("roi_id", roi)

    def version_folder(self, role: str, roi: str, version: str) -> Path:
        return self.versions_dir(role, roi) / version

    # -- reading --------------------------------------------------------------------------
    def current_version(self, role: str, roi: str) -> str | None:
        """Name of the current version, or None when the role/roi has no model."""
        link = self.link(role, roi)
        try:
            target = os.readlink(link)
        except FileNotFoundError:
            return None
        except OSError:  # a plain folder placed by hand: served as is, adopted on the next commit
            return _plain_version(link)
        return Path(target).name

    def folder_of(self, role: str, roi: str, version: str) -> Path:
        """The folder of a version found by :meth:`current_version` (immutable, so safe to read at leisure)."""
        folder = self.version_folder(role, roi, version)
        return folder if folder.is_dir() else self.link(role, roi)

    def versions(self, role: str, roi: str) -> list[str]:
        """Every committed version, oldest first (names sort by creation time)."""
        folder = self.versions_dir(role, roi)
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))

    def list_current(self) -> dict[str, list[str]]:
        """``{role: [roi, ...]}`` for every role/roi with a current version."""
        found: dict[str, list[str]] = {}
        if not self.root.is_dir():
            return found
        for role_dir in sorted(self.root.iterdir()):
            if not role_dir.is_dir() or not IDENTIFIER.fullmatch(role_dir.name):
                continue
            rois = sorted(p.name for p in role_dir.iterdir()
                          if IDENTIFIER.fullmatch(p.name) and (p / MANIFEST).is_file())
            if rois:
                found[role_dir.name] = rois
        return found

    # -- writing --------------------------------------------------------------------------
    @contextmanager
    def stage(self, role: str, roi: str, version: str | None = None, *,
              undo: Callable[[Interrupted], None] | None = None) -> Iterator[tuple[Path, str]]:
        """Yield ``(staging folder, version)``; on any error (or kill) it is never loaded and is removed.

        On an error, ``undo`` is called with what :meth:`note` recorded; when the disk refuses even
        that, the journal stays for the next start-up's :meth:`recover`.
        """
        version = version or new_model_version()
        parent = self.versions_dir(role, roi)
        existed = parent.is_dir()
        parent.mkdir(parents=True, exist_ok=True)
        staging = parent / f"{STAGING_PREFIX}{version}-{os.getpid()}"
        intent = self._intent_of(staging)
        try:
            _write_synced(intent, {"version": version, "notes": {}})
            staging.mkdir()
            yield staging, version
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            if self._undid(intent, role, roi, undo):
                _unlink_quietly(intent)
                if not existed:
                    _remove_empty(parent, self.root)
            raise
        if staging.exists():  # left without a commit: nothing to publish
            shutil.rmtree(staging, ignore_errors=True)
            _unlink_quietly(intent)

    def note(self, staging: Path, notes: dict[str, Any]) -> None:
        """Record, durably and before writing them, what else this write adds (undone if it is killed)."""
        version = staging.name.removeprefix(STAGING_PREFIX).rsplit("-", 1)[0]
        _write_synced(self._intent_of(staging), {"version": version, "notes": notes})

    @staticmethod
    def _intent_of(staging: Path) -> Path:
        return staging.with_name(f"{INTENT_PREFIX}{staging.name.removeprefix(STAGING_PREFIX)}.json")

    @staticmethod
    def _journal(intent: Path, role: str, roi: str) -> Interrupted:
        """The write a journal describes; an unreadable one never got its notes, so nothing else was written."""
        stem = intent.name.removeprefix(INTENT_PREFIX).removesuffix(".json")
        try:
            journal = json.loads(intent.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            journal = {}
        return Interrupted(role, roi, str(journal.get("version") or stem.rsplit("-", 1)[0]),
                           dict(journal.get("notes") or {}))

    def _undid(self, intent: Path, role: str, roi: str, undo: Callable[[Interrupted], None] | None) -> bool:
        """Call ``undo`` with what the journal names; False when the disk refused (the journal must stay)."""
        if undo is None or not intent.exists():
            return True
        try:
            undo(self._journal(intent, role, roi))
        except OSError:
            return False
        return True

    def commit(self, role: str, roi: str, staging: Path, version: str) -> Path:
        """Publish a fully written staging folder as ``version`` and make it current, atomically."""
        _fsync_folder(staging)
        _make_read_only(staging)
        final = self.version_folder(role, roi, version)
        os.rename(staging, final)
        try:
            self._switch(role, roi, version)
        except BaseException:
            if self.current_version(role, roi) != version:  # never switched to: not a version
                shutil.rmtree(final, ignore_errors=True)
            raise
        _unlink_quietly(self._intent_of(staging))
        return final

    def _switch(self, role: str, roi: str, version: str) -> None:
        link = self.link(role, roi)
        if link.is_dir() and not link.is_symlink():
            self._adopt(role, roi, link)
        temporary = link.with_name(f".{roi}.link-{secrets.token_hex(4)}")
        os.symlink(Path(VERSIONS) / roi / version, temporary)
        os.replace(temporary, link)
        _fsync_dir(link.parent)

    def _adopt(self, role: str, roi: str, folder: Path) -> None:
        """Move a hand-placed plain model folder into the history so a symlink can replace it."""
        os.rename(folder, self.version_folder(role, roi, f"adopted-{new_model_version()}"))

    def derive(self, role: str, roi: str, base: Path, staging: Path) -> None:
        """Hard-link the bank files of ``base`` into ``staging`` (copy where links are impossible)."""
        for name in BANK_FILES:
            try:
                os.link(base / name, staging / name)
            except OSError:
                shutil.copy2(base / name, staging / name)

    def recover(self, undo: Callable[[Interrupted], None]) -> list[Interrupted]:
        """Undo the writes that dead processes left before their switch: their version folder and staging
        folder go, ``undo`` removes what their notes name, then their journal goes (so a recovery that is
        itself killed is simply done again)."""
        undone: list[Interrupted] = []
        for intent in sorted(self.root.glob(f"*/{VERSIONS}/*/{INTENT_PREFIX}*.json")):
            stem = intent.name.removeprefix(INTENT_PREFIX).removesuffix(".json")
            if not writer_gone(stem):
                continue
            role, roi = intent.parent.parent.parent.name, intent.parent.name
            interrupted = self._journal(intent, role, roi)
            if not all(IDENTIFIER.fullmatch(name) for name in (role, roi, interrupted.version)):
                continue  # not written by this store
            if self.current_version(role, roi) != interrupted.version:
                shutil.rmtree(self.version_folder(role, roi, interrupted.version), ignore_errors=True)
                shutil.rmtree(intent.with_name(f"{STAGING_PREFIX}{stem}"), ignore_errors=True)
                undo(interrupted)
                undone.append(interrupted)
            intent.unlink()
            _remove_empty(intent.parent, self.root)
        return undone

    def clean_stale(self) -> list[Path]:
        """Remove staging folders (and stray link temporaries) left by processes that no longer run."""
        removed: list[Path] = []
        for staging in self.root.glob(f"*/{VERSIONS}/*/{STAGING_PREFIX}*"):
            if writer_gone(staging.name):
                shutil.rmtree(staging, ignore_errors=True)
                removed.append(staging)
        for temporary in self.root.glob(f"*/{VERSIONS}/*/{INTENT_PREFIX}*.json.tmp"):
            if writer_gone(temporary.name.removesuffix(".json.tmp")):
                temporary.unlink(missing_ok=True)
                removed.append(temporary)
        for temporary in self.root.glob("*/.*.link-*"):
            temporary.unlink(missing_ok=True)
            removed.append(temporary)
        return removed
