"""Backbones as every front end builds them: shared per weights, and a state-dict file that must fit.

Loading a resnet18 file into the DINOv2 backbone fails deep inside torch with a message that
lists every state-dict key (kilobytes). Here any failure to load a *file* becomes a
:class:`WeightsFileError` whose message names the backbone the file does fit, if any.
"""

from __future__ import annotations

import threading

from anomalia.core.config import PatchCoreConfig
from anomalia.core.features import (
    Extractor,
    WeightsSpec,
    WeightsUnavailableError,
    available_backbones,
    create_extractor,
)

_DETAIL_CHARS = 160


class WeightsFileError(ValueError):
    """A state-dict file that does not hold the weights of the backbone it is loaded into."""


def weights_spec(text: str, *, seed: int) -> WeightsSpec:
    """``imagenet`` | ``random`` | a file; a file that is not there is weights that are not available."""
    try:
        return WeightsSpec.parse(text, seed=seed)
    except ValueError as error:
        raise WeightsUnavailableError(str(error)) from None


def build_extractor(backbone: str, spec: WeightsSpec) -> Extractor:
    """``create_extractor``, with a file that does not fit ``backbone`` reported in one readable line."""
    try:
        return create_extractor(backbone, spec)
    except WeightsUnavailableError:
        raise
    except Exception as error:
        if spec.kind != "file":
            raise
        raise WeightsFileError(file_problem(backbone, spec, error)) from None


def file_problem(backbone: str, spec: WeightsSpec, error: Exception) -> str:
    """One line: which backbone the file fits instead of ``backbone``, or that it fits none."""
    fits = next((name for name in available_backbones() if name != backbone and _loads(name, spec)), None)
    if fits is not None:
        return (f"{spec.path} holds {fits} weights, not {backbone} weights; use it with backbone {fits} "
                f"or give a {backbone} state-dict file")
    reason = " ".join(str(error).split())[:_DETAIL_CHARS]
    return (f"{spec.path} fits no backbone ({', '.join(available_backbones())}); loading it as {backbone} "
            f"failed with {type(error).__name__}: {reason}")


def _loads(backbone: str, spec: WeightsSpec) -> bool:
    try:
        create_extractor(backbone, spec)
    except Exception:
        return False
    return True


class ExtractorCache:
    """One frozen backbone per (name, weights, device), shared by every model that uses it.

    A weights file that is missing raises ``WeightsUnavailableError``; one of another
    architecture ``WeightsFileError`` (one line, naming the backbone it fits).
    """

    def __init__(self, device: str = "cpu"):
        self.device = device
        self._extractors: dict[tuple[str, str, int], Extractor] = {}
        self._lock = threading.Lock()

    def __call__(self, config: PatchCoreConfig) -> Extractor:
        spec = weights_spec(config.weights, seed=config.seed)
        key = (config.backbone, spec.describe(), spec.seed)
        with self._lock:
            if key not in self._extractors:
                self._extractors[key] = _on_device(build_extractor(config.backbone, spec), self.device)
            return self._extractors[key]


def _on_device(extractor: Extractor, device: str) -> Extractor:
    """The torch backbone moved to ``device`` (``Extractor`` is the protocol; the built one is an ``nn.Module``)."""
    move = getattr(extractor, "to", None)
    return move(device) if move is not None else extractor
