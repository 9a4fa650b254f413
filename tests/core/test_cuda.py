"""CUDA end to end (skipped without a GPU): a model fitted on the GPU scores the same on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anomalia.core.device import resolve_device

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_fit_on_cuda_score_on_cpu_and_back(tmp_path, good_images, defects):
    from anomalia.store.image_files import ImageFiles  # noqa: F401  (import check only)
    from anomalia.usecases.model_folders import open_model
    from anomalia.core.detector import PatchCore, PatchCoreConfig
    from anomalia.store.model_io import save_model
    from anomalia.usecases.backbones import ExtractorCache

    config = PatchCoreConfig(weights="random", seed=0)
    gpu = PatchCore(config, extractor=ExtractorCache("cuda")(config)).fit(good_images)
    assert gpu.device.startswith("cuda") and gpu.knn_.exact is not None and gpu.knn_.exact.device.startswith("cuda")
    manifest = save_model(gpu, tmp_path / "m")
    assert manifest["fitted_on"].startswith("cuda")
    images = [image for image, _ in defects[:4]] + good_images[:2]
    on_cpu = open_model(tmp_path / "m", "cpu").detector
    on_gpu = open_model(tmp_path / "m", "cuda").detector
    np.testing.assert_allclose(on_cpu.score(images), on_gpu.score(images), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(on_gpu.score(images), gpu.score(images), rtol=1e-4, atol=1e-4)


def test_auto_picks_cuda_here():
    assert resolve_device("auto") == "cuda"
