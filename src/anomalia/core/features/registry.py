"""Backbones register under a name; callers build them with ``create_extractor``.

The built-in backbones' modules are imported on first use, so listing names (the
CLI's ``--help``) or using resnet18 never pays for importing timm.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from anomalia.core.features.base import FeatureExtractor, WeightsSpec

BackboneFactory = Callable[["WeightsSpec"], "FeatureExtractor"]
_REGISTRY: dict[str, BackboneFactory] = {}
_BUILTIN = {
    "resnet18": "anomalia.core.features.resnet",
    "wide_resnet50_2": "anomalia.core.features.resnet",
    "dinov2_vits14": "anomalia.core.features.dinov2",
}


def register_backbone(name: str) -> Callable[[BackboneFactory], BackboneFactory]:
    def decorator(factory: BackboneFactory) -> BackboneFactory:
        _REGISTRY[name] = factory
        return factory

    return decorator


def available_backbones() -> list[str]:
    return sorted(set(_REGISTRY) | set(_BUILTIN))


def check_backbone(name: str) -> None:
    if name not in _REGISTRY and name not in _BUILTIN:
        raise ValueError(f"unknown backbone {name!r}; choose one of: {', '.join(available_backbones())}")


def create_extractor(name: str, weights: "WeightsSpec") -> "FeatureExtractor":
    """Build a frozen extractor; a bad name lists the valid ones."""
    check_backbone(name)
    if name not in _REGISTRY:
        try:
            importlib.import_module(_BUILTIN[name])  # registers it
        except ImportError as error:
            if error.name not in TORCH_PACKAGES:
                raise
            from anomalia.core.features.spec import FULL_INSTALL, FullInstallRequired

            raise FullInstallRequired(f"the {name} backbone cannot be built: {error.name} is not installed; "
                                      f"{FULL_INSTALL}") from None
    return _REGISTRY[name](weights).freeze()


TORCH_PACKAGES = ("torch", "torchvision", "timm")
"""What the torch backbones import and a runtime-only install lacks."""
