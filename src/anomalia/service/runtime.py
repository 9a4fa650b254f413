"""What the running service holds: settings, shared backbones, loaded models, worker limits."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import anyio

from anomalia.core.device import resolve_device
from anomalia.service.background import BackgroundJobs, JobHub
from anomalia.service.metrics import Metrics
from anomalia.service.errors import QueueFull
from anomalia.service.settings import Settings
from anomalia.service.signed_urls import UrlSigner
from anomalia.usecases.artifact_model import ArtifactModel
from anomalia.usecases.backbones import ExtractorCache
from anomalia.usecases.configuration import artifact_model_info, product_model_infos
from anomalia.usecases.jobs import Jobs
from anomalia.usecases.products import ProductModels
from anomalia.usecases.records import InspectionRecords
from anomalia.usecases.tokens import Tokens

T = TypeVar("T")


@dataclass
class Runtime:
    """State built in the app's lifespan; routes get it through ``dependencies.RuntimeDep``.

    CPU-heavy work runs in worker threads behind two limiters, so the event loop
    keeps answering (``/health`` during a fit) and inspections are not queued
    behind a fit.
    """

    settings: Settings
    extractors: ExtractorCache
    started_at: float = field(default_factory=time.monotonic)
    url_signer: UrlSigner | None = None
    """Signs ``/static`` URLs when ``BACKEND_API_KEY`` is set (None otherwise: those files are public)."""
    artifact: ArtifactModel | None = None
    artifact_absent: str | None = None
    """Why no artifact model is served (the default ``ARTIFACTS_DIR`` was empty at start-up), for ``/health``."""
    products: ProductModels | None = None
    records: InspectionRecords | None = None
    tokens: Tokens | None = None
    jobs: Jobs | None = None
    background: BackgroundJobs | None = None
    job_hub: JobHub = field(default_factory=JobHub)
    inference_limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(1))
    fit_limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(1))
    metrics: Metrics = field(default_factory=Metrics)
    queued: int = 0
    """Inspections waiting for or holding the inference worker (``MAX_QUEUE`` bounds it)."""
    _seconds_each: float = 1.0
    """Running mean of how long one call holds the worker, for ``Retry-After``."""

    @classmethod
    def create(cls, settings: Settings) -> "Runtime":
        key = settings.backend_api_key
        signer = UrlSigner(key.get_secret_value(), settings.signed_url_ttl_s) if key is not None else None
        return cls(settings=settings, extractors=ExtractorCache(resolve_device(settings.backend_device)),
                   url_signer=signer, metrics=Metrics.create(settings.prometheus_multiproc_dir))

    def static_url(self, url: str | None) -> str | None:
        """A URL of a stored file as the client may load it: signed when the API key is on."""
        return self.url_signer.sign(url) if url and self.url_signer else url

    @property
    def uptime_s(self) -> float:
        return round(time.monotonic() - self.started_at, 3)

    @property
    def device(self) -> str:
        """The device every backbone and exact kNN of this server runs on (``BACKEND_DEVICE`` resolved)."""
        return self.extractors.device

    async def infer(self, function: Callable[..., T], *args: Any) -> T:
        """Run an inspection off the event loop, or refuse it at once when ``MAX_QUEUE`` are already waiting
        or running: a line that sends faster than it is served gets 503 + ``Retry-After``, not a growing queue.
        Counted in flight (``/metrics``) while it waits and runs."""
        self.check_queue()
        self.queued += 1  # the event loop is one thread: no lock needed
        try:
            with self.metrics.inspection():
                return await anyio.to_thread.run_sync(self._timed, function, *args, limiter=self.inference_limiter)
        finally:
            self.queued -= 1

    def check_queue(self) -> None:
        """``QueueFull`` when ``MAX_QUEUE`` inspections are already waiting or running (also asked before a
        background batch is accepted)."""
        if self.queued >= self.settings.max_queue:
            self.metrics.inspection_rejected(reason="queue_full")
            raise QueueFull(self.settings.max_queue, self.retry_after_s())

    def _timed(self, function: Callable[..., T], *args: Any) -> T:
        started = time.monotonic()
        try:
            return function(*args)
        finally:
            self._seconds_each = 0.8 * self._seconds_each + 0.2 * (time.monotonic() - started)

    def retry_after_s(self) -> int:
        """Whole seconds until the queue has likely drained (at least 1)."""
        return max(1, math.ceil(self.queued * self._seconds_each))

    def models_changed(self) -> None:
        """Update the metrics' model info from what is loaded now (after start-up, a fit, a calibration)."""
        self.metrics.models_served(artifact_model_info(self.artifact), product_model_infos(self.products))

    async def io(self, function: Callable[..., T], *args: Any) -> T:
        """Run database or file work (a record, a query) off the event loop, beside any inspection or fit."""
        return await anyio.to_thread.run_sync(function, *args)

    async def fit(self, function: Callable[..., T], *args: Any) -> T:
        """Run a fit off the event loop, one at a time."""
        return await anyio.to_thread.run_sync(function, *args, limiter=self.fit_limiter)
