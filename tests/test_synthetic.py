"""Tests for anomalia.synthetic: determinism, honest masks, placement and the MVTec layout."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from anomalia.synthetic import (
    DEFECT_KINDS,
    defect_image,
    good_image,
    write_good_images,
    write_mvtec_dataset,
)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())


# ---------------------------------------------------------------- good images


@pytest.mark.parametrize("size", [32, 64, 256, 320])
def test_good_image_shape_and_dtype(size: int) -> None:
    image = good_image(0, size)
    assert image.shape == (size, size, 3)
    assert image.dtype == np.uint8


def test_good_image_is_deterministic_per_seed() -> None:
    assert good_image(5, 64).tobytes() == good_image(5, 64).tobytes()
    assert good_image(5, 64).tobytes() != good_image(6, 64).tobytes()


def test_good_image_is_a_periodic_texture_not_noise() -> None:
    gray = cv2.cvtColor(good_image(3), cv2.COLOR_BGR2GRAY).astype(float)

    def shifted_difference(dx: int) -> float:
        return float(np.abs(gray[:, dx:] - gray[:, :-dx]).mean())

    assert shifted_difference(24) < 0.4 * shifted_difference(12)  # one over-under repeat
    assert gray.std() > 10  # a visible pattern, not a flat field


def test_good_images_vary_only_moderately() -> None:
    means = np.array([good_image(seed, 64).mean(axis=(0, 1)) for seed in range(10)])
    assert np.ptp(means, axis=0).max() < 20
    assert np.ptp(means, axis=0).max() > 1


@pytest.mark.parametrize("bad", [{"seed": -1}, {"seed": 0, "size": 16}])
def test_good_image_rejects_bad_arguments(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be"):
        good_image(**bad)


# ---------------------------------------------------------------- defect images


@pytest.mark.parametrize("kind", DEFECT_KINDS)
def test_defect_image_is_deterministic(kind: str) -> None:
    first, first_mask = defect_image(9, 64, kind=kind)
    again, again_mask = defect_image(9, 64, kind=kind)
    other, _ = defect_image(10, 64, kind=kind)
    assert first.tobytes() == again.tobytes()
    assert np.array_equal(first_mask, again_mask)
    assert first.tobytes() != other.tobytes()


@pytest.mark.parametrize("kind", DEFECT_KINDS)
@pytest.mark.parametrize("seed", range(4))
def test_mask_is_exactly_the_materially_changed_pixels(kind: str, seed: int) -> None:
    image, mask = defect_image(seed, 128, kind=kind)
    assert mask.dtype == np.bool_ and mask.shape == (128, 128)
    delta = np.abs(image.astype(int) - good_image(seed, 128).astype(int)).max(axis=2)
    assert mask.any()
    assert np.array_equal(delta > 0, mask)
    assert delta[mask].min() > 24


@pytest.mark.parametrize("kind", DEFECT_KINDS)
def test_defects_lie_inside_the_central_80_percent(kind: str) -> None:
    size = 256
    for seed in range(12):
        _, mask = defect_image(seed, size, kind=kind)
        top, bottom, left, right = _bbox(mask)
        assert min(top, left) >= 0.1 * size
        assert max(bottom, right) < 0.9 * size


def test_defect_sizes_at_reference_resolution() -> None:
    for seed in range(6):
        _, scratch = defect_image(seed, 256, kind="scratch")
        top, bottom, left, right = _bbox(scratch)
        assert np.hypot(bottom - top, right - left) >= 40
        assert scratch.sum() >= 4 * 40
        _, blob = defect_image(seed, 256, kind="blob")
        assert 8 <= np.sqrt(blob.sum() / np.pi) <= 30
        _, patch = defect_image(seed, 256, kind="patch")
        top, bottom, left, right = _bbox(patch)
        assert bottom - top == right - left and 24 <= bottom - top + 1 <= 48
        assert patch.sum() == (bottom - top + 1) ** 2


def test_kind_none_picks_each_kind_by_seed() -> None:
    picked = set()
    for seed in range(12):
        image, _ = defect_image(seed, 64)
        matches = [k for k in DEFECT_KINDS if np.array_equal(image, defect_image(seed, 64, k)[0])]
        assert len(matches) == 1
        picked.add(matches[0])
    assert picked == set(DEFECT_KINDS)


@pytest.mark.parametrize("kind", DEFECT_KINDS)
def test_center_places_the_defect_anywhere(kind: str) -> None:
    _, mask = defect_image(1, 128, kind=kind, center=(120, 4))  # (x, y): top-right corner
    top, _, _, right = _bbox(mask)
    assert top < 0.1 * 128 and right > 0.9 * 128
    assert mask[4, 120]


def test_defect_image_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="scratch, blob, patch"):
        defect_image(0, 64, kind="dent")
    with pytest.raises(ValueError, match="outside"):
        defect_image(0, 64, kind="blob", center=(64, 10))


# ---------------------------------------------------------------- files on disk


def test_write_good_images(tmp_path: Path) -> None:
    paths = write_good_images(tmp_path / "good", 3, size=48, seed=2)
    assert [p.name for p in paths] == ["000.png", "001.png", "002.png"]
    images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths]
    decoded = [im.tobytes() for im in images if im is not None and im.shape == (48, 48, 3)]
    assert len(set(decoded)) == 3
    again = write_good_images(tmp_path / "again", 3, size=48, seed=2)
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]


def test_write_mvtec_dataset_layout_and_counts(tmp_path: Path) -> None:
    root = write_mvtec_dataset(tmp_path / "ds", n_train=4, n_test_good=2, n_test_defect=4, size=64)
    assert root == tmp_path / "ds"
    assert len(list((root / "train" / "good").glob("*.png"))) == 4
    assert len(list((root / "test" / "good").glob("*.png"))) == 2
    per_kind = {k: sorted((root / "test" / k).glob("*.png")) for k in DEFECT_KINDS}
    assert {k: len(v) for k, v in per_kind.items()} == {"scratch": 2, "blob": 1, "patch": 1}
    for kind, images in per_kind.items():
        for image_path in images:
            mask_path = root / "ground_truth" / kind / f"{image_path.stem}_mask.png"
            mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
            assert mask is not None and mask.shape == (64, 64)
            assert set(np.unique(mask)) == {0, 255}


def test_write_mvtec_dataset_is_deterministic_and_splits_do_not_overlap(tmp_path: Path) -> None:
    kwargs = {"n_train": 3, "n_test_good": 3, "n_test_defect": 1, "size": 32, "seed": 7}
    first = write_mvtec_dataset(tmp_path / "a", **kwargs)
    second = write_mvtec_dataset(tmp_path / "b", **kwargs)
    files = sorted(p.relative_to(first) for p in first.rglob("*.png"))
    assert files == sorted(p.relative_to(second) for p in second.rglob("*.png"))
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    train = {p.read_bytes() for p in (first / "train" / "good").glob("*.png")}
    test = {p.read_bytes() for p in (first / "test" / "good").glob("*.png")}
    assert not train & test


def test_write_mvtec_dataset_rejects_negative_counts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        write_mvtec_dataset(tmp_path, n_train=-1, n_test_good=0, n_test_defect=0)
