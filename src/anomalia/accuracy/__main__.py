"""``python -m anomalia.accuracy``: build the suite if needed, fit and score each variant, print the table.

Examples::

    python -m anomalia.accuracy                                   # today's defaults, full suite
    python -m anomalia.accuracy --smoke                           # 4 small surfaces, for CI
    python -m anomalia.accuracy --set knn_k=1 --variant "l2=patch_norm=l2" --variant "none=patch_norm=none"
    python -m anomalia.accuracy --reference docs/accuracy/reference-seed0.json --markdown docs/ACCURACY.md
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from anomalia.accuracy.options import OptionError, parse_assignments, parse_variant
from anomalia.accuracy.reference import Reference, combine_references, load_reference
from anomalia.accuracy.report import build_table, markdown_page, render_text, results_json
from anomalia.accuracy.runner import Variant, build_variants, machine_info, results_from_json, run_variant
from anomalia.accuracy.suite import SMOKE, Suite, SuiteSpec, ensure_suite
from anomalia.accuracy.weights import seeded_weights_file, weights_identity

RESULTS = Path("accuracy-results")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m anomalia.accuracy", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", type=Path, help=f"suite folder (default {RESULTS}/suite, or suite-smoke)")
    parser.add_argument("--smoke", action="store_true", help="a tiny suite: 4 surfaces, 128 px, few images")
    parser.add_argument("--surfaces", help="score only these surfaces (comma-separated); the suite stays whole")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a PatchCoreConfig field for every variant (repeatable)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=OPTS",
                        help='a named option set, e.g. "none=patch_norm=none,aggregation=3" (repeatable)')
    parser.add_argument("--backbone", help="shortcut for --set backbone=NAME")
    parser.add_argument("--weights", help="imagenet | random | a state-dict file "
                        f"(default: seeded random weights saved under {RESULTS}/weights)")
    parser.add_argument("--reference", type=Path, action="append", default=[],
                        help="reference figures (JSON) to print beside ours; several files (runs with other "
                        "seeds) are averaged per surface")
    parser.add_argument("--seeds", help="fit each surface once per seed (e.g. 0,1,2) and report the means "
                        "and their spread; default: the config's one seed")
    parser.add_argument("--json", type=Path, help="write every result to this JSON file")
    parser.add_argument("--markdown", type=Path, help="rewrite this page (docs/ACCURACY.md) with the results")
    parser.add_argument("--results", type=Path,
                        help="render the figures of an earlier --json run of this suite instead of fitting again")
    parser.add_argument("--build-only", action="store_true", help="build the suite and weights file, then stop")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes building the suite")
    return parser.parse_args(argv)


def _spec(args: argparse.Namespace) -> SuiteSpec:
    return SMOKE if args.smoke else SuiteSpec()


def _variants(args: argparse.Namespace, spec: SuiteSpec) -> list[Variant]:
    """Options in rising precedence: suite size, --backbone/--weights, --set, then each --variant."""
    base: dict[str, object] = {"img_size": spec.size}
    if args.backbone:
        base["backbone"] = args.backbone
    chosen = parse_assignments(args.set)
    if "weights" not in chosen:
        base["weights"] = args.weights or str(seeded_weights_file(RESULTS / "weights", args.backbone or "resnet18"))
    return build_variants({**base, **chosen}, [parse_variant(text) for text in args.variant])


def _seeds(args: argparse.Namespace) -> tuple[int, ...]:
    if not args.seeds:
        return ()
    try:
        seeds = tuple(int(text) for text in args.seeds.split(",") if text.strip())
    except ValueError:
        raise OptionError(f"--seeds takes whole numbers separated by commas, e.g. 0,1,2; got {args.seeds!r}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise OptionError(f"--seeds needs distinct seeds, e.g. 0,1,2; got {args.seeds!r}")
    return seeds


def _surfaces(args: argparse.Namespace, spec: SuiteSpec) -> list[str]:
    if not args.surfaces:
        return list(spec.surfaces)
    names = [name.strip() for name in args.surfaces.split(",") if name.strip()]
    unknown = [name for name in names if name not in spec.surfaces]
    if unknown:
        raise OptionError(f"unknown surface(s) {', '.join(unknown)}; the suite has {', '.join(spec.surfaces)}")
    return names


def _prepare(args: argparse.Namespace) -> tuple[Suite, list[Variant], list[str], Reference | None]:
    """Everything that can be refused before the long part: options, suite, reference."""
    spec = _spec(args)
    variants = _variants(args, spec)
    names = _surfaces(args, spec)
    root = args.suite or RESULTS / ("suite-smoke" if args.smoke else "suite")
    suite, reason = ensure_suite(root, spec, workers=args.workers)
    log(f"suite {suite.root} ({suite.hash[:19]}…): " + (f"built, {reason}" if reason else "up to date"))
    reference = (combine_references([load_reference(path, suite.hash) for path in args.reference])
                 if args.reference else None)
    if reference is not None:
        for variant in variants:
            warning = reference.weights_warning(weights_identity(variant.config.weights))
            if warning:
                log(f"warning [{variant.name}]: {warning}")
    return suite, variants, names, reference


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        seeds = _seeds(args)
        suite, variants, names, reference = _prepare(args)
    except (OptionError, ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.build_only:
        print(json.dumps({"suite": str(suite.root), "hash": suite.hash,
                          "weights": sorted({v.config.weights for v in variants})}))
        return 0
    if args.results:
        earlier = json.loads(args.results.read_text())
        if earlier["suite"]["hash"] != suite.hash:
            print(f"error: {args.results} was measured on another suite ({earlier['suite']['hash'][:19]}…)",
                  file=sys.stderr)
            return 2
        results = results_from_json(earlier)
        context = {key: earlier[key] for key in ("date", "machine", "command", "elapsed_s") if key in earlier}
    else:
        started = time.perf_counter()
        results = [run_variant(suite, variant, names, log, seeds) for variant in variants]
        context = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine_info(),
                   "command": shlex.join(["python", "-m", "anomalia.accuracy", *argv]),
                   "elapsed_s": round(time.perf_counter() - started, 1)}
    table = build_table(results, reference)
    print(render_text(table))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results_json(suite, results, reference, context), indent=1) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown_page(suite, results, reference, context))
    return 0


if __name__ == "__main__":
    sys.exit(main())
