"""Inspection records: every verdict persisted, searched, reviewed, and fed back into teaching.

The front ends call :meth:`InspectionRecords.record_artifact` / :meth:`record_product` after
an inspection and answer only once it returns: the record is then committed. Reviews
close the loop: a reviewed image can join its role/roi's dataset (``/fit_ok``
``from_dataset``), and reviewed scores can join a calibration (``/calibrate_ng``
``from_reviews``).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import structlog

from anomalia.store.datasets import DatasetStore
from anomalia.store.model_store import InvalidIdentifier, check_identifier
from anomalia.store.record_images import RecordImages
from anomalia.store.records import (
    LABELS,
    REVIEW_STATES,
    VERDICTS,
    MalformedCursor,
    NewRecord,
    Record,
    RecordFilter,
    RecordStore,
)
from anomalia.usecases.artifact_model import ArtifactPrediction
from anomalia.usecases.errors import Conflict, InvalidRequest, RecordNotFound
from anomalia.usecases.limits import MAX_SCORES, SCORE_MAX, check_comment, check_range, check_text_id
from anomalia.usecases.products import CalibrateCommand, ProductInspection, ProductModels, check_ids

log = structlog.get_logger("anomalia.records")

KEEP_IMAGES = ("none", "ng", "all")
SOURCES = ("artifacts", "product")
MAX_PAGE = 500
"""Records per page: a screenful of tables many times over; an export streams instead (``/records.csv``)."""
MAX_FILENAME = 255
PERCENTILE_SAMPLE = 200_000
"""Score percentiles of ``/stats`` use at most the newest this many inspections of the range."""
EXPORT_CHUNK = 1000
BUCKETS = {"hour": 3600 * 10**6, "day": 86400 * 10**6}
MAX_BUCKETS = 2000
KeepImages = Literal["none", "ng", "all"]


@dataclass(frozen=True)
class ClientFields:
    """Optional ids a line sends with an inspection (checked by :func:`check_text_id`)."""

    part_id: str | None = None
    station_id: str | None = None
    operator_id: str | None = None

    def checked(self) -> "ClientFields":
        return ClientFields(*(check_text_id(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)))


@dataclass(frozen=True)
class RequestFacts:
    """What the front end knows about the request: which endpoint, its id, the upload's name, elapsed time."""

    endpoint: str
    request_id: str | None = None
    filename: str | None = None
    duration_ms: float | None = None
    token_id: str | None = None


@dataclass(frozen=True)
class RecordQuery:
    """``GET /records`` filters (all optional) plus the page."""

    where: RecordFilter
    limit: int = 50
    cursor: str | None = None


@dataclass(frozen=True)
class RecordPage:
    items: list[Record]
    next_cursor: str | None


@dataclass(frozen=True)
class ReviewCommand:
    label: str
    comment: str | None = None
    reviewer: str | None = None
    add_to_dataset: bool = False


@dataclass(frozen=True)
class Stats:
    """What a line dashboard shows: counts per bucket, score percentiles, model versions, review totals."""

    bucket: str
    since: str
    until: str
    series: list[dict[str, Any]]
    scores: list[dict[str, Any]]
    model_versions: list[dict[str, Any]]
    totals: dict[str, Any]


def now_us() -> int:
    return time.time_ns() // 1000


def iso(us: int | None) -> str | None:
    """Microseconds since the epoch as ISO 8601 UTC (``…Z``)."""
    if us is None:
        return None
    moment = datetime.fromtimestamp(us / 1e6, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_us(moment: datetime) -> int:
    """A datetime as microseconds since the epoch; one without a zone is UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1e6)


def safe_filename(name: str | None) -> str | None:
    """The upload's base name, printable characters only, at most ``MAX_FILENAME`` (never a path)."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch if ch.isprintable() else "_" for ch in base).strip()[:MAX_FILENAME]
    return cleaned or None


def check_filter(where: RecordFilter) -> RecordFilter:
    """Every filter value within its vocabulary or charset: ``InvalidRequest`` names the first that is not."""
    for name in ("role_id", "roi_id"):
        if getattr(where, name) is not None:
            try:
                check_identifier(name, getattr(where, name))
            except InvalidIdentifier as error:
                raise InvalidRequest(str(error)) from None
    for name, allowed in (("source", SOURCES), ("verdict", VERDICTS), ("review", REVIEW_STATES)):
        value = getattr(where, name)
        if value is not None and value not in allowed:
            raise InvalidRequest(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    for name in ("part_id", "station_id", "operator_id", "model_version"):
        check_text_id(name, getattr(where, name))
    for name in ("score_min", "score_max"):
        if getattr(where, name) is not None:
            check_range(name, getattr(where, name), 0.0, SCORE_MAX)
    if where.since_us is not None and where.until_us is not None and where.since_us >= where.until_us:
        raise InvalidRequest("since must be earlier than until")
    return where


class InspectionRecords:
    """Records in the database, the images kept with them, and the datasets that reviews feed."""

    def __init__(self, store: RecordStore, images: RecordImages, keep_images: KeepImages = "ng",
                 datasets: DatasetStore | None = None):
        if keep_images not in KEEP_IMAGES:
            raise ValueError(f"RECORD_IMAGES must be one of {', '.join(KEEP_IMAGES)}; got {keep_images!r}")
        self.store, self.images, self.keep_images, self.datasets = store, images, keep_images, datasets

    # -- writing ----------------------------------------------------------------------------
    def _keep(self, is_ng: bool, *files: bytes) -> list[str | None]:
        """Keep the files per ``RECORD_IMAGES``; a disk that refuses them costs the image, never the record."""
        if not (self.keep_images == "all" or (self.keep_images == "ng" and is_ng)):
            return [None] * len(files)
        try:
            return [self.images.keep(data) for data in files]
        except OSError as error:
            log.warning("record_image_not_kept", folder=str(self.images.folder), error=str(error))
            return [None] * len(files)

    def record_artifact(self, prediction: ArtifactPrediction, image: bytes, request: RequestFacts,
                        client: ClientFields) -> Record:
        """Commit the record of one ``/predict`` verdict (and keep its image per ``RECORD_IMAGES``)."""
        client = client.checked()
        (image_name,) = self._keep(prediction.is_anomaly, image)
        return self.store.add(NewRecord(
            created_us=now_us(), endpoint=request.endpoint, source="artifacts", score=float(prediction.score),
            threshold=float(prediction.threshold), verdict="NG" if prediction.is_anomaly else "OK",
            n_regions=len(prediction.regions), regions=prediction.regions, image_width=prediction.image_size[0],
            image_height=prediction.image_size[1], image_sha256=hashlib.sha256(image).hexdigest(),
            mode=prediction.mode, image_name=image_name, overlay=prediction.overlay_url, **prediction.model,
            **self._request(request), **dataclasses.asdict(client)))

    def record_product(self, inspection: ProductInspection, image: bytes, request: RequestFacts,
                       client: ClientFields) -> Record:
        """Commit the record of one ``/infer`` verdict; its image and heatmap are kept per ``RECORD_IMAGES``."""
        client = client.checked()
        heatmap = base64.b64decode(inspection.heatmap_png_base64)
        image_name, heatmap_name = self._keep(inspection.is_ng, image, heatmap)
        return self.store.add(NewRecord(
            created_us=now_us(), endpoint=request.endpoint, source="product", score=float(inspection.score),
            threshold=float(inspection.threshold), verdict=inspection.verdict, n_regions=len(inspection.regions),
            regions=[region.to_dict() for region in inspection.regions], image_width=inspection.image_size[0],
            image_height=inspection.image_size[1], image_sha256=hashlib.sha256(image).hexdigest(),
            role_id=inspection.role_id, roi_id=inspection.roi_id, model_version=inspection.model_version,
            bank_version=inspection.bank_version, backbone=inspection.backbone, weights=inspection.weights,
            weights_fingerprint=inspection.weights_fingerprint, area_mm2_thr=inspection.area_mm2_thr,
            image_name=image_name, overlay=heatmap_name, **self._request(request), **dataclasses.asdict(client)))

    @staticmethod
    def _request(request: RequestFacts) -> dict[str, Any]:
        return {"filename": safe_filename(request.filename), "request_id": (request.request_id or "")[:128] or None,
                "duration_ms": request.duration_ms, "token_id": request.token_id}

    # -- reading ----------------------------------------------------------------------------
    def search(self, query: RecordQuery) -> RecordPage:
        check_filter(query.where)
        if not 1 <= query.limit <= MAX_PAGE:
            raise InvalidRequest(f"limit must be 1 to {MAX_PAGE}; got {query.limit} (export more with /records.csv)")
        try:
            items, cursor = self.store.page(query.where, query.limit, query.cursor)
        except MalformedCursor as error:
            raise InvalidRequest(str(error)) from None
        return RecordPage(items, cursor)

    def export(self, where: RecordFilter) -> Iterator[Record]:
        """Every matching record, newest first, page by page; the first page is read now, so a database
        failure is reported before an export starts rather than cutting it short."""
        rows, cursor = self.store.page(check_filter(where), EXPORT_CHUNK)

        def everything() -> Iterator[Record]:
            yield from rows
            if cursor is not None:
                yield from self.store.iterate(where, EXPORT_CHUNK, cursor)

        return everything()

    def get(self, ident: int) -> Record:
        record = self.store.get(ident) if 0 < ident < 2**63 else None
        if record is None:
            raise RecordNotFound(f"no inspection record with id {ident}")
        return record

    def status(self) -> dict[str, Any]:
        """For ``/health``: whether records can be written now, and why not."""
        return {"ready": self.store.revision is not None, "revision": self.store.revision,
                "error": self.store.last_error, "record_images": self.keep_images}

    def file_of(self, name: str | None) -> Path | None:
        """The kept image or heatmap file named in a record, None when not kept or pruned since."""
        path = self.images.path(name) if name else None
        return path if path is not None and path.is_file() else None

    # -- reviews ----------------------------------------------------------------------------
    def review(self, ident: int, command: ReviewCommand) -> Record:
        """Store the operator's label; with ``add_to_dataset`` the kept image joins its role/roi's dataset."""
        if command.label not in LABELS:
            raise InvalidRequest(f"label must be one of {', '.join(LABELS)}; got {command.label!r}")
        comment, reviewer = check_comment(command.comment), check_text_id("reviewer", command.reviewer)
        record = self.get(ident)
        if command.add_to_dataset:
            self._check_addable(record)
        reviewed = self.store.review(ident, label=command.label, comment=comment, reviewer=reviewer,
                                     reviewed_us=now_us())
        if reviewed is None:
            raise RecordNotFound(f"no inspection record with id {ident}")
        if command.add_to_dataset:
            reviewed = self._add_to_dataset(reviewed, command.label)
        return reviewed

    def _check_addable(self, record: Record) -> None:
        if record.source != "product" or record.role_id is None or record.roi_id is None or self.datasets is None:
            raise Conflict("only records of a product model (/infer) can join a role/roi dataset")
        if self.file_of(record.image_name) is None:
            raise Conflict(f"record {record.id} has no kept image (RECORD_IMAGES={self.keep_images}, or it was "
                           "pruned by the retention limits), so it cannot join the dataset")

    def _add_to_dataset(self, record: Record, label: str) -> Record:
        path = self.file_of(record.image_name)
        if path is None or self.datasets is None or record.role_id is None or record.roi_id is None:
            raise Conflict(f"record {record.id}'s image was pruned before it could join the dataset")
        name = self.datasets.add(record.role_id, record.roi_id, label, path.read_bytes())
        self.store.set_dataset_image(record.id, f"{label}/{name}")
        return dataclasses.replace(record, dataset_image=f"{label}/{name}")

    def with_reviewed_scores(self, products: ProductModels, command: CalibrateCommand) -> CalibrateCommand:
        """``command`` plus the scores operators labelled on the current bank of its role/roi."""
        role, roi = check_ids(command.role_id, command.roi_id)
        served = products.served(role, roi)
        reviewed = self.store.reviewed_scores(role, roi, served.manifest["bank_version"], MAX_SCORES)
        ok = [*command.ok_scores, *reviewed["ok"]]
        ng = [*(command.ng_scores or []), *reviewed["ng"]]
        if not ok:
            raise InvalidRequest(f"no ok_scores given and no record of {role}/{roi} (bank "
                                 f"{served.manifest['bank_version']}) is reviewed ok yet")
        return dataclasses.replace(command, ok_scores=ok[-MAX_SCORES:], ng_scores=ng[-MAX_SCORES:] or None)

    # -- statistics -------------------------------------------------------------------------
    def stats(self, where: RecordFilter, bucket: str = "hour") -> Stats:
        if bucket not in BUCKETS:
            raise InvalidRequest(f"bucket must be one of {', '.join(BUCKETS)}; got {bucket!r}")
        width = BUCKETS[bucket]
        until = where.until_us if where.until_us is not None else now_us()
        since = where.since_us if where.since_us is not None else until - (24 if bucket == "hour" else 30) * width
        where = check_filter(dataclasses.replace(where, since_us=since, until_us=until))
        if (until - since) / width > MAX_BUCKETS:
            raise InvalidRequest(f"the range holds more than {MAX_BUCKETS} {bucket} buckets; narrow since/until "
                                 "or use bucket=day")
        totals: dict[str, Any] = self.store.review_totals(where)
        totals["ng_rate"] = round(totals["n_ng"] / totals["n"], 6) if totals["n"] else 0.0
        versions = [{**{k: v for k, v in row.items() if not k.endswith("_us")}, "first": iso(row["first_us"]),
                     "last": iso(row["last_us"])} for row in self.store.versions_in_use(where)]
        return Stats(bucket=bucket, since=str(iso(since)), until=str(iso(until)), series=self._series(where, width),
                     scores=self._percentiles(where), model_versions=versions, totals=totals)

    def _series(self, where: RecordFilter, width: int) -> list[dict[str, Any]]:
        groups: dict[tuple, dict[str, Any]] = {}
        for row in self.store.bucket_counts(where, width):
            key = (row["source"], row["role_id"], row["roi_id"])
            group = groups.setdefault(key, {"source": key[0], "role_id": key[1], "roi_id": key[2], "buckets": []})
            n, n_ng = int(row["n"]), int(row["n_ng"] or 0)
            group["buckets"].append({"start": iso(int(row["bucket"]) * width), "n": n, "n_ng": n_ng,
                                     "ng_rate": round(n_ng / n, 6) if n else 0.0})
        return list(groups.values())

    def _percentiles(self, where: RecordFilter) -> list[dict[str, Any]]:
        import numpy as np

        grouped: dict[tuple, list[float]] = {}
        for source, role, roi, score in self.store.group_scores(where, PERCENTILE_SAMPLE):
            grouped.setdefault((source, role, roi), []).append(float(score))
        found = []
        for (source, role, roi), values in grouped.items():
            scores = np.asarray(values)
            counts, edges = np.histogram(scores, bins=20)
            p50, p90, p99 = np.percentile(scores, [50, 90, 99]).tolist()
            found.append({"source": source, "role_id": role, "roi_id": roi, "n": int(scores.size), "p50": p50,
                          "p90": p90, "p99": p99, "min": float(scores.min()), "max": float(scores.max()),
                          "histogram": {"edges": edges.tolist(), "counts": counts.tolist()}})
        return found
