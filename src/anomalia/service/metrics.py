"""Every Prometheus metric of the service, defined here and observed by the HTTP layer (``GET /metrics``).

The use cases return timings (``timings_ms``, ``timings_s``) and never import prometheus; the
routes hand them to :class:`Metrics`. One ``Metrics`` per app, with its own registry, so apps
built side by side (tests) do not share counters.

With ``PROMETHEUS_MULTIPROC_DIR`` in the environment (``anomalia serve --workers N``),
prometheus-client writes every value to files in that folder and ``/metrics`` answers the sum
over all workers (its ``MultiProcessCollector``); gauges say how workers combine
(``livesum``: in-flight requests add up). The process collector (CPU, memory, open files)
describes one process, so it is left out in that mode.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from starlette.routing import BaseRoute, Mount, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:  # only the types: a worker process or a test can import the metrics without torch
    from anomalia.usecases.configuration import ArtifactModelInfo, ProductModelInfo

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
ARTIFACTS = "artifacts"
"""``role_id`` label of the ``ARTIFACTS_DIR`` model (``/predict``); its ``roi_id`` is empty."""
UNMATCHED = "unmatched"
"""``route`` label of every path no route serves: one value, however many paths are tried."""
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
STAGES = {"decode_ms": "decode", "backbone_ms": "backbone", "knn_ms": "knn", "post_ms": "post",
          "overlay_ms": "overlay", "record_ms": "record"}
"""Inspection timings (keys of a use case's ``timings_ms``) observed as ``stage`` labels; others are ignored."""
FIT_STAGES = {"decode_s": "decode", "fit_s": "fit", "holdout_s": "holdout", "save_s": "save", "total_s": "total"}
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FIT_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
MODEL_LABELS = ("role_id", "roi_id", "model_version", "backbone", "weights")


class Metrics:
    """The service's metrics and what observes them; ``multiprocess_dir`` set: values live in its files."""

    def __init__(self, multiprocess_dir: Path | None = None):
        self.multiprocess_dir = multiprocess_dir
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("anomalia_http_requests", "HTTP requests by route template, method and status",
                                ("route", "method", "status"), registry=registry)
        self.latency = Histogram("anomalia_http_request_duration_seconds", "HTTP request latency by route template",
                                 ("route", "method"), buckets=REQUEST_BUCKETS, registry=registry)
        self.stages = Histogram("anomalia_inference_stage_seconds", "Time per inspection stage (decode, backbone, "
                                "knn, post, overlay, record)", ("endpoint", "stage"), buckets=STAGE_BUCKETS,
                                registry=registry)
        self.images = Counter("anomalia_images_inspected", "Images inspected per product model (role_id "
                              "'artifacts', roi_id '' for /predict)", ("role_id", "roi_id"), registry=registry)
        self.ng = Counter("anomalia_ng_verdicts", "NG verdicts (is_anomaly for /predict) per product model",
                          ("role_id", "roi_id"), registry=registry)
        self.fits = Counter("anomalia_fits", "Models taught by /fit_ok", ("role_id", "roi_id"), registry=registry)
        self.fit_seconds = Histogram("anomalia_fit_duration_seconds", "Time per /fit_ok stage (decode, fit, holdout, "
                                     "save, total)", ("stage",), buckets=FIT_BUCKETS, registry=registry)
        self.in_flight = Gauge("anomalia_inspections_in_flight", "Requests running or waiting for the inference "
                               "worker (the inspection queue depth)", registry=registry, multiprocess_mode="livesum")
        self.rejected = Counter("anomalia_inspections_rejected", "Inspections refused before running "
                                "(backpressure)", ("reason",), registry=registry)
        self.model_info = Gauge("anomalia_model_info", "1 for each model served (role_id 'artifacts' for "
                                "ARTIFACTS_DIR), with its version, backbone and weights", MODEL_LABELS,
                                registry=registry, multiprocess_mode="livemax")
        self._models: set[tuple[str, ...]] = set()
        if multiprocess_dir is None:
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)

    @classmethod
    def create(cls, multiprocess_dir: Path | None) -> "Metrics":
        """Metrics for ``PROMETHEUS_MULTIPROC_DIR``, which must be in the process environment to take effect."""
        if multiprocess_dir is None:
            return cls()
        if Path(os.environ.get(MULTIPROC_VARIABLE, "")) != Path(multiprocess_dir):
            raise ValueError(f"{MULTIPROC_VARIABLE} must be set in the environment (not only in .env or the "
                             "ANOMALIA_CONFIG file): prometheus-client reads it when it is first imported")
        Path(multiprocess_dir).mkdir(parents=True, exist_ok=True)
        return cls(Path(multiprocess_dir))

    def render(self) -> bytes:
        """The text exposition format (``CONTENT_TYPE``): this process's metrics, or every worker's."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self.multiprocess_dir))
        return generate_latest(registry)

    def process_exited(self) -> None:
        """Drop this worker's live gauges (``livesum``/``livemax``) from the multi-process folder."""
        if self.multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), str(self.multiprocess_dir))

    # -- observations --------------------------------------------------------------------------
    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def inspected(self, endpoint: str, role_id: str, roi_id: str, is_ng: bool,
                  timings_ms: Mapping[str, float]) -> None:
        """One image inspected by ``endpoint`` (its route template) with its verdict and stage timings."""
        self.images.labels(role_id, roi_id).inc()
        if is_ng:
            self.ng.labels(role_id, roi_id).inc()
        for key, milliseconds in timings_ms.items():
            if key in STAGES:
                self.stages.labels(endpoint, STAGES[key]).observe(milliseconds / 1000)

    def fitted(self, role_id: str, roi_id: str, timings_s: Mapping[str, float]) -> None:
        self.fits.labels(role_id, roi_id).inc()
        for key, seconds in timings_s.items():
            if key in FIT_STAGES:
                self.fit_seconds.labels(FIT_STAGES[key]).observe(seconds)

    @contextmanager
    def inspection(self) -> Iterator[None]:
        """Counts the enclosed work as in flight (running or waiting for the inference worker)."""
        with self.in_flight.track_inprogress():
            yield

    def inspection_rejected(self, reason: str = "queue_full") -> None:
        """For the backpressure code: an inspection refused before it ran (e.g. ``MAX_QUEUE`` reached)."""
        self.rejected.labels(reason).inc()

    def models_served(self, artifact: ArtifactModelInfo | None, products: Iterable[ProductModelInfo]) -> None:
        """Set ``anomalia_model_info`` to 1 for the models now served and 0 for those no longer served."""
        current: set[tuple[str, ...]] = set()
        if artifact is not None:
            current.add((ARTIFACTS, "", str(artifact.model_version), str(artifact.backbone), str(artifact.weights)))
        for model in products:
            current.add((model.role_id, model.roi_id, model.model_version, model.backbone, model.weights))
        for labels in self._models - current:
            self.model_info.labels(*labels).set(0)
        for labels in current:
            self.model_info.labels(*labels).set(1)
        self._models = current


@dataclass(frozen=True)
class RouteTemplate:
    """One route as the metrics label it: its template, the paths it serves, its methods (None: any)."""

    template: str
    pattern: re.Pattern[str]
    methods: frozenset[str] | None


def clear_multiprocess_dir(folder: Path) -> None:
    """Remove a previous run's value files (prometheus-client's rule: empty the folder before the server starts)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)


def route_templates(routes: Iterable[BaseRoute], prefix: str = "") -> list[RouteTemplate]:
    """Every route of the app, flattened in matching order: routers included in others (with their prefix),
    plain routes, and mounts (``/static``: one template for every file under it)."""
    found: list[RouteTemplate] = []
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's included router
        if included is not None:
            context = getattr(route, "include_context", None)
            found += route_templates(included.routes, prefix + (getattr(context, "prefix", "") or ""))
        elif isinstance(route, Mount):
            template = prefix + route.path
            found.append(RouteTemplate(template, re.compile(re.escape(template) + "(/.*)?$"), None))
        elif isinstance(getattr(route, "path", None), str):
            template = prefix + getattr(route, "path")
            methods = getattr(route, "methods", None)
            found.append(RouteTemplate(template, compile_path(template)[0], frozenset(methods) if methods else None))
    return found


def route_template(templates: Iterable[RouteTemplate], scope: Scope) -> str:
    """The template of the route serving ``scope`` (``/records/{id}``, a mount's prefix), else :data:`UNMATCHED`.

    A route that serves the path with other methods counts too (its 405 keeps its template).
    """
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    other_method = None
    for route in templates:
        if route.pattern.match(path):
            if route.methods is None or scope["method"] in route.methods:
                return route.template
            other_method = other_method or route.template
    return other_method or UNMATCHED


class RequestMetrics:
    """ASGI middleware: count and time every HTTP request (401s and 413s of the other middleware too)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Sequence[BaseRoute]):
        self.app, self.metrics, self.routes = app, metrics, routes
        self._templates: list[RouteTemplate] | None = None

    def templates(self) -> list[RouteTemplate]:
        """Built on the first request, once every route and mount is in place."""
        if self._templates is None:
            self._templates = route_templates(self.routes)
        return self._templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        route = route_template(self.templates(), scope)  # before routing rewrites the scope (a mount's root_path)
        status = 500  # what the server answers when the app raises before starting a response

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self.metrics.request(route, scope["method"], status, time.perf_counter() - started)
