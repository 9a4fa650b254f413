"""Extractors that run an exported graph (ONNX, OpenVINO IR) instead of torch, behind a runtime registry.

An export holds everything from the normalised ``(B, 3, S, S)`` batch to the ``(B, h, w, C)``
patch embeddings (backbone, aggregation, layer upsampling, patch norm), so the memory bank, kNN,
maps and threshold are the torch model's. Only numpy and the chosen runtime are imported: this is
the scoring path of an install without torch. Every-``stride``-th cell is taken here, as a query
option (``PATCH_STRIDE``) that does not change the graph.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from anomalia.core.features.spec import FeatureInfo, WeightsSpec

RUNTIMES = ("torch", "onnxruntime", "openvino")
"""What can run a model's feature extractor; ``torch`` is the backbone itself (:mod:`.registry`)."""
INPUT_NAME = "images"
OUTPUT_NAME = "embeddings"


class RuntimeUnavailable(RuntimeError):
    """The runtime asked for is not installed, or this model has no export it can run."""


@dataclass(frozen=True)
class ExportedGraph:
    """One export as read from a model folder: the graph and what it was exported for.

    ``model`` is the ONNX file, or an OpenVINO IR's XML with its ``weights`` (``.bin``).
    """

    format: str
    model: bytes
    weights: bytes | None
    source: str
    backbone: str
    info: FeatureInfo
    fingerprint: str
    img_size: int
    grid: tuple[int, int]
    aggregation: int
    patch_norm: str


Run = Callable[[np.ndarray], np.ndarray]
SessionFactory = Callable[[ExportedGraph], Run]
_SESSIONS: dict[str, SessionFactory] = {}
_MODULES = {"torch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino"}
READS = {"onnxruntime": ("onnx",), "openvino": ("openvino", "onnx")}
"""Export formats each runtime runs, preferred first (OpenVINO also compiles an ONNX file itself)."""


def register_runtime(name: str) -> Callable[[SessionFactory], SessionFactory]:
    def decorator(factory: SessionFactory) -> SessionFactory:
        _SESSIONS[name] = factory
        return factory

    return decorator


def check_runtime(name: str) -> None:
    if name not in RUNTIMES:
        raise ValueError(f"unknown runtime {name!r}; choose one of: {', '.join(RUNTIMES)}")


def runtime_installed(name: str) -> bool:
    """Whether ``name``'s package can be imported here (checked without importing it)."""
    check_runtime(name)
    return importlib.util.find_spec(_MODULES[name]) is not None


@register_runtime("onnxruntime")
def _onnxruntime(graph: ExportedGraph) -> Run:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # its warnings about unused initialisers are noise here
    session = onnxruntime.InferenceSession(graph.model, options, providers=["CPUExecutionProvider"])
    return lambda batch: session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]


@register_runtime("openvino")
def _openvino(graph: ExportedGraph) -> Run:
    import openvino

    core = openvino.Core()
    weights = openvino.Tensor(np.frombuffer(graph.weights, dtype=np.uint8)) if graph.weights else openvino.Tensor(
        np.empty(0, dtype=np.uint8))
    model = core.read_model(graph.model, weights) if graph.format == "openvino" else core.read_model(graph.model)
    # f32: on CPUs with AMX/AVX512-BF16 OpenVINO defaults to bf16, ~1 % off torch: verdicts would flip.
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request, lock = compiled.create_infer_request(), threading.Lock()

    def run(batch: np.ndarray) -> np.ndarray:
        with lock:  # one infer request: calls from several threads take turns
            return np.array(request.infer({0: batch})[0], copy=True)

    return run


class ExportedExtractor:
    """An exported graph behind the :class:`~anomalia.core.features.spec.Extractor` contract (CPU only)."""

    device = "cpu"

    def __init__(self, graph: ExportedGraph, runtime: str, run: Run):
        self.name, self.info, self.runtime = graph.backbone, graph.info, runtime
        self.weights = WeightsSpec(kind="exported", path=graph.source)
        self.graph, self._run = graph, run

    @property
    def fingerprint(self) -> str:
        """The weights fingerprint recorded when the graph was exported from the torch backbone."""
        return self.graph.fingerprint

    def output_grid(self, img_size: int) -> tuple[int, int]:
        return self.graph.grid

    def patch_embeddings(self, batch: np.ndarray, *, aggregation: int, stride: int, norm: str) -> np.ndarray:
        graph = self.graph
        wanted = (batch.shape[-1], aggregation, norm)
        if wanted != (graph.img_size, graph.aggregation, graph.patch_norm):
            raise ValueError(f"{graph.source} was exported for img_size {graph.img_size}, aggregation "
                             f"{graph.aggregation}, patch_norm {graph.patch_norm}, not {wanted}; export it again")
        embeddings = self._run(np.ascontiguousarray(batch, dtype=np.float32))
        if stride > 1:
            embeddings = embeddings[:, ::stride, ::stride]
        return np.ascontiguousarray(embeddings, dtype=np.float32)

    def patch_embeddings_by_window(self, batch: np.ndarray, *, windows: tuple[int, ...], stride: int,
                                   norm: str) -> dict[int, np.ndarray]:
        """An exported graph has its window built in: only that one can be asked for."""
        return {window: self.patch_embeddings(batch, aggregation=window, stride=stride, norm=norm)
                for window in windows}


def create_runtime_extractor(runtime: str, graph: ExportedGraph) -> ExportedExtractor:
    """Compile ``graph`` for ``runtime``; a runtime that is not installed says how to get it."""
    check_runtime(runtime)
    if runtime not in _SESSIONS:
        raise ValueError(f"runtime {runtime!r} does not run exported graphs")
    if graph.format not in READS[runtime]:
        raise RuntimeUnavailable(f"{runtime} cannot run a {graph.format} export")
    if not runtime_installed(runtime):
        raise RuntimeUnavailable(f"runtime {runtime} is not installed: pip install 'anomalia[runtime]'")
    return ExportedExtractor(graph, runtime, _SESSIONS[runtime](graph))

