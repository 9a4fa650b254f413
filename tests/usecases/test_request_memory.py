"""Memory per request: a teach's decoded pixels are bounded per request (``max_request_pixels``), checked
from the images' headers before anything is decoded, and its images are decoded one at a time."""

from __future__ import annotations

import tracemalloc

import cv2
import numpy as np
import pytest
from support.images import png, png_declaring

from anomalia.core.detector import PatchCore, holdout_split
from anomalia.synthetic import good_image
from anomalia.usecases.backbones import ExtractorCache
from anomalia.usecases.errors import RequestTooLarge
from anomalia.usecases.products import HOLDOUT_FRACTION, FitCommand, ProductModels, ProductOptions, fit_config


def products_with(tmp_path, **limits) -> ProductModels:
    options = ProductOptions(data_root=tmp_path / "data", backbone="resnet18", weights="random", **limits)
    return ProductModels.open(options, ExtractorCache())


def teach(products: ProductModels, images: list[bytes]):
    command = FitCommand(role_id="line", roi_id="cap", mm_per_px=0.05, images=images)
    with products.reserve("line", "cap") as slot:
        return products.fit_ok(command, slot)


def compressible_png(seed: int, side: int) -> bytes:
    """A ``side``² colour image that compresses to a few kB: a small part on a flat background."""
    image = np.full((side, side, 3), 60 + seed, dtype=np.uint8)
    image[:256, :256] = good_image(seed)
    return png(image)


def test_a_teach_over_max_request_pixels_is_refused_from_the_headers(tmp_path):
    products = products_with(tmp_path, max_image_pixels=10_000_000, max_request_pixels=25_000_000)
    declared = [png_declaring(3000, 3000) for _ in range(3)]  # 27 Mpx declared in all, no pixel data
    with pytest.raises(RequestTooLarge, match="MAX_REQUEST_PIXELS") as refused:
        teach(products, declared)
    assert "27000000" in str(refused.value) and "25000000" in str(refused.value)
    assert not (tmp_path / "data" / "datasets").exists()
    within = [png(good_image(seed)) for seed in range(4)]  # 4 x 65 536 px
    assert teach(products_with(tmp_path, max_request_pixels=4 * 256 * 256), within).n_images == 4


def test_a_teach_holds_one_decoded_image_at_a_time(tmp_path):
    side, count = 3000, 20
    uploads = [compressible_png(seed, side) for seed in range(count)]
    assert sum(map(len, uploads)) < 4_000_000  # 540 MB of pixels in a few MB of PNG
    products = products_with(tmp_path, max_request_pixels=count * side * side)
    tracemalloc.start()
    try:
        result = teach(products, uploads)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    one_image = side * side * 3
    assert result.n_images == count
    assert peak < 6 * one_image, f"peak {peak / 2**20:.0f} MiB for {count} images of {one_image / 2**20:.0f} MiB"


def test_resizing_each_image_as_it_is_read_builds_the_bank_the_full_images_build(tmp_path):
    """The early resize is the backbone input's own resize: same bank as fitting the decoded images."""
    images = [cv2.resize(good_image(seed), (400, 300)) for seed in range(6)]
    products = products_with(tmp_path)
    teach(products, [png(image) for image in images])
    config = fit_config(products.options)
    train, _ = holdout_split(len(images), HOLDOUT_FRACTION, config.seed)
    reference = PatchCore(config, extractor=ExtractorCache()(config)).fit([images[i] for i in train])
    bank = np.load(tmp_path / "data/models/line/cap/embeddings.npy")
    np.testing.assert_array_equal(bank, reference.memory_bank_)
