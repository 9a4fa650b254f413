"""The run's three outputs: a terminal table, a JSON record and the Markdown page docs/ACCURACY.md.

One table model feeds the terminal and the page: a row per surface plus the means (overall
and per family), one column group per variant, and the reference's figure beside each of
ours, with ↓ where ours is lower.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict

from anomalia.accuracy.defects import describe_defects
from anomalia.accuracy.reference import Reference
from anomalia.accuracy.runner import QUALITY as QUALITY_SCORES
from anomalia.accuracy.runner import SCORES, VariantResult, mean_of
from anomalia.accuracy.suite import Suite
from anomalia.accuracy.surfaces import get_surface

HEADINGS = {"image_auroc": "image AUROC", "pixel_auroc": "pixel AUROC", "pro": "PRO", "fit_s": "fit s"}
BELOW = "↓"
Table = tuple[list[str], list[str], list[list[str]]]  # (group headings, headings, rows)


def _number(score: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if score == "fit_s" else f"{value:.3f}"


def cell(score: str, ours: float | None, ref: float | None) -> str:
    """``0.832``, or ``0.832 (ref 0.771)``, with ↓ when a quality score rounds below the reference."""
    text = _number(score, ours)
    if ref is None:
        return text
    lower = score != "fit_s" and ours is not None and round(ours, 3) < round(ref, 3)
    return f"{text} (ref {_number(score, ref)}){' ' + BELOW if lower else ''}"


def _reference_mean(reference: Reference | None, surfaces: Sequence[str], score: str) -> float | None:
    """The reference's mean over exactly these surfaces, or None if it lacks any of them."""
    if reference is None:
        return None
    values = [reference.figure(name, score) for name in surfaces]
    return None if any(v is None for v in values) else mean_of(values)


def build_table(results: Sequence[VariantResult], reference: Reference | None) -> Table:
    """Rows: each surface, then ``mean`` and ``mean <family>``; columns: a group per variant."""
    groups = ["", "", ""] + [r.variant.name if i == 0 else "" for r in results for i in range(len(SCORES))]
    headings = ["surface", "family", "colour"] + [HEADINGS[s] for _ in results for s in SCORES]
    first = results[0]
    rows = []
    for position, row in enumerate(first.surfaces):
        line = [row.surface, row.family, row.colour]
        for result in results:
            ours = result.surfaces[position]
            line += [cell(s, getattr(ours, s), reference.figure(ours.surface, s) if reference else None)
                     for s in SCORES]
        rows.append(line)
    for group in first.means():
        members = [r.surface for r in first.surfaces if group == "all" or r.family == group]
        line = ["mean" if group == "all" else f"mean {group}", "", ""]
        for result in results:
            means = result.means()[group]
            line += [cell(s, means[s], _reference_mean(reference, members, s)) for s in SCORES]
        rows.append(line)
    return groups, headings, rows


def render_text(table: Table) -> str:
    """Fixed-width columns for the terminal, the variant's name above its columns."""
    groups, headings, rows = table
    widths = [max(len(text) for text in column) for column in zip(groups, headings, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(text.ljust(width) if i < 3 else text.rjust(width)
                         for i, (text, width) in enumerate(zip(cells, widths))).rstrip()

    rule = "  ".join("-" * width for width in widths)
    body = [line(r) for r in rows if not r[0].startswith("mean")]
    means = [line(r) for r in rows if r[0].startswith("mean")]
    return "\n".join([line(groups), line(headings), rule, *body, rule, *means])


def render_markdown(table: Table) -> str:
    """A GitHub table; the variant's name prefixes its column headings when there are several."""
    groups, headings, rows = table
    several = len([g for g in groups if g]) > 1
    titles, current = [], ""
    for group, heading in zip(groups, headings):
        current = group or current
        titles.append(f"{current}: {heading}" if several and current else heading)
    alignment = ["---" if i < 3 else "---:" for i in range(len(titles))]
    lines = ["| " + " | ".join(titles) + " |", "|" + "|".join(alignment) + "|"]
    for row in rows:
        cells = [f"**{text}**" if row[0].startswith("mean") and text else text for text in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def results_json(suite: Suite, results: Sequence[VariantResult], reference: Reference | None,
                 context: dict[str, object]) -> dict:
    """Everything the run produced, JSON-ready: suite, context (date, machine, command), variants."""
    return {
        "suite": {"root": str(suite.root), "hash": suite.hash, "spec": asdict(suite.spec)},
        **context,
        "reference": None if reference is None else {
            "path": str(reference.path), "tool": reference.tool, "weights": reference.weights,
            "surfaces": reference.surfaces, "paths": [str(path) for path in reference.paths],
            "draws": reference.draws, "spread": reference.spread, "values": reference.values},
        "variants": [{
            "name": r.variant.name, "options": r.variant.options, "config": r.variant.config.to_dict(),
            "weights": r.weights, "means": r.means(),
            "surfaces": {s.surface: asdict(s) for s in r.surfaces},
        } for r in results],
    }


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if text and text.strip() else ""


def _suite_section(suite: Suite) -> list[str]:
    spec = suite.spec
    lines = ["## What is in it", "",
             f"{len(spec.surfaces)} surfaces of {spec.size} x {spec.size} px, each with {spec.n_train} good "
             f"training images, {spec.n_test_good} good test images and {spec.n_defect} defect images (kinds "
             "dealt in turn, small and large alternating), with 0/255 masks, in the MVTec AD folder layout. "
             f"Everything follows from seed {spec.seed}: a rebuild on the same kind of CPU is bit-identical, and "
             f"`suite.json` holds a hash over every pixel (`{suite.hash}`). NumPy's and OpenCV's vectorised "
             "maths round a few values differently with and without AVX-512, so another CPU can build a suite "
             "with another hash (an AVX-512 machine built `sha256:d761dcbe…`, an AVX2 one `sha256:76614946…`; "
             "the figures of both agree to a few thousandths); a reference is only compared on its own "
             "suite's hash.", "",
             "| surface | family | colour | what it shows |", "|---|---|---|---|"]
    for name in spec.surfaces:
        surface = get_surface(name)
        lines.append(f"| {name} | {surface.family} | {surface.colour} | {_first_line(surface.render.__doc__)} |")
    lines += ["", "Defect sizes are quoted for 256 px images and scale with the image.", "",
              "| defect | what is painted |", "|---|---|"]
    lines += [f"| {kind} | {text} |" for kind, text in describe_defects().items()]
    return lines + [""]


RUNNING = """## Running it

    make accuracy                                     # build the suite if needed, fit and score, print the table
    make accuracy ACCURACY_ARGS='--set knn_k=1'       # any PatchCoreConfig field
    make accuracy ACCURACY_ARGS='--variant "l2=patch_norm=l2" --variant "none=patch_norm=none,aggregation=3"'
    make accuracy ACCURACY_ARGS='--seeds 0,1,2 --variant default= --variant "choice=aggregation_choice=fit"'
    python -m anomalia.accuracy --smoke               # 4 small surfaces, seconds: what CI can afford
    python -m anomalia.accuracy --reference docs/accuracy/reference-seed0.json --json out.json \\
        --markdown docs/ACCURACY.md                   # figures beside the reference's; rewrite this page
    python -m anomalia.accuracy --results docs/accuracy/results.json \\
        $(for s in 0 1 2 3 4; do echo --reference docs/accuracy/reference-seed$s.json; done) \\
        --markdown docs/ACCURACY.md                   # render this page again from the records, no fitting

The suite is written to `accuracy-results/suite` (rebuilt when missing, when the generator code
changed or when its files no longer match `suite.json`). The default backbone weights are a seeded
random resnet18 saved once as `accuracy-results/weights/resnet18_random_seed0.pt`, so the reference
tool loads the very same tensors; `--weights imagenet` or a file path changes that. A reference
computed on another suite hash is refused. The figures behind this page are kept beside it in
`docs/accuracy/`: the reference's runs (`reference-seedN.json`, one per anomalib seed) and ours
(`results.json`, every seed's figures per surface).
"""


def _results_section(results: Sequence[VariantResult], reference: Reference | None,
                     context: dict[str, object]) -> list[str]:
    machine = context.get("machine", {})
    lines = ["## Results", "", f"Run on {context.get('date', '?')} on {_machine_line(machine)}, with "
             f"`{context.get('command', '')}`; fitting and scoring took {context.get('elapsed_s', '?')} s.", ""]
    for result in results:
        options = ", ".join(f"`{k}={v}`" for k, v in result.variant.options.items()) or "`PatchCoreConfig` defaults"
        trunk = result.weights.get("trunk_sha256")
        lines.append(f"- **{result.variant.name}**: {options}; weights `{result.weights.get('weights', '?')}`"
                     + (f" (trunk `{trunk[:19]}…`)" if trunk else ""))
    if reference is not None:
        names = [r.surface for r in results[0].surfaces]
        covered = sum(any(reference.figure(n, s) is not None for s in SCORES) for n in names)
        lines.append(f"- **ref**: {reference.tool}, {reference.label}, on {covered} of {len(names)} surfaces "
                     "(a mean gets its reference only when all its surfaces have one); "
                     f"{BELOW} marks a figure below it.")
        warning = reference.weights_warning(results[0].weights)
        if warning:
            lines.append(f"- **warning**: {warning}.")
    return lines + ["", render_markdown(build_table(results, reference)), "", *_spread_section(results, reference),
                    *_gaps_section(results, reference), *_windows_section(results)]


def gap_error(ours: Sequence[float], theirs: Sequence[float]) -> float | None:
    """Standard error of the difference of the two means (Welch's), or None under two values a side.

    A mean over a handful of seeds is itself uncertain; the error says how far another set of
    seeds could plausibly move the gap."""
    if len(ours) < 2 or len(theirs) < 2:
        return None
    return math.sqrt(statistics.variance(ours) / len(ours) + statistics.variance(theirs) / len(theirs))


def _gaps_section(results: Sequence[VariantResult], reference: Reference | None) -> list[str]:
    """The first variant's figures below the reference, each with the standard error of its gap."""
    if reference is None or not reference.values:
        return []
    first = results[0]
    below: list[tuple[float, str, str, float, float, float, float]] = []
    compared = 0
    for row in first.surfaces:
        theirs = reference.values.get(row.surface, {})
        for score in QUALITY_SCORES:
            error = gap_error(row.draws.get(score, ()), theirs.get(score, ()))
            ref = reference.figure(row.surface, score)  # the mean of those runs, as in the table
            if error is None or ref is None:
                continue
            compared += 1
            ours = getattr(row, score)
            if round(ours, 3) < round(ref, 3):  # as the table's ↓
                difference = ours - ref
                ratio = difference / error if error else -math.inf
                below.append((ratio, row.surface, HEADINGS[score], ours, ref, difference, error))
    if not compared:
        return []
    beyond = sum(ratio < -2 for ratio, *_ in below)
    lines = ["### Figures below the reference", "",
             f"A mean over a few seeds is itself uncertain, so each of **{first.variant.name}**'s figures below the "
             "reference's is given with the standard error of the gap (the difference of two means, Welch's: "
             "ours over its seeds, the reference's over its runs). A gap within about two standard errors is one "
             f"another set of seeds could reverse. {len(below)} of the {compared} figures compared are below the "
             f"reference; {beyond} of them by more than two standard errors.", ""]
    if below:
        lines += ["| surface | figure | ours | ref | gap | standard error | gap / error |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {surface} | {heading} | {ours:.3f} | {ref:.3f} | {difference:+.3f} | {error:.3f} | {ratio:.1f} |"
                  for ratio, surface, heading, ours, ref, difference, error in sorted(below)]
        lines.append("")
    return lines


def _windows_section(results: Sequence[VariantResult]) -> list[str]:
    """The aggregation window each fit kept, for the variants that let the fit choose it."""
    choosing = [r for r in results if r.variant.config.aggregation_choice == "fit"]
    if not choosing:
        return []
    lines = ["### Windows chosen at fit time", "",
             "With `aggregation_choice=fit` each fit judges windows 1 and 3 on defects painted into its "
             "held-out good images (`anomalia.core.window_choice`) and keeps one; per surface, the window "
             "each fit kept (one per seed, in seed order).", "",
             "| surface | " + " | ".join(r.variant.name for r in choosing) + " |",
             "|---|" + "---|" * len(choosing)]
    for i, row in enumerate(choosing[0].surfaces):
        cells = [", ".join(str(w) for w in r.surfaces[i].windows) or "-" for r in choosing]
        lines.append(f"| {row.surface} | " + " | ".join(cells) + " |")
    return lines + [""]


def _range(spread: dict, score: str) -> str:
    low_high = spread.get(score)
    if not low_high:
        return "-"
    low, high = low_high
    return f"{low:.3f}" if round(low, 3) == round(high, 3) else f"{low:.3f}–{high:.3f}"


def _spread_section(results: Sequence[VariantResult], reference: Reference | None) -> list[str]:
    """Min–max over seeds of the first variant and of the reference's runs, when there were several."""
    first = results[0]
    ref_spread = reference.spread if reference is not None else {}
    if not (any(row.spread for row in first.surfaces) or ref_spread):
        return []
    seeds = ", ".join(str(seed) for seed in first.surfaces[0].seeds) or str(first.variant.config.seed)
    titles = ["surface"] + [f"{first.variant.name}: {HEADINGS[s]}" for s in QUALITY_SCORES]
    if ref_spread:
        titles += [f"ref: {HEADINGS[s]}" for s in QUALITY_SCORES]
    lines = ["### Spread over seeds", "",
             f"One coreset draw (its start point, and ours also the holdout split) moves a surface's figures by "
             f"a few hundredths, so the table above gives means over seeds {seeds} for **{first.variant.name}**"
             + (f" and over the reference's {reference.runs} runs" if ref_spread and reference is not None else "")
             + "; here is each figure's min–max (one value: a single run).", "",
             "| " + " | ".join(titles) + " |", "|---|" + "---:|" * (len(titles) - 1)]
    for row in first.surfaces:
        cells = [row.surface] + [_range(row.spread, s) for s in QUALITY_SCORES]
        if ref_spread:
            cells += [_range(ref_spread.get(row.surface, {}), s) for s in QUALITY_SCORES]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _machine_line(machine: object) -> str:
    if not isinstance(machine, dict):
        return "an unknown machine"
    return (f"{machine.get('cpu', 'an unknown CPU')} ({machine.get('cores', '?')} cores, "
            f"{machine.get('torch_threads', '?')} torch threads, torch {machine.get('torch', '?')})")


def markdown_page(suite: Suite, results: Sequence[VariantResult], reference: Reference | None,
                  context: dict[str, object]) -> str:
    """The whole of docs/ACCURACY.md: what the suite is, how to run it and this run's table."""
    intro = ["# Accuracy suite", "",
             "<!-- Generated by `python -m anomalia.accuracy --markdown docs/ACCURACY.md`; "
             "change src/anomalia/accuracy/report.py, not this page. -->", "",
             "Our own offline, deterministic benchmark for PatchCore options: regular patterns, irregular "
             "natural-looking materials whose every good image is a new piece of the same stuff, and objects "
             "on a background, in grey and colour, with five defect kinds in two sizes. It prints image "
             "AUROC, pixel AUROC and PRO (AU-PRO up to 30 % FPR) per surface, per family and overall, for "
             "any set of model options, beside a reference implementation's figures when given.", ""]
    return "\n".join(intro + _suite_section(suite) + [RUNNING] + _results_section(results, reference, context))
