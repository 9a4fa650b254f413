"""Reference figures: anomalib's PatchCore on the accuracy suite, scored with anomalia's metrics.

Dev-only. Run it with the separate ``.venv-ref`` environment (``make reference-venv``), which
has anomalib 2.7 next to our torch; the anomalia package never imports this file.

For every surface of a suite (MVTec AD layout) it builds anomalib's plain torch
``PatchcoreModel`` (resnet18, layer2 + layer3, 9 neighbours for the image-score re-weighting),
loads the given torchvision resnet18 state dict into its timm trunk, and feeds it exactly the
tensors our detector sees (``anomalia.core.image.to_model_input``, no centre crop). It is driven
the way anomalib's Lightning module drives it: a train-mode forward per batch stores embeddings
(``training_step``), ``subsample_embedding`` runs the k-center-greedy coreset (``fit``), and an
eval-mode forward gives the raw ``pred_score`` and ``anomaly_map`` (``validation_step``).
Those raw outputs are scored: anomalib's post-processor, which maps them to
``(x − threshold) / (max − min) + 0.5`` clamped to [0, 1], is left out, since the clamp ties the
extremes and could move AUROC and PRO slightly.

What anomalib 2.7 computes, for comparison with ours: patch features are raw (not
L2-normalised) layer2 ⊕ bilinear-upsampled layer3, each after a 3×3 average pool (zero padding
counted); the map is each patch's distance to its nearest bank vector (k = 1), nearest-neighbour
upsampled to the input size and blurred with σ = 4 (33-tap kernel, reflect padding); the image
score is the largest patch distance s* times 1 − softmax(d)[0], where d holds that patch's
distances to the 9 bank neighbours of its nearest bank vector m* (m* itself first): the paper's
re-weighting. The metrics are anomalia's own (``anomalia.core.metrics``), so both sides of a
comparison share one implementation.

The output JSON is rewritten after each surface; a rerun skips surfaces already present for the
same suite hash, weights file, coreset ratio, seed and anomalib version.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

TOOL = "anomalib"
LAYERS = ("layer2", "layer3")
BATCH_SIZE = 8  # anomalia's default detector batch, so per-image timings compare
DROPPABLE_PREFIXES = ("fc.", "layer4.")  # torchvision resnet tensors a layer2+layer3 trunk never holds


# -- pure helpers ---------------------------------------------------------------------------
def trunk_state(state: dict, target_keys) -> tuple[dict, list[str]]:
    """The tensors of ``state`` that a trunk with ``target_keys`` holds, and the keys left out.

    torchvision and timm name resnet tensors alike, so no renaming is needed. Raises ValueError
    when a trunk tensor is missing or when a left-out key is anything but ``fc.*``/``layer4.*``.
    """
    target = set(target_keys)
    missing = sorted(target - set(state))
    if missing:
        raise ValueError(f"the weights file lacks {len(missing)} trunk tensor(s), e.g. {missing[0]}; "
                         "pass a torchvision resnet18 state dict")
    dropped = sorted(set(state) - target)
    unexpected = [key for key in dropped if not key.startswith(DROPPABLE_PREFIXES)]
    if unexpected:
        raise ValueError(f"the weights file has {len(unexpected)} tensor(s) that are not resnet18's, "
                         f"e.g. {unexpected[0]}")
    return {key: state[key] for key in target_keys}, dropped


def previous_surfaces(out: Path, identity: dict) -> dict:
    """Surfaces already in ``out`` when it was written for the same ``identity``; else none."""
    if not out.is_file():
        return {}
    try:
        previous = json.loads(out.read_text())
    except json.JSONDecodeError:
        print(f"{out} is not valid JSON; starting afresh", file=sys.stderr)
        return {}
    if any(previous.get(key) != value for key, value in identity.items()):
        print(f"{out} was written for another suite, weights or settings; starting afresh", file=sys.stderr)
        return {}
    return dict(previous.get("surfaces", {}))


def write_json_atomic(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)


def suite_hash(suite: Path) -> str:
    manifest = suite / "suite.json"
    if not manifest.is_file():
        raise SystemExit(f"{manifest} not found: a suite folder needs a suite.json with a 'hash' field")
    value = json.loads(manifest.read_text()).get("hash")
    if not isinstance(value, str) or not value:
        raise SystemExit(f"{manifest} has no 'hash' string")
    return value


def list_surfaces(suite: Path, wanted: str | None) -> list[str]:
    """Sub-folders of ``suite`` with ``train/good``, sorted; ``wanted`` ("a,b") picks some."""
    found = sorted(p.name for p in suite.iterdir() if (p / "train" / "good").is_dir())
    if not found:
        raise SystemExit(f"{suite} holds no surface (no <surface>/train/good folder)")
    if not wanted:
        return found
    names = [name.strip() for name in wanted.split(",") if name.strip()]
    unknown = [name for name in names if name not in found]
    if unknown:
        raise SystemExit(f"unknown surface(s) {', '.join(unknown)}; the suite has {', '.join(found)}")
    return names


def format_table(surfaces: dict) -> str:
    def cell(value) -> str:
        return "   -  " if value is None else f"{value:.4f}"

    lines = [f"{'surface':<20} {'img AUROC':>9} {'px AUROC':>9} {'PRO':>7} {'fit s':>7} {'ms/img':>7} {'bank':>7}"]
    for name, row in sorted(surfaces.items()):
        lines.append(f"{name:<20} {cell(row['image_auroc']):>9} {cell(row['pixel_auroc']):>9} "
                     f"{cell(row['pro']):>7} {row['fit_s']:>7.1f} {row['infer_ms_per_image']:>7.1f} "
                     f"{row['bank_size']:>7d}")
    return "\n".join(lines)


# -- anomalib ---------------------------------------------------------------------------------
def build_model(state: dict):
    """anomalib's PatchcoreModel with the file's weights in its timm trunk, and the trunk checksum."""
    from anomalia.core.features.base import state_dict_fingerprint
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel

    model = PatchcoreModel(layers=list(LAYERS), backbone="resnet18", pre_trained=False)
    trunk = model.feature_extractor.feature_extractor
    wanted, _ = trunk_state(state, list(trunk.state_dict()))
    trunk.load_state_dict(wanted, strict=True)
    checksum = state_dict_fingerprint(trunk.state_dict())
    if checksum != state_dict_fingerprint(wanted):
        raise RuntimeError("the timm trunk does not hold the file's tensors after loading")
    return model.float(), checksum


def batches(paths: list[Path]):
    """``(B, 3, 256, 256)`` tensors exactly as anomalia's detector builds them, from BGR files."""
    from anomalia.core.image import to_model_input
    from anomalia.store.image_files import read_image

    for start in range(0, len(paths), BATCH_SIZE):
        images = [read_image(path) for path in paths[start:start + BATCH_SIZE]]
        yield to_model_input(images, 256, "rgb", "imagenet")


def fit(model, paths: list[Path], coreset_ratio: float) -> float:
    """Lightning's order: ``training_step`` per batch, then ``fit`` (coreset). Returns seconds."""
    started = time.perf_counter()
    model.train()
    model.embedding_store.clear()
    for batch in batches(paths):
        model(batch)
    with warnings.catch_warnings():  # anomalib 2.7 warns about an argument nobody passed
        warnings.filterwarnings("ignore", "Argument embeddings is deprecated", DeprecationWarning)
        model.subsample_embedding(coreset_ratio)
    model.eval()
    return time.perf_counter() - started


def predict(model, paths: list[Path]) -> tuple[np.ndarray, list[np.ndarray], float]:
    """Raw ``pred_score`` (N,) and ``anomaly_map`` (256, 256) per image, and ms per image."""
    scores, maps = [], []
    started = time.perf_counter()
    with torch.no_grad():
        for batch in batches(paths):
            output = model(batch)
            scores.extend(output.pred_score.reshape(-1).tolist())
            maps.extend(output.anomaly_map[:, 0].numpy())
    elapsed = time.perf_counter() - started
    return np.array(scores, dtype=np.float64), maps, 1000.0 * elapsed / len(paths)


def torchvision_features(state: dict, batch: torch.Tensor) -> torch.Tensor:
    """What anomalib's embedding should be, from a plain torchvision resnet18: (B*h*w, C)."""
    import torch.nn.functional as F
    import torchvision

    net = torchvision.models.resnet18(weights=None)
    net.load_state_dict(state, strict=True)
    net.eval()
    with torch.no_grad():
        f2 = net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(batch))))))
        f3 = net.layer3(f2)
        f2, f3 = (F.avg_pool2d(f, 3, stride=1, padding=1) for f in (f2, f3))
        f3 = F.interpolate(f3, size=f2.shape[-2:], mode="bilinear", align_corners=False)
        grid = torch.cat([f2, f3], dim=1)
    return grid.permute(0, 2, 3, 1).reshape(-1, grid.shape[1])


def feature_check(model, state: dict, paths: list[Path]) -> float:
    """Largest |anomalib − torchvision| over the patch features of one batch of ``paths``."""
    batch = next(batches(paths))
    model.train()
    embedding = model(batch)
    model.embedding_store.clear()
    model.eval()
    return float((embedding - torchvision_features(state, batch)).abs().max())


# -- one surface ------------------------------------------------------------------------------
def read_mask(path: Path | None, shape: tuple[int, int]) -> np.ndarray:
    """Same rule as ``anomalia.usecases.evaluation``: nearest-resized to the map, > 127 is defect."""
    if path is None:
        return np.zeros(shape, dtype=bool)
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise ValueError(f"cannot read mask {path}")
    return cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 127


def run_surface(folder: Path, state: dict, coreset_ratio: float, seed: int) -> dict:
    from anomalia.core.metrics import auroc, pixel_auroc, pro_score
    from anomalia.usecases.evaluation import collect_samples
    from anomalia.store.image_files import list_images

    torch.manual_seed(seed)  # KCenterGreedy's first centre
    np.random.seed(seed)  # its sparse random projection samples through numpy's global state
    model, _ = build_model(state)
    fit_s = fit(model, list_images(folder / "train" / "good"), coreset_ratio)
    samples = collect_samples(folder)
    scores, maps, infer_ms = predict(model, [s.path for s in samples])
    labels = np.array([s.label for s in samples])
    with_masks = all(s.mask_path is not None for s in samples if s.label)
    masks = [read_mask(s.mask_path, m.shape) for s, m in zip(samples, maps)] if with_masks else []
    return {
        "image_auroc": auroc(labels, scores),
        "pixel_auroc": pixel_auroc(masks, maps) if with_masks else None,
        "pro": pro_score(masks, maps) if with_masks else None,
        "fit_s": round(fit_s, 3),
        "infer_ms_per_image": round(infer_ms, 2),
        "bank_size": int(model.memory_bank.shape[0]),
    }


# -- command line -----------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, required=True, help="folder of surfaces plus suite.json")
    parser.add_argument("--weights", type=Path, required=True, help="torchvision resnet18 state-dict file")
    parser.add_argument("--coreset-ratio", type=float, default=0.1)
    parser.add_argument("--out", type=Path, help="default docs/accuracy/reference-seedN.json (N = --seed)")
    parser.add_argument("--surfaces", help="comma-separated subset, e.g. a,b")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = Path(f"docs/accuracy/reference-seed{args.seed}.json")
    if not 0.0 < args.coreset_ratio <= 1.0:
        parser.error(f"--coreset-ratio must be in (0, 1]; got {args.coreset_ratio}")
    if not args.weights.is_file():
        parser.error(f"--weights {args.weights} is not a file")
    return args


def main(argv: list[str] | None = None) -> int:
    with warnings.catch_warnings():  # timm and anomalib's own deprecation notices, on import
        warnings.simplefilter("ignore", FutureWarning)
        import anomalib
        import anomalib.models.image.patchcore.torch_model  # noqa: F401
    from anomalia.accuracy.weights import file_sha256
    from anomalia.core.features.base import load_state_file
    from anomalia.store.image_files import list_images

    args = parse_args(argv)
    names = list_surfaces(args.suite, args.surfaces)
    identity = {"tool": TOOL, "anomalib_version": anomalib.__version__, "suite_hash": suite_hash(args.suite),
                "weights_file_sha256": file_sha256(args.weights), "coreset_ratio": args.coreset_ratio,
                "seed": args.seed}
    state = load_state_file(str(args.weights))
    model, checksum = build_model(state)
    difference = feature_check(model, state, list_images(args.suite / names[0] / "train" / "good"))
    payload = {**identity, "trunk_sha256": checksum, "feature_check_max_abs_diff": difference,
               "surfaces": previous_surfaces(args.out, identity)}
    print(f"anomalib {anomalib.__version__}, trunk {checksum[:23]}..., "
          f"anomalib vs torchvision patch features: max |diff| {difference:.3g}", flush=True)
    for name in names:
        if name in payload["surfaces"]:
            print(f"{name}: already in {args.out}, skipped", flush=True)
            continue
        payload["surfaces"][name] = run_surface(args.suite / name, state, args.coreset_ratio, args.seed)
        write_json_atomic(args.out, payload)
        print(f"{name}: {payload['surfaces'][name]}", flush=True)
    write_json_atomic(args.out, payload)
    print(format_table({name: payload["surfaces"][name] for name in names}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
