"""Images on disk: listing a folder and reading files lazily for the detector."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from anomalia.core.image import decode_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted; a clear error when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder not found: {folder}")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return paths


def read_image(path: Path, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode one file to 8-bit BGR; the error names the file."""
    try:
        return decode_image(Path(path).read_bytes(), max_pixels=max_pixels)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error


class ImageFiles(Sequence[np.ndarray]):
    """A sequence of images read from disk only when indexed, so fitting 1 000 files stays bounded."""

    def __init__(self, paths: list[Path]):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):  # type: ignore[override]
        return read_image(self.paths[index])
