"""Fitting and scoring one set of model options on every surface of a built suite.

Per surface: fit `PatchCore` on train/good, then `anomalia.usecases.evaluation.evaluate` on test/
(image AUROC, pixel AUROC, PRO). One feature extractor is built per variant and shared by
its surfaces, so fit times measure fitting, not loading the backbone.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch

from anomalia.accuracy.options import make_config
from anomalia.accuracy.suite import Suite
from anomalia.accuracy.surfaces import FAMILIES, get_surface
from anomalia.accuracy.weights import weights_identity
from anomalia.core.config import PatchCoreConfig
from anomalia.core.detector import PatchCore
from anomalia.core.features import FeatureExtractor
from anomalia.usecases.evaluation import evaluate
from anomalia.store.image_files import ImageFiles, list_images

SCORES: tuple[str, ...] = ("image_auroc", "pixel_auroc", "pro", "fit_s")
Log = Callable[[str], None]


@dataclass(frozen=True)
class Variant:
    """A named set of model options: `options` as given on the command line, `config` in full."""

    name: str
    options: dict[str, object]
    config: PatchCoreConfig


@dataclass(frozen=True)
class SurfaceResult:
    surface: str
    family: str
    colour: str
    image_auroc: float
    pixel_auroc: float | None
    pro: float | None
    fit_s: float
    eval_s: float
    n_good: int
    n_defect: int
    seeds: tuple[int, ...] = ()
    spread: dict[str, tuple[float, float]] = field(default_factory=dict)
    """With several seeds: the figures are their means, ``spread`` each quality score's (min, max)."""
    windows: tuple[int, ...] = ()
    """The aggregation window each fit kept (one per seed): the config's, or chosen by the fit."""
    draws: dict[str, tuple[float, ...]] = field(default_factory=dict)
    """With several seeds: each quality score's value per seed, in seed order (for the gaps' standard errors)."""


@dataclass(frozen=True)
class VariantResult:
    """One variant's figures on every surface; `weights` names the backbone weights it loaded."""

    variant: Variant
    weights: dict[str, str]
    surfaces: tuple[SurfaceResult, ...]

    def means(self) -> dict[str, dict[str, float | None]]:
        """Mean of each score over all surfaces (``"all"``) and per family present."""
        groups = {"all": list(self.surfaces)}
        for family in FAMILIES:
            members = [r for r in self.surfaces if r.family == family]
            if members:
                groups[family] = members
        return {group: {score: mean_of([getattr(r, score) for r in members]) for score in SCORES}
                for group, members in groups.items()}


def results_from_json(data: dict) -> list[VariantResult]:
    """The variants of an earlier ``--json`` run, to render them again (e.g. beside a newer reference)."""
    return [VariantResult(
        variant=Variant(name=v["name"], options=v["options"], config=PatchCoreConfig(**v["config"])),
        weights=v["weights"], surfaces=tuple(_surface_from_json(s) for s in v["surfaces"].values()))
        for v in data["variants"]]


def _surface_from_json(row: dict) -> SurfaceResult:
    spread = {score: (low, high) for score, (low, high) in row.get("spread", {}).items()}
    draws = {score: tuple(values) for score, values in row.get("draws", {}).items()}
    return SurfaceResult(**{**row, "seeds": tuple(row.get("seeds", ())), "spread": spread,
                            "windows": tuple(row.get("windows", ())), "draws": draws})


def mean_of(values: Sequence[float | None]) -> float | None:
    """Mean of the values present, None when there are none."""
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def build_variants(base: dict[str, object], named: Sequence[tuple[str, dict[str, object]]]) -> list[Variant]:
    """One `Variant` per (name, options) over `base`; without any, one called ``default``."""
    named = list(named) or [("default", {})]
    names = [name for name, _ in named]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must differ; got {', '.join(names)}")
    return [Variant(name, dict(options), make_config({**base, **options})) for name, options in named]


def score_surface(suite: Suite, name: str, config: PatchCoreConfig, extractor: FeatureExtractor) -> SurfaceResult:
    """Fit on `name`'s train/good images and evaluate on its test images."""
    folder = suite.surface_dir(name)
    surface = get_surface(name)
    started = time.perf_counter()
    detector = PatchCore(config, extractor=extractor).fit(ImageFiles(list_images(folder / "train" / "good")))
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    result = evaluate(detector, folder).result
    return SurfaceResult(surface=name, family=surface.family, colour=surface.colour,
                         image_auroc=result.image_auroc, pixel_auroc=result.pixel_auroc, pro=result.pro,
                         fit_s=fit_s, eval_s=time.perf_counter() - started,
                         n_good=result.n_good, n_defect=result.n_defect, windows=(detector.config.aggregation,))


def run_variant(suite: Suite, variant: Variant, surfaces: Sequence[str], log: Log = print,
                seeds: Sequence[int] = ()) -> VariantResult:
    """Score `variant` on each of `surfaces`, logging one line per fit.

    With ``seeds``, each surface is fitted once per seed (the coreset's start point and the
    holdout split change) and its figures are their means: one coreset draw moves a surface's
    AUROC by a few hundredths, more than most differences between options.
    """
    extractor = PatchCore(variant.config).feature_extractor()
    results = []
    for name in surfaces:
        draws = []
        for seed in seeds or (variant.config.seed,):
            result = score_surface(suite, name, replace(variant.config, seed=seed), extractor)
            log(f"[{variant.name}{f' seed {seed}' if seeds else ''}] {name:<9} image AUROC {result.image_auroc:.3f}"
                f"  pixel AUROC {_fmt(result.pixel_auroc)}  PRO {_fmt(result.pro)}  fit {result.fit_s:.1f} s"
                f"  window {result.windows[0]}")
            draws.append(result)
        results.append(average_draws(draws, tuple(seeds)) if seeds else draws[0])
    return VariantResult(variant=variant, weights=weights_identity(variant.config.weights), surfaces=tuple(results))


QUALITY: tuple[str, ...] = ("image_auroc", "pixel_auroc", "pro")


def average_draws(draws: Sequence[SurfaceResult], seeds: tuple[int, ...]) -> SurfaceResult:
    """One surface's figures over several seeds: means, each quality score's (min, max) and values."""
    spread, values_per_score = {}, {}
    for score in QUALITY:
        values = [getattr(d, score) for d in draws if getattr(d, score) is not None]
        if values:
            spread[score] = (min(values), max(values))
            values_per_score[score] = tuple(values)
    return replace(draws[0], image_auroc=statistics.fmean(d.image_auroc for d in draws),
                   pixel_auroc=mean_of([d.pixel_auroc for d in draws]), pro=mean_of([d.pro for d in draws]),
                   fit_s=statistics.fmean(d.fit_s for d in draws), eval_s=statistics.fmean(d.eval_s for d in draws),
                   seeds=seeds, spread=spread, windows=tuple(w for d in draws for w in d.windows),
                   draws=values_per_score)


def _fmt(value: float | None) -> str:
    return "  -  " if value is None else f"{value:.3f}"


def machine_info() -> dict[str, object]:
    """Where the figures were measured: CPU model, cores, torch threads and versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform()}
