"""The backbone weights both sides of a comparison load: one seeded-random state-dict file.

ImageNet weights are not available offline, so the suite's default is a torchvision backbone
initialised from a fixed torch seed and saved once. Our runner and the anomalib reference load
the very same file, and each names it by hash so a comparison can prove it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision

from anomalia.core.features.base import build_seeded, load_state_file, state_dict_fingerprint
from anomalia.store.manifest import file_sha256 as model_file_sha256

_HEAD_PREFIXES = ("fc.", "layer4.")  # tensors a layer2 + layer3 trunk never uses


def seeded_weights_file(folder: Path, backbone: str = "resnet18", seed: int = 0) -> Path:
    """`folder/<backbone>_random_seed<seed>.pt`, written once (atomically) and reused after."""
    path = Path(folder) / f"{backbone}_random_seed{seed}.pt"
    if path.is_file():
        return path
    builder = getattr(torchvision.models, backbone, None)
    if builder is None or not callable(builder):
        raise ValueError(f"torchvision has no {backbone!r} model to draw seeded weights from; pass --weights")
    state = build_seeded(lambda: builder(weights=None), seed).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    torch.save(state, partial)
    os.replace(partial, path)
    return path


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes (the model store's hash, without its ``sha256:`` tag)."""
    return model_file_sha256(Path(path)).removeprefix("sha256:")


def weights_identity(weights: str) -> dict[str, str]:
    """How a weights choice is named: for a file, its sha256 and the fingerprint of its trunk tensors.

    The trunk fingerprint (`state_dict_fingerprint` without `fc.*`/`layer4.*`) is what a tool that
    loads the file into another resnet implementation can recompute; `imagenet`/`random` name themselves.
    """
    if not Path(weights).is_file():
        return {"weights": weights}
    state = load_state_file(weights)
    trunk = {key: tensor for key, tensor in state.items() if not key.startswith(_HEAD_PREFIXES)}
    return {"weights": str(weights), "weights_file_sha256": file_sha256(Path(weights)),
            "trunk_sha256": state_dict_fingerprint(trunk)}
