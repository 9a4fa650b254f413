"""What every backbone promises: a frozen module that maps images to a patch-feature grid."""

from __future__ import annotations

import contextlib
import hashlib
from typing import Callable, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from anomalia.core.features.spec import FeatureInfo, WeightsSpec, WeightsUnavailableError

__all__ = ["FeatureExtractor", "FeatureInfo", "WeightsSpec", "WeightsUnavailableError", "aggregate",
           "build_seeded", "load_state_file", "state_dict_fingerprint"]

T = TypeVar("T")


class FeatureExtractor(nn.Module):
    """Frozen backbone trunk; ``forward(images, aggregation)`` returns ``(B, C, h, w)`` patch features.

    ``aggregation`` is a k×k average over neighbouring cells of each layer at its own
    resolution (PatchCore eq. 2); it is a model property, not the backbone's, so one
    loaded backbone serves models built with different windows. A backbone implements
    ``layer_maps`` (the trunk's pass) and ``join`` (windows, resizing, concatenation), so a
    fit that compares windows runs the trunk once for all of them.
    """

    name: str
    info: FeatureInfo
    runtime = "torch"

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

    @property
    def device(self) -> str:
        """Where the trunk's parameters live (``cpu``, ``cuda:0``)."""
        return str(next(self.parameters()).device)

    def forward(self, images: torch.Tensor, aggregation: int = 1) -> torch.Tensor:
        return self.join(self.layer_maps(images), aggregation)

    def layer_maps(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The trunk's raw feature maps, before any window is applied."""
        raise NotImplementedError

    def join(self, maps: tuple[torch.Tensor, ...], aggregation: int) -> torch.Tensor:
        """``layer_maps``' output → ``(B, C, h, w)`` patch features with a ``aggregation`` window."""
        raise NotImplementedError

    def patch_embeddings(self, batch: np.ndarray, *, aggregation: int, stride: int, norm: str) -> np.ndarray:
        """``(B, 3, S, S)`` normalised float32 → ``(B, h, w, C)`` embeddings (the :class:`Extractor` contract)."""
        return self.patch_embeddings_by_window(batch, windows=(aggregation,), stride=stride, norm=norm)[aggregation]

    def patch_embeddings_by_window(self, batch: np.ndarray, *, windows: tuple[int, ...], stride: int,
                                   norm: str) -> dict[int, np.ndarray]:
        """The embeddings of one batch for each aggregation window, from a single trunk pass."""
        from anomalia.core.memory_bank import patch_embeddings

        with torch.inference_mode():
            maps = self.layer_maps(torch.from_numpy(batch).to(self.device))
            return {window: patch_embeddings(self.join(maps, window).cpu(), stride, norm) for window in windows}

    def export_context(self, img_size: int) -> contextlib.AbstractContextManager:
        """Held while the trunk is traced for export at ``img_size``: a backbone whose forward pass
        resizes something with an operator ONNX lacks fixes it to a constant there (none by default)."""
        return contextlib.nullcontext()


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
