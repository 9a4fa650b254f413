"""The batched path without HTTP: backbone batches give each image's single result, bad files stay apart."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from support.images import png

from anomalia.core.detector import PatchCore
from anomalia.core.image import ImageDecodeError
from anomalia.usecases.batch import BatchFile, BatchLimits, chunks, run_batch
from anomalia.usecases.errors import InvalidRequest, RequestTooLarge, UploadTooLarge
from anomalia.usecases.inspection import inspect, inspect_many


def test_inspect_many_equals_inspect_per_image_across_batches(fitted, good_test_images, defects):
    detector = PatchCore.from_bank(dataclasses.replace(fitted.config, batch_size=4), fitted.memory_bank_,
                                   weights_fingerprint=fitted.weights_fingerprint_, extractor=fitted.extractor,
                                   knn=fitted.knn_)
    images = [*good_test_images[:4], *(image for image, _ in defects[:3])]  # batches of 4 and 3
    many = inspect_many(detector, images, threshold=1.0, mm_per_px=0.1)
    for image, batched in zip(images, many, strict=True):
        single = inspect(detector, image, threshold=1.0, mm_per_px=0.1)
        assert batched.score == pytest.approx(single.score, rel=1e-5, abs=1e-6)
        np.testing.assert_allclose(batched.heat, single.heat, rtol=1e-4, atol=1e-5)
        assert [r.bbox for r in batched.regions] == [r.bbox for r in single.regions]


def test_run_batch_scores_good_files_in_batches_and_keeps_upload_order():
    files = [BatchFile(f"{i}.png", png(np.full((40, 40, 3), i, np.uint8)) if i % 3 else b"") for i in range(8)]
    batches: list[int] = []

    def prepare(file: BatchFile) -> int:
        if not file.data:
            raise ImageDecodeError("Archivo vacío.")
        return int(file.filename.split(".")[0])

    def score(prepared: list[int]) -> list[int]:
        batches.append(len(prepared))
        return [value * 10 for value in prepared]

    result = run_batch(files, prepare, score, batch_size=2)
    assert [item.index for item in result.items] == list(range(8))
    assert [item.result for item in result.items] == [None, 10, 20, None, 40, 50, None, 70]
    assert [str(item.error) for item in result.items if not item.ok] == ["Archivo vacío."] * 3
    assert (result.n_ok, result.n_failed) == (5, 3) and batches == [2, 2, 1]


def test_a_failure_of_the_scoring_fails_the_request():
    def score(prepared: list[bytes]) -> list[bytes]:
        raise RuntimeError("the backbone broke")

    with pytest.raises(RuntimeError, match="backbone"):
        run_batch([BatchFile("a", b"a")], lambda file: file.data, score, batch_size=4)


def test_limits():
    from anomalia.usecases.batch import check_batch, check_file_size

    limits = BatchLimits(max_files=2, max_bytes=10, max_file_bytes=4)
    with pytest.raises(InvalidRequest, match="`files`"):
        check_batch([], limits)
    with pytest.raises(RequestTooLarge, match="MAX_BATCH_FILES=2"):
        check_batch([BatchFile("a", b"")] * 3, limits)
    with pytest.raises(RequestTooLarge, match="MAX_BATCH_MB"):
        check_batch([BatchFile("a", b"123456")] * 2, limits)
    with pytest.raises(UploadTooLarge, match=r"^upload exceeds MAX_UPLOAD_MB"):
        check_file_size(BatchFile("a", b"12345"), limits)
    assert [list(part) for part in chunks([1, 2, 3, 4, 5], 2)] == [[1, 2], [3, 4], [5]]
