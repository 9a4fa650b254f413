"""The PatchCore detector, following scikit-learn's estimator contract."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator, Sequence

import numpy as np

from anomalia.core.calibration import calibrate
from anomalia.core.config import PatchCoreConfig
from anomalia.core.features import Extractor, create_extractor
from anomalia.core.image import model_input_array
from anomalia.core.knn import NearestNeighbours, auto_index
from anomalia.core.scoring import anomaly_map, density_weight, image_score
from anomalia.core.window_choice import JUDGE_BANK_IMAGES, choose_window, judged_images, kept_default


class NotFittedError(RuntimeError):
    """The detector was used before ``fit`` (or before loading a bank)."""


class WeightsMismatchError(ValueError):
    """A memory bank is being scored with backbone weights other than those that built it."""


@dataclass(frozen=True)
class Prediction:
    """One image's result: ``anomaly_map`` is ``(img_size, img_size)`` raw distances."""

    score: float
    anomaly_map: np.ndarray = field(repr=False)
    image_size: tuple[int, int]


Progress = Callable[[int], None]
Timings = dict[str, float]
"""Milliseconds per stage (``backbone_ms``, ``knn_ms``), added to when a caller passes one in."""
PROBES_PER_IMAGE = 64
MAX_PROBES = 4096
"""Patches kept from the taught images to measure an approximate index's recall (``knn_index="auto"``)."""


class _Subset(Sequence):
    """Lazy view of some items of a sequence, so image loaders stay lazy through the split."""

    def __init__(self, items: Sequence, indices: np.ndarray):
        self.items, self.indices = items, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position):
        return self.items[int(self.indices[position])]


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded ``(train, holdout)`` index split; no holdout below 2 images or at fraction 0."""
    order = np.random.default_rng(seed).permutation(n)
    n_hold = 0 if fraction <= 0 or n < 2 else int(np.clip(round(n * fraction), 1, n - 1))
    return np.sort(order[n_hold:]), np.sort(order[:n_hold])


class PatchCore:
    """PatchCore (Roth et al., 2022): a coreset of nominal patch features and kNN distances.

    ``fit(images)`` learns ``memory_bank_``, ``knn_``, ``holdout_scores_`` and a
    default ``threshold_``; ``predict`` refuses to run before that.
    """

    def __init__(self, config: PatchCoreConfig | None = None, *, extractor: Extractor | None = None):
        self.config = config or PatchCoreConfig()
        self.extractor = extractor

    # -- learning -----------------------------------------------------------------------
    def fit(self, images: Sequence[np.ndarray], *, progress: Progress | None = None,
            stage: Callable[[str], None] | None = None) -> "PatchCore":
        """Learn from good BGR images (a sequence; items may be loaded lazily).

        ``progress(n)``: ``n`` more images went through the backbone (training, then held-out ones);
        ``stage(name)``: ``"coreset"`` when the bank is being subsampled, ``"holdout"`` when held-out
        images start being scored. Neither changes what is learned."""
        from anomalia.core.memory_bank import MemoryBankBuilder  # the coreset needs torch and numba: fit only

        config = self.config.validate()
        if len(images) == 0:
            raise ValueError("fit needs at least one good image")
        extractor = self.feature_extractor()
        train, holdout = holdout_split(len(images), config.holdout_fraction, config.seed)
        train, judged, judge_only = judged_images(config, train, holdout)
        timings = {"features_s": 0.0, "coreset_s": 0.0}
        known_train: list[np.ndarray] = []
        known_judged: list[np.ndarray] = []
        if len(judged):
            started = time.perf_counter()
            choice, known_train, known_judged = choose_window(
                self, _Subset(images, train[:JUDGE_BANK_IMAGES]), _Subset(images, judged), progress)
            timings["window_choice_s"] = time.perf_counter() - started
        else:
            choice = kept_default(config, len(images))
        self.window_choice_ = choice.to_dict()
        self.config = config = replace(config, aggregation=choice.chosen)
        builder = MemoryBankBuilder(config.coreset_ratio, seed=config.seed,
                                    chunk_patches=config.coreset_chunk_patches, device=self.device)
        rng = np.random.default_rng(config.seed)
        probes: list[np.ndarray] = []
        try:
            for first, batch in zip(range(0, len(train), config.batch_size), self.batches(_Subset(images, train))):
                started = time.perf_counter()
                if first + len(batch) <= len(known_train):  # embedded while judging the windows
                    embeddings = np.stack(known_train[first:first + len(batch)])
                else:
                    embeddings = self.embed(batch)
                    if progress:
                        progress(len(batch))
                timings["features_s"] += time.perf_counter() - started
                if config.knn_index == "auto" and len(probes) * PROBES_PER_IMAGE < MAX_PROBES:
                    rows = embeddings.reshape(len(batch), -1, embeddings.shape[-1])
                    picks = rng.choice(rows.shape[1], size=min(PROBES_PER_IMAGE, rows.shape[1]), replace=False)
                    probes.extend(rows[:, picks])
                started = time.perf_counter()
                builder.add(embeddings)
                timings["coreset_s"] += time.perf_counter() - started
            for embeddings in known_judged[:len(judge_only)]:  # set aside only to judge: taught like the rest
                builder.add(embeddings)
            if stage:
                stage("coreset")
            started = time.perf_counter()
            self.memory_bank_ = builder.finish()
        finally:
            builder.close()
        timings["coreset_wait_s"] = time.perf_counter() - started
        self.weights_fingerprint_ = extractor.fingerprint
        self.probe_patches_ = (np.concatenate(probes) if probes
                               else np.empty((0, self.memory_bank_.shape[1]), np.float32))
        started = time.perf_counter()
        self.knn_ = self._index(self.memory_bank_)
        timings["index_s"] = time.perf_counter() - started
        self.n_train_images_, self.n_holdout_images_ = len(train) + len(judge_only), len(holdout)
        if stage and len(holdout):
            stage("holdout")
        started = time.perf_counter()
        self.holdout_scores_, held_out_bank, held_out_patches = self._score_holdout(
            _Subset(images, holdout), progress, [] if len(judge_only) else known_judged)
        timings["holdout_s"] = time.perf_counter() - started
        if held_out_bank is not None:  # the index grows; its kind and measured search effort stay
            self.memory_bank_ = np.concatenate([self.memory_bank_, held_out_bank])
            self.knn_.add(held_out_bank, self.memory_bank_)
            self.knn_report_["bank_rows"] = int(self.memory_bank_.shape[0])
        self.n_embeddings_ = builder.n_seen + held_out_patches
        self.threshold_ = self._default_threshold()
        self.fit_timings_ = timings
        return self

    def _index(self, bank: np.ndarray) -> NearestNeighbours:
        """The configured index; ``auto`` measures which search keeps the recall fastest (``auto_index``)."""
        config = self.config
        if config.knn_index == "auto":
            index, self.knn_report_ = auto_index(bank, self.probe_patches_, config.knn_k, distance=config.distance,
                                                 seed=config.seed, device=self.device)
            return index
        self.knn_report_ = {"requested": config.knn_index, "kind": config.knn_index, "bank_rows": int(bank.shape[0])}
        return NearestNeighbours.build(bank, kind=config.knn_index, distance=config.distance, seed=config.seed,
                                       device=self.device)

    def _score_holdout(self, images: Sequence[np.ndarray], progress: Progress | None,
                       known: list[np.ndarray]) -> tuple[list[float], np.ndarray | None, int]:
        """Score the held-out good images against the bank built without them, then add them to it.

        Their scores are those of good parts the bank never saw (what the default threshold needs);
        afterwards every taught image counts, like the reference PatchCore that keeps no holdout.
        The joined coreset is the union of two coresets at the same ratio (composable, as per chunk).
        ``known``: the embeddings of the first images, already computed (and counted) by the window choice.
        """
        from anomalia.core.memory_bank import MemoryBankBuilder

        if len(images) == 0:
            return [], None, 0
        config = self.config
        builder = MemoryBankBuilder(config.coreset_ratio, seed=config.seed + 1,
                                    chunk_patches=config.coreset_chunk_patches, device=self.device)
        scores: list[float] = []
        try:
            for embeddings, predictions in self._scored_batches(images, known=known):
                scores.extend(p.score for p in predictions)
                builder.add(embeddings)
                if progress and len(scores) > len(known):
                    progress(min(len(predictions), len(scores) - len(known)))
            return scores, builder.finish(), builder.n_seen
        finally:
            builder.close()

    def _default_threshold(self) -> float | None:
        if not self.holdout_scores_:
            return None
        result = calibrate(self.holdout_scores_, score_percentile=self.config.score_percentile,
                           safety_factor=self.config.safety_factor)
        return result.threshold

    # -- restoring ----------------------------------------------------------------------
    @classmethod
    def from_bank(cls, config: PatchCoreConfig, bank: np.ndarray, *, weights_fingerprint: str,
                  extractor: Extractor, knn: NearestNeighbours | None = None,
                  threshold: float | None = None) -> "PatchCore":
        """Rebuild a fitted detector; refuses an extractor whose weights differ from the bank's."""
        if extractor.fingerprint != weights_fingerprint:
            raise WeightsMismatchError(
                f"this memory bank was built with {config.backbone} weights {weights_fingerprint[:19]}…, "
                f"but the loaded backbone ({extractor.weights.describe()}) has {extractor.fingerprint[:19]}…; "
                "load the same weights or fit the model again")
        detector = cls(config.validate(), extractor=extractor)
        detector.memory_bank_ = np.ascontiguousarray(bank, dtype=np.float32)
        detector.knn_ = (knn or NearestNeighbours.build(bank, kind=config.knn_index, distance=config.distance,
                                                        seed=config.seed)).to(detector.device)
        detector.weights_fingerprint_ = weights_fingerprint
        detector.threshold_ = threshold
        detector.holdout_scores_ = []
        detector.n_embeddings_ = int(bank.shape[0])
        return detector

    # -- scoring ------------------------------------------------------------------------
    def predict(self, images: Sequence[np.ndarray], *, mask: np.ndarray | None = None,
                timings: Timings | None = None) -> list[Prediction]:
        """Score BGR images; ``mask`` (``img_size``² bool) limits where the image score is read."""
        self._check_fitted()
        return [p for _, predictions in self._scored_batches(list(images), mask, timings) for p in predictions]

    def _scored_batches(self, images: Sequence[np.ndarray], mask: np.ndarray | None = None,
                        timings: Timings | None = None,
                        known: Sequence[np.ndarray] = ()) -> Iterator[tuple[np.ndarray, list[Prediction]]]:
        """Per batch: its ``(B, h, w, C)`` embeddings and its predictions; ``known`` embeddings of
        the first images are used instead of a backbone pass."""
        for start, batch in zip(range(0, len(images), self.config.batch_size), self.batches(images)):
            if start + len(batch) <= len(known):
                embeddings = np.stack(known[start:start + len(batch)])
                distances, nearest = self._search(embeddings, timings)
            else:
                embeddings, distances, nearest = self.patch_distances(batch, timings)
            predictions = []
            for i, image in enumerate(batch):
                heat = self.map_from_distances(distances[i])
                predictions.append(Prediction(score=self.image_score(heat, mask, embeddings[i], nearest[i]),
                                              anomaly_map=heat, image_size=(image.shape[1], image.shape[0])))
            yield embeddings, predictions

    def anomaly_maps(self, images: list[np.ndarray], timings: Timings | None = None) -> np.ndarray:
        """``(B, img_size, img_size)`` smoothed distance maps for one batch."""
        self._check_fitted()
        _, distances, _ = self.patch_distances(images, timings)
        return np.stack([self.map_from_distances(d) for d in distances])

    def patch_distances(self, images: list[np.ndarray],
                        timings: Timings | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Embeddings ``(B, h, w, C)``, mean kNN distance ``(B, h, w)`` and nearest bank row ``(B, h, w)``.

        ``timings`` (optional) gets the milliseconds spent in the backbone and in the search added.
        """
        started = time.perf_counter()
        embeddings = self.embed(images)
        if timings is not None:
            timings["backbone_ms"] = timings.get("backbone_ms", 0.0) + (time.perf_counter() - started) * 1000
        return (embeddings, *self._search(embeddings, timings))

    def _search(self, embeddings: np.ndarray, timings: Timings | None) -> tuple[np.ndarray, np.ndarray]:
        """Mean kNN distance and nearest bank row, ``(B, h, w)`` each, of ``(B, h, w, C)`` embeddings."""
        started = time.perf_counter()
        b, h, w, c = embeddings.shape
        distances, ids = self.knn_.search_images(embeddings.reshape(b, h * w, c), self.config.knn_k)
        if timings is not None:
            timings["knn_ms"] = timings.get("knn_ms", 0.0) + (time.perf_counter() - started) * 1000
        return distances.mean(axis=2).reshape(b, h, w), ids[:, :, 0].reshape(b, h, w)

    def map_from_distances(self, patch_distances: np.ndarray) -> np.ndarray:
        """``(h, w)`` patch distances → ``(img_size, img_size)`` smoothed map."""
        return anomaly_map(patch_distances, self.config.img_size, self.config.smoothing_sigma,
                           centres=self.cell_centres())

    def image_score(self, heat: np.ndarray, mask: np.ndarray | None, embeddings: np.ndarray,
                    nearest: np.ndarray) -> float:
        """The config's score rule on one image's map; ``reweighted`` also needs its patches' neighbours."""
        if self.config.score_method != "reweighted":
            return image_score(heat, mask, self.config.score_method)
        return image_score(heat, mask, "max") * self._density_weight(heat, mask, embeddings, nearest)

    def _density_weight(self, heat: np.ndarray, mask: np.ndarray | None, embeddings: np.ndarray,
                        nearest: np.ndarray) -> float:
        """PatchCore eq. 7's weight for the patch under the map's maximum (inside ``mask``)."""
        masked = heat if mask is None else np.where(mask, heat, -np.inf)
        row, col = np.unravel_index(int(np.argmax(masked)), heat.shape)
        cell = self._cell_at(int(row), int(col), embeddings.shape[:2])
        return density_weight(embeddings[cell], int(nearest[cell]), self.memory_bank_, self.knn_,
                              self.config.score_k)

    def _cell_at(self, row: int, col: int, grid: tuple[int, int]) -> tuple[int, int]:
        """The map cell whose centre is nearest to pixel ``(row, col)``."""
        centres = self.cell_centres()
        size = self.config.img_size
        if centres is None:
            cells = (row * grid[0] // size, col * grid[1] // size)
        else:
            first, step = centres
            cells = (round((row - first) / step), round((col - first) / step))
        return min(max(cells[0], 0), grid[0] - 1), min(max(cells[1], 0), grid[1] - 1)

    def cell_centres(self) -> tuple[float, float] | None:
        """Where the map's cells sit in the image, unless the config keeps seed 000's plain resize."""
        info = self.feature_extractor().info
        if self.config.map_alignment == "resize" or info.first_centre is None:
            return None
        return info.first_centre, float(info.stride * self.config.stride)

    def score(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return np.array([p.score for p in self.predict(images)], dtype=np.float64)

    # -- plumbing -----------------------------------------------------------------------
    def feature_extractor(self) -> Extractor:
        """The backbone, built from the config on first use unless one was injected (shared)."""
        if self.extractor is None:
            self.extractor = create_extractor(self.config.backbone, self.config.weights_spec())
        return self.extractor

    @property
    def device(self) -> str:
        """Where the backbone runs (``cpu``, ``cuda:0``); exact kNN search runs there too."""
        return self.feature_extractor().device

    @property
    def runtime(self) -> str:
        """What runs the backbone: ``torch``, or ``onnxruntime``/``openvino`` on an exported graph."""
        return self.feature_extractor().runtime

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        """``(B, h, w, C)`` patch embeddings of BGR images, as the memory bank holds them."""
        config = self.config
        batch = model_input_array(images, config.img_size, config.color, config.normalize)
        return self.feature_extractor().patch_embeddings(batch, aggregation=config.aggregation, stride=config.stride,
                                                         norm=config.patch_norm)

    def embed_windows(self, images: list[np.ndarray], windows: tuple[int, ...]) -> dict[int, np.ndarray]:
        """``embed`` at each of ``windows``, from one backbone pass."""
        config = self.config
        batch = model_input_array(images, config.img_size, config.color, config.normalize)
        return self.feature_extractor().patch_embeddings_by_window(batch, windows=windows, stride=config.stride,
                                                                   norm=config.patch_norm)

    def batches(self, images: Sequence[np.ndarray]) -> Iterator[list[np.ndarray]]:
        """``images`` in lists of the config's ``batch_size`` (loaded as they are reached)."""
        size = self.config.batch_size
        for start in range(0, len(images), size):
            yield [images[i] for i in range(start, min(start + size, len(images)))]

    def _check_fitted(self) -> None:
        if not hasattr(self, "memory_bank_"):
            raise NotFittedError("this PatchCore detector is not fitted yet: call fit(images) or load a model")
