"""What a running service is configured with and serves: settings and their sources, loaded models, limits.

``GET /config`` shows it; the metrics' model info reads the same model descriptions. A front
end hands in its settings as :class:`SettingValue` (name, value, where it came from); secrets
never leave :func:`shown` in clear: a secret setting (a ``SecretStr``, or a name with key, token,
secret or password in it) becomes ``{"set": true|false}``, and a password inside any URL-valued
string (``postgresql+psycopg://user:***@host/db``) or a secret-named query parameter is masked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from anomalia.core.scoring import MODE_FACTORS
from anomalia.usecases.artifact_model import ArtifactModel
from anomalia.usecases.limits import (
    AREA_MM2_THR_MAX,
    MAX_SCORES,
    MAX_SHAPE_CHARS,
    MIN_IMAGE_SIDE,
    MM_PER_PX_MAX,
    MM_PER_PX_MIN,
    SCORE_MAX,
    SCORE_PERCENTILE_MIN,
)
from anomalia.usecases.products import CalibrationStatistics, ProductModels

SOURCES = ("init", "env", ".env", "yaml", "default")
"""Where a setting's value came from, highest precedence first."""
SECRET_NAME = re.compile(r"key|token|secret|passw|credential", re.IGNORECASE)
MASK = "***"
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*:)[^\s]*@")
"""``scheme://user:<password>@``; the password runs to the last ``@`` (over-masking rather than leaking)."""
_SECRET_PARAMETER = re.compile(r"(?P<name>[?&;][^=&;#]*(?:key|token|secret|passw|credential)[^=&;#]*=)[^&;#]*",
                               re.IGNORECASE)


@dataclass(frozen=True)
class SettingValue:
    """One setting as the front end read it: ``name`` is its environment variable."""

    name: str
    value: Any
    source: str
    secret: bool = False


@dataclass(frozen=True)
class ShownSetting:
    value: Any
    source: str


@dataclass(frozen=True)
class ArtifactModelInfo:
    """The model in ``ARTIFACTS_DIR`` (``/predict``); ``bank_size`` is its memory bank's rows."""

    model_version: str | None
    backbone: str | None
    weights: str | None
    weights_fingerprint: str | None
    embedding_version: str | None
    bank_size: int
    threshold: float
    img_size: int
    knn_k: int
    stride: int
    runtime: str = "torch"
    """What runs its feature extractor: ``torch``, ``onnxruntime`` or ``openvino`` (``ANOMALIA_RUNTIME``)."""


@dataclass(frozen=True)
class ProductModelInfo:
    """A loaded role/roi model; ``bank_size`` is its coreset's rows, ``calibration`` None until calibrated."""

    role_id: str
    roi_id: str
    model_version: str
    bank_version: str | None
    backbone: str
    weights: str
    weights_fingerprint: str | None
    bank_size: int
    img_size: int
    mm_per_px: float
    threshold: float | None
    area_mm2_thr: float | None
    calibrated: bool
    calibration: CalibrationStatistics | None


@dataclass(frozen=True)
class Limits:
    """The constants and limits requests are held to (``usecases/limits.py`` and the upload settings)."""

    mode_factors: dict[str, float]
    max_upload_mb: float
    max_fit_upload_mb: float
    max_image_pixels: int
    max_request_pixels: int
    min_image_side: int = MIN_IMAGE_SIDE
    mm_per_px_min: float = MM_PER_PX_MIN
    mm_per_px_max: float = MM_PER_PX_MAX
    score_max: float = SCORE_MAX
    max_scores: int = MAX_SCORES
    score_percentile_min: float = SCORE_PERCENTILE_MIN
    area_mm2_thr_max: float = AREA_MM2_THR_MAX
    max_shape_chars: int = MAX_SHAPE_CHARS


@dataclass(frozen=True)
class Configuration:
    """``GET /config``: every setting (secrets masked) with its source, the models served, the limits."""

    settings: dict[str, ShownSetting]
    artifact_model: ArtifactModelInfo | None
    product_models: tuple[ProductModelInfo, ...]
    limits: Limits


def upload_limits(*, max_upload_mb: float, max_fit_upload_mb: float, max_image_pixels: int,
                  max_request_pixels: int) -> Limits:
    return Limits(mode_factors=dict(MODE_FACTORS), max_upload_mb=max_upload_mb, max_fit_upload_mb=max_fit_upload_mb,
                  max_image_pixels=max_image_pixels, max_request_pixels=max_request_pixels)


def describe(settings: Sequence[SettingValue], artifact: ArtifactModel | None, products: ProductModels | None,
             limits: Limits) -> Configuration:
    """The effective configuration, safe to show to anyone holding the API key."""
    shown_settings = {s.name: ShownSetting(shown(s.name, s.value, secret=s.secret), s.source) for s in settings}
    return Configuration(settings=shown_settings, artifact_model=artifact_model_info(artifact),
                         product_models=product_model_infos(products), limits=limits)


def shown(name: str, value: Any, *, secret: bool = False) -> Any:
    """``value`` as it may be shown: ``{"set": bool}`` for a secret, URLs without their passwords."""
    if secret or SECRET_NAME.search(name):
        return {"set": value is not None and value != ""}
    if isinstance(value, str):
        return _SECRET_PARAMETER.sub(rf"\g<name>{MASK}", _URL_PASSWORD.sub(rf"\g<head>{MASK}@", value))
    if isinstance(value, (list, tuple)):
        return [shown(name, item) for item in value]
    if isinstance(value, dict):
        return {key: shown(str(key), item) for key, item in value.items()}
    return value


def artifact_model_info(model: ArtifactModel | None) -> ArtifactModelInfo | None:
    if model is None:
        return None
    manifest, detector = model.loaded.manifest, model.loaded.detector
    return ArtifactModelInfo(model_version=manifest.get("model_version"), backbone=manifest.get("backbone"),
                             weights=manifest.get("weights"), weights_fingerprint=manifest.get("weights_fingerprint"),
                             embedding_version=manifest.get("embedding_version"),
                             bank_size=int(detector.memory_bank_.shape[0]), threshold=model.threshold,
                             img_size=detector.config.img_size, knn_k=detector.config.knn_k,
                             stride=detector.config.stride, runtime=detector.runtime)


def product_model_infos(products: ProductModels | None) -> tuple[ProductModelInfo, ...]:
    if products is None:
        return ()
    infos = []
    for role, roi, served in products.loaded():
        m, calibration = served.manifest, served.calibration
        statistics = CalibrationStatistics(**calibration["statistics"]) if calibration else None
        infos.append(ProductModelInfo(
            role_id=role, roi_id=roi, model_version=served.version, bank_version=m.get("bank_version"),
            backbone=m["backbone"], weights=m["weights"], weights_fingerprint=m.get("weights_fingerprint"),
            bank_size=int(served.detector.memory_bank_.shape[0]), img_size=m["img_size"],
            mm_per_px=m["mm_per_px"], threshold=m.get("threshold"), area_mm2_thr=m.get("area_mm2_thr"),
            calibrated=bool(m.get("calibrated")), calibration=statistics))
    return tuple(infos)
