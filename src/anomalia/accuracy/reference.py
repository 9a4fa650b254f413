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
    draws: dict[str, int] = field(default_factory=dict)
    """Per surface, how many runs (seeds) its figures are the mean of; empty for a single file."""
    spread: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    """Per surface and quality score, (min, max) over those runs."""
    paths: tuple[Path, ...] = ()
    """Every file averaged, when there were several."""
    values: dict[str, dict[str, tuple[float, ...]]] = field(default_factory=dict)
    """Per surface and quality score, each run's figure (for the gaps' standard errors)."""

    def figure(self, surface: str, metric: str) -> float | None:
        return self.surfaces.get(surface, {}).get(metric)

    @property
    def label(self) -> str:
        """Where the figures come from, for the report: one file, or the mean of several runs."""
        if not self.paths:
            return f"`{self.path}`"
        files = ", ".join(f"`{path}`" for path in self.paths)
        return f"the mean of {self.runs} runs (seeds) per surface, from {files}"

    @property
    def runs(self) -> str:
        """How many runs the surfaces' figures are means of, e.g. ``1/2`` (``1`` for a single file)."""
        return "/".join(str(count) for count in sorted(set(self.draws.values()))) or "1"

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


def combine_references(references: list[Reference]) -> Reference:
    """Several runs of the same tool on the same suite (other seeds) → per-surface means and spreads.

    A surface gets the mean of the runs that scored it; ``draws`` says how many that was.
    """
    if len(references) == 1:
        return references[0]
    first = references[0]
    if any(r.suite_hash != first.suite_hash for r in references):
        raise ReferenceMismatchError("the reference files were computed on different suites")
    surfaces: dict[str, dict[str, float | None]] = {}
    draws: dict[str, int] = {}
    spread: dict[str, dict[str, tuple[float, float]]] = {}
    per_run: dict[str, dict[str, tuple[float, ...]]] = {}
    names = sorted({name for r in references for name in r.surfaces})
    for name in names:
        rows = [r.surfaces[name] for r in references if name in r.surfaces]
        draws[name] = len(rows)
        surfaces[name], spread[name], per_run[name] = {}, {}, {}
        for metric in METRICS:
            values = [value for row in rows if (value := row.get(metric)) is not None]
            surfaces[name][metric] = sum(values) / len(values) if values else None
            if values and metric != "fit_s":
                spread[name][metric] = (min(values), max(values))
                per_run[name][metric] = tuple(values)
    return Reference(path=first.path, suite_hash=first.suite_hash, surfaces=surfaces, weights=first.weights,
                     tool=first.tool, draws=draws, spread=spread, paths=tuple(r.path for r in references),
                     values=per_run)
