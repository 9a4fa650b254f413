"""Where the backbone and the exact kNN run: ``auto`` (CUDA when there is one), ``cpu`` or ``cuda[:N]``."""

from __future__ import annotations

from anomalia.core.knn import optional_torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")


def resolve_device(text: str) -> str:
    """The device to use for ``text``; asking for CUDA on a machine without it is an error, not a fallback."""
    value = text.strip().lower()
    torch = optional_torch()  # without torch (a runtime-only install) everything runs on the CPU
    if value == "auto":
        return "cuda" if torch is not None and torch.cuda.is_available() else "cpu"
    if value == "cpu":
        return "cpu"
    if value == "cuda" or (value.startswith("cuda:") and value[5:].isdigit()):
        if torch is None:
            raise ValueError(f"device {text!r} asked for, but torch is not installed here; use auto or cpu")
        if not torch.cuda.is_available():
            raise ValueError(f"device {text!r} asked for, but torch sees no CUDA device here; use auto or cpu")
        index = int(value[5:]) if ":" in value else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {text!r}: there are only {torch.cuda.device_count()} CUDA devices")
        return value
    raise ValueError(f"device must be auto, cpu, cuda or cuda:N; got {text!r}")
