"""Backbones register under a name; callers build them with ``create_extractor``."""

from __future__ import annotations

from typing import Callable

from anomalia.core.features.base import FeatureExtractor, WeightsSpec

BackboneFactory = Callable[[WeightsSpec], FeatureExtractor]
_REGISTRY: dict[str, BackboneFactory] = {}


def register_backbone(name: str) -> Callable[[BackboneFactory], BackboneFactory]:
    def decorator(factory: BackboneFactory) -> BackboneFactory:
        _REGISTRY[name] = factory
        return factory

    return decorator


def available_backbones() -> list[str]:
    return sorted(_REGISTRY)


def check_backbone(name: str) -> None:
    if name not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; choose one of: {', '.join(available_backbones())}")


def create_extractor(name: str, weights: WeightsSpec) -> FeatureExtractor:
    """Build a frozen extractor; a bad name lists the valid ones."""
    check_backbone(name)
    return _REGISTRY[name](weights).freeze()
