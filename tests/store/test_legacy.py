"""Seed 000's artifacts (memory_bank_core.npz + config.json) score exactly as the old backend did.

The "original" here is an independent, deliberately plain re-implementation of seed 000
section 5: a torchvision resnet18 with forward hooks on layer2/layer3 (full forward pass),
grey input in 0..1 replicated to 3 channels, layer3 bilinearly resized to layer2's grid,
concatenation, per-patch L2 normalisation, brute-force kNN in float64 (mean of the k
nearest distances), bilinear upsampling to IMG_SIZE in numpy and the maximum as score.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from anomalia.store.legacy import import_legacy, load_legacy
from anomalia.store.manifest import ModelFormatError
from anomalia.store.model_io import load_model
from anomalia.synthetic import defect_image, good_image

IMG_SIZE = 128
KNN_K = 3
THRESHOLD = 0.42


def legacy_backbone(seed: int) -> torch.nn.Module:
    """What ``torch.manual_seed(seed); resnet18()`` gives: seed 000's network, minus ImageNet."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torchvision.models.resnet18(weights=None).eval()


def legacy_patches(net: torch.nn.Module, bgr: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Steps 1–8: ``(h*w, 384)`` L2-normalised patch vectors and the grid ``(h, w)``."""
    gray = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), (IMG_SIZE, IMG_SIZE))
    x = torch.from_numpy(gray.astype(np.float32) / 255.0)[None, None].repeat(1, 3, 1, 1)
    captured: dict[str, torch.Tensor] = {}
    hooks = [net.layer2.register_forward_hook(lambda m, i, o: captured.__setitem__("layer2", o)),
             net.layer3.register_forward_hook(lambda m, i, o: captured.__setitem__("layer3", o))]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for hook in hooks:
            hook.remove()
    f2 = captured["layer2"]
    f3 = F.interpolate(captured["layer3"], size=f2.shape[-2:], mode="bilinear", align_corners=False)
    grid = torch.cat([f2, f3], dim=1)[0].permute(1, 2, 0).double().numpy()
    vectors = grid.reshape(-1, grid.shape[-1])
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), grid.shape[:2]


def bilinear_upsample(values: np.ndarray, size: int) -> np.ndarray:
    """Half-pixel-centre bilinear resize of a ``(h, w)`` map to ``(size, size)``, edges clamped."""
    h, w = values.shape

    def axis(n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        position = np.clip((np.arange(size) + 0.5) * n_in / size - 0.5, 0, n_in - 1)
        low = np.floor(position).astype(int)
        high = np.minimum(low + 1, n_in - 1)
        return low, high, position - low

    y0, y1, fy = axis(h)
    x0, x1, fx = axis(w)
    top = values[y0][:, x0] * (1 - fx) + values[y0][:, x1] * fx
    bottom = values[y1][:, x0] * (1 - fx) + values[y1][:, x1] * fx
    return top * (1 - fy[:, None]) + bottom * fy[:, None]


def original_map(net: torch.nn.Module, bank: np.ndarray, bgr: np.ndarray) -> np.ndarray:
    """Steps 9–11 with brute force: the seed-000 ``(IMG_SIZE, IMG_SIZE)`` anomaly map of one image."""
    queries, grid = legacy_patches(net, bgr)
    bank = bank.astype(np.float64)
    squared = (queries**2).sum(1)[:, None] + (bank**2).sum(1)[None, :] - 2.0 * queries @ bank.T
    distances = np.sqrt(np.maximum(squared, 0.0))
    patch_scores = np.sort(distances, axis=1)[:, :KNN_K].mean(1).reshape(grid)
    return bilinear_upsample(patch_scores, IMG_SIZE)


@pytest.fixture(scope="module")
def legacy(tmp_path_factory) -> dict:
    """Seed-000-style artifacts built from 6 good images with seed-0 random weights."""
    folder = tmp_path_factory.mktemp("legacy")
    net = legacy_backbone(0)
    patches = np.concatenate([legacy_patches(net, good_image(seed, IMG_SIZE))[0] for seed in range(6)])
    keep = np.random.default_rng(0).permutation(len(patches))[: len(patches) // 2]
    bank = patches[np.sort(keep)].astype(np.float32)  # a "core" subset of the patches, as the file name says
    np.savez_compressed(folder / "memory_bank_core.npz", memory_bank=bank)
    (folder / "config.json").write_text(json.dumps({"threshold": THRESHOLD, "img_size": IMG_SIZE,
                                                    "knn_k": KNN_K}), encoding="utf-8")
    weights = folder / "legacy_resnet18.pth"
    torch.save(net.state_dict(), weights)
    images = [good_image(50 + i, IMG_SIZE) for i in range(3)]
    images += [defect_image(60 + i, IMG_SIZE, kind=kind)[0] for i, kind in enumerate(("scratch", "blob", "patch"))]
    return {"folder": folder, "bank": bank, "net": net, "weights": weights, "images": images,
            "maps": [original_map(net, bank, image) for image in images],
            "expected": [float(original_map(net, bank, image).max()) for image in images]}  # step 13


def paths(legacy: dict) -> tuple[Path, Path]:
    return legacy["folder"] / "memory_bank_core.npz", legacy["folder"] / "config.json"


def test_the_comparison_can_tell_images_apart(legacy):
    """The 1e-4 agreement below means something only if the images' scores differ by far more."""
    expected = np.array(legacy["expected"])
    gaps = np.abs(expected[:, None] - expected[None, :])[~np.eye(len(expected), dtype=bool)]
    assert gaps.min() > 2e-4 and np.median(gaps) > 2e-3


@pytest.mark.parametrize("weights", ["random", "file"])
def test_load_legacy_scores_like_the_original(legacy, weights):
    spec = "random" if weights == "random" else str(legacy["weights"])
    loaded = load_legacy(*paths(legacy), weights=spec)
    detector = loaded.detector
    assert detector.threshold_ == THRESHOLD
    assert (detector.config.img_size, detector.config.knn_k, detector.config.color) == (IMG_SIZE, KNN_K, "gray")
    np.testing.assert_array_equal(detector.memory_bank_, legacy["bank"])
    predictions = detector.predict(legacy["images"])
    np.testing.assert_allclose([p.score for p in predictions], legacy["expected"], atol=1e-4, rtol=0)
    for prediction, expected_map in zip(predictions, legacy["maps"]):
        np.testing.assert_allclose(prediction.anomaly_map, expected_map, atol=1e-4, rtol=0)


def test_import_legacy_writes_a_model_folder_that_scores_like_the_original(legacy, tmp_path):
    out = tmp_path / "imported"
    manifest = import_legacy(*paths(legacy), out, weights=str(legacy["weights"]))
    assert manifest["threshold"] == THRESHOLD and manifest["k"] == KNN_K and manifest["img_size"] == IMG_SIZE
    assert manifest["coreset_size"] == len(legacy["bank"])
    assert manifest["embedding_version"] == "resnet18_layer2_3_concat_v1"
    assert manifest["imported_from"] == str(paths(legacy)[0].resolve())
    loaded = load_model(out)
    np.testing.assert_allclose(loaded.detector.score(legacy["images"]), legacy["expected"], atol=1e-4, rtol=0)


def test_config_without_threshold_uses_035_and_a_missing_config_is_tolerated(legacy, tmp_path):
    npz, _ = paths(legacy)
    bare = tmp_path / "config.json"
    bare.write_text(json.dumps({"img_size": IMG_SIZE}), encoding="utf-8")
    assert load_legacy(npz, bare, weights="random").detector.threshold_ == 0.35
    defaults = load_legacy(npz, tmp_path / "absent.json", weights="random").detector
    assert (defaults.threshold_, defaults.config.img_size, defaults.config.knn_k) == (0.35, 256, 3)


def test_an_npz_with_one_unnamed_array_is_read(legacy, tmp_path):
    npz = tmp_path / "memory_bank_core.npz"
    np.savez(npz, legacy["bank"])  # stored as arr_0
    loaded = load_legacy(npz, paths(legacy)[1], weights="random")
    np.testing.assert_array_equal(loaded.detector.memory_bank_, legacy["bank"])


@pytest.mark.parametrize("problem", ["not_npz", "truncated_npz", "flipped_byte", "plain_npy", "wrong_dims",
                                     "two_unknown_arrays", "bad_json", "missing"])
def test_broken_legacy_artifacts_are_model_format_errors(legacy, tmp_path, problem):
    npz, config = tmp_path / "memory_bank_core.npz", paths(legacy)[1]
    original = paths(legacy)[0].read_bytes()  # written with savez_compressed
    if problem == "not_npz":
        npz.write_bytes(b"definitely not a zip archive")
    elif problem == "truncated_npz":
        npz.write_bytes(original[: len(original) // 2])
    elif problem == "flipped_byte":
        damaged = bytearray(original)
        damaged[len(damaged) // 2] ^= 0xFF
        npz.write_bytes(bytes(damaged))
    elif problem == "plain_npy":
        with open(npz, "wb") as handle:
            np.save(handle, legacy["bank"])
    elif problem == "missing":
        npz = tmp_path / "absent.npz"
    elif problem == "wrong_dims":
        np.savez(npz, memory_bank=np.ones((10, 100), dtype=np.float32))
    elif problem == "two_unknown_arrays":
        np.savez(npz, a=np.ones((2, 384)), b=np.ones((2, 384)))
    else:
        np.savez(npz, memory_bank=legacy["bank"])
        config = tmp_path / "config.json"
        config.write_text("{threshold: 0.4", encoding="utf-8")
    with pytest.raises(ModelFormatError):
        load_legacy(npz, config, weights="random")
