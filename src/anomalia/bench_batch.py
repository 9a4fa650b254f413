"""``make bench``: images/s of ``anomalia batch`` on Ray against ``anomalia predict`` in one process, same images.

Each run is the CLI in a fresh process, so "end-to-end" includes start-up (Python, torch, the model;
for batch also Ray, its workers and the actors' model loads); "steady" leaves start-up out: images
after the first results reached the caller, over the time since (predict prints a line per image,
batch a block per backbone batch). ``--nodes`` also runs batch on a 1-node and a 2-node cluster
started on this machine (``anomalia.local_ray``; two logical CPUs per node, so on a 2-core machine the
second node adds actors, not cores). predict and batch --ray local alternate ``--repeats`` times and
the medians are printed, so a machine whose load changes during the run treats both alike.
Synthetic 256 px images, resnet18 with seeded random weights: timing does not depend on the
weights. A figure, never a timed test.
Run: ``python -m anomalia.bench_batch [--images 500] [--repeats 2] [--batch-size 8] [--nodes] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

from anomalia.local_ray import LocalRayCluster, RaySandbox
from anomalia.synthetic import defect_image, good_image

CLI = [sys.executable, "-m", "anomalia.cli"]


def write_images(folder: Path, n: int) -> list[Path]:
    """``n`` PNGs, one in ten with a defect."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        image = defect_image(10_000 + i, kind="scratch")[0] if i % 10 == 9 else good_image(10_000 + i)
        paths.append(folder / f"{i:05d}.png")
        cv2.imwrite(str(paths[-1]), image)
    return paths


def fit(root: Path) -> Path:
    good = root / "good"
    good.mkdir(parents=True)
    for i in range(20):
        cv2.imwrite(str(good / f"{i:03d}.png"), good_image(i))
    subprocess.run([*CLI, "fit", str(good), "--out", str(root / "model"), "--weights", "random", "--device", "cpu"],
                   check=True, capture_output=True, env=_env())
    return root / "model"


def _env(base: dict[str, str] | None = None) -> dict[str, str]:
    return {**(os.environ if base is None else base), "HF_HUB_OFFLINE": "1"}


def run_predict(model: Path, paths: list[Path]) -> dict[str, float]:
    started = time.perf_counter()
    job = subprocess.Popen([*CLI, "predict", str(model), *map(str, paths), "--device", "cpu"], env=_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert job.stdout is not None
    arrivals = [time.perf_counter() for line in job.stdout if line.strip()]
    if job.wait() != 0 or len(arrivals) != len(paths):
        raise RuntimeError(f"anomalia predict failed ({len(arrivals)} of {len(paths)} lines)")
    wall = time.perf_counter() - started
    return {"wall_s": wall, "images_per_s": len(paths) / wall,
            "steady_images_per_s": (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])}


def run_batch(model: Path, source: Path, out: Path, ray: str, env: dict[str, str], batch_size: int) -> dict:
    started = time.perf_counter()
    done = subprocess.run([*CLI, "batch", str(model), str(source), "--out", str(out), "--ray", ray,
                           "--batch-size", str(batch_size)], env=_env(env), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"anomalia batch failed: {done.stderr[-2000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    wall = time.perf_counter() - started
    return {"wall_s": wall, "images_per_s": figures["images"] / wall,
            "steady_images_per_s": figures["steady_images_per_s"], "errors": figures["errors"]}


def median_of(runs: list[dict]) -> dict:
    return {key: statistics.median(run[key] or 0.0 for run in runs) for key in runs[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="anomalia-bench-batch", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=2, help="alternating predict / batch --ray local runs")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--nodes", action="store_true", help="also on a 1-node and a 2-node local cluster")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="anomalia-bench-batch-") as folder:
        root = Path(folder)
        model = fit(root)
        paths = write_images(root / "archive", args.images)
        runs: dict[str, list[dict]] = {"predict, one process": [], "batch --ray local": []}
        for _ in range(args.repeats):
            runs["predict, one process"].append(run_predict(model, paths))
            with RaySandbox() as ray:
                runs["batch --ray local"].append(run_batch(model, root / "archive", root / "local.parquet", "local",
                                                           ray.env, args.batch_size))
        results.update({name: median_of(figures) for name, figures in runs.items()})
        if args.nodes:
            for nodes in (1, 2):
                with LocalRayCluster(nodes=nodes) as cluster:
                    results[f"batch, {nodes}-node cluster"] = run_batch(
                        model, root / "archive", root / f"nodes{nodes}.parquet", cluster.address, cluster.env,
                        args.batch_size)
    print(f"anomalia batch vs predict: {args.images} images of 256 px, resnet18, batch size {args.batch_size}, "
          f"{os.cpu_count()} CPUs, medians of {args.repeats} alternating runs (clusters: one run each)")
    print(f"{'run':28s} {'wall s':>8s} {'images/s':>9s} {'steady images/s':>16s}")
    for name, figures in results.items():
        print(f"{name:28s} {figures['wall_s']:8.1f} {figures['images_per_s']:9.2f} "
              f"{figures['steady_images_per_s'] or float('nan'):16.2f}")
    single, local = results["predict, one process"], results["batch --ray local"]
    print(f"Ray overhead (batch --ray local vs predict): end-to-end "
          f"{100 * (1 - local['images_per_s'] / single['images_per_s']):.1f} %, steady "
          f"{100 * (1 - (local['steady_images_per_s'] or 0) / single['steady_images_per_s']):.1f} % (goal <= 15 %)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
