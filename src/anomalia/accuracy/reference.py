"""Figures from a reference implementation (anomalib's PatchCore) to print beside ours.

The reference tool writes ``{"suite_hash": ..., "weights_fingerprint" | "weights_file_sha256" |
"trunk_sha256": ..., "surfaces": {"<surface>": {"image_auroc": f, "pixel_auroc": f, "pro": f,
"fit_s": f}}}``. Figures from other images mean nothing here, so a reference whose suite hash
differs from the suite's is refused; differing weights only earn a warning, since comparing
backbones can be the point.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

METRICS: tuple[str, ...] = ("image_auroc", "pixel_auroc", "pro", "fit_s")
_WEIGHT_KEYS = ("weights_fingerprint", "weights_file_sha256", "trunk_sha256")


class ReferenceMismatchError(ValueError):
    """The reference was computed on another suite than the one being scored."""


@dataclass(frozen=True)
class Reference:
    """Per-surface reference figures (a metric is None when the tool did not report it)."""

    path: Path
    suite_hash: str
    surfaces: dict[str, dict[str, float | None]]
    weights: dict[str, str] = field(default_factory=dict)
    tool: str = "reference"

    def figure(self, surface: str, metric: str) -> float | None:
        return self.surfaces.get(surface, {}).get(metric)

    def weights_warning(self, ours: dict[str, str]) -> str | None:
        """A sentence when the reference names weights other than `ours` (see `weights_identity`)."""
        known = {_bare(v) for v in ours.values()}
        differing = [key for key, value in self.weights.items() if _bare(value) not in known]
        if not differing:
            return None
        return (f"the reference's {', '.join(differing)} does not match the weights used here "
                f"({ours.get('weights', '?')}); its figures come from another backbone")


def _bare(value: str) -> str:
    return value.removeprefix("sha256:")


def _figures(name: str, row: object) -> dict[str, float | None]:
    if not isinstance(row, dict):
        raise ValueError(f"reference surface {name!r} must map metric names to numbers")
    figures: dict[str, float | None] = {}
    for metric in METRICS:
        value = row.get(metric)
        if value is not None and not isinstance(value, (int, float)):
            raise ValueError(f"reference {name}.{metric} must be a number or null, got {value!r}")
        figures[metric] = None if value is None else float(value)
    return figures


def load_reference(path: Path, suite_hash: str) -> Reference:
    """Read a reference JSON and check it was computed on the suite with `suite_hash`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read reference {path}: {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get("surfaces"), dict):
        raise ValueError(f"{path} is not a reference file: it needs a 'surfaces' object")
    theirs = data.get("suite_hash")
    if theirs != suite_hash:
        raise ReferenceMismatchError(
            f"{path} was computed on suite {theirs!r}, but this suite is {suite_hash!r}; "
            "run the reference tool again on this suite folder (or pass the suite it was made from)")
    surfaces = {str(name): _figures(str(name), row) for name, row in data["surfaces"].items()}
    weights = {key: str(data[key]) for key in _WEIGHT_KEYS if data.get(key)}
    return Reference(path=path, suite_hash=theirs, surfaces=surfaces, weights=weights,
                     tool=str(data.get("tool", "reference")))
