"""Writing the suite to disk in the MVTec AD layout, and knowing when a written one is current.

    root/suite.json
    root/<surface>/train/good/000.png ...          good images to fit on
    root/<surface>/test/good/000.png ...           good images to score
    root/<surface>/test/<kind>/000.png ...         one defect each, kinds dealt in turn
    root/<surface>/ground_truth/<kind>/000_mask.png  0 or 255

Every image is a pure function of (seed, surface, role, index), so a suite is rebuilt
bit-for-bit. `suite.json` holds the recipe (the `SuiteSpec`, a digest of the generator
code and the numpy/OpenCV versions) and a content hash over every pixel written; a reference run on another tool quotes
that hash, so both sides can prove they scored the same images. Grey surfaces are stored as
one-channel PNGs, like MVTec AD's grey categories.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import zlib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from anomalia import synthetic
from anomalia.accuracy import canvas, defects, fields, materials, objects, patterns, surfaces
from anomalia.accuracy.defects import DEFECT_KINDS, SIZES, paint_defect
from anomalia.accuracy.surfaces import SURFACE_NAMES, Surface, get_surface

MANIFEST = "suite.json"
SCHEMA = 1
_STREAMS = {"train": 0, "test_good": 1, "defect": 2, "painter": 3, "donor": 4}


@dataclass(frozen=True)
class SuiteSpec:
    """What to build: which surfaces, image size, images per surface and the master seed."""

    surfaces: tuple[str, ...] = SURFACE_NAMES
    size: int = 256
    n_train: int = 40
    n_test_good: int = 20
    n_defect: int = 30
    seed: int = 0

    def validate(self) -> "SuiteSpec":
        for name in self.surfaces:
            get_surface(name)
        canvas.check_size(self.size)
        if min(self.n_train, self.n_test_good, self.n_defect) < 1 or self.seed < 0:
            raise ValueError("image counts must be positive and the seed non-negative")
        return self


SMOKE = SuiteSpec(surfaces=("tiles", "wood", "leather", "capsule"), size=128, n_train=10, n_test_good=5,
                  n_defect=5)


@dataclass(frozen=True)
class Suite:
    """A built suite on disk: its folder, content hash and what it was built from."""

    root: Path
    hash: str
    spec: SuiteSpec

    def surface_dir(self, name: str) -> Path:
        return self.root / name


def _seeds(spec: SuiteSpec, surface: str, stream: str, n: int) -> list[int]:
    """`n` seeds for one role of one surface, unchanged when other surfaces or counts change."""
    words = [spec.seed, zlib.crc32(surface.encode()), _STREAMS[stream]]
    return [int(s) for s in np.random.SeedSequence(words).generate_state(n, dtype=np.uint64)]


def _stored(image: np.ndarray, surface: Surface) -> np.ndarray:
    return image[..., 0] if surface.colour == "grey" else image


def surface_items(spec: SuiteSpec, surface: Surface) -> Iterator[tuple[str, np.ndarray, dict | None]]:
    """Yield (relative path, array to store, defect record or None) for one surface, in order."""
    for role, folder, n in (("train", "train/good", spec.n_train), ("test_good", "test/good", spec.n_test_good)):
        for i, seed in enumerate(_seeds(spec, surface.name, role, n)):
            yield f"{folder}/{i:03d}.png", _stored(surface.image(seed, spec.size), surface), None
    bases, painters, donors = (_seeds(spec, surface.name, s, spec.n_defect) for s in ("defect", "painter", "donor"))
    counts = dict.fromkeys(DEFECT_KINDS, 0)
    for i in range(spec.n_defect):
        kind, size_class = DEFECT_KINDS[i % len(DEFECT_KINDS)], SIZES[(i // len(DEFECT_KINDS)) % len(SIZES)]
        scene = surface.render(bases[i], spec.size)
        donor = surface.render(donors[i], spec.size) if kind == "cut_paste" else scene
        image, mask = paint_defect(kind, scene, donor, np.random.default_rng(painters[i]), size_class=size_class)
        stem = f"{counts[kind]:03d}"
        counts[kind] += 1
        relative = f"test/{kind}/{stem}.png"
        record = {"file": relative, "kind": kind, "size": size_class, "pixels": int(mask.sum())}
        yield relative, _stored(image, surface), record
        yield f"ground_truth/{kind}/{stem}_mask.png", mask.astype(np.uint8) * 255, None


def _digest_item(digest, relative: str, array: np.ndarray) -> None:
    digest.update(relative.encode())
    digest.update(str(array.shape).encode())
    digest.update(np.ascontiguousarray(array).tobytes())


def _combine(surface_hashes: dict[str, str]) -> str:
    """The suite's hash: one sha256 over the surfaces' hashes, in the spec's order."""
    digest = hashlib.sha256()
    for name, value in surface_hashes.items():
        digest.update(f"{name}={value};".encode())
    return "sha256:" + digest.hexdigest()


def generator_digest() -> str:
    """sha256 of the code that draws the images: a changed generator means a stale suite."""
    digest = hashlib.sha256()
    for module in (canvas, fields, patterns, materials, objects, defects, surfaces, synthetic):
        digest.update(Path(str(module.__file__)).read_bytes())
    digest.update(Path(__file__).read_bytes())
    return "sha256:" + digest.hexdigest()


def recipe(spec: SuiteSpec) -> dict:
    """What a suite is built from (JSON-shaped); equal recipes give equal pixels.

    numpy's and OpenCV's versions are part of it: their float paths may round differently.
    """
    plain = {"schema": SCHEMA, "spec": asdict(spec), "generator": generator_digest(),
             "libraries": {"numpy": np.__version__, "opencv": cv2.__version__}}
    return json.loads(json.dumps(plain))


def surface_hash(folder: Path) -> str:
    """sha256 over the decoded pixels of every PNG under one surface's folder, paths sorted.

    Pixels, not file bytes, so another PNG encoder writing the same images gives the same hash.
    """
    digest = hashlib.sha256()
    for relative in sorted(p.relative_to(folder).as_posix() for p in Path(folder).rglob("*.png")):
        array = cv2.imread(str(folder / relative), cv2.IMREAD_UNCHANGED)
        if array is None:
            raise ValueError(f"cannot read {folder / relative}")
        _digest_item(digest, relative, array)
    return "sha256:" + digest.hexdigest()


def content_hash(root: Path, spec: SuiteSpec) -> str:
    """The suite hash of the files now under `root`, as `build_suite` computed it when writing."""
    return _combine({name: surface_hash(Path(root) / name) for name in spec.surfaces})


def _write_surface(folder: Path, spec: SuiteSpec, name: str) -> dict:
    """Write one surface's images and masks and describe them, with their hash."""
    surface = get_surface(name)
    written: dict[str, np.ndarray] = {}
    records = []
    for relative, array, record in surface_items(spec, surface):
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), array, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise OSError(f"could not write {path}")
        written[relative] = array
        if record is not None:
            records.append(record)
    digest = hashlib.sha256()
    for relative in sorted(written):
        _digest_item(digest, relative, written[relative])
    kinds = {kind: sum(r["kind"] == kind for r in records) for kind in DEFECT_KINDS}
    return {"name": name, "family": surface.family, "colour": surface.colour, "hash": "sha256:" + digest.hexdigest(),
            "train": spec.n_train, "test_good": spec.n_test_good, "defects": kinds, "defect_images": records}


def _write_all(staging: Path, spec: SuiteSpec, workers: int) -> list[dict]:
    """Each surface in its own process when `workers` > 1 (spawned: the caller may hold torch threads)."""
    jobs = [(staging / name, spec, name) for name in spec.surfaces]
    if workers <= 1 or len(jobs) == 1:
        return [_write_surface(*job) for job in jobs]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
        return list(pool.map(_write_surface, *zip(*jobs)))


def build_suite(root: Path, spec: SuiteSpec = SuiteSpec(), *, workers: int = 1) -> Suite:
    """Write the suite under `root` (replacing a previous suite there) and return it.

    Built in a sibling folder and renamed into place, so an interrupted build never leaves a
    half-written suite behind a valid `suite.json`. Refuses a non-empty folder that is not a suite.
    """
    spec.validate()
    root = Path(root)
    if root.exists() and any(root.iterdir()) and not (root / MANIFEST).is_file():
        raise FileExistsError(f"{root} is not empty and holds no {MANIFEST}; choose a new or empty folder")
    staging = root.parent / f".{root.name}.building-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        described = _write_all(staging, spec, workers)
        suite_hash = _combine({d["name"]: d["hash"] for d in described})
        manifest = {**recipe(spec), "hash": suite_hash, "layout": "mvtec_ad", "size": spec.size,
                    "defect_kinds": list(DEFECT_KINDS), "surfaces": described}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_into_place(staging, root)
    return Suite(root=root, hash=suite_hash, spec=spec)


def _swap_into_place(staging: Path, root: Path) -> None:
    retired = root.parent / f".{root.name}.old-{os.getpid()}"
    if root.exists():
        root.rename(retired)
    staging.rename(root)
    shutil.rmtree(retired, ignore_errors=True)


def stale_reason(root: Path, spec: SuiteSpec) -> str | None:
    """Why the suite under `root` must be (re)built for `spec`, or None when it is current."""
    manifest_path = Path(root) / MANIFEST
    if not manifest_path.is_file():
        return "no suite there yet"
    manifest = json.loads(manifest_path.read_text())
    expected = recipe(spec)
    if {key: manifest.get(key) for key in expected} != expected:
        return "built from another spec, generator or library version"
    if content_hash(root, spec) != manifest.get("hash"):
        return "its files differ from the hash in suite.json"
    return None


def ensure_suite(root: Path, spec: SuiteSpec = SuiteSpec(), *, workers: int = 1) -> tuple[Suite, str | None]:
    """The suite under `root`, built first when missing or stale; also why it was (re)built."""
    reason = stale_reason(root, spec.validate())
    if reason is not None:
        return build_suite(root, spec, workers=workers), reason
    manifest = json.loads((Path(root) / MANIFEST).read_text())
    return Suite(root=Path(root), hash=manifest["hash"], spec=spec), None
