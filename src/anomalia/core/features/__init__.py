"""Backbone registry: importing this package registers every built-in backbone."""

from anomalia.core.features import dinov2, resnet  # noqa: F401  (registration side effect)
from anomalia.core.features.base import FeatureExtractor, FeatureInfo, WeightsSpec, WeightsUnavailableError
from anomalia.core.features.registry import available_backbones, check_backbone, create_extractor

__all__ = [
    "FeatureExtractor",
    "FeatureInfo",
    "WeightsSpec",
    "WeightsUnavailableError",
    "available_backbones",
    "check_backbone",
    "create_extractor",
]
