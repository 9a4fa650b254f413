"""Nearest-neighbour search over the memory bank, behind a registry of faiss index kinds.

Exact search runs as a chunked matmul + top-k in torch (:class:`ExactSearch`): on the CPU it is
faster than faiss's flat index here, on CUDA it is what the GPU is for; the faiss index is still
written to the model folder, so a model stays loadable by anything that reads faiss. Without torch
(an install that only scores exported models) the same search runs in numpy on the CPU.
"""

from __future__ import annotations

import importlib
import time
from typing import Any, Callable

import faiss
import numpy as np

from anomalia.core.config import DISTANCES

Device = Any
"""A device name (``cpu``, ``cuda:0``) or a ``torch.device``."""


def optional_torch() -> Any:
    """The torch module, or None where it is not installed (a runtime-only install)."""
    try:
        return importlib.import_module("torch")
    except ImportError:
        return None


def _device_name(device: Device) -> str:
    name = str(device)
    return "cuda:0" if name == "cuda" else name

KnnFactory = Callable[[int, int], Any]  # a faiss index; its SWIG classes carry no useful static types
_INDEXES: dict[str, KnnFactory] = {}


def register_index(name: str) -> Callable[[KnnFactory], KnnFactory]:
    def decorator(factory: KnnFactory) -> KnnFactory:
        _INDEXES[name] = factory
        return factory

    return decorator


def available_indexes() -> list[str]:
    """The index kinds a config may name; ``auto`` chooses one at fit time (:func:`auto_index`)."""
    return sorted([*_INDEXES, "auto"])


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


REFINE_BLOCK = 8
"""Patches per image re-measured exactly at a time behind an approximate index."""
QUERY_BLOCK_ELEMENTS = 1 << 24
"""Largest ``queries × bank`` distance block held at once (64 MiB in fp32), whatever the bank size."""


AUTO_EXACT_MAX_ROWS = 4096
"""``knn_index="auto"``: banks up to this size are always searched exactly (cheap next to the backbone)."""
AUTO_MIN_RECALL = 0.99
AUTO_KNOBS: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("hnsw", "efSearch", (16, 32, 64, 128, 256)),
    ("ivf", "nprobe", (8, 16, 32, 64, 128)),
)
"""Approximate kinds tried in turn (HNSW was the faster on every bank measured), each with its search
effort raised until the recall holds; the first that beats exact search is taken, so a fit builds
the next kind only when needed."""


def _set_knob(index: "NearestNeighbours", knob: str, value: int) -> None:
    if knob == "efSearch":
        index.index.hnsw.efSearch = value
    else:
        index.index.nprobe = min(value, index.index.nlist)


def _search_ms(index: "NearestNeighbours", probes: np.ndarray, k: int) -> float:
    """Wall time of searching ``probes``, per 1 024 queries (one image's patches at 256 px)."""
    started = time.perf_counter()
    index.neighbours(probes, k)
    return (time.perf_counter() - started) * 1000 * 1024 / max(1, probes.shape[0])


def auto_index(bank: np.ndarray, probes: np.ndarray, k: int, *, distance: str = "l2", seed: int = 0,
               device: Device = "cpu") -> tuple["NearestNeighbours", dict[str, Any]]:
    """The fastest search of ``bank`` that keeps recall@k >= :data:`AUTO_MIN_RECALL`, measured here.

    Exact search up to :data:`AUTO_EXACT_MAX_ROWS` rows (and on CUDA, where the matmul is the fast
    path). Above that, each kind of :data:`AUTO_KNOBS` gets the smallest search effort whose recall
    against exact search on ``probes`` (patches of the taught images, most not in the bank) holds,
    and is timed on them; the first that is faster than exact search wins. Returns the index and a
    report for the manifest (kind, setting, measured recall and ms per 1 024 queries).
    """
    exact = NearestNeighbours.build(bank, kind="exact", distance=distance, seed=seed, device=device)
    report: dict[str, Any] = {"requested": "auto", "kind": "exact", "bank_rows": int(bank.shape[0]),
                              "recall_at_k": 1.0, "k": k, "probe_patches": int(probes.shape[0])}
    if bank.shape[0] <= AUTO_EXACT_MAX_ROWS or probes.shape[0] == 0 or str(device).startswith("cuda"):
        return exact, report
    truth = exact.neighbours(probes, k)
    best_ms = _search_ms(exact, probes, k)
    report["measured_ms"] = {"exact": round(best_ms, 2)}
    for kind, knob, values in AUTO_KNOBS:
        candidate = NearestNeighbours.build(bank, kind=kind, distance=distance, seed=seed)
        for value in values:
            _set_knob(candidate, knob, value)
            recall = recall_at_k(truth, candidate.neighbours(probes, k))
            if recall >= AUTO_MIN_RECALL:
                ms = _search_ms(candidate, probes, k)
                report["measured_ms"][f"{kind} {knob} {value}"] = round(ms, 2)
                if ms < best_ms:
                    report.update(kind=kind, setting={knob: value}, recall_at_k=recall)
                    return candidate, report
                break
        else:
            report.setdefault("refused", []).append(f"{kind}: recall {recall:.4f} < {AUTO_MIN_RECALL} "
                                                    f"at {knob} {value}")
    return exact, report


class ExactSearch:
    """Exact squared-L2 kNN: neighbours chosen with ``‖q‖² + ‖b‖² − 2 q·b`` in blocks of queries
    (memory bounded by :data:`QUERY_BLOCK_ELEMENTS`, as faiss's flat index does it), their distances
    then measured directly as ``‖q − b‖²``; on CPU or CUDA with torch, in numpy without it."""

    def __init__(self, bank: np.ndarray, device: Device = "cpu"):
        self.vectors = np.ascontiguousarray(bank, dtype=np.float32)
        self.torch = optional_torch()
        if self.torch is None:
            if _device_name(device) != "cpu":
                raise ValueError(f"exact kNN search on {device} needs torch, which is not installed")
            self.bank: Any = self.vectors
            self.norms: Any = (self.vectors * self.vectors).sum(axis=1)
            return
        self.bank = self.torch.from_numpy(self.vectors).to(device)
        self.norms = (self.bank * self.bank).sum(dim=1)

    @property
    def device(self) -> str:
        return "cpu" if self.torch is None else _device_name(self.bank.device)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(N, k)`` squared distances, nearest first, and bank row ids (int64), as numpy."""
        if self.torch is None:
            return self._search_numpy(np.ascontiguousarray(queries, dtype=np.float32), k)
        torch = self.torch
        found_d, found_i = [], []
        block = max(1, QUERY_BLOCK_ELEMENTS // max(1, self.bank.shape[0]))
        with torch.inference_mode():
            all_queries = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).to(self.device)
            for start in range(0, all_queries.shape[0], block):
                q = all_queries[start:start + block]
                squared = (q * q).sum(dim=1, keepdim=True) + self.norms[None, :] - 2.0 * (q @ self.bank.T)
                if k == 1:
                    ids = squared.argmin(dim=1, keepdim=True)
                else:
                    ids = torch.topk(squared, k, dim=1, largest=False, sorted=True).indices
                # The expansion above loses digits to cancellation when q is close to b (float32, a
                # relative error ~1e-5 on small distances, varying with the BLAS path): the chosen
                # neighbours' distances are measured again directly.
                direct = ((q[:, None, :] - self.bank[ids]) ** 2).sum(dim=2)
                if k > 1:
                    direct, order = direct.sort(dim=1)
                    ids = ids.gather(1, order)
                found_d.append(direct)
                found_i.append(ids)
            distances = torch.cat(found_d).cpu().numpy()
            rows = torch.cat(found_i).cpu().numpy().astype(np.int64)
        return distances, rows

    def _search_numpy(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The same steps as the torch path, in numpy (float32 throughout)."""
        found_d, found_i = [], []
        block = max(1, QUERY_BLOCK_ELEMENTS // max(1, self.bank.shape[0]))
        for start in range(0, queries.shape[0], block):
            q = queries[start:start + block]
            squared = (q * q).sum(axis=1, keepdims=True) + self.norms[None, :] - 2.0 * (q @ self.bank.T)
            if k == 1:
                ids = squared.argmin(axis=1)[:, None]
            else:
                ids = np.argpartition(squared, k - 1, axis=1)[:, :k]
            direct = ((q[:, None, :] - self.bank[ids]) ** 2).sum(axis=2)
            order = np.argsort(direct, axis=1, kind="stable")
            found_d.append(np.take_along_axis(direct, order, axis=1))
            found_i.append(np.take_along_axis(ids, order, axis=1))
        return np.concatenate(found_d).astype(np.float32), np.concatenate(found_i).astype(np.int64)


class NearestNeighbours:
    """Mean distance from each query to its ``k`` nearest bank vectors (seed 000 steps 9–10).

    Vectors are L2-normalised, so ``cosine`` distance is ``‖a−b‖²/2`` and both
    metrics share one L2 index. A flat (exact) index is searched with :class:`ExactSearch`.
    """

    def __init__(self, index: Any, distance: str, *, bank: np.ndarray | None = None,
                 device: Device = "cpu"):
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {', '.join(DISTANCES)}; got {distance!r}")
        self.index = index
        self.distance = distance
        self.exact: ExactSearch | None = None
        self.bank = bank
        self._refiner: ExactSearch | None = None
        if isinstance(index, faiss.IndexFlat):
            vectors = bank if bank is not None else index.reconstruct_n(0, index.ntotal)
            self.exact = ExactSearch(vectors, device)

    def add(self, vectors: np.ndarray, bank: np.ndarray) -> None:
        """Append ``vectors`` to the index; ``bank`` is the whole bank after it (for exact search)."""
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.bank, self._refiner = bank, None
        if self.exact is not None:
            self.exact = ExactSearch(bank, self.exact.device)

    def to(self, device: Device) -> "NearestNeighbours":
        """Search on ``device`` (exact search only; faiss-cpu's approximate indexes stay on the CPU)."""
        if self.exact is not None and self.exact.device != _device_name(device):
            self.exact = ExactSearch(self.exact.vectors, device)
        return self

    @classmethod
    def build(cls, bank: np.ndarray, *, kind: str = "exact", distance: str = "l2", seed: int = 0,
              device: Device = "cpu") -> "NearestNeighbours":
        """An index of ``kind`` over ``bank`` (``auto`` without probe patches means exact)."""
        if kind == "auto":
            kind = "exact"
        if kind not in _INDEXES:
            raise ValueError(f"unknown kNN index {kind!r}; choose one of: {', '.join(available_indexes())}")
        index = _INDEXES[kind](bank.shape[1], bank.shape[0])
        if not index.is_trained:
            rng = np.random.default_rng(seed)
            sample = bank[rng.choice(bank.shape[0], size=min(bank.shape[0], 256 * index.nlist), replace=False)]
            index.cp.seed = seed
            index.train(sample)
        index.add(np.ascontiguousarray(bank, dtype=np.float32))
        return cls(index, distance, bank=bank, device=device)

    @classmethod
    def from_bytes(cls, data: bytes, distance: str, *, bank: np.ndarray | None = None,
                   device: Device = "cpu") -> "NearestNeighbours":
        """The index of a model folder; ``bank`` (its ``embeddings.npy``) saves rebuilding exact vectors."""
        return cls(faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8).copy()), distance, bank=bank,
                   device=device)

    def to_bytes(self) -> bytes:
        return faiss.serialize_index(self.index).tobytes()

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(N, k)`` distances in this index's metric, nearest first, and the bank row ids."""
        if not 1 <= k <= self.size:
            raise ValueError(f"knn k must be in 1..{self.size} (the bank size), got {k}")
        squared, ids = self._search(queries, k)
        return self.from_squared(squared), ids

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.exact is not None:
            return self.exact.search(queries, k)
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)

    def search_images(self, embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(B, P, C)`` patches → ``(B, P, k)`` distances and ids, each image's largest ones exact.

        An approximate index can only miss a neighbour, so its distances are upper bounds of the
        exact ones, and a missed neighbour shows up as a falsely high patch: the very patch an image
        score reads. Here each image's highest patches are searched again exactly, in blocks of
        :data:`REFINE_BLOCK`, until the highest re-measured one is at least every distance not yet
        re-measured: the largest patch distance is then the exact search's.
        """
        b, p, c = embeddings.shape
        distances, ids = self.search(embeddings.reshape(-1, c), k)
        distances, ids = distances.reshape(b, p, k), ids.reshape(b, p, k)
        if self.exact is not None or self.bank is None:
            return distances, ids
        if self._refiner is None:
            self._refiner = ExactSearch(self.bank)
        for image in range(b):
            order = np.argsort(-distances[image].mean(axis=1))
            for start in range(0, p, REFINE_BLOCK):
                block = order[start:start + REFINE_BLOCK]
                squared, rows = self._refiner.search(embeddings[image, block], k)
                distances[image, block], ids[image, block] = self.from_squared(squared), rows
                rest = order[start + REFINE_BLOCK:]
                done = distances[image, order[:start + REFINE_BLOCK]].mean(axis=1).max()
                if rest.size == 0 or done >= distances[image, rest].mean(axis=1).max():
                    break
        return distances, ids

    def from_squared(self, squared: np.ndarray) -> np.ndarray:
        """Squared L2 distances → this index's metric."""
        squared = np.maximum(squared, 0.0)
        return squared * 0.5 if self.distance == "cosine" else np.sqrt(squared)

    def mean_distance(self, queries: np.ndarray, k: int) -> np.ndarray:
        """``(N,)`` mean distance to the ``k`` nearest bank vectors."""
        return self.search(queries, k)[0].mean(axis=1)

    def neighbours(self, queries: np.ndarray, k: int) -> np.ndarray:
        """``(N, k)`` bank row ids, used to measure an approximate index's recall."""
        return self._search(queries, k)[1]


def recall_at_k(exact_ids: np.ndarray, approx_ids: np.ndarray) -> float:
    """Fraction of the exact ``k`` neighbours that the approximate search also returned."""
    hits = sum(len(set(e) & set(a)) for e, a in zip(exact_ids.tolist(), approx_ids.tolist()))
    return hits / exact_ids.size
