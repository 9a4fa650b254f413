"""The application layer: teach, calibrate, inspect, evaluate — plain Python every front end shares.

Inputs and outputs are frozen dataclasses; failures are :mod:`anomalia.usecases.errors`
(domain words, no HTTP codes). Nothing here imports a web framework, so the CLI and
batch workers run without FastAPI installed.
"""
