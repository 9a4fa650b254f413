"""Contract suite every registered backbone must pass: shape, seeded weights, fingerprint, loading."""

from __future__ import annotations

import functools
import re

import pytest
import timm
import torch
import torchvision

from anomalia.core.features import (
    FeatureExtractor,
    WeightsSpec,
    WeightsUnavailableError,
    available_backbones,
    create_extractor,
)
from anomalia.core.features.base import build_seeded

BACKBONES = available_backbones()
SIZE = 120  # small input keeps the three backbones fast; not a multiple of 14 on purpose (ViT grid 8)

# How each backbone's weights look on disk: the state dict of the library's own model.
_REFERENCE_MODELS = {
    "resnet18": lambda: torchvision.models.resnet18(weights=None),
    "wide_resnet50_2": lambda: torchvision.models.wide_resnet50_2(weights=None),
    "dinov2_vits14": lambda: timm.create_model("vit_small_patch14_dinov2", pretrained=False,
                                               dynamic_img_size=True, num_classes=0),
}


@functools.cache
def extractor(name: str, seed: int) -> FeatureExtractor:
    """One instance per (backbone, seed) for the whole module: building them dominates run time."""
    return create_extractor(name, WeightsSpec("random", seed=seed))


def forward(model: FeatureExtractor, images: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(images)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, SIZE, SIZE, generator=generator) * 4.0 - 2.0


def test_every_documented_backbone_is_registered():
    assert {"resnet18", "wide_resnet50_2", "dinov2_vits14"} <= set(BACKBONES)
    assert set(BACKBONES) <= set(_REFERENCE_MODELS), "add the new backbone's on-disk model to _REFERENCE_MODELS"


@pytest.mark.slow
@pytest.mark.parametrize("name", BACKBONES)
def test_output_shape_is_what_feature_info_promises(name, images):
    model = extractor(name, 0)
    info = model.info
    assert info.channels > 0 and info.stride > 0 and info.layers
    output = forward(model, images)
    side = SIZE // info.stride
    assert model.output_grid(SIZE) == (side, side)
    assert tuple(output.shape) == (2, info.channels, side, side)
    # Any other size: output_grid still tells the truth (100 px is a multiple of neither 8 nor 14).
    odd = forward(model, images[:1, :, :100, :100])
    assert tuple(odd.shape) == (1, info.channels, *model.output_grid(100))
    assert abs(model.output_grid(100)[0] - 100 / info.stride) < 1
    assert output.dtype == torch.float32 and torch.isfinite(output).all()
    # Frozen: inference only, no parameter asks for gradients, eval mode.
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_resnets_stop_after_layer3_and_report_layer2_3():
    for name, channels in (("resnet18", 128 + 256), ("wide_resnet50_2", 512 + 1024)):
        model = extractor(name, 0)
        assert (model.info.channels, model.info.stride, model.info.layers) == (channels, 8, ("layer2", "layer3"))
        names = {n.split(".")[0] for n, _ in model.named_modules() if n}
        assert not {"layer4", "fc", "avgpool"} & names


@pytest.mark.slow
@pytest.mark.parametrize("name", BACKBONES)
def test_random_weights_are_deterministic_per_seed(name, images):
    first, again, other = extractor(name, 0), create_extractor(name, WeightsSpec("random", seed=0)), extractor(name, 1)
    assert again is not first
    assert again.fingerprint == first.fingerprint
    torch.testing.assert_close(forward(again, images), forward(first, images), rtol=0, atol=0)
    assert other.fingerprint != first.fingerprint
    assert not torch.allclose(forward(other, images), forward(first, images))


@pytest.mark.parametrize("name", BACKBONES)
def test_fingerprint_is_a_stable_sha256_of_the_weights(name, images):
    model = extractor(name, 0)
    fingerprint = model.fingerprint
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", fingerprint)
    forward(model, images)
    assert model.fingerprint == fingerprint  # running the model never changes it


def test_building_with_a_seed_leaves_the_global_torch_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    create_extractor("resnet18", WeightsSpec("random", seed=5))
    torch.testing.assert_close(torch.rand(3), expected)


@pytest.mark.slow
@pytest.mark.parametrize("name", BACKBONES)
def test_local_state_dict_file_loads_and_carries_its_fingerprint(name, images, tmp_path):
    """A file holding the seed-1 weights is indistinguishable from ``random(seed=1)``."""
    path = tmp_path / f"{name}.pth"
    torch.save(build_seeded(_REFERENCE_MODELS[name], 1).state_dict(), path)
    from_file = create_extractor(name, WeightsSpec.parse(str(path)))
    assert from_file.weights.kind == "file" and from_file.weights.path == str(path.resolve())
    assert from_file.fingerprint == extractor(name, 1).fingerprint != extractor(name, 0).fingerprint
    torch.testing.assert_close(forward(from_file, images), forward(extractor(name, 1), images), rtol=1e-4, atol=1e-4)


def test_a_file_missing_trunk_tensors_is_refused(tmp_path):
    state = torchvision.models.resnet18(weights=None).state_dict()
    del state["layer3.0.conv1.weight"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="layer3.0.conv1.weight"):
        create_extractor("resnet18", WeightsSpec.parse(str(path)))


def test_a_weights_value_that_is_no_file_says_what_is_accepted(tmp_path):
    with pytest.raises(ValueError, match="'imagenet', 'random' or an existing state-dict file"):
        WeightsSpec.parse(str(tmp_path / "missing.pth"))


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.usefixtures("offline_caches")
def test_imagenet_weights_offline_fail_with_a_helpful_message(name):
    """No mocks: with empty caches and no way out, the real download fails, at once."""
    with pytest.raises(WeightsUnavailableError) as error:
        create_extractor(name, WeightsSpec("imagenet"))
    message = str(error.value)
    assert "--weights random" in message and "state-dict file" in message
    assert "cache" in message


def test_bad_backbone_name_lists_the_valid_ones():
    with pytest.raises(ValueError) as error:
        create_extractor("resnet19", WeightsSpec("random"))
    message = str(error.value)
    assert "resnet19" in message
    assert all(name in message for name in BACKBONES)
