"""The accuracy suite: seeded surfaces and defects, the MVTec layout and its hash, and the runner's CLI."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torchvision

import anomalia.accuracy.__main__ as accuracy_cli
from anomalia.accuracy.defects import DEFECT_KINDS, SIZES, paint_defect
from anomalia.accuracy.options import OptionError, parse_assignment, parse_value, parse_variant
from anomalia.accuracy.reference import ReferenceMismatchError, combine_references, load_reference
from anomalia.accuracy.report import BELOW, _gaps_section, _windows_section, cell, gap_error
from anomalia.accuracy.runner import SurfaceResult, Variant, VariantResult, average_draws, build_variants
from anomalia.accuracy.suite import (
    MANIFEST,
    SMOKE,
    SuiteSpec,
    build_suite,
    content_hash,
    ensure_suite,
    stale_reason,
)
from anomalia.accuracy.surfaces import FAMILIES, SURFACE_NAMES, SURFACES, get_surface
from anomalia.accuracy.weights import file_sha256
from anomalia.core.config import PatchCoreConfig
from anomalia.core.features.base import build_seeded, state_dict_fingerprint
from anomalia.usecases.evaluation import collect_samples

TINY = SuiteSpec(surfaces=("tiles", "leather"), size=64, n_train=3, n_test_good=2, n_defect=5, seed=3)
PACKAGE = Path(accuracy_cli.__file__).parent


def _changed(image: np.ndarray, good: np.ndarray) -> np.ndarray:
    return (image != good).any(axis=2)


# ---------------------------------------------------------------- surfaces


def test_the_catalogue_covers_every_family_and_both_colours() -> None:
    families = {s.family for s in SURFACES}
    assert families == set(FAMILIES)
    assert sum(s.family == "regular" for s in SURFACES) >= 4
    assert sum(s.family == "irregular" for s in SURFACES) >= 5
    assert sum(s.family == "object" for s in SURFACES) >= 2
    assert {s.colour for s in SURFACES} == {"grey", "colour"}
    with pytest.raises(ValueError, match="choose from weave, tiles"):
        get_surface("marble")


@pytest.mark.parametrize("name", SURFACE_NAMES)
def test_same_seed_same_bytes_other_seed_other_image(name: str) -> None:
    surface = get_surface(name)
    first = surface.image(11, 64)
    assert first.shape == (64, 64, 3) and first.dtype == np.uint8
    assert first.tobytes() == surface.image(11, 64).tobytes()
    assert first.tobytes() != surface.image(12, 64).tobytes()


@pytest.mark.parametrize("name", SURFACE_NAMES)
def test_good_images_of_a_surface_differ_but_share_a_look(name: str) -> None:
    surface = get_surface(name)
    images = [surface.image(seed, 96).astype(np.float32) for seed in range(4)]
    for a, b in itertools.combinations(images, 2):
        assert np.abs(a - b).mean() > 2.0  # another shot, not a copy
        assert np.abs(a.mean(axis=(0, 1)) - b.mean(axis=(0, 1))).max() < 25  # same material and light
    assert min(float(img.std()) for img in images) > 5  # a texture, not a flat field


@pytest.mark.parametrize("surface", SURFACES, ids=SURFACE_NAMES)
def test_grey_surfaces_have_equal_channels_and_colour_ones_do_not(surface) -> None:
    image = surface.image(5, 64).astype(int)
    spread = np.abs(image - image.mean(axis=2, keepdims=True)).max()
    assert (spread == 0) == (surface.colour == "grey")


def test_irregular_materials_change_layout_from_image_to_image() -> None:
    """Unlike a regular pattern, two pieces of a material do not line up when overlaid."""
    def correlation(name: str) -> float:
        a, b = (cv2.cvtColor(get_surface(name).image(s, 128), cv2.COLOR_BGR2GRAY).astype(float) for s in (1, 2))
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    assert all(abs(correlation(name)) < 0.3 for name in ("plaster", "foam", "granite", "leather", "fibres"))
    assert correlation("text") > 0.3  # the same label, only a little moved


# ---------------------------------------------------------------- defects


@pytest.mark.parametrize("name", SURFACE_NAMES)
def test_masks_are_exactly_the_changed_pixels_for_every_kind_and_size(name: str) -> None:
    surface = get_surface(name)
    for i, (kind, size_class) in enumerate(itertools.product(DEFECT_KINDS, SIZES)):
        scene, donor = surface.render(100 + i, 128), surface.render(200 + i, 128)
        image, mask = paint_defect(kind, scene, donor, np.random.default_rng(i), size_class=size_class)
        assert mask.any(), (kind, size_class)
        assert np.array_equal(_changed(image, scene.image), mask), (kind, size_class)
        delta = np.abs(image.astype(int) - scene.image.astype(int)).max(axis=2)
        assert delta[mask].mean() >= 6, (kind, size_class)  # visible, if sometimes barely
        if surface.colour == "grey":
            assert np.array_equal(image[..., 0], image[..., 2])
        if kind != "missing_piece":
            assert not (mask & ~scene.support).any()  # on the object, not on the conveyor


def test_large_defects_are_larger_than_small_ones() -> None:
    surface = get_surface("plaster")
    for kind in DEFECT_KINDS:
        areas = {size_class: np.mean([paint_defect(kind, surface.render(s, 128), surface.render(s + 50, 128),
                                                   np.random.default_rng(s), size_class=size_class)[1].sum()
                                      for s in range(3)]) for size_class in SIZES}
        assert areas["large"] > 3 * areas["small"], kind


def test_defect_painting_is_seeded() -> None:
    scene, donor = get_surface("wood").render(1, 64), get_surface("wood").render(2, 64)
    first = paint_defect("cut_paste", scene, donor, np.random.default_rng(7), size_class="large")
    again = paint_defect("cut_paste", scene, donor, np.random.default_rng(7), size_class="large")
    other = paint_defect("cut_paste", scene, donor, np.random.default_rng(8), size_class="large")
    assert first[0].tobytes() == again[0].tobytes() and np.array_equal(first[1], again[1])
    assert first[0].tobytes() != other[0].tobytes()
    with pytest.raises(ValueError, match="scratch, blob, cut_paste"):
        paint_defect("dent", scene, donor, np.random.default_rng(0), size_class="small")


def test_the_package_draws_no_unseeded_random_numbers() -> None:
    """Only `default_rng(seed)` / `SeedSequence`: no global numpy, `random` or torch RNG."""
    unseeded = re.compile(r"np\.random\.(?!default_rng\(|SeedSequence\(|Generator\b)|\bimport random\b|torch\.rand")
    offenders = [f"{path.name}:{n}" for path in PACKAGE.glob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1) if unseeded.search(line)]
    assert offenders == []


# ---------------------------------------------------------------- the suite on disk


@pytest.fixture(scope="module")
def tiny_suite(tmp_path_factory) -> Path:
    return build_suite(tmp_path_factory.mktemp("suite") / "suite", TINY).root


def test_layout_is_mvtec_and_readable_by_collect_samples(tiny_suite: Path) -> None:
    manifest = json.loads((tiny_suite / MANIFEST).read_text())
    assert [s["name"] for s in manifest["surfaces"]] == list(TINY.surfaces)
    for name in TINY.surfaces:
        folder = tiny_suite / name
        assert len(list((folder / "train" / "good").glob("*.png"))) == TINY.n_train
        samples = collect_samples(folder)
        assert sum(s.label == 0 for s in samples) == TINY.n_test_good
        defects = [s for s in samples if s.label == 1]
        assert {s.path.parent.name for s in defects} == set(DEFECT_KINDS)
        for sample in defects:
            assert sample.mask_path is not None
            mask = cv2.imread(str(sample.mask_path), cv2.IMREAD_UNCHANGED)
            assert mask.shape == (TINY.size, TINY.size) and set(np.unique(mask)) == {0, 255}
    grey = cv2.imread(str(tiny_suite / "leather" / "train" / "good" / "000.png"), cv2.IMREAD_UNCHANGED)
    assert grey.ndim == 3  # leather is colour; tiles too: grey files are checked below
    assert get_surface("tiles").colour == "colour"


def test_grey_surfaces_are_stored_as_one_channel(tmp_path: Path) -> None:
    spec = SuiteSpec(surfaces=("mesh",), size=64, n_train=1, n_test_good=1, n_defect=1)
    root = build_suite(tmp_path / "suite", spec).root
    stored = cv2.imread(str(root / "mesh" / "test" / "scratch" / "000.png"), cv2.IMREAD_UNCHANGED)
    assert stored.shape == (64, 64)


def test_rebuilding_gives_identical_files_and_hash(tiny_suite: Path, tmp_path: Path) -> None:
    again = build_suite(tmp_path / "again", TINY, workers=2)
    assert again.hash == json.loads((tiny_suite / MANIFEST).read_text())["hash"]
    files = sorted(p.relative_to(tiny_suite) for p in tiny_suite.rglob("*.png"))
    assert files == sorted(p.relative_to(again.root) for p in again.root.rglob("*.png"))
    assert all((tiny_suite / f).read_bytes() == (again.root / f).read_bytes() for f in files)
    other = build_suite(tmp_path / "other", SuiteSpec(**{**TINY.__dict__, "seed": 4}))
    assert other.hash != again.hash


def test_changed_content_changes_the_hash_and_ensure_rebuilds(tmp_path: Path) -> None:
    suite = build_suite(tmp_path / "suite", TINY)
    assert stale_reason(suite.root, TINY) is None
    victim = suite.root / "tiles" / "test" / "good" / "000.png"
    image = cv2.imread(str(victim), cv2.IMREAD_UNCHANGED)
    image[0, 0] ^= 1
    cv2.imwrite(str(victim), image)
    assert content_hash(suite.root, TINY) != suite.hash
    assert "differ" in (stale_reason(suite.root, TINY) or "")
    rebuilt, reason = ensure_suite(suite.root, TINY)
    assert reason and rebuilt.hash == suite.hash == content_hash(suite.root, TINY)
    assert "spec" in (stale_reason(suite.root, SuiteSpec(**{**TINY.__dict__, "n_train": 4})) or "")


def test_build_refuses_a_folder_that_is_not_a_suite(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        build_suite(tmp_path / "mine", TINY)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


# ---------------------------------------------------------------- options, reference, report


def test_set_values_parse_by_the_field_type() -> None:
    assert parse_assignment("knn_k=1") == ("knn_k", 1)
    assert parse_assignment("coreset_ratio=0.25") == ("coreset_ratio", 0.25)
    assert parse_assignment(" distance = cosine ") == ("distance", "cosine")
    assert parse_variant("none=knn_k=1,smoothing_sigma=2") == ("none", {"knn_k": 1, "smoothing_sigma": 2.0})
    assert parse_variant("plain=") == ("plain", {})


@pytest.mark.parametrize("text, message", [
    ("knn_k=three", "knn_k expects an int"),
    ("coreset_ratio=a lot", "coreset_ratio expects a float"),
    ("colour=rgb", "unknown option 'colour'; PatchCoreConfig fields are: backbone, weights"),
    ("knn_k", "expected name=value"),
    ("=3", "expected name=value"),
])
def test_set_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(OptionError, match=re.escape(message)):
        parse_assignment(text)


def test_fields_added_to_the_config_later_parse_by_their_type(monkeypatch) -> None:
    fields = {"patch_norm": "str", "aggregation": "int", "reweight": "bool", "limit": "float | None"}
    monkeypatch.setattr("anomalia.accuracy.options.config_fields", lambda: fields)
    assert parse_value("aggregation", "3") == 3
    assert parse_value("reweight", "yes") is True
    assert parse_value("limit", "none") is None and parse_value("limit", "0.5") == 0.5
    with pytest.raises(OptionError, match="expects true or false"):
        parse_value("reweight", "maybe")


def test_variants_override_the_base_and_bad_configs_are_refused() -> None:
    base = {"weights": "random", "img_size": 64, "knn_k": 5}
    plain, one = build_variants(base, [("plain", {}), ("one", {"knn_k": 1})])
    assert (plain.config.knn_k, one.config.knn_k, one.config.img_size) == (5, 1, 64)
    assert build_variants(base, [])[0].name == "default"
    with pytest.raises(ValueError, match="must differ"):
        build_variants(base, [("a", {}), ("a", {"knn_k": 1})])
    with pytest.raises(OptionError, match="distance must be one of"):
        build_variants(base, [("bad", {"distance": "manhattan"})])


def _reference(path: Path, suite_hash: str, surfaces: dict) -> Path:
    path.write_text(json.dumps({"suite_hash": suite_hash, "weights_fingerprint": "sha256:abc", "surfaces": surfaces}))
    return path


def test_a_reference_from_another_suite_is_refused(tmp_path: Path) -> None:
    path = _reference(tmp_path / "ref.json", "sha256:old", {"tiles": {"image_auroc": 0.8}})
    with pytest.raises(ReferenceMismatchError, match="sha256:old.*sha256:new"):
        load_reference(path, "sha256:new")
    reference = load_reference(path, "sha256:old")
    assert reference.figure("tiles", "image_auroc") == 0.8 and reference.figure("tiles", "pro") is None
    assert reference.weights_warning({"weights": "x", "weights_file_sha256": "abc"}) is None
    assert "weights_fingerprint" in (reference.weights_warning({"weights": "random"}) or "")


def test_several_reference_runs_are_averaged_per_surface_with_their_spread(tmp_path: Path) -> None:
    one = _reference(tmp_path / "seed0.json", "sha256:s", {"tiles": {"image_auroc": 0.8, "pro": 0.5, "fit_s": 10.0},
                                                          "mesh": {"image_auroc": 0.6}})
    two = _reference(tmp_path / "seed1.json", "sha256:s", {"tiles": {"image_auroc": 0.7, "pro": 0.7, "fit_s": 30.0}})
    both = combine_references([load_reference(one, "sha256:s"), load_reference(two, "sha256:s")])
    assert both.figure("tiles", "image_auroc") == pytest.approx(0.75)
    assert both.figure("tiles", "pro") == pytest.approx(0.6) and both.figure("tiles", "pixel_auroc") is None
    assert both.figure("mesh", "image_auroc") == 0.6  # only one run scored it
    assert both.draws == {"mesh": 1, "tiles": 2}
    assert both.spread["tiles"]["image_auroc"] == (0.7, 0.8) and "fit_s" not in both.spread["tiles"]
    assert both.values["tiles"]["image_auroc"] == (0.8, 0.7) and both.values["mesh"]["image_auroc"] == (0.6,)
    assert "seed0.json" in both.label and "seed1.json" in both.label
    alone = load_reference(one, "sha256:s")
    assert combine_references([alone]) is alone
    other = _reference(tmp_path / "other.json", "sha256:t", {})
    with pytest.raises(ReferenceMismatchError):
        combine_references([alone, load_reference(other, "sha256:t")])


def test_draws_over_seeds_are_averaged_with_their_range() -> None:
    def draw(image: float, pixel: float | None, fit: float, window: int) -> SurfaceResult:
        return SurfaceResult(surface="tiles", family="regular", colour="colour", image_auroc=image,
                             pixel_auroc=pixel, pro=None, fit_s=fit, eval_s=1.0, n_good=2, n_defect=5,
                             windows=(window,))

    mean = average_draws([draw(0.6, 0.9, 2.0, 3), draw(0.8, 0.7, 4.0, 1)], (0, 1))
    assert mean.image_auroc == pytest.approx(0.7) and mean.pixel_auroc == pytest.approx(0.8)
    assert mean.pro is None and mean.fit_s == pytest.approx(3.0) and mean.seeds == (0, 1)
    assert mean.spread == {"image_auroc": (0.6, 0.8), "pixel_auroc": (0.7, 0.9)}
    assert mean.windows == (3, 1)  # the window each seed's fit kept, in seed order
    assert mean.draws == {"image_auroc": (0.6, 0.8), "pixel_auroc": (0.9, 0.7)}  # per seed, for the gaps' errors
    chose = VariantResult(Variant("choice", {"aggregation_choice": "fit"},
                                  PatchCoreConfig(aggregation_choice="fit")), {}, (mean,))
    fixed = VariantResult(Variant("default", {}, PatchCoreConfig()), {}, (mean,))
    assert "| tiles | 3, 1 |" in _windows_section([fixed, chose]) and _windows_section([fixed]) == []


def test_a_gap_carries_the_standard_error_of_a_difference_of_means() -> None:
    error = gap_error([0.70, 0.72, 0.74], [0.75, 0.77])
    assert error == pytest.approx(((0.0004 / 3) + (0.0002 / 2)) ** 0.5)  # sample variances 0.0004 and 0.0002
    assert gap_error([0.7], [0.7, 0.8]) is None and gap_error([0.7, 0.8], []) is None


def test_figures_below_the_reference_are_listed_with_their_errors_worst_first(tmp_path: Path) -> None:
    def surface(name: str, image: tuple[float, ...], pixel: tuple[float, ...]) -> SurfaceResult:
        return SurfaceResult(surface=name, family="regular", colour="grey", image_auroc=sum(image) / len(image),
                             pixel_auroc=sum(pixel) / len(pixel), pro=None, fit_s=1.0, eval_s=1.0, n_good=2,
                             n_defect=5, seeds=(0, 1, 2), draws={"image_auroc": image, "pixel_auroc": pixel})

    ours = VariantResult(Variant("default", {}, PatchCoreConfig()), {}, (
        surface("tiles", (0.80, 0.82, 0.84), (0.60, 0.61, 0.62)),   # image above; pixel far below
        surface("mesh", (0.70, 0.74, 0.78), (0.90, 0.90, 0.91))))  # image a little below; pixel level
    runs = [_reference(tmp_path / f"r{i}.json", "sha256:s",
                       {"tiles": {"image_auroc": a, "pixel_auroc": b}, "mesh": {"image_auroc": c, "pixel_auroc": d}})
            for i, (a, b, c, d) in enumerate([(0.79, 0.70, 0.74, 0.90), (0.81, 0.72, 0.76, 0.90)])]
    reference = combine_references([load_reference(path, "sha256:s") for path in runs])
    page = "\n".join(_gaps_section([ours], reference))
    assert "2 of the 4 figures compared are below the reference; 1 of them by more than two" in page
    table = [line for line in page.splitlines() if line.startswith("| tiles") or line.startswith("| mesh")]
    assert table[0].startswith("| tiles | pixel AUROC | 0.610 | 0.710 | -0.100 |")  # the worst in errors first
    assert table[1].startswith("| mesh | image AUROC | 0.740 | 0.750 | -0.010 |") and len(table) == 2
    assert _gaps_section([ours], load_reference(runs[0], "sha256:s")) == []  # one run: no error to give


@pytest.mark.parametrize("seeds", ["0,a", "1,1", ","])
def test_bad_seeds_are_refused_before_anything_runs(smoke_dir: Path, seeds: str) -> None:
    code, out, err = _run(["--smoke", "--weights", "random", "--seeds", seeds])
    assert code == 2 and "--seeds" in err and out == ""
    assert not (smoke_dir / "accuracy-results" / "suite-smoke").exists()


def test_cells_show_the_reference_and_flag_lower_quality_only() -> None:
    assert cell("image_auroc", 0.8312, None) == "0.831"
    assert cell("image_auroc", 0.70, 0.80) == f"0.700 (ref 0.800) {BELOW}"
    assert cell("pro", 0.90, 0.80) == "0.900 (ref 0.800)"
    assert cell("fit_s", 30.0, 10.0) == "30.0 (ref 10.0)"  # slower is not "below"


# ---------------------------------------------------------------- the runner, end to end


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = accuracy_cli.main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def smoke_dir(tmp_path: Path, monkeypatch) -> Path:
    """A working folder where `--smoke` means the two-surface 64 px suite."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(accuracy_cli, "SMOKE", TINY)
    return tmp_path


def test_runner_refuses_bad_options_before_building_anything(smoke_dir: Path) -> None:
    code, _, err = _run(["--smoke", "--set", "knn=1", "--weights", "random"])
    assert code == 2 and "unknown option 'knn'" in err and "knn_k" in err
    assert not (smoke_dir / "accuracy-results" / "suite-smoke").exists()


def test_runner_refuses_a_reference_of_another_suite(smoke_dir: Path) -> None:
    reference = _reference(smoke_dir / "ref.json", "sha256:elsewhere", {})
    code, out, err = _run(["--smoke", "--weights", "random", "--workers", "1", "--reference", str(reference)])
    assert code == 2 and "sha256:elsewhere" in err and out == ""


@pytest.mark.slow
def test_smoke_run_prints_scores_beside_the_reference_and_writes_json_and_markdown(smoke_dir: Path) -> None:
    suite, _ = ensure_suite(smoke_dir / "accuracy-results" / "suite-smoke", TINY)
    reference = _reference(smoke_dir / "ref.json", suite.hash,
                           {"tiles": {"image_auroc": 1.0, "pixel_auroc": 1.0, "pro": 1.0, "fit_s": 0.5}})
    code, out, err = _run(["--smoke", "--variant", "k3=knn_k=3", "--variant", "k1=knn_k=1,smoothing_sigma=2",
                           "--reference", str(reference), "--json", "out.json", "--markdown", "ACCURACY.md"])
    assert code == 0, err
    assert "up to date" in err  # the prepared suite was reused, not rebuilt
    weights = smoke_dir / "accuracy-results" / "weights" / "resnet18_random_seed0.pt"
    seeded = build_seeded(lambda: torchvision.models.resnet18(weights=None), 0).state_dict()
    trunk = {key: value for key, value in seeded.items() if not key.startswith(("fc.", "layer4."))}
    assert re.search(r"^tiles .*\(ref 1\.000\) " + BELOW, out, re.MULTILINE)
    assert re.search(r"^mean irregular ", out, re.MULTILINE) and "k1" in out and "k3" in out
    results = json.loads((smoke_dir / "out.json").read_text())
    assert results["suite"]["hash"] == suite.hash
    assert [v["name"] for v in results["variants"]] == ["k3", "k1"]
    assert results["variants"][1]["config"]["knn_k"] == 1
    assert results["variants"][0]["weights"] == {  # the very tensors a reference tool loads from the file
        "weights": str(weights.relative_to(smoke_dir)), "weights_file_sha256": file_sha256(weights),
        "trunk_sha256": state_dict_fingerprint(trunk)}
    for variant in results["variants"]:
        assert set(variant["surfaces"]) == set(TINY.surfaces)
        assert all(0.0 <= s["image_auroc"] <= 1.0 and 0.0 <= s["pro"] <= 1.0 for s in variant["surfaces"].values())
    page = (smoke_dir / "ACCURACY.md").read_text()
    assert "| surface | family | colour | k3: image AUROC" in page and "(ref 1.000)" in page
    assert "`knn_k=1`, `smoothing_sigma=2.0`" in page and suite.hash in page
    # The same figures rendered again from the JSON beside another reference, without fitting again.
    newer = _reference(smoke_dir / "ref2.json", suite.hash,
                       {"tiles": {"image_auroc": 0.25, "pixel_auroc": 0.25, "pro": 0.25, "fit_s": 0.5}})
    code, again, err = _run(["--smoke", "--results", "out.json", "--reference", str(newer), "--markdown", "AGAIN.md"])
    assert code == 0, err
    assert "] tiles" not in err  # nothing was fitted: a fit logs "[variant] surface ..."
    ours = results["variants"][0]["surfaces"]["tiles"]["image_auroc"]
    assert re.search(rf"^tiles .*{ours:.3f} \(ref 0\.250\)", again, re.MULTILINE)
    page_again = (smoke_dir / "AGAIN.md").read_text()
    assert "(ref 0.250)" in page_again and results["date"] in page_again
    assert "Spread over seeds" not in page_again  # one seed, one reference run: nothing to spread


@pytest.mark.slow
def test_seeds_fit_each_surface_once_per_seed_and_report_means_and_spread(smoke_dir: Path) -> None:
    suite, _ = ensure_suite(smoke_dir / "accuracy-results" / "suite-smoke", TINY)
    runs = [_reference(smoke_dir / f"ref{i}.json", suite.hash, {"tiles": {"image_auroc": value, "pixel_auroc": 0.5,
                                                                        "pro": 0.5, "fit_s": 1.0}})
            for i, value in enumerate((0.2, 0.4))]
    code, out, err = _run(["--smoke", "--surfaces", "tiles", "--seeds", "0,1", "--reference", str(runs[0]),
                           "--reference", str(runs[1]), "--json", "out.json", "--markdown", "SEEDS.md"])
    assert code == 0, err
    assert "[default seed 0] tiles" in err and "[default seed 1] tiles" in err
    assert re.search(r"^tiles .*\(ref 0\.300\)", out, re.MULTILINE)  # the two reference runs, averaged
    row = json.loads((smoke_dir / "out.json").read_text())["variants"][0]["surfaces"]["tiles"]
    assert row["seeds"] == [0, 1]
    low, high = row["spread"]["image_auroc"]
    assert low <= row["image_auroc"] <= high and sorted(row["draws"]["image_auroc"]) == [low, high]
    page = (smoke_dir / "SEEDS.md").read_text()
    assert "Spread over seeds" in page and "0.200–0.400" in page and f"{low:.3f}–{high:.3f}" in page
    assert "of the 3 figures compared are below the reference" in page


def test_the_shipped_smoke_spec_is_small_and_valid() -> None:
    assert SMOKE.validate() is SMOKE
    assert 3 <= len(SMOKE.surfaces) <= 4 and SMOKE.size <= 128
    assert {get_surface(n).family for n in SMOKE.surfaces} == set(FAMILIES)
