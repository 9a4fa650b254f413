"""Nearest-neighbour search over the memory bank, behind a registry of faiss index kinds."""

from __future__ import annotations

from typing import Any, Callable

import faiss
import numpy as np

from anomalia.core.config import DISTANCES

KnnFactory = Callable[[int, int], Any]  # a faiss index; its SWIG classes carry no useful static types
_INDEXES: dict[str, KnnFactory] = {}


def register_index(name: str) -> Callable[[KnnFactory], KnnFactory]:
    def decorator(factory: KnnFactory) -> KnnFactory:
        _INDEXES[name] = factory
        return factory

    return decorator


def available_indexes() -> list[str]:
    return sorted(_INDEXES)


@register_index("exact")
def _flat(dim: int, n: int) -> Any:
    return faiss.IndexFlatL2(dim)


@register_index("hnsw")
def _hnsw(dim: int, n: int) -> Any:
    index = faiss.IndexHNSWFlat(dim, 32)
    index.hnsw.efConstruction = 80
    index.hnsw.efSearch = 48
    return index


IVF_LIST_SIZE = 64
IVF_NPROBE = 16


@register_index("ivf")
def _ivf(dim: int, n: int) -> Any:
    """Inverted lists of ~64 vectors, 16 probed: the scanned share stays constant as the bank grows."""
    nlist = max(1, n // IVF_LIST_SIZE)
    index: Any = faiss.index_factory(dim, f"IVF{nlist},Flat")
    index.nprobe = min(nlist, IVF_NPROBE)
    return index


class NearestNeighbours:
    """Mean distance from each query to its ``k`` nearest bank vectors (seed 000 steps 9–10).

    Vectors are L2-normalised, so ``cosine`` distance is ``‖a−b‖²/2`` and both
    metrics share one L2 index.
    """

    def __init__(self, index: Any, distance: str):
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {', '.join(DISTANCES)}; got {distance!r}")
        self.index = index
        self.distance = distance

    @classmethod
    def build(cls, bank: np.ndarray, *, kind: str = "exact", distance: str = "l2", seed: int = 0) -> "NearestNeighbours":
        if kind not in _INDEXES:
            raise ValueError(f"unknown kNN index {kind!r}; choose one of: {', '.join(available_indexes())}")
        index = _INDEXES[kind](bank.shape[1], bank.shape[0])
        if not index.is_trained:
            rng = np.random.default_rng(seed)
            sample = bank[rng.choice(bank.shape[0], size=min(bank.shape[0], 256 * index.nlist), replace=False)]
            index.cp.seed = seed
            index.train(sample)
        index.add(np.ascontiguousarray(bank, dtype=np.float32))
        return cls(index, distance)

    @classmethod
    def from_bytes(cls, data: bytes, distance: str) -> "NearestNeighbours":
        return cls(faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8).copy()), distance)

    def to_bytes(self) -> bytes:
        return faiss.serialize_index(self.index).tobytes()

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(N, k)`` distances in this index's metric, nearest first, and the bank row ids."""
        if not 1 <= k <= self.size:
            raise ValueError(f"knn k must be in 1..{self.size} (the bank size), got {k}")
        squared, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return self.from_squared(squared), ids

    def from_squared(self, squared: np.ndarray) -> np.ndarray:
        """Squared L2 distances → this index's metric."""
        squared = np.maximum(squared, 0.0)
        return squared * 0.5 if self.distance == "cosine" else np.sqrt(squared)

    def mean_distance(self, queries: np.ndarray, k: int) -> np.ndarray:
        """``(N,)`` mean distance to the ``k`` nearest bank vectors."""
        return self.search(queries, k)[0].mean(axis=1)

    def neighbours(self, queries: np.ndarray, k: int) -> np.ndarray:
        """``(N, k)`` bank row ids, used to measure an approximate index's recall."""
        _, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return ids


def recall_at_k(exact_ids: np.ndarray, approx_ids: np.ndarray) -> float:
    """Fraction of the exact ``k`` neighbours that the approximate search also returned."""
    hits = sum(len(set(e) & set(a)) for e, a in zip(exact_ids.tolist(), approx_ids.tolist()))
    return hits / exact_ids.size
