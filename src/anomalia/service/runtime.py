"""What the running service holds: settings, shared backbones, loaded models, worker limits."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import anyio
import torch

from anomalia.core.detector import PatchCoreConfig
from anomalia.core.features import FeatureExtractor
from anomalia.service.settings import Settings
from anomalia.service.weights import build_extractor, weights_spec
from anomalia.store.model_io import LoadedModel

T = TypeVar("T")


class ExtractorCache:
    """One frozen backbone per (name, weights, device), shared by every model that uses it.

    A weights file that is missing raises ``WeightsUnavailableError``; one of another
    architecture ``WeightsFileError`` (one line, naming the backbone it fits).
    """

    def __init__(self, device: str):
        self.device = device
        self._extractors: dict[tuple[str, str, int], FeatureExtractor] = {}
        self._lock = threading.Lock()

    def __call__(self, config: PatchCoreConfig) -> FeatureExtractor:
        spec = weights_spec(config.weights, seed=config.seed)
        key = (config.backbone, spec.describe(), spec.seed)
        with self._lock:
            if key not in self._extractors:
                self._extractors[key] = build_extractor(config.backbone, spec).to(self.device)
            return self._extractors[key]


@dataclass
class Runtime:
    """State built in the app's lifespan; routes reach it as ``request.app.state.runtime``.

    CPU-heavy work runs in worker threads behind two limiters, so the event loop
    keeps answering (``/health`` during a fit) and inspections are not queued
    behind a fit.
    """

    settings: Settings
    extractors: ExtractorCache
    started_at: float = field(default_factory=time.monotonic)
    single: LoadedModel | None = None
    single_roi: Any = None  # seed-000 ROI, bool (img_size, img_size) or None; built once at start-up
    overlays: Any = None  # seed-000 OverlayFolder when SAVE_VIS is on
    products: Any = None
    inference_limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(1))
    fit_limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(1))

    @classmethod
    def create(cls, settings: Settings) -> "Runtime":
        return cls(settings=settings, extractors=ExtractorCache(settings.backend_device))

    @property
    def uptime_s(self) -> float:
        return round(time.monotonic() - self.started_at, 3)

    @property
    def device(self) -> str:
        return "cuda" if self.settings.backend_device.startswith("cuda") and torch.cuda.is_available() else "cpu"

    async def infer(self, function: Callable[..., T], *args: Any) -> T:
        """Run an inspection off the event loop."""
        return await anyio.to_thread.run_sync(function, *args, limiter=self.inference_limiter)

    async def fit(self, function: Callable[..., T], *args: Any) -> T:
        """Run a fit off the event loop, one at a time."""
        return await anyio.to_thread.run_sync(function, *args, limiter=self.fit_limiter)
