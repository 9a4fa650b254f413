"""Many images in one request: limits, backbone batches, and one result or one error per file, in upload order.

A file that cannot be inspected (empty, undecodable, too small or too large, a shape that leaves
it) gets its own error and the others are still scored; what concerns the whole request (the
model, the shape's syntax, the limits below) fails the request, as it would a single inspection.
Each item keeps its index and file name, so a caller can record every inspection on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from anomalia.core.image import ImageDecodeError, ImageTooLargeError, ImageTooSmallError
from anomalia.usecases.errors import InvalidRequest, RequestTooLarge, UploadTooLarge
from anomalia.usecases.progress import Report, ignore

P = TypeVar("P")
R = TypeVar("R")
T = TypeVar("T")

ITEM_ERRORS: tuple[type[Exception], ...] = (ImageDecodeError, ImageTooLargeError, ImageTooSmallError,
                                             UploadTooLarge, InvalidRequest)
"""Failures that belong to one file: the other files of the batch are still inspected."""


@dataclass(frozen=True)
class BatchLimits:
    """``MAX_BATCH_FILES``, ``MAX_BATCH_MB`` (as bytes) and ``MAX_UPLOAD_MB`` per file (as bytes)."""

    max_files: int = 64
    max_bytes: int = 128 * 1024 * 1024
    max_file_bytes: int = 20 * 1024 * 1024


@dataclass(frozen=True)
class BatchFile:
    """One uploaded file: its client-given name (only used to name saved visuals) and its bytes."""

    filename: str | None
    data: bytes


@dataclass(frozen=True)
class BatchItem(Generic[R]):
    """File ``index``'s outcome: ``result``, or the ``error`` the single inspection would have raised."""

    index: int
    filename: str | None
    result: R | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class BatchResult(Generic[R]):
    """One item per file, in upload order."""

    items: tuple[BatchItem[R], ...]

    @property
    def n_ok(self) -> int:
        return sum(item.ok for item in self.items)

    @property
    def n_failed(self) -> int:
        return len(self.items) - self.n_ok


def check_batch(files: Sequence[BatchFile], limits: BatchLimits, field: str = "files") -> None:
    """Refuse a request with no file, more than ``MAX_BATCH_FILES`` or more than ``MAX_BATCH_MB`` in all."""
    if not files:
        raise InvalidRequest(f"no images: send one or more as repeated `{field}` parts")
    if len(files) > limits.max_files:
        raise RequestTooLarge(f"{len(files)} files in one request, over MAX_BATCH_FILES={limits.max_files}; "
                              "send them in several requests")
    total = sum(len(file.data) for file in files)
    if total > limits.max_bytes:
        raise RequestTooLarge(f"the {len(files)} files hold {total} bytes, over MAX_BATCH_MB "
                              f"({limits.max_bytes / 2**20:g} MB); send them in several requests")


def check_file_size(file: BatchFile, limits: BatchLimits) -> None:
    """One file over ``MAX_UPLOAD_MB``: the single endpoints' 413 message."""
    if len(file.data) > limits.max_file_bytes:
        raise UploadTooLarge(f"upload exceeds MAX_UPLOAD_MB ({limits.max_file_bytes / 2**20:g} MB)")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def run_batch(files: Sequence[BatchFile], prepare: Callable[[BatchFile], P],
              score: Callable[[list[P]], list[R]], batch_size: int, report: Report = ignore) -> BatchResult[R]:
    """``prepare`` each file (decode; its :data:`ITEM_ERRORS` become that item's error), ``score`` the good
    ones ``batch_size`` at a time (one backbone batch), so at most ``batch_size`` decoded images are held.
    ``report("scoring", done, total)`` after each backbone batch (refused files count as done)."""
    items: dict[int, BatchItem[R]] = {}
    pending: list[tuple[int, P]] = []
    report("scoring", 0, len(files))

    def flush() -> None:
        results = score([prepared for _, prepared in pending])
        for (index, _), result in zip(pending, results, strict=True):
            items[index] = BatchItem(index, files[index].filename, result=result)
        pending.clear()
        report("scoring", len(items), len(files))

    for index, file in enumerate(files):
        try:
            pending.append((index, prepare(file)))
        except ITEM_ERRORS as error:
            items[index] = BatchItem(index, file.filename, error=error)
        if len(pending) >= batch_size:
            flush()
    if pending:
        flush()
    report("scoring", len(files), len(files))
    return BatchResult(tuple(items[index] for index in range(len(files))))
