"""What every backbone promises: a frozen module that maps images to a patch-feature grid."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

T = TypeVar("T")


class WeightsUnavailableError(RuntimeError):
    """The requested pretrained weights cannot be loaded on this machine."""


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
    """Which parameters a backbone starts from: standard pretrained, a local file or seeded random."""

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
        if self.kind == "file":
            return f"file:{self.path}"
        if self.kind == "random":
            return f"random(seed={self.seed})"
        return self.kind


class FeatureExtractor(nn.Module):
    """Frozen backbone trunk; ``forward(images, aggregation)`` returns ``(B, C, h, w)`` patch features.

    ``aggregation`` is a k×k average over neighbouring cells of each layer at its own
    resolution (PatchCore eq. 2); it is a model property, not the backbone's, so one
    loaded backbone serves models built with different windows.
    """

    name: str
    info: FeatureInfo

    def __init__(self, name: str, info: FeatureInfo, weights: WeightsSpec) -> None:
        super().__init__()
        self.name = name
        self.info = info
        self.weights = weights
        self._fingerprint: str | None = None

    def freeze(self) -> "FeatureExtractor":
        self.eval()
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        return self

    @property
    def fingerprint(self) -> str:
        """sha256 of the trunk's state dict: two banks are comparable only if this matches."""
        if self._fingerprint is None:
            self._fingerprint = state_dict_fingerprint(self.state_dict())
        return self._fingerprint

    def output_grid(self, img_size: int) -> tuple[int, int]:
        side = img_size // self.info.stride
        return side, side


def aggregate(features: torch.Tensor, window: int) -> torch.Tensor:
    """Mean over each cell's ``window``×``window`` neighbourhood, same grid size (zero padding, as the paper)."""
    if window <= 1:
        return features
    return F.avg_pool2d(features, window, stride=1, padding=window // 2)


def state_dict_fingerprint(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(key.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.float().numpy().tobytes() if tensor.is_floating_point() else tensor.numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def load_state_file(path: str) -> dict[str, torch.Tensor]:
    """Load a state dict without unpickling arbitrary objects (``weights_only``)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict")
    return state


def build_seeded(build: Callable[[], T], seed: int) -> T:
    """Run ``build`` with a fixed torch seed, leaving the caller's global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()
