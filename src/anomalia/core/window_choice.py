"""Which aggregation window a model keeps, judged on defects painted into its own good images.

No fixed window wins on every surface (docs/ACCURACY.md): without aggregation small defects
stand out sharply on regular and object images, while irregular materials (granite, foam,
fibres) need the 3×3 neighbourhood or their grain reads as defects. With ``aggregation_choice``
``fit`` (opt-in) a fit builds a small judging bank for each candidate, scores held-out good
images and the same images with painted defects (:mod:`anomalia.core.synthetic_defects`), and
keeps the window with the best mean of image AUROC, pixel AUROC and PRO. Near-ties keep the
backbone's default. On the accuracy suite this raises the mean image AUROC and PRO but keeps
window 1 on some irregular materials whose pixel AUROC needs 3 (README, Accuracy), so it is
not the default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from anomalia.core.config import PatchCoreConfig
from anomalia.core.knn import NearestNeighbours
from anomalia.core.metrics import auroc, pixel_auroc, pro_score
from anomalia.core.synthetic_defects import paint_defects

if TYPE_CHECKING:
    from anomalia.core.detector import PatchCore

WINDOW_CANDIDATES = (1, 3)
"""The windows a fit compares: PatchCore's 3×3 and none. 5×5, tried on 9 suite surfaces, was worse
than 3×3 in the mean of the three figures on 7 and level on granite and leather."""
MIN_CHOICE_IMAGES = 4
"""Fewer held-out images than this say nothing reliable: the backbone's default is kept."""
MAX_CHOICE_IMAGES = 16
"""Enough to separate the windows; more would only add backbone passes to large fits."""
JUDGE_BANK_IMAGES = 16
"""Training images in each window's judging bank: the judging costs the same for 40 or 4 000
images, and those images' embeddings are reused by the fit (no second backbone pass)."""
TIE = 0.01
"""A candidate must beat the default's mean figure by more than this to replace it."""
CHOICE_FRACTION = 0.2
"""Share of the images set aside to judge on when a model keeps no holdout (role/roi models)."""

@dataclass(frozen=True)
class WindowChoice:
    """What a fit chose, from which figures, and why (recorded in the manifest)."""

    chosen: int
    default: int
    reason: str
    images: int = 0
    figures: dict[int, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"chosen": self.chosen, "default": self.default, "reason": self.reason, "images": self.images,
                "candidates": {str(window): figures for window, figures in self.figures.items()}}


def judged_images(config: PatchCoreConfig, train: np.ndarray,
                  holdout: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train, judged, judge_only)`` image indices: what the choice scores, if it runs at all.

    The held-out images when there are enough; a model without a holdout sets a few training
    images aside instead (``judge_only``), taught after the choice like the rest."""
    from anomalia.core.detector import holdout_split

    none = np.empty(0, dtype=np.int64)
    if config.aggregation_choice != "fit":
        return train, none, none
    if len(holdout) >= MIN_CHOICE_IMAGES:
        return train, holdout[:MAX_CHOICE_IMAGES], none
    if len(holdout) or len(train) < 2 * MIN_CHOICE_IMAGES:
        return train, none, none
    n_judged = int(np.clip(round(len(train) * CHOICE_FRACTION), MIN_CHOICE_IMAGES, MAX_CHOICE_IMAGES))
    rest, judge_only = holdout_split(len(train), n_judged / len(train), config.seed + 2)
    return train[rest], train[judge_only], train[judge_only]


def kept_default(config: PatchCoreConfig, n_images: int) -> WindowChoice:
    """The config's window, and why no choice was made."""
    window = config.aggregation
    if config.aggregation_choice != "fit":
        reason = f"window {window} fixed by the configuration (aggregation_choice 'fixed')"
    else:
        reason = (f"window {window} (the backbone's default) kept: {n_images} images leave fewer than "
                  f"{MIN_CHOICE_IMAGES} to judge the windows on")
    return WindowChoice(chosen=window, default=window, reason=reason)


def choose_window(detector: "PatchCore", sample: Sequence[np.ndarray], judged: Sequence[np.ndarray],
                  progress: Callable[[int], None] | None) -> tuple[WindowChoice, list[np.ndarray], list[np.ndarray]]:
    """Judge each window with a small bank of ``sample`` (training images) on ``judged`` good
    images and painted copies of them. Also returns both sets' embeddings at the chosen window,
    so the fit that follows passes no image through the backbone twice."""
    config = detector.config
    embedded = [_embedded(detector, images, progress) for images in (sample, judged)]
    painted = paint_defects([judged[i] for i in range(len(judged))], config.img_size, config.seed)
    painted_embedded = _embedded(detector, [p.image for p in painted], None)
    good_maps, defect_maps = {}, {}
    for window in WINDOW_CANDIDATES:
        index = NearestNeighbours.build(_judging_bank(detector, embedded[0][window]), kind="exact",
                                        distance=config.distance, seed=config.seed, device=detector.device)
        good_maps[window] = _maps(detector, index, embedded[1][window])
        defect_maps[window] = _maps(detector, index, painted_embedded[window])
    choice = judge_windows(good_maps, defect_maps, [p.mask for p in painted], config.aggregation)
    return choice, embedded[0][choice.chosen], embedded[1][choice.chosen]


def _embedded(detector: "PatchCore", images: Sequence[np.ndarray],
              progress: Callable[[int], None] | None) -> dict[int, list[np.ndarray]]:
    """Each image's ``(h, w, C)`` embeddings at every candidate window, one backbone pass per batch."""
    out: dict[int, list[np.ndarray]] = {window: [] for window in WINDOW_CANDIDATES}
    for batch in detector.batches(images):
        for window, embeddings in detector.embed_windows(batch, WINDOW_CANDIDATES).items():
            out[window].extend(embeddings)
        if progress:
            progress(len(batch))
    return out


def _judging_bank(detector: "PatchCore", embeddings: list[np.ndarray]) -> np.ndarray:
    from anomalia.core.memory_bank import MemoryBankBuilder  # torch and numba: fit only

    config = detector.config
    builder = MemoryBankBuilder(config.coreset_ratio, seed=config.seed, device=detector.device,
                                chunk_patches=config.coreset_chunk_patches)
    for grid in embeddings:
        builder.add(grid)
    return builder.finish()


def _maps(detector: "PatchCore", index: NearestNeighbours, embeddings: list[np.ndarray]) -> list[np.ndarray]:
    grids = np.stack(embeddings)
    b, h, w, c = grids.shape
    distances, _ = index.search_images(grids.reshape(b, h * w, c), detector.config.knn_k)
    return [detector.map_from_distances(d) for d in distances.mean(axis=2).reshape(b, h, w)]


def judge_windows(good_maps: dict[int, list[np.ndarray]], defect_maps: dict[int, list[np.ndarray]],
                  masks: list[np.ndarray], default: int) -> WindowChoice:
    """Score each window's maps (good images, then painted ones with ``masks``) and pick one.

    The image score read here is the map's maximum, whatever the model's score rule: the
    windows are compared on how well their maps separate, not on a threshold.
    """
    figures: dict[int, dict[str, float]] = {}
    goods = next(iter(good_maps.values()))
    all_masks = [np.zeros(good.shape, dtype=bool) for good in goods] + list(masks)
    labels = np.r_[np.zeros(len(goods)), np.ones(len(masks))]
    for window in good_maps:
        maps = good_maps[window] + defect_maps[window]
        scores = np.array([float(m.max()) for m in maps])
        values = {"image_auroc": auroc(labels, scores), "pixel_auroc": pixel_auroc(all_masks, maps),
                  "pro": pro_score(all_masks, maps)}
        values["mean"] = float(np.mean(list(values.values())))
        figures[window] = {name: round(value, 4) for name, value in values.items()}
    best = max(figures, key=lambda window: figures[window]["mean"])
    margin = figures[best]["mean"] - figures[default]["mean"] if default in figures else np.inf
    n = len(masks)
    if best == default or margin <= TIE:
        reason = (f"window {default} (the backbone's default) kept: no other window beat its mean figure "
                  f"by more than {TIE} on {n} held-out images with painted defects")
        return WindowChoice(chosen=default, default=default, reason=reason, images=n, figures=figures)
    beaten = (f"the default {default} by {margin:.3f}" if default in figures
              else f"the other candidates (the configured window {default} is not one)")
    reason = (f"window {best} beat {beaten} in mean image AUROC, pixel AUROC and PRO on {n} held-out images "
              f"with painted defects")
    return WindowChoice(chosen=best, default=default, reason=reason, images=n, figures=figures)
