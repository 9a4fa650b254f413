"""Every backbone through every installed runtime scores like torch (seeded random weights).

All ``slow`` (a fit and an export per backbone: 20-40 s each on 2 cores); the fast loop checks
resnet18 through both runtimes from a model folder (``tests/store/test_exports.py``).

Tolerances: image scores within 1e-4 relative; anomaly maps within 1e-4 of the map's maximum
(absolute, per pixel); verdicts at the model's threshold never differ on a small synthetic set.
"""

from __future__ import annotations

import numpy as np
import pytest

from anomalia.core.detector import PatchCore, PatchCoreConfig
from anomalia.core.features.exported import ExportedGraph, create_runtime_extractor, runtime_installed
from anomalia.core.features.onnx_export import export_onnx
from anomalia.synthetic import defect_image, good_image

pytestmark = pytest.mark.slow
RUNTIMES = [name for name in ("onnxruntime", "openvino") if runtime_installed(name)]
BACKBONES = [
    pytest.param(("resnet18", 128), id="resnet18"),
    pytest.param(("wide_resnet50_2", 96), id="wide_resnet50_2"),
    pytest.param(("dinov2_vits14", 112), id="dinov2_vits14"),
]
MAP_TOLERANCE = 1e-4
"""Per-pixel difference allowed, as a fraction of the torch map's maximum."""


@pytest.fixture(scope="module", params=BACKBONES)
def torch_model(request):
    backbone, size = request.param
    config = PatchCoreConfig(backbone=backbone, weights="random", img_size=size, coreset_ratio=0.25,
                             holdout_fraction=0.34, batch_size=4)
    return PatchCore(config).fit([good_image(seed, size=size) for seed in range(6)])


@pytest.fixture(scope="module")
def evaluation_set(torch_model):
    size = torch_model.config.img_size
    goods = [good_image(200 + i, size=size) for i in range(3)]
    defects = [defect_image(300 + i, kind=kind, size=size)[0] for i, kind in enumerate(("scratch", "blob", "patch"))]
    return goods + defects


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_an_exported_runtime_scores_and_decides_like_torch(torch_model, evaluation_set, runtime):
    config, extractor = torch_model.config, torch_model.feature_extractor()
    graph = ExportedGraph(format="onnx", model=export_onnx(extractor, config), weights=None, source="memory",
                          backbone=config.backbone, info=extractor.info, fingerprint=extractor.fingerprint,
                          img_size=config.img_size, grid=extractor.output_grid(config.img_size),
                          aggregation=config.aggregation, patch_norm=config.patch_norm)
    exported = PatchCore.from_bank(config, torch_model.memory_bank_, weights_fingerprint=torch_model.weights_fingerprint_,
                                   extractor=create_runtime_extractor(runtime, graph), knn=torch_model.knn_,
                                   threshold=torch_model.threshold_)
    expected, got = torch_model.predict(evaluation_set), exported.predict(evaluation_set)
    np.testing.assert_allclose([p.score for p in got], [p.score for p in expected], rtol=1e-4)
    for mine, theirs in zip(got, expected):
        assert np.abs(mine.anomaly_map - theirs.anomaly_map).max() <= MAP_TOLERANCE * theirs.anomaly_map.max()
    # the model's threshold, and one between torch's scores (random weights may flag nothing at the first)
    for threshold in (torch_model.threshold_, float(np.median([p.score for p in expected]))):
        assert [p.score > threshold for p in got] == [p.score > threshold for p in expected]
