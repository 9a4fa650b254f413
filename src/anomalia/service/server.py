"""``anomalia serve``: settings, the optional demo model, then uvicorn on the app factory."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

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
EXIT_GRACE_EXCEEDED = 0
"""Exit code when in-flight work outlives ``SHUTDOWN_GRACE_S``: the stop was asked for, so still a clean stop."""
HARD_STOP_MARGIN_S = 5.0
"""After the grace period uvicorn cancels what is left; a worker thread cannot be cancelled, so the
process is ended this much later whatever is still running."""


class GracefulServer(uvicorn.Server):
    """On SIGTERM/SIGINT: stop accepting, let in-flight requests finish for ``timeout_graceful_shutdown``
    seconds, then stop; a watchdog ends the process if a worker thread outlives that bound."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit:
            grace = float(self.config.timeout_graceful_shutdown or 0)
            log.info("shutdown_requested", signal=signal.Signals(sig).name, grace_s=grace)
            watchdog = threading.Timer(grace + HARD_STOP_MARGIN_S, _hard_stop, args=(grace,))
            watchdog.daemon = True
            watchdog.start()
        super().handle_exit(sig, frame)


def _hard_stop(grace: float) -> None:
    log.error("shutdown_grace_exceeded", grace_s=grace, hint="in-flight work was cut off; raise SHUTDOWN_GRACE_S")
    os._exit(EXIT_GRACE_EXCEEDED)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _stopped(sig: int, frame: FrameType | None) -> None:
    """A stop signal once uvicorn has shut down (it raises the signal again): a requested stop, exit code 0."""


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
    server = GracefulServer(uvicorn.Config(app, host=host, port=port, lifespan="on", access_log=False,
                                           log_level=settings.log_level.lower(),
                                           timeout_graceful_shutdown=settings.shutdown_grace_s))
    previous = {sig: signal.signal(sig, _stopped) for sig in STOP_SIGNALS}  # uvicorn raises them again
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
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
