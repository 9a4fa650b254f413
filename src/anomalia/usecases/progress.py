"""How long work says how far it has got: a plain callable the use cases call, stage by stage.

``report(stage, done, total)``: ``done`` of ``total`` steps of ``stage`` are finished. Teaching
reports ``embedding`` (images through the backbone), ``coreset``, ``holdout`` (held-out images
scored) and ``saving``; batches report ``scoring`` (images scored) and ``recording`` (records
written). A report never changes a result; a caller that wants none passes nothing.
"""

from __future__ import annotations

from typing import Callable

Report = Callable[[str, int, int], None]


def ignore(stage: str, done: int, total: int) -> None:
    """The report of a caller that does not watch."""


STAGE_SPANS: dict[str, dict[str, tuple[float, float]]] = {
    "teach": {"embedding": (0.0, 0.7), "coreset": (0.7, 0.8), "holdout": (0.8, 0.95), "saving": (0.95, 1.0)},
    "predict_batch": {"scoring": (0.0, 0.9), "recording": (0.9, 1.0)},
    "infer_batch": {"scoring": (0.0, 0.9), "recording": (0.9, 1.0)},
}
"""Per job kind, the share of the whole each stage covers (measured on CPU with resnet18: embedding
dominates a teach, scoring a batch)."""
STAGE_WORDS = {"embedding": "images embedded", "coreset": "coreset subsampling", "holdout": "held-out images scored",
               "saving": "saving the model", "scoring": "images scored", "recording": "records written"}


def overall(kind: str, stage: str, done: int, total: int) -> float:
    """The fraction of the whole job done (0..1) when ``done`` of ``total`` steps of ``stage`` are."""
    start, end = STAGE_SPANS.get(kind, {}).get(stage, (0.0, 1.0))
    share = min(1.0, done / total) if total > 0 else 0.0
    return round(start + (end - start) * share, 4)


ONE_STEP = ("coreset", "saving")


def describe(stage: str, done: int, total: int) -> str:
    """``"3/8 images embedded"``; a one-step stage (coreset, saving) is just its words."""
    words = STAGE_WORDS.get(stage, stage)
    return words if stage in ONE_STEP else f"{done}/{total} {words}"
