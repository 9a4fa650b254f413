"""anomalia: PatchCore visual inspection as a library, a CLI and an HTTP service."""

__version__ = "0.1.0"
