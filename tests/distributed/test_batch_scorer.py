"""The scorer each Ray actor holds, without Ray: the same use cases and the same scores as the CLI and the service."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import sqlalchemy
from support.images import png

from anomalia.cli import main
from anomalia.distributed.reading import read_files
from anomalia.distributed.scorer import ROW_FIELDS, Scorer, ScorerOptions, check_model
from anomalia.distributed.sources import parse_model
from anomalia.synthetic import defect_image, good_image
from anomalia.usecases.backbones import ExtractorCache
from anomalia.usecases.products import CalibrateCommand, FitCommand, InferCommand, ProductModels, ProductOptions

MM = 0.05
RECT = {"kind": "rect", "x": 0, "y": 0, "w": 256, "h": 256}


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Four good and two defective images, one file that is not an image, one path that does not exist."""
    root = tmp_path_factory.mktemp("archive")
    images = [good_image(200 + i) for i in range(4)] + [defect_image(300 + i, kind="blob")[0] for i in range(2)]
    paths = []
    for i, image in enumerate(images):
        paths.append(root / f"{i:03d}.png")
        paths[-1].write_bytes(png(image))
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return {"images": [str(p) for p in paths], "broken": str(root / "broken.png"), "missing": str(root / "gone.png")}


def predict_cli(model, paths) -> dict[str, dict]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["predict", str(model), *paths, "--device", "cpu"]) == 0
    return {line["path"]: line for line in map(json.loads, out.getvalue().splitlines())}


def test_rows_equal_anomalia_predict_and_bad_files_are_error_rows(single_model_dir, archive, tmp_path):
    url = f"sqlite:///{tmp_path / 'records.db'}"
    main(["db", "upgrade", "--database-url", url])
    scorer = Scorer(ScorerOptions(model=parse_model(str(single_model_dir)), device="cpu", records_url=url,
                                  save_vis=tmp_path / "vis", job_id="batch-test"), node_id="node-a")
    paths = [archive["images"][0], archive["broken"], *archive["images"][1:], archive["missing"]]
    rows = scorer.score(read_files(paths))
    assert [row["path"] for row in rows] == paths and all(set(row) == set(ROW_FIELDS) for row in rows)
    expected = predict_cli(single_model_dir, archive["images"])
    for row in rows:
        if row["path"] in expected:
            line = expected[row["path"]]
            assert row["score"] == pytest.approx(line["score"], abs=1e-5)
            assert row["threshold"] == line["threshold"]
            assert row["verdict"] == ("NG" if line["is_anomaly"] else "OK") and row["error"] is None
            assert (row["image_width"], row["image_height"]) == (256, 256) and row["node_id"] == "node-a"
            assert row["model_version"] and row["weights_fingerprint"].startswith("sha256:")
            assert row["overlay"].endswith("_overlay.png") and (tmp_path / "vis").joinpath(
                row["overlay"].rsplit("/", 1)[-1]).is_file()
    broken, missing = rows[1], rows[-1]
    assert broken["error"].startswith("ImageDecodeError") and broken["score"] is None and broken["verdict"] is None
    assert missing["error"].startswith("FileNotFoundError") and missing["node_id"] == "node-a"
    assert {row["verdict"] for row in rows if row["error"] is None} == {"OK", "NG"}
    with sqlalchemy.create_engine(url).connect() as connection:
        records = connection.execute(sqlalchemy.text(
            "select endpoint, filename, request_id, verdict from inspections order by id")).all()
    assert [(r.endpoint, r.request_id) for r in records] == [("batch", "batch-test")] * len(archive["images"])
    assert sorted(r.filename for r in records) == sorted(p.rsplit("/", 1)[-1] for p in archive["images"])


@pytest.fixture(scope="module")
def product_root(tmp_path_factory):
    """A calibrated role/roi model, taught inside ``RECT``."""
    root = tmp_path_factory.mktemp("products") / "data"
    products = ProductModels.open(ProductOptions(data_root=root, backbone="resnet18", weights="random"),
                                  ExtractorCache())
    command = FitCommand(role_id="line", roi_id="cap", mm_per_px=MM, images=[png(good_image(s)) for s in range(6)],
                         shape=json.dumps(RECT))
    with products.reserve("line", "cap") as slot:
        taught = products.fit_ok(command, slot)
    products.calibrate_ng(CalibrateCommand(role_id="line", roi_id="cap", mm_per_px=MM, ok_scores=taught.ok_scores,
                                           area_mm2_thr=0.5))
    return root, products


def test_a_product_region_is_scored_as_infer_scores_it(product_root, archive, tmp_path):
    root, products = product_root
    spec = parse_model(f"{root}:line/cap")
    assert check_model(spec)["calibrated"] is True
    scorer = Scorer(ScorerOptions(model=spec, device="cpu", save_vis=tmp_path / "vis"))
    rows = scorer.score(read_files([*archive["images"], archive["broken"]]))
    for path, row in zip(archive["images"], rows):
        with open(path, "rb") as handle:
            one = products.infer(InferCommand(role_id="line", roi_id="cap", mm_per_px=MM, image=handle.read(),
                                              shape=json.dumps(RECT)))
        assert row["score"] == pytest.approx(one.score, abs=1e-5) and row["verdict"] == one.verdict
        assert row["model_version"] == one.model_version and row["overlay"].endswith("_heatmap.png")
    assert rows[-1]["error"].startswith("ImageDecodeError")


def test_a_model_that_cannot_be_scored_is_refused_before_any_worker_starts(product_root, tmp_path):
    root, _ = product_root
    with pytest.raises(FileNotFoundError, match="no model for role 'line' roi 'other'"):
        check_model(parse_model(f"{root}:line/other"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no model"):
        check_model(parse_model(str(tmp_path / "empty")))
