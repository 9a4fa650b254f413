"""``anomalia serve``: settings, the optional demo model, then uvicorn on the app factory."""

from __future__ import annotations

import structlog
import uvicorn
from uvicorn.supervisors import Multiprocess

from anomalia.service.app import create_app
from anomalia.service.logging import configure_logging
from anomalia.service.metrics import clear_multiprocess_dir
from anomalia.service.settings import load_settings
from anomalia.usecases.artifact_model import model_kind
from anomalia.usecases.demo import build_demo_model

log = structlog.get_logger("anomalia.server")

STARTUP_FAILED = 3
"""Exit code when the app cannot start (uvicorn's own convention), e.g. no memory bank."""


APP_FACTORY = "anomalia.service.app:create_app"
"""What each worker imports and calls when ``--workers`` is over 1 (it reads the same settings)."""


def serve(host: str = "127.0.0.1", port: int = 8000, demo: bool = False, workers: int = 1) -> int:
    """Run the service until interrupted; ``demo`` first builds a demo model when ARTIFACTS_DIR has none.

    Invalid settings raise ``ValueError`` naming the variable (the CLI prints it and exits 2).
    """
    settings = load_settings()
    configure_logging(settings.log_level)
    if demo and model_kind(settings.artifacts_dir) is None:
        build_demo_model(settings.artifacts_dir, settings.static_dir, weights=settings.anomalia_weights,
                         img_size=settings.img_size, config_overrides=settings.artifact_options().query_overrides())
    if settings.prometheus_multiproc_dir is not None:  # the previous run's values must not be added to this one's
        clear_multiprocess_dir(settings.prometheus_multiproc_dir)
    if workers > 1:
        if settings.prometheus_multiproc_dir is None:
            log.warning("metrics_per_worker", workers=workers,
                        hint="set PROMETHEUS_MULTIPROC_DIR so /metrics answers the sum over all workers")
        return serve_workers(host, port, workers, settings.log_level)
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, lifespan="on", access_log=False,
                                           log_level=settings.log_level.lower(), timeout_graceful_shutdown=10))
    server.run()
    if not server.started:
        log.error("startup_failed", hint="see the error above; without a model run `anomalia serve --demo` "
                                         "or fit one into ARTIFACTS_DIR")
        return STARTUP_FAILED
    return 0


def serve_workers(host: str, port: int, workers: int, log_level: str) -> int:
    """``workers`` processes on one socket under uvicorn's supervisor, each building the app from the settings."""
    config = uvicorn.Config(APP_FACTORY, factory=True, host=host, port=port, workers=workers, lifespan="on",
                            access_log=False, log_level=log_level.lower(), timeout_graceful_shutdown=10)
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    supervisor.run()
    if any(process.exitcode == STARTUP_FAILED for process in supervisor.processes):
        log.error("startup_failed", hint="a worker could not start; see the error above")
        return STARTUP_FAILED
    return 0
