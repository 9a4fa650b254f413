"""Backbone registry and the extractor contract.

Light to import: the contract (``spec``) needs no torch; ``FeatureExtractor`` is loaded on
first access (PEP 562), and each built-in backbone's module only when that backbone is created.
"""

from __future__ import annotations

import importlib
from typing import Any

from anomalia.core.features.registry import available_backbones, check_backbone, create_extractor
from anomalia.core.features.spec import (
    Extractor,
    FeatureInfo,
    FullInstallRequired,
    WeightsSpec,
    WeightsUnavailableError,
)

_FROM_BASE = ("FeatureExtractor",)

__all__ = [*_FROM_BASE, "Extractor", "FeatureInfo", "FullInstallRequired", "WeightsSpec",
           "WeightsUnavailableError", "available_backbones", "check_backbone", "create_extractor"]


def __getattr__(name: str) -> Any:
    if name in _FROM_BASE:
        return getattr(importlib.import_module("anomalia.core.features.base"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
