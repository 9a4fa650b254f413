"""The extractor contract without torch: what a backbone outputs, which weights it starts from, and
the interface :class:`~anomalia.core.detector.PatchCore` scores through (a torch backbone or an
exported graph run by ONNX Runtime or OpenVINO)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


class WeightsUnavailableError(RuntimeError):
    """The requested pretrained weights cannot be loaded on this machine."""


class FullInstallRequired(WeightsUnavailableError):
    """torch (and timm) are not installed: teaching and the torch runtime need the full install."""


FULL_INSTALL = ("fitting (teaching) and the torch runtime need the full install with torch (pip install anomalia, "
                "not only anomalia[runtime]); without torch, exported models score with --runtime onnxruntime or "
                "openvino (anomalia export MODEL --format onnx)")


@dataclass(frozen=True)
class FeatureInfo:
    """Shape contract of an extractor's output, in the spirit of timm's ``FeatureInfo``.

    ``stride`` is input pixels per output cell, so a ``S``-pixel image gives a
    ``S // stride`` grid of ``channels``-d patch vectors. ``first_centre`` is the
    input pixel at the centre of cell 0's receptive field (0 for a padded CNN,
    whose cell ``i`` is centred on pixel ``stride·i``), or None when cells tile the
    image like ViT patches, which a plain resize already places right.
    """

    channels: int
    stride: int
    layers: tuple[str, ...]
    first_centre: float | None = None


@dataclass(frozen=True)
class WeightsSpec:
    """Which parameters a backbone starts from: standard pretrained, a local file, seeded random, or the
    ones frozen into an exported graph (``exported``, whose ``path`` names the export file)."""

    kind: str
    path: str | None = None
    seed: int = 0

    @classmethod
    def parse(cls, text: str, *, seed: int = 0) -> "WeightsSpec":
        """``imagenet`` | ``random`` | a path to a state-dict file."""
        if text in ("imagenet", "random"):
            return cls(kind=text, seed=seed)
        if not Path(text).is_file():
            raise ValueError(
                f"weights must be 'imagenet', 'random' or an existing state-dict file; got {text!r}"
            )
        return cls(kind="file", path=str(Path(text).resolve()), seed=seed)

    def describe(self) -> str:
        if self.kind in ("file", "exported"):
            return f"{self.kind}:{self.path}"
        if self.kind == "random":
            return f"random(seed={self.seed})"
        return self.kind


class Extractor(Protocol):
    """What the detector needs of a feature extractor, whichever runtime runs it.

    ``patch_embeddings`` maps a normalised ``(B, 3, S, S)`` float32 batch to the ``(B, h, w, C)``
    patch embeddings the memory bank holds (aggregation, every ``stride``-th cell, patch norm).
    """

    name: str
    info: FeatureInfo
    weights: WeightsSpec
    runtime: str

    @property
    def fingerprint(self) -> str: ...

    @property
    def device(self) -> str: ...

    def output_grid(self, img_size: int) -> tuple[int, int]: ...

    def patch_embeddings(self, batch: np.ndarray, *, aggregation: int, stride: int, norm: str) -> np.ndarray: ...

    def patch_embeddings_by_window(self, batch: np.ndarray, *, windows: tuple[int, ...], stride: int,
                                   norm: str) -> dict[int, np.ndarray]: ...
