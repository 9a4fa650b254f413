"""What ``anomalia batch`` scores: the inputs named by SOURCE, and the model named by MODEL."""

from __future__ import annotations

import csv
import glob
from dataclasses import dataclass
from pathlib import Path

from anomalia.store.image_files import IMAGE_SUFFIXES

LIST_SUFFIXES = (".txt", ".csv")


def list_inputs(source: str) -> list[str]:
    """Image paths of a folder (recursive, sorted), a glob, or a .txt/.csv file with one path per line.

    Paths are absolute and each is listed once, in the source's order; a path in a list file
    is relative to the list's folder. A listed file that does not exist is kept: it becomes an
    error row, as an unreadable image does.
    """
    path = Path(source)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        found = [p if p.is_absolute() else path.parent / p for p in map(Path, _listed(path))]
    elif glob.has_magic(source):
        found = sorted(Path(p) for p in glob.glob(source, recursive=True) if Path(p).is_file())
    elif path.is_file():
        found = [path]
    else:
        raise FileNotFoundError(f"SOURCE {source} is not a folder, a glob, or a .txt/.csv list of paths")
    paths = list(dict.fromkeys(str(p.absolute()) for p in found))
    if not paths:
        raise ValueError(f"SOURCE {source} names no image ({', '.join(IMAGE_SUFFIXES)})")
    return paths


def _listed(list_file: Path) -> list[str]:
    """The first column of each non-empty line; a CSV header named ``path`` is skipped."""
    with list_file.open(newline="", encoding="utf-8") as handle:
        rows = [row[0].strip() for row in csv.reader(handle) if row and row[0].strip()]
    if rows and rows[0].lower() == "path":
        rows = rows[1:]
    return [row for row in rows if not row.startswith("#")]


@dataclass(frozen=True)
class ModelSpec:
    """A model folder (``folder``), or the current model of ``role``/``roi`` under ``data_root``."""

    folder: Path | None = None
    data_root: Path | None = None
    role: str | None = None
    roi: str | None = None

    @property
    def is_product(self) -> bool:
        return self.data_root is not None

    def __str__(self) -> str:
        return f"{self.data_root}:{self.role}/{self.roi}" if self.is_product else str(self.folder)


def parse_model(text: str) -> ModelSpec:
    """``MODEL_DIR`` or ``DATA_ROOT:ROLE/ROI`` (a product's region under a data root)."""
    if Path(text).is_dir():
        return ModelSpec(folder=Path(text).absolute())
    root, colon, product = text.rpartition(":")
    role, slash, roi = product.partition("/")
    if colon and slash and role and roi and "/" not in roi:
        if not Path(root).is_dir():
            raise FileNotFoundError(f"MODEL {text}: data root {root} is not a folder")
        return ModelSpec(data_root=Path(root).absolute(), role=role, roi=roi)
    raise FileNotFoundError(f"MODEL {text} is neither a model folder nor DATA_ROOT:ROLE/ROI")
