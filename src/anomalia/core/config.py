"""What defines a model: its embedding space and decision rule, as one frozen dataclass.

Imports nothing heavy, so the CLI can show defaults without loading torch; the
allowed values are looked up when ``validate`` runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from anomalia.core.features import WeightsSpec

# The allowed values of each choice: validation, the CLI's choices, the settings and the page read these.
COLOR_MODES = ("rgb", "gray")
NORMALISATIONS = ("imagenet", "unit")
DISTANCES = ("l2", "cosine")
MAP_ALIGNMENTS = ("receptive_field", "resize")
PATCH_NORMS = ("none", "l2")
AGGREGATION_CHOICES = ("fit", "fixed")
SCORE_METHODS = ("max", "p99", "reweighted")
DEFAULT_CHUNK_PATCHES = 16384

Mode = Literal["sensitive", "strict"]
MODES: tuple[str, ...] = get_args(Mode)
MODE_FACTORS = {"sensitive": 0.8, "strict": 1.2}
"""Seed 000 section 8: how each inspection mode scales the threshold."""
DEFAULT_THRESHOLD = 0.35
"""Seed 000 section 4: the threshold of a model that records none, when ``THRESHOLD`` is unset."""


BACKBONE_AGGREGATION = {"resnet18": 3, "wide_resnet50_2": 3, "dinov2_vits14": 1}
"""Each backbone's default ``aggregation``, the better one of 1 and 3 on the accuracy suite (README,
Accuracy): the CNNs' 8-pixel cells gain from PatchCore's 3×3 neighbourhood; DINOv2's 14-pixel tokens
already see a wide context, and averaging 3×3 of them blurs small defects away (PRO 0.62 vs 0.74)."""


def default_aggregation(backbone: str) -> int:
    """The aggregation window a new model of ``backbone`` gets when none is asked for (3 if unknown)."""
    return BACKBONE_AGGREGATION.get(backbone, 3)


@dataclass(frozen=True)
class PatchCoreConfig:
    """Everything that defines a model's embedding space and decision rule.

    The embedding choices are recorded so a model always scores as it was built:
    ``aggregation`` averages each backbone layer over a k×k cell window before the
    layers are joined (PatchCore's locally aware features, eq. 2; 1 = off; 0 = the
    backbone's default, :data:`BACKBONE_AGGREGATION`, resolved when the config is made);
    ``aggregation_choice`` ``fixed`` keeps it; ``fit`` lets the fit replace it with the better
    of 1 and 3 on defects painted into held-out good images (:mod:`anomalia.core.window_choice`;
    opt-in: on the accuracy suite it trades pixel AUROC on irregular materials for PRO);
    ``patch_norm`` ``none`` keeps the feature magnitude, ``l2`` puts every patch on
    the unit sphere (seed 000 step 8); ``knn_k`` neighbours are averaged for each
    patch's distance; ``score_method`` reads the image score from the map (``max``,
    ``p99``) or re-weights the maximum by the local density of the bank around its
    nearest neighbour (``reweighted``, PatchCore eq. 7, with ``score_k`` neighbours).
    """

    backbone: str = "resnet18"
    weights: str = "imagenet"
    img_size: int = 256
    color: str = "rgb"
    normalize: str = "imagenet"
    coreset_ratio: float = 0.1
    coreset_chunk_patches: int = DEFAULT_CHUNK_PATCHES
    patch_norm: str = "none"
    aggregation: int = 0
    aggregation_choice: str = "fixed"
    knn_k: int = 1
    stride: int = 1
    distance: str = "l2"
    knn_index: str = "auto"
    smoothing_sigma: float = 4.0
    map_alignment: str = "receptive_field"
    score_method: str = "max"
    score_k: int = 9
    seed: int = 0
    batch_size: int = 8
    holdout_fraction: float = 0.2
    score_percentile: float = 0.995
    safety_factor: float = 1.1

    def __post_init__(self) -> None:
        if self.aggregation == 0:  # frozen: the resolved window is what to_dict() and manifests record
            object.__setattr__(self, "aggregation", default_aggregation(self.backbone))

    def validate(self) -> "PatchCoreConfig":
        """Raise ``ValueError`` naming the first bad field and what it accepts."""
        from anomalia.core.features import check_backbone
        from anomalia.core.knn import available_indexes

        check_backbone(self.backbone)
        choices = {"color": COLOR_MODES, "normalize": NORMALISATIONS, "distance": DISTANCES,
                   "knn_index": tuple(available_indexes()), "score_method": SCORE_METHODS,
                   "map_alignment": MAP_ALIGNMENTS, "patch_norm": PATCH_NORMS,
                   "aggregation_choice": AGGREGATION_CHOICES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        positive_ints = ("img_size", "knn_k", "score_k", "stride", "batch_size", "coreset_chunk_patches", "aggregation")
        for name in positive_ints:
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer; got {getattr(self, name)!r}")
        if self.aggregation % 2 == 0:
            raise ValueError(f"aggregation must be an odd window size (1 = none, 3 = PatchCore's 3x3); "
                             f"got {self.aggregation}")
        if self.distance == "cosine" and self.patch_norm != "l2":
            raise ValueError("distance 'cosine' compares directions only: it needs patch_norm 'l2'")
        if self.img_size < 32:
            raise ValueError(f"img_size must be at least 32 pixels; got {self.img_size}")
        if not 0.0 < self.coreset_ratio <= 1.0:
            raise ValueError(f"coreset_ratio must be in (0, 1]; got {self.coreset_ratio}")
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in [0, 1); got {self.holdout_fraction}")
        if self.smoothing_sigma < 0:
            raise ValueError(f"smoothing_sigma must be >= 0; got {self.smoothing_sigma}")
        return self

    def weights_spec(self) -> "WeightsSpec":
        from anomalia.core.features import WeightsSpec

        return WeightsSpec.parse(self.weights, seed=self.seed)

    def embedding(self) -> dict:
        """The embedding and scoring choices, as recorded in manifests and shown by ``/health`` and the CLI."""
        return {"patch_norm": self.patch_norm, "aggregation": self.aggregation,
                "aggregation_choice": self.aggregation_choice, "knn_k": self.knn_k,
                "score_method": self.score_method, "score_k": self.score_k}

    def to_dict(self) -> dict:
        return asdict(self)
