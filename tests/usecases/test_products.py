"""Product models as plain Python: typed results and domain errors, no HTTP in between."""

from __future__ import annotations

import json

import pytest
from support.images import png

from anomalia.core.regions import Region
from anomalia.synthetic import defect_image, good_image
from anomalia.usecases.backbones import ExtractorCache
from anomalia.usecases.errors import Conflict, InvalidRequest, ModelNotFound, NotCalibrated
from anomalia.usecases.products import (
    CalibrateCommand,
    CalibrationResult,
    FitCommand,
    InferCommand,
    ProductInspection,
    ProductModels,
    ProductOptions,
    TeachResult,
)

MM = 0.05
RECT = json.dumps({"kind": "rect", "x": 0, "y": 0, "w": 256, "h": 256})


@pytest.fixture
def products(tmp_path) -> ProductModels:
    options = ProductOptions(data_root=tmp_path / "data", backbone="resnet18", weights="random")
    return ProductModels.open(options, ExtractorCache())


def teach(products: ProductModels, role: str = "line", roi: str = "cap") -> TeachResult:
    command = FitCommand(role_id=role, roi_id=roi, mm_per_px=MM, images=[png(good_image(s)) for s in range(6)])
    with products.reserve(role, roi) as slot:
        return products.fit_ok(command, slot)


def test_teach_calibrate_inspect_return_typed_results(products):
    taught = teach(products)
    assert isinstance(taught, TeachResult) and taught.calibrated is False and taught.threshold is None
    assert taught.n_train + taught.n_holdout == 6 and len(taught.ok_scores) == taught.n_holdout >= 1
    calibrated = products.calibrate_ng(CalibrateCommand(role_id="line", roi_id="cap", mm_per_px=MM,
                                                        ok_scores=taught.ok_scores, area_mm2_thr=0.5))
    assert isinstance(calibrated, CalibrationResult) and calibrated.calibrated
    assert calibrated.bank_version == taught.model_version != calibrated.model_version
    assert calibrated.threshold == pytest.approx(calibrated.statistics.ok_percentile_value
                                                 * calibrated.statistics.safety_factor)
    defect, _ = defect_image(1000, kind="patch")
    result = products.infer(InferCommand(role_id="line", roi_id="cap", mm_per_px=MM, image=png(defect), shape=RECT))
    assert isinstance(result, ProductInspection) and result.model_version == calibrated.model_version
    assert result.verdict == "NG" and result.is_ng and result.score > result.threshold
    assert result.regions and all(isinstance(region, Region) for region in result.regions)
    assert result.image_size == (256, 256)


def test_each_refusal_is_a_domain_error(products):
    infer = InferCommand(role_id="line", roi_id="cap", mm_per_px=MM, image=png(good_image(1)), shape=RECT)
    with pytest.raises(ModelNotFound):
        products.infer(infer)
    with pytest.raises(InvalidRequest):
        products.infer(InferCommand(role_id="../x", roi_id="cap", mm_per_px=MM, image=b"", shape=RECT))
    taught = teach(products)
    with pytest.raises(NotCalibrated):
        products.infer(infer)
    with products.reserve("line", "cap"), pytest.raises(Conflict):
        teach(products)
    calibrate = CalibrateCommand(role_id="line", roi_id="cap", mm_per_px=MM * 2, ok_scores=taught.ok_scores,
                                 area_mm2_thr=0.5)
    with pytest.raises(Conflict):  # another scale than the model's
        products.calibrate_ng(calibrate)


def test_a_teach_reports_its_stages_in_order_and_the_reports_change_nothing(products):
    images = [png(good_image(s)) for s in range(12)]  # 10 taught (backbone batches of 8 and 2), 2 held out
    heard: list[tuple[str, int, int]] = []
    with products.reserve("line", "watched") as slot:
        watched = products.fit_ok(FitCommand("line", "watched", MM, images), slot, lambda *step: heard.append(step))
    with products.reserve("line", "quiet") as slot:
        quiet = products.fit_ok(FitCommand("line", "quiet", MM, images), slot)
    assert list(dict.fromkeys(stage for stage, _, _ in heard)) == ["embedding", "coreset", "holdout", "saving"]
    embedded = [done for stage, done, total in heard if stage == "embedding"]
    assert watched.n_train == 10
    assert embedded == [0, 8, 10]  # one report per backbone batch (PATCHCORE_BATCH_SIZE 8)
    assert [step for step in heard if step[0] == "holdout"] == [("holdout", 0, 2), ("holdout", 1, 2),
                                                                ("holdout", 2, 2)]
    assert watched.ok_scores == quiet.ok_scores and watched.coreset_size == quiet.coreset_size


def test_aggregation_choice_fit_judges_the_window_of_a_product_model_and_records_it(tmp_path):
    """``PATCHCORE_AGGREGATION_CHOICE=fit``: the manifest says which window was judged best, and why."""
    options = ProductOptions(data_root=tmp_path / "data", backbone="resnet18", weights="random",
                             aggregation_choice="fit")
    products = ProductModels.open(options, ExtractorCache())
    command = FitCommand(role_id="line", roi_id="cap", mm_per_px=MM, images=[png(good_image(s)) for s in range(24)])
    with products.reserve("line", "cap") as slot:
        taught = products.fit_ok(command, slot)
    manifest = json.loads((products.models.folder_of("line", "cap", taught.model_version)
                           / "manifest.json").read_text())
    choice = manifest["window_choice"]
    assert manifest["embedding"]["aggregation_choice"] == "fit"
    assert set(choice["candidates"]) == {"1", "3"} and choice["images"] >= 4
    assert manifest["embedding"]["aggregation"] == choice["chosen"] in (1, 3)


def test_fixed_aggregation_is_the_product_default_and_judges_nothing(products):
    taught = teach(products)
    manifest = json.loads((products.models.folder_of("line", "cap", taught.model_version)
                           / "manifest.json").read_text())
    assert manifest["embedding"]["aggregation_choice"] == "fixed"
    assert manifest["window_choice"]["candidates"] == {}
