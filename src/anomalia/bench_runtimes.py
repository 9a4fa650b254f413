"""``make bench``: the feature extractor under torch, ONNX Runtime and OpenVINO on this CPU.

For a resnet18 model at 256 px (seeded random weights: speed does not depend on their values):
extractor ms/image at batch 1 and 8 (image tensor → patch embeddings, the floor of any predict),
end-to-end ``predict`` ms/image at batch 1 and its ratio to that runtime's floor, and the largest
relative score difference from torch (parity). Usage: ``python -m anomalia.bench_runtimes [--repeats N]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from anomalia.core.detector import PatchCore, PatchCoreConfig
from anomalia.core.features.exported import RUNTIMES, runtime_installed
from anomalia.core.image import model_input_array
from anomalia.store.model_io import load_model, save_model
from anomalia.synthetic import defect_image, good_image
from anomalia.usecases.model_folders import export


def _ms_per_image(run, n_images: int, repeats: int) -> float:
    run()  # warm-up: first calls compile and allocate
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000 / n_images)
    return statistics.median(times)


def measure(detector: PatchCore, images: list[np.ndarray], repeats: int) -> dict[str, float]:
    config, extractor = detector.config, detector.feature_extractor()
    report = {}
    for batch_size in (1, 8):
        batch = model_input_array(images[:batch_size], config.img_size, config.color, config.normalize)
        report[f"extractor_b{batch_size}_ms"] = _ms_per_image(
            lambda: extractor.patch_embeddings(batch, aggregation=config.aggregation, stride=config.stride,
                                               norm=config.patch_norm), batch_size, repeats)
    report["predict_b1_ms"] = _ms_per_image(lambda: [detector.predict([image]) for image in images[:8]], 8, repeats)
    report["predict_over_floor"] = report["predict_b1_ms"] / report["extractor_b1_ms"]
    return report


def run(repeats: int) -> dict[str, dict[str, float]]:
    config = PatchCoreConfig(weights="random", holdout_fraction=0.2)
    detector = PatchCore(config).fit([good_image(seed) for seed in range(10)])
    test = [good_image(500 + i) for i in range(4)] + [defect_image(600 + i)[0] for i in range(4)]
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        model = Path(folder) / "model"
        save_model(detector, model)
        export(model, "onnx")
        export(model, "openvino")
        reference = None
        for runtime in RUNTIMES:
            if not runtime_installed(runtime):
                continue
            loaded = load_model(model, runtime=runtime).detector
            scores = np.array([p.score for p in loaded.predict(test)])
            reference = scores if reference is None else reference
            results[runtime] = {**measure(loaded, test, repeats),
                                "max_rel_score_diff": float(np.max(np.abs(scores - reference) / reference))}
    return results


def table(results: dict[str, dict[str, float]]) -> str:
    lines = ["| runtime | extractor b1 ms/img | extractor b8 ms/img | predict b1 ms/img | predict / floor | "
             "max rel. score diff |", "|---|---|---|---|---|---|"]
    for runtime, r in results.items():
        lines.append(f"| {runtime} | {r['extractor_b1_ms']:.1f} | {r['extractor_b8_ms']:.1f} | "
                     f"{r['predict_b1_ms']:.1f} | {r['predict_over_floor']:.2f} | {r['max_rel_score_diff']:.1e} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    results = run(args.repeats)
    print(table(results))
    parity = {name: r for name, r in results.items() if r["max_rel_score_diff"] <= 1e-4}
    fastest = min(parity, key=lambda name: parity[name]["extractor_b1_ms"])
    print(f"\nfastest runtime with parity (scores within 1e-4 of torch) at batch 1: {fastest}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
