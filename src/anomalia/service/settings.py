"""Service configuration: environment variables (seed names kept), ``.env``, optional YAML file.

Precedence: constructor arguments > environment > ``.env`` > YAML file named by
``ANOMALIA_CONFIG`` > defaults. Read once, in ``create_app``; never at import time.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, SecretStr, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from anomalia.core.features import available_backbones
from anomalia.core.config import AGGREGATION_CHOICES, DISTANCES
from anomalia.core.device import resolve_device
from anomalia.store.database import default_url, redact
from anomalia.store.overlay_files import OverlayFolder
from anomalia.store.record_images import Retention
from anomalia.usecases.artifact_model import ArtifactOptions
from anomalia.usecases.configuration import SettingValue
from anomalia.usecases.batch import BatchLimits
from anomalia.usecases.products import ProductOptions

_RETENTION = re.compile(r"^(\d+)([smhd]?)$")
_CHOICES = {"patchcore_distance": DISTANCES, "patchcore_aggregation_choice": AGGREGATION_CHOICES}
"""The product-model settings that take one of a fixed list of values, and the list."""
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Settings(BaseSettings):
    """Every knob of the service; the field name upper-cased is its environment variable."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      validate_default=True)

    # the artifact model and /predict (seed 000, section 4)
    artifacts_dir: Path = Path("models/patchcore")
    static_dir: Path = Path("static")
    overlays_subdir: str = "overlays"
    threshold: float | None = Field(default=None, gt=0)
    img_size: int = Field(default=256, ge=32, le=2048)
    knn_k: int = Field(default=3, ge=1, le=64)
    patch_stride: int = Field(default=1, ge=1, le=16)
    save_vis: bool = True
    area_min: float = Field(default=200.0, ge=0)
    ignore_border_pct: float = Field(default=0.0, ge=0, lt=50)
    roi_path: Path | None = None
    # production limits
    max_upload_mb: float = Field(default=20.0, gt=0)
    max_fit_upload_mb: float = Field(default=512.0, gt=0)
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    max_request_pixels: int = Field(default=400_000_000, gt=0)
    max_batch_files: int = Field(default=64, ge=1, le=10_000)
    max_batch_mb: float = Field(default=128.0, gt=0)
    max_queue: int = Field(default=16, ge=1, le=10_000)
    shutdown_grace_s: int = Field(default=30, ge=0, le=3600)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    overlay_retention: str = "1000"
    # product models: /fit_ok, /calibrate_ng, /infer (seed 004, section 6)
    backend_data_root: Path = Path("data")
    backend_device: str = "auto"
    patchcore_coreset_ratio: float = Field(default=0.1, gt=0, le=1)
    patchcore_distance: str = "l2"
    patchcore_batch_size: int = Field(default=8, ge=1, le=256)
    patchcore_backbone: str = "dinov2_vits14"
    patchcore_aggregation_choice: str = "fixed"
    backend_api_key: SecretStr | None = None
    signed_url_ttl_s: int = Field(default=900, ge=1, le=86_400)
    mm_per_px_tolerance: float = Field(default=0.01, ge=0, lt=1)
    calibration_safety_factor: float = Field(default=1.1, gt=0)
    # inspection records (issue: records): the database and the images kept with them
    database_url: SecretStr | None = None
    record_images: Literal["none", "ng", "all"] = "ng"
    record_images_max_count: int = Field(default=10_000, ge=1)
    record_images_max_mb: float = Field(default=2048.0, gt=0)
    record_images_max_days: float = Field(default=90.0, ge=0)
    # backbone weights for every model this server builds: imagenet | random | file path
    anomalia_weights: str = "imagenet"
    # what runs the artifact model's feature extractor: auto (torch when installed, else the model's export)
    anomalia_runtime: Literal["auto", "torch", "onnxruntime", "openvino"] = "auto"
    log_level: str = "INFO"
    # operations: GET /metrics
    metrics_public: bool = False
    """``/metrics`` answers without ``X-API-Key`` (for a scraper on a trusted network)."""
    prometheus_multiproc_dir: Path | None = None
    """prometheus-client's multi-process folder (``anomalia serve --workers N``); read from the environment."""

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        self._sources = _sources_of(type(self), {k: v for k, v in values.items() if not k.startswith("_")})

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        yaml_path = os.environ.get("ANOMALIA_CONFIG")
        if yaml_path:
            if not Path(yaml_path).is_file():
                raise ValueError(f"ANOMALIA_CONFIG points to {yaml_path}, which does not exist")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_path))
        return tuple(sources)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("overlay_retention")
    @classmethod
    def _check_retention(cls, value: str) -> str:
        if not _RETENTION.match(value.strip()):
            raise ValueError("OVERLAY_RETENTION must be a file count (e.g. 1000) or an age (e.g. 30m, 24h, 7d)")
        return value.strip()

    @field_validator("patchcore_distance", "patchcore_aggregation_choice")
    @classmethod
    def _check_choice(cls, value: str, info: ValidationInfo) -> str:
        allowed = _CHOICES[str(info.field_name)]
        if value not in allowed:
            raise ValueError(f"{str(info.field_name).upper()} must be one of {', '.join(allowed)}")
        return value

    @field_validator("patchcore_backbone")
    @classmethod
    def _check_backbone(cls, value: str) -> str:
        if value not in available_backbones():
            raise ValueError(f"PATCHCORE_BACKBONE must be one of {', '.join(available_backbones())}")
        return value

    @field_validator("backend_device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        resolve_device(value)  # auto | cpu | cuda[:N], and CUDA must be there when asked for
        return value

    def effective(self) -> list[SettingValue]:
        """Every setting with its value (paths as text, secrets as they are: the view masks them) and its source."""
        found = []
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            secret = isinstance(value, SecretStr) or "SecretStr" in str(info.annotation)
            if isinstance(value, Path):
                value = str(value)
            found.append(SettingValue(name.upper(), value, self._sources.get(name, "default"), secret))
        return found

    @property
    def overlays_dir(self) -> Path:
        return self.static_dir / self.overlays_subdir

    def _if_set(self, name: str) -> Any:
        return getattr(self, name) if name in self.model_fields_set else None

    def artifact_options(self) -> ArtifactOptions:
        """The artifact model's options; a query knob left unset keeps the model's own value."""
        return ArtifactOptions(artifacts_dir=self.artifacts_dir, weights=self.anomalia_weights,
                               threshold=self.threshold, img_size=self._if_set("img_size"),
                               knn_k=self._if_set("knn_k"), stride=self._if_set("patch_stride"),
                               area_min=self.area_min, ignore_border_pct=self.ignore_border_pct,
                               roi_path=self.roi_path, max_image_pixels=self.max_image_pixels,
                               runtime=self.anomalia_runtime)

    def product_options(self) -> ProductOptions:
        """How product models are built; ``KNN_K`` only when set (else the core's default embedding)."""
        return ProductOptions(data_root=self.backend_data_root, backbone=self.patchcore_backbone,
                              weights=self.anomalia_weights, coreset_ratio=self.patchcore_coreset_ratio,
                              distance=self.patchcore_distance, batch_size=self.patchcore_batch_size,
                              knn_k=self._if_set("knn_k"), aggregation_choice=self.patchcore_aggregation_choice,
                              safety_factor=self.calibration_safety_factor,
                              mm_per_px_tolerance=self.mm_per_px_tolerance, max_image_pixels=self.max_image_pixels,
                              max_request_pixels=self.max_request_pixels)

    def overlay_folder(self) -> OverlayFolder:
        """``STATIC_DIR/OVERLAYS_SUBDIR`` with the ``OVERLAY_RETENTION`` rule."""
        max_files, max_age_s = self.retention()
        return OverlayFolder.inside(self.static_dir, self.overlays_subdir, max_files=max_files, max_age_s=max_age_s)

    def records_database_url(self) -> str:
        """``DATABASE_URL``, or a SQLite file in ``BACKEND_DATA_ROOT`` (zero set-up)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return default_url(self.backend_data_root)

    def records_database_name(self) -> str:
        """The database URL without its password (for ``/health`` and logs)."""
        return redact(self.records_database_url())

    def record_retention(self) -> Retention:
        """``RECORD_IMAGES_MAX_COUNT`` / ``_MAX_MB`` / ``_MAX_DAYS`` (0 days: no age limit)."""
        days = self.record_images_max_days
        return Retention(max_files=self.record_images_max_count,
                         max_bytes=int(self.record_images_max_mb * 1024 * 1024),
                         max_age_s=days * 86400 if days > 0 else None)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_fit_upload_bytes(self) -> int:
        return int(self.max_fit_upload_mb * 1024 * 1024)

    @property
    def artifacts_dir_chosen(self) -> bool:
        """``ARTIFACTS_DIR`` was set (environment, ``.env``, YAML or constructor), not left at its default."""
        return "artifacts_dir" in self.model_fields_set

    def batch_limits(self) -> BatchLimits:
        """``MAX_BATCH_FILES``, ``MAX_BATCH_MB`` and, per file, ``MAX_UPLOAD_MB``."""
        return BatchLimits(max_files=self.max_batch_files, max_bytes=int(self.max_batch_mb * 1024 * 1024),
                           max_file_bytes=self.max_upload_bytes)

    def retention(self) -> tuple[int | None, float | None]:
        """``(max_files, max_age_seconds)``: exactly one is set."""
        number, unit = _RETENTION.match(self.overlay_retention).groups()  # type: ignore[union-attr]
        return (None, int(number) * _SECONDS[unit]) if unit else (int(number), None)


def _sources_of(settings_cls: type[BaseSettings], init_values: dict[str, Any]) -> dict[str, str]:
    """``{field: source}`` for the fields some source gave, by asking each source what it holds.

    The same sources as ``settings_customise_sources`` builds, read right after the settings were,
    and applied from the lowest precedence up, so the source that won each field is the one left.
    """
    ordered = settings_cls.settings_customise_sources(
        settings_cls, InitSettingsSource(settings_cls, init_kwargs=init_values), EnvSettingsSource(settings_cls),
        DotEnvSettingsSource(settings_cls), SecretsSettingsSource(settings_cls))
    fields = set(settings_cls.model_fields)
    found: dict[str, str] = {}
    for source in reversed(ordered):
        label = _source_label(source)
        for key in source():
            if key.lower() in fields:
                found[key.lower()] = label
    return found


def _source_label(source: PydanticBaseSettingsSource) -> str:
    for kind, label in ((YamlConfigSettingsSource, "yaml"), (InitSettingsSource, "init"),
                        (DotEnvSettingsSource, ".env"), (EnvSettingsSource, "env")):
        if isinstance(source, kind):
            return label
    return type(source).__name__


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning validation errors into one message that names the variables."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in error.errors())
        raise ValueError(f"invalid configuration: {problems}") from None
