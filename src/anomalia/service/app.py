"""The FastAPI application factory: everything is built here, nothing at import time."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from anomalia import __version__
from anomalia.core.knn import optional_torch
from anomalia.service.background import BackgroundJobs
from anomalia.service.errors import install_error_handlers
from anomalia.service.logging import configure_logging
from anomalia.service.metrics import RequestMetrics
from anomalia.service.middleware import BodyLimit, PartLimit, SecurityHeaders, request_context
from anomalia.service.routes import batch, config, health, jobs, metrics, pages, predict
from anomalia.service.routes import infer as infer_routes
from anomalia.service.routes import records as record_routes
from anomalia.service.routes import teach
from anomalia.service.runtime import Runtime
from anomalia.service.settings import Settings, load_settings
from anomalia.usecases.artifact_model import ArtifactModel, absent_model_reason, model_kind
from anomalia.store.datasets import DatasetStore
from anomalia.store.jobs import JobStore
from anomalia.store.database import DatabaseUnavailable, open_engine, redact
from anomalia.store.record_images import RecordImages
from anomalia.store.records import RecordStore
from anomalia.store.tokens import TokenStore
from anomalia.store.write_locks import WriteLocks
from anomalia.usecases.jobs import Jobs
from anomalia.usecases.products import ProductModels, check_weights_setting
from anomalia.usecases.records import InspectionRecords
from anomalia.usecases.tokens import Tokens

log = structlog.get_logger("anomalia.app")
STOPPED = "interrupted: the server stopped before the job finished"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; models load in the lifespan, so importing this module is cheap."""
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    runtime = Runtime.create(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        torch = optional_torch()  # absent where only exported models score (the runtime extra)
        if torch is not None:
            torch.set_grad_enabled(False)
        await startup(runtime)
        yield
        if runtime.background is not None:  # like requests in flight, jobs get SHUTDOWN_GRACE_S to finish
            await runtime.background.drain(runtime.settings.shutdown_grace_s)
            await runtime.io(runtime.background.interrupt_all, STOPPED)
        if runtime.records is not None:
            runtime.records.store.engine.dispose()
        runtime.metrics.process_exited()

    app = FastAPI(title="anomalia", version=__version__, lifespan=lifespan,
                  description="PatchCore visual inspection: /predict with the model in ARTIFACTS_DIR, and "
                              "product models per role/roi: /fit_ok, /calibrate_ng, /infer.")
    app.state.runtime = runtime
    app.state.settings = settings
    install_error_handlers(app)
    app.middleware("http")(request_context)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["X-API-Key", "Authorization", "X-Request-ID", "Content-Type"])
    batch_bytes = settings.batch_limits().max_bytes
    app.add_middleware(PartLimit, max_files=settings.max_batch_files, form_fields=batch.FORM_FIELDS)
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes,
                       path_limits={"/fit_ok": (settings.max_fit_upload_bytes, "MAX_FIT_UPLOAD_MB"),
                                    **{path: (batch_bytes, "MAX_BATCH_MB") for path in batch.FORM_FIELDS}})
    app.add_middleware(RequestMetrics, metrics=runtime.metrics, routes=app.router.routes)
    app.add_middleware(SecurityHeaders)  # last added, so outermost: every answer carries the headers
    app.include_router(health.router)
    app.include_router(predict.router)
    app.include_router(teach.router)
    app.include_router(infer_routes.router)
    app.include_router(batch.router, form_limits={"max_files": settings.max_batch_files + max(batch.FORM_FIELDS.values())})
    app.include_router(record_routes.router)
    app.include_router(jobs.router)
    app.include_router(config.router)
    app.include_router(metrics.router)
    app.include_router(pages.router)
    pages.mount_static(app, settings)
    return app


async def startup(runtime: Runtime) -> None:
    """Load every model once; a broken configuration stops start-up with its reason."""
    log.info("startup", version=__version__, device=runtime.device)
    settings = runtime.settings
    settings.static_dir.mkdir(parents=True, exist_ok=True)
    overlays = settings.overlay_folder() if settings.save_vis else None
    if not settings.artifacts_dir_chosen and model_kind(settings.artifacts_dir) is None:
        runtime.artifact_absent = absent_model_reason(settings.artifacts_dir)  # /predict answers 503
        log.warning("artifact_model_absent", artifacts_dir=str(settings.artifacts_dir), reason=runtime.artifact_absent)
    else:
        try:  # a set ARTIFACTS_DIR without a model stops start-up (`anomalia serve --demo` builds one)
            runtime.artifact = ArtifactModel.load(settings.artifact_options(), runtime.extractors, overlays)
        except Exception as error:
            log.error("artifact_model_failed", error=str(error), artifacts_dir=str(settings.artifacts_dir))
            raise
    products = settings.product_options()
    await runtime.fit(check_weights_setting, products, runtime.extractors)  # a wrong file stops start-up
    runtime.records = await runtime.io(open_records, settings)
    runtime.tokens = Tokens(TokenStore(runtime.records.store.engine))  # the same database
    await start_jobs(runtime)
    locks = WriteLocks(settings.backend_data_root / "locks", runtime.records.store.engine)
    runtime.products = await runtime.fit(ProductModels.open, products, runtime.extractors, locks)
    runtime.models_changed()


async def start_jobs(runtime: Runtime) -> None:
    """Jobs in the records database; this host's jobs whose process is gone are marked failed first."""
    assert runtime.records is not None
    runtime.jobs = Jobs(JobStore(runtime.records.store.engine))
    try:
        interrupted = await runtime.io(runtime.jobs.fail_interrupted)
        if interrupted:
            log.warning("jobs_interrupted", n_jobs=len(interrupted))
    except DatabaseUnavailable as error:  # checked again by GET /jobs/{id} once the database is back
        log.error("jobs_not_checked", error=str(error))
    runtime.job_hub.bind(asyncio.get_running_loop())
    runtime.background = BackgroundJobs(runtime.jobs, runtime.job_hub, runtime.io)


def open_records(settings: Settings) -> InspectionRecords:
    """The records database at ``DATABASE_URL``, its schema upgraded to this version's."""
    url = settings.records_database_url()
    store = RecordStore(open_engine(url))  # a DATABASE_URL that cannot work stops start-up
    try:
        log.info("records_database_ready", database=redact(url), revision=store.ensure_schema(),
                 record_images=settings.record_images)
    except DatabaseUnavailable as error:  # serve anyway: inspections answer 503 until the database is back
        log.error("records_database_unavailable", database=redact(url), error=str(error))
    images = RecordImages(settings.backend_data_root / "records" / "images", settings.record_retention())
    datasets = DatasetStore(settings.backend_data_root / "datasets")
    return InspectionRecords(store, images, settings.record_images, datasets)
