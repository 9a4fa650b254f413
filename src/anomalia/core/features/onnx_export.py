"""Tracing a torch backbone, with the model's embedding steps, into an ONNX graph (needs torch).

The graph maps the normalised ``(B, 3, S, S)`` batch to ``(B, h, w, C)`` patch embeddings:
backbone, per-layer aggregation, layer upsampling and patch norm, all as
:meth:`FeatureExtractor.patch_embeddings` computes them, so the bank stays valid. The batch
axis is dynamic; the image size is the model's.
"""

from __future__ import annotations

import io
import warnings

import torch
from torch import nn

from anomalia.core.config import PatchCoreConfig
from anomalia.core.features.base import FeatureExtractor
from anomalia.core.features.exported import INPUT_NAME, OUTPUT_NAME

OPSET = 17


class EmbeddingGraph(nn.Module):
    """The backbone and the model's embedding steps, as one module to trace."""

    def __init__(self, extractor: FeatureExtractor, aggregation: int, patch_norm: str):
        super().__init__()
        self.extractor, self.aggregation, self.patch_norm = extractor, aggregation, patch_norm

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        grid = self.extractor(images, self.aggregation).permute(0, 2, 3, 1).float()
        if self.patch_norm == "l2":
            grid = nn.functional.normalize(grid, dim=-1)
        return grid


def export_onnx(extractor: FeatureExtractor, config: PatchCoreConfig, *, opset: int = OPSET) -> bytes:
    """The ONNX graph of ``extractor`` with ``config``'s aggregation and patch norm, as bytes."""
    graph = EmbeddingGraph(extractor, config.aggregation, config.patch_norm).eval()
    example = torch.zeros(2, 3, config.img_size, config.img_size, device=extractor.device)
    buffer = io.BytesIO()
    with extractor.export_context(config.img_size), warnings.catch_warnings(), torch.inference_mode(False):
        # the tracer warns about every Python int it freezes; the image size is fixed on purpose
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (example,), buffer,  # type: ignore[arg-type]  # a file object works too
                          dynamo=False, opset_version=opset, do_constant_folding=True,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    return buffer.getvalue()
