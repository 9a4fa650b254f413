"""DINOv2 ViT-S/14 patch tokens (seed 004), from timm's ``vit_small_patch14_dinov2`` architecture."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import timm
import torch
import torch.nn.functional as F

from anomalia.core.features.base import (
    FeatureExtractor,
    FeatureInfo,
    WeightsSpec,
    WeightsUnavailableError,
    aggregate,
    build_seeded,
    load_state_file,
)
from anomalia.core.features.registry import register_backbone

_ARCH = "vit_small_patch14_dinov2"


class DinoV2Patches(FeatureExtractor):
    """Patch tokens without the class/register tokens, reshaped to a ``(B, 384, H/14, W/14)`` grid."""

    def __init__(self, vit: Any, weights: WeightsSpec):
        super().__init__("dinov2_vits14", FeatureInfo(channels=int(vit.embed_dim), stride=14, layers=("norm",)),
                         weights)
        self.vit = vit

    def layer_maps(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h, w = images.shape[-2] // 14, images.shape[-1] // 14
        if (h * 14, w * 14) != tuple(images.shape[-2:]):
            # 14-px patches must tile the input: resize to the grid ``output_grid`` promises (256 → 252).
            images = F.interpolate(images, size=(h * 14, w * 14), mode="bilinear", align_corners=False)
        tokens = self.vit.forward_features(images)[:, self.vit.num_prefix_tokens :]
        return (tokens.reshape(tokens.shape[0], h, w, -1).permute(0, 3, 1, 2),)

    def join(self, maps: tuple[torch.Tensor, ...], aggregation: int) -> torch.Tensor:
        return aggregate(maps[0], aggregation).contiguous()

    @contextlib.contextmanager
    def export_context(self, img_size: int) -> Iterator[None]:
        """timm resamples the position embedding to the grid with antialiased bicubic interpolation on
        every call, an operator ONNX lacks; for a fixed image size it is a constant, computed here once
        by the same function the torch path calls."""
        from timm.models import vision_transformer

        side = img_size // 14
        resample = vision_transformer.resample_abs_pos_embed
        with torch.no_grad():
            fixed = resample(self.vit.pos_embed, new_size=(side, side), old_size=self.vit.patch_embed.grid_size,
                             num_prefix_tokens=0 if self.vit.no_embed_class else self.vit.num_prefix_tokens)
        vision_transformer.resample_abs_pos_embed = lambda *args, **kwargs: fixed
        try:
            yield
        finally:
            vision_transformer.resample_abs_pos_embed = resample


def _create(pretrained: bool) -> torch.nn.Module:
    return timm.create_model(_ARCH, pretrained=pretrained, dynamic_img_size=True, num_classes=0)


@register_backbone("dinov2_vits14")
def dinov2_vits14(weights: WeightsSpec) -> FeatureExtractor:
    if weights.kind == "random":
        vit = build_seeded(lambda: _create(False), weights.seed)
    elif weights.kind == "imagenet":
        try:
            vit = _create(True)
        except Exception as error:  # hub download failures come in many types
            raise WeightsUnavailableError(
                f"pretrained DINOv2 weights ({_ARCH}) are not in the Hugging Face cache and could not be "
                f"downloaded ({type(error).__name__}). Pass a local state-dict file or use --weights random."
            ) from error
    else:
        vit = build_seeded(lambda: _create(False), 0)
        vit.load_state_dict(load_state_file(str(weights.path)), strict=True)
    return DinoV2Patches(vit, weights)
