"""``anomalia`` command line: fit, predict, batch, evaluate, export, import-legacy, serve.

Each command is a thin adapter: parse arguments, call the use cases the HTTP API
uses (``anomalia.usecases``), print results. Expected failures are one line on
stderr and exit 2. Only ``serve`` imports the HTTP service, to start it, and only ``batch`` imports
Ray (``anomalia.distributed``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from anomalia import __version__
from anomalia.core.config import (AGGREGATION_CHOICES, BACKBONE_AGGREGATION, COLOR_MODES, DISTANCES, MODES,
                                   PATCH_NORMS, SCORE_METHODS, PatchCoreConfig)
from anomalia.core.features import available_backbones

EXIT_USAGE = 2


class CliError(Exception):
    """An expected failure, reported as one line."""


def _add_device(command) -> None:
    command.add_argument("--device", default="auto",
                         help="auto (CUDA when available) | cpu | cuda | cuda:N: where the backbone and exact kNN run")


RUNTIME_CHOICES = ("torch", "onnxruntime", "openvino")  # core.features.exported.RUNTIMES, kept import-free


def _add_runtime(command) -> None:
    command.add_argument("--runtime", choices=RUNTIME_CHOICES, default=None,
                         help="what runs the feature extractor: torch, or onnxruntime/openvino on the model's "
                              "export (anomalia export); default torch when installed, else the export found")


def _add_fit(commands) -> None:
    defaults = PatchCoreConfig()
    fit = commands.add_parser("fit", help="build a model from a folder of good images")
    fit.add_argument("good_dir", type=Path)
    fit.add_argument("--out", type=Path, required=True, help="model folder to write (atomically)")
    fit.add_argument("--backbone", default=defaults.backbone, help=f"one of {', '.join(available_backbones())}")
    fit.add_argument("--weights", default=defaults.weights, help="imagenet | random | path to a state-dict file")
    fit.add_argument("--img-size", type=int, default=defaults.img_size)
    fit.add_argument("--coreset-ratio", type=float, default=defaults.coreset_ratio)
    fit.add_argument("--knn-k", type=int, default=defaults.knn_k, help="neighbours averaged per patch distance")
    fit.add_argument("--patch-norm", default=defaults.patch_norm, choices=PATCH_NORMS,
                     help="none keeps feature magnitude; l2 puts patches on the unit sphere")
    fit.add_argument("--aggregation", type=int, default=0,
                     help="k×k neighbourhood averaged per backbone layer (1 = off; default: the backbone's, "
                     + ", ".join(f"{name} {size}" for name, size in BACKBONE_AGGREGATION.items()) + ")")
    fit.add_argument("--aggregation-choice", choices=AGGREGATION_CHOICES, default=defaults.aggregation_choice,
                     help="fixed: keep --aggregation (default); fit: judge windows 1 and 3 on defects painted into "
                     "held-out good images and keep the better (about twice the fit time; README, Accuracy)")
    fit.add_argument("--stride", type=int, default=defaults.stride)
    fit.add_argument("--seed", type=int, default=defaults.seed)
    fit.add_argument("--color", default=defaults.color, choices=COLOR_MODES)
    fit.add_argument("--knn-index", default=defaults.knn_index,
                     help="auto (exact up to 4 096 bank rows, else hnsw_pca on 96 dimensions with a re-rank, "
                     "on all dimensions, or ivf: the fastest at measured recall >= 0.99) | exact | hnsw | hnsw_pca | ivf")
    fit.add_argument("--distance", default=defaults.distance, choices=DISTANCES)
    fit.add_argument("--score", dest="score_method", default=defaults.score_method, choices=SCORE_METHODS)
    fit.add_argument("--score-k", type=int, default=defaults.score_k,
                     help="bank neighbours of the reweighted image score (PatchCore eq. 7)")
    fit.add_argument("--holdout-fraction", type=float, default=defaults.holdout_fraction)
    fit.add_argument("--batch-size", type=int, default=defaults.batch_size)
    _add_device(fit)
    fit.set_defaults(handler=cmd_fit)


def _add_predict(commands) -> None:
    predict = commands.add_parser("predict", help="score images with a model")
    predict.add_argument("model_dir", type=Path)
    predict.add_argument("images", type=Path, nargs="+")
    predict.add_argument("--json", action="store_true", help="one JSON object per line (the default output)")
    predict.add_argument("--thr", type=float, default=None, help="threshold override")
    predict.add_argument("--mode", choices=MODES, default=None)
    predict.add_argument("--save-vis", type=Path, default=None, help="write a heatmap overlay PNG per image here")
    _add_device(predict)
    _add_runtime(predict)
    predict.set_defaults(handler=cmd_predict)


def _add_batch(commands) -> None:
    batch = commands.add_parser("batch", help="score a whole archive on a Ray cluster (the `ray` extra)")
    batch.add_argument("model", help="a model folder, or DATA_ROOT:ROLE/ROI for a product's region under a data root")
    batch.add_argument("source", help="a folder (recursive), a glob, or a .txt/.csv file with one path per line")
    batch.add_argument("--out", type=Path, required=True, help="RESULTS: .parquet, or .csv")
    batch.add_argument("--ray", default="auto", dest="ray_address",
                       help="auto (the running cluster, else an embedded one) | local (a fresh embedded one) | "
                            "ADDRESS of a cluster's head (host:port)")
    batch.add_argument("--batch-size", type=int, default=8, help="images per backbone batch on an actor")
    batch.add_argument("--save-vis", type=Path, default=None, help="write each image's visuals here")
    batch.add_argument("--records", default=None, metavar="DATABASE_URL",
                       help="also write an inspection record per image (endpoint `batch`)")
    batch.add_argument("--resume", action="store_true", help="skip the paths already in RESULTS or its parts")
    batch.set_defaults(handler=cmd_batch)


def _add_evaluate(commands) -> None:
    evaluate = commands.add_parser("evaluate", help="AUROC / pixel AUROC / PRO on an MVTec-AD-layout folder")
    evaluate.add_argument("model_dir", type=Path)
    evaluate.add_argument("dataset_dir", type=Path)
    evaluate.add_argument("--json", action="store_true")
    evaluate.add_argument("--plot", type=Path, default=None, help="write ROC curves to this PNG")
    _add_device(evaluate)
    _add_runtime(evaluate)
    evaluate.set_defaults(handler=cmd_evaluate)


def _add_export(commands) -> None:
    export = commands.add_parser("export", help="export a model's feature extractor to ONNX or OpenVINO IR")
    export.add_argument("model_dir", type=Path)
    export.add_argument("--format", dest="fmt", required=True, choices=("onnx", "openvino"))
    export.add_argument("--out", type=Path, default=None,
                        help="write a copy of the model folder with the export here (default: into MODEL itself)")
    _add_device(export)
    export.set_defaults(handler=cmd_export)


def _add_import(commands) -> None:
    legacy = commands.add_parser("import-legacy", help="convert the original backend's memory_bank_core.npz + "
                                                       "config.json")
    legacy.add_argument("npz", type=Path)
    legacy.add_argument("config_json", type=Path)
    legacy.add_argument("--out", type=Path, required=True)
    legacy.add_argument("--weights", default="imagenet", help="weights the legacy bank was built with")
    legacy.set_defaults(handler=cmd_import_legacy)


def _add_serve(commands) -> None:
    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--demo", action="store_true", help="build a demo model first when none exists")
    serve.add_argument("--workers", type=int, default=1,
                       help="worker processes (uvicorn's supervisor); each loads its own models. With more than "
                            "one, set PROMETHEUS_MULTIPROC_DIR so /metrics sums every worker")
    serve.set_defaults(handler=cmd_serve)


def _add_db(commands) -> None:
    database = commands.add_parser("db", help="the inspection-records database (schema migrations)")
    database.add_argument("action", choices=("upgrade", "current"),
                          help="upgrade: bring the schema to this version's; current: print its revision")
    database.add_argument("--database-url", default=None,
                          help="default: $DATABASE_URL, else sqlite:///$BACKEND_DATA_ROOT/anomalia.db (data/)")
    database.set_defaults(handler=cmd_db)


def _add_token(commands) -> None:
    token = commands.add_parser("token", help="named API tokens with scopes (stored hashed in the records database)")
    actions = token.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a token and print its secret (shown once)")
    create.add_argument("--name", required=True, help="who or what holds it, e.g. line-2-camera")
    create.add_argument("--scope", action="append", required=True, choices=("inspect", "teach", "admin"),
                        help="repeat for several: inspect (inspect, records, reviews), teach (teach, calibrate), "
                             "admin (tokens, configuration)")
    actions.add_parser("list", help="every token: id, name, scopes, created, revoked (never the secret)")
    revoke = actions.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id")
    for parser in actions.choices.values():
        parser.add_argument("--database-url", default=None, help="as for `anomalia db`")
    token.set_defaults(handler=cmd_token)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anomalia", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"anomalia {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_add_fit, _add_predict, _add_batch, _add_evaluate, _add_export, _add_import, _add_serve, _add_db,
                _add_token):
        add(commands)
    return parser


def cmd_fit(args) -> int:
    from tqdm import tqdm

    from anomalia.usecases.model_folders import good_images, teach

    config = PatchCoreConfig(
        backbone=args.backbone, weights=args.weights, img_size=args.img_size, coreset_ratio=args.coreset_ratio,
        knn_k=args.knn_k, stride=args.stride, seed=args.seed, color=args.color, knn_index=args.knn_index,
        distance=args.distance, score_method=args.score_method, holdout_fraction=args.holdout_fraction,
        batch_size=args.batch_size, patch_norm=args.patch_norm, aggregation=args.aggregation,
        aggregation_choice=args.aggregation_choice,
        score_k=args.score_k).validate()
    images = good_images(args.good_dir)
    _warn_weights(config)
    with tqdm(total=len(images), desc="fit", unit="img", file=sys.stderr) as bar:
        with _chatter_to_stderr():
            manifest = teach(config, images, args.out, progress=bar.update, device=args.device)
    print(json.dumps({key: manifest[key] for key in (
        "model_version", "backbone", "weights", "coreset_size", "n_embeddings", "threshold", "embedding",
        "fitted_on")}))
    return 0


def _chatter_to_stderr() -> contextlib.AbstractContextManager:
    """Keep stdout for results: torch.hub announces weight downloads on stdout."""
    return contextlib.redirect_stdout(sys.stderr)


def _warn_weights(config: PatchCoreConfig) -> None:
    if config.weights == "random":
        print("anomalia: using seeded RANDOM backbone weights (no pretrained weights); "
              "fine for tests and demos, not for production accuracy", file=sys.stderr)


def cmd_predict(args) -> int:
    from anomalia.core.scoring import effective_threshold
    from anomalia.store.image_files import read_image
    from anomalia.usecases.batch import chunks
    from anomalia.usecases.inspection import inspect_many, model_threshold, visuals
    from anomalia.usecases.model_folders import open_model
    from anomalia.viz.overlays import encode_png

    with _chatter_to_stderr():
        loaded = open_model(args.model_dir, args.device, args.runtime)
    threshold = effective_threshold(model_threshold(loaded.detector), args.mode, args.thr)
    if args.save_vis:
        args.save_vis.mkdir(parents=True, exist_ok=True)
    written: set[Path] = set()
    for paths in chunks(args.images, loaded.detector.config.batch_size):  # one backbone batch at a time
        images = [read_image(path) for path in paths]
        for path, image, result in zip(paths, images, inspect_many(loaded.detector, images, threshold=threshold)):
            line = {"path": str(path), "score": result.score, "threshold": threshold,
                    "is_anomaly": result.is_anomaly}
            if args.save_vis:
                out = _overlay_path(args.save_vis, path, written)
                out.write_bytes(encode_png(visuals(image, result, None).overlay))
                line["overlay"] = str(out)
            print(json.dumps(line), flush=True)
    return 0


def _overlay_path(folder: Path, image: Path, written: set[Path]) -> Path:
    """``<stem>_overlay.png``, numbered when two inputs share a stem (``good/000.png``, ``scratch/000.png``)."""
    out, n = folder / f"{image.stem}_overlay.png", 1
    while out in written:
        n += 1
        out = folder / f"{image.stem}_{n}_overlay.png"
    written.add(out)
    return out


def cmd_batch(args) -> int:
    from tqdm import tqdm

    try:
        from anomalia.distributed.job import BatchJob, run
    except ImportError as error:
        raise CliError(f"batch runs on Ray, an optional extra: pip install 'anomalia[ray]' ({error})") from None

    job = BatchJob(model=args.model, source=args.source, out=args.out, ray_address=args.ray_address,
                   batch_size=args.batch_size, save_vis=args.save_vis, records_url=args.records, resume=args.resume)
    bars: list[tqdm] = []  # shown once the inputs are known, so a refusal before that stays one line
    try:
        figures = run(job, progress=lambda n: bars[0].update(n),
                      total=lambda n: bars.append(tqdm(total=n, desc="batch", unit="img", file=sys.stderr)))
    finally:
        for bar in bars:
            bar.close()
    print(f"anomalia batch: {figures['images']} images, {figures['ng']} NG, {figures['errors']} errors, "
          f"{figures['images_per_s']} images/s ({figures['skipped']} already done; {figures['rows']} rows in "
          f"{figures['results']})", file=sys.stderr)
    print(json.dumps(figures))
    return 0


def cmd_evaluate(args) -> int:
    from anomalia.usecases.evaluation import evaluate
    from anomalia.usecases.model_folders import open_model
    from anomalia.viz.overlays import encode_png
    from anomalia.viz.plots import roc_plot

    with _chatter_to_stderr():
        loaded = open_model(args.model_dir, args.device, args.runtime)
    evaluation = evaluate(loaded.detector, args.dataset_dir)
    result = evaluation.result
    if args.plot:
        curves = [curve for curve in (evaluation.image, evaluation.pixel) if curve is not None]
        labelled = {name: (curve.fpr, curve.tpr, curve.auroc) for name, curve in zip(("image", "pixel"), curves)}
        args.plot.write_bytes(encode_png(roc_plot(labelled)))
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        for key, value in result.to_dict().items():
            print(f"{key:12s} {'n/a' if value is None else (f'{value:.4f}' if isinstance(value, float) else value)}")
    return 0


def cmd_export(args) -> int:
    from anomalia.usecases.model_folders import export

    with _chatter_to_stderr():
        entry = export(args.model_dir, args.fmt, out=args.out, device=args.device)
    folder = args.out or args.model_dir
    print(json.dumps({"format": entry["format"], "file": str(folder / entry["file"]), "sha256": entry["sha256"],
                      "img_size": entry["img_size"], "opset": entry["opset"], "bank_sha256": entry["bank_sha256"]}))
    return 0


def cmd_import_legacy(args) -> int:
    from anomalia.store.legacy import import_legacy

    with _chatter_to_stderr():
        manifest = import_legacy(args.npz, args.config_json, args.out, weights=args.weights)
    print(json.dumps({key: manifest[key] for key in ("model_version", "coreset_size", "threshold",
                                                     "embedding_version")}))
    return 0


def _database_url(args) -> str:
    from anomalia.store.database import default_url

    return args.database_url or os.environ.get("DATABASE_URL") or default_url(Path(os.environ.get(
        "BACKEND_DATA_ROOT", "data")))


def cmd_db(args) -> int:
    from anomalia.store.database import current_revision, head_revision, open_engine, redact, upgrade

    url = _database_url(args)
    engine = open_engine(url)
    try:
        revision = upgrade(engine) if args.action == "upgrade" else current_revision(engine)
    finally:
        engine.dispose()
    print(json.dumps({"database": redact(url), "revision": revision, "head": head_revision()}))
    return 0


def cmd_token(args) -> int:
    from anomalia.store.database import open_engine
    from anomalia.store.tokens import TokenStore
    from anomalia.usecases.errors import UseCaseError
    from anomalia.usecases.records import iso
    from anomalia.usecases.tokens import Tokens

    engine = open_engine(_database_url(args))
    tokens = Tokens(TokenStore(engine))
    try:
        if args.action == "create":
            token, secret = tokens.create(args.name, args.scope)
            print(json.dumps({"id": token.id, "name": token.name, "scopes": list(token.scopes), "token": secret}))
            print("store the token now: only its hash is kept, it cannot be shown again", file=sys.stderr)
        elif args.action == "list":
            for token in tokens.list():
                print(json.dumps({"id": token.id, "name": token.name, "scopes": list(token.scopes),
                                  "created_at": iso(token.created_us), "revoked_at": iso(token.revoked_us)}))
        else:
            tokens.revoke(args.id)
            print(json.dumps({"id": args.id, "revoked": True}))
    except UseCaseError as error:
        raise CliError(str(error)) from None
    finally:
        engine.dispose()
    return 0


def cmd_serve(args) -> int:
    try:
        from anomalia.service.server import serve
    except ImportError as error:
        raise CliError(f"the HTTP service needs its extra: pip install 'anomalia[service]' ({error})") from None

    if args.workers < 1:
        raise CliError(f"--workers must be at least 1; got {args.workers}")
    return serve(host=args.host, port=args.port, demo=args.demo, workers=args.workers)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (CliError, ValueError, FileNotFoundError, RuntimeError, OSError) as error:
        print(f"anomalia {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
