"""ResNet trunks cut after ``layer3``: seed 000's resnet18 and the PatchCore paper's wide_resnet50_2."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.fx.experimental import optimization

from anomalia.core.features.base import (
    FeatureExtractor,
    FeatureInfo,
    WeightsSpec,
    WeightsUnavailableError,
    aggregate,
    build_seeded,
    load_state_file,
    state_dict_fingerprint,
)
from anomalia.core.features.registry import register_backbone

_TORCHVISION_WEIGHTS = {
    "resnet18": torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
    "wide_resnet50_2": torchvision.models.Wide_ResNet50_2_Weights.IMAGENET1K_V1,
}


class ResNetLayer23(FeatureExtractor):
    """``layer2`` ⊕ upsampled ``layer3`` (seed 000 steps 4–6); ``layer4`` and ``fc`` are never built in."""

    def __init__(self, name: str, net: torchvision.models.ResNet, weights: WeightsSpec):
        c2 = net.layer2[-1].conv1.in_channels if hasattr(net.layer2[-1], "conv3") else net.layer2[-1].conv2.out_channels
        c3 = net.layer3[-1].conv1.in_channels if hasattr(net.layer3[-1], "conv3") else net.layer3[-1].conv2.out_channels
        super().__init__(name, FeatureInfo(channels=c2 + c3, stride=8, layers=("layer2", "layer3"),
                                           first_centre=0.0), weights)
        self.to_layer2: nn.Module = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2)
        self.layer3: nn.Module = net.layer3

    def layer_maps(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f2 = self.to_layer2(images)
        return f2, self.layer3(f2)

    def join(self, maps: tuple[torch.Tensor, ...], aggregation: int) -> torch.Tensor:
        f2, f3 = (aggregate(f, aggregation) for f in maps)
        f3 = F.interpolate(f3, size=f2.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([f2, f3], dim=1)

    def output_grid(self, img_size: int) -> tuple[int, int]:
        """Three stride-2 stages that round up (conv1, maxpool, layer2): 100 px gives 13, not 100 // 8."""
        side = img_size
        for _ in range(3):
            side = -(-side // 2)
        return side, side

    def optimise_for_cpu(self) -> "ResNetLayer23":
        """Fold batch-norm into the convolutions and use channels-last: ~35 % faster on CPU, same maths."""
        self.to_layer2 = optimization.fuse(self.to_layer2)
        self.layer3 = optimization.fuse(self.layer3)
        return self.to(memory_format=torch.channels_last)


def _load_resnet(name: str, builder: Callable[..., torchvision.models.ResNet], weights: WeightsSpec):
    if weights.kind == "random":
        return build_seeded(lambda: builder(weights=None), weights.seed)
    if weights.kind == "imagenet":
        try:
            return builder(weights=_TORCHVISION_WEIGHTS[name])
        except Exception as error:  # offline download failures surface as many exception types
            raise WeightsUnavailableError(
                f"ImageNet weights for {name} are not in the torch cache ($TORCH_HOME, default "
                f"~/.cache/torch/hub/checkpoints) and could not be downloaded ({type(error).__name__}: "
                f"{error}). Put the file there, pass a local state-dict file, or use --weights random."
            ) from error
    net = build_seeded(lambda: builder(weights=None), 0)
    state = load_state_file(str(weights.path))
    missing, _ = net.load_state_dict(state, strict=False)
    trunk_missing = [key for key in missing if not key.startswith(("layer4", "fc"))]
    if trunk_missing:
        raise ValueError(f"{weights.path} lacks {len(trunk_missing)} {name} trunk tensors, e.g. {trunk_missing[0]}")
    return net


def _build(name: str, builder, weights: WeightsSpec) -> FeatureExtractor:
    extractor = ResNetLayer23(name, _load_resnet(name, builder, weights), weights)
    extractor._fingerprint = state_dict_fingerprint(extractor.state_dict())  # before fusion rewrites it
    extractor.freeze()
    return extractor.optimise_for_cpu()


@register_backbone("resnet18")
def resnet18(weights: WeightsSpec) -> FeatureExtractor:
    return _build("resnet18", torchvision.models.resnet18, weights)


@register_backbone("wide_resnet50_2")
def wide_resnet50_2(weights: WeightsSpec) -> FeatureExtractor:
    return _build("wide_resnet50_2", torchvision.models.wide_resnet50_2, weights)
