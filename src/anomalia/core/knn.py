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


HNSW_PCA_DIMS = 96
"""``hnsw_pca``: the graph is searched in the bank's first principal components (96 of resnet18's 384)."""
HNSW_PCA_K_FACTOR = 16
"""``hnsw_pca`` with fewer dimensions: candidates per neighbour, re-ranked with the full vectors."""
PCA_TRAIN_ROWS = 50_000
BOUND_DIMS = 32
"""Principal components the exact re-measurement's lower bound reads (:class:`PrunedExactSearch`)."""


def hnsw_pca_index(dim: int, low: int | None = None) -> Any:
    """HNSW over the bank rotated onto its principal axes (``PCA{low}``); with fewer dimensions than
    the bank's, wrapped in a flat re-ranking of ``k_factor`` candidates per neighbour (faiss ``RFlat``).

    The rotation also gives :class:`PrunedExactSearch` its lower bound, so the exact re-measurement of
    an image's largest distances reads a 32-column copy of the bank instead of all of it."""
    low = dim if low is None else min(low, dim)
    spec = f"PCA{low},HNSW32" + (",RFlat" if low < dim else "")
    index = faiss.index_factory(dim, spec)
    graph = _hnsw_of(index)
    graph.hnsw.efConstruction = 80
    graph.hnsw.efSearch = 32
    if low < dim:
        refine: Any = faiss.downcast_index(index)
        refine.k_factor = HNSW_PCA_K_FACTOR
    return index


def reduced_dims(dim: int) -> int:
    """``hnsw_pca``'s default: a quarter of the bank's dimensions, at most :data:`HNSW_PCA_DIMS`."""
    return max(1, min(HNSW_PCA_DIMS, dim // 4))


@register_index("hnsw_pca")
def _hnsw_pca(dim: int, n: int) -> Any:
    return hnsw_pca_index(dim, reduced_dims(dim))


def _pretransform_of(index: Any) -> Any | None:
    """The ``IndexPreTransform`` (PCA + HNSW) of an ``hnsw_pca`` index, None for the other kinds."""
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexRefine):
        index = faiss.downcast_index(index.base_index)
    return index if isinstance(index, faiss.IndexPreTransform) else None


def _hnsw_of(index: Any) -> Any:
    """The ``IndexHNSW`` an index searches (itself, or inside ``hnsw_pca``'s wrappers)."""
    pre = _pretransform_of(index)
    return faiss.downcast_index(pre.index if pre is not None else index)


REFINE_BLOCK = 32
"""Most patches per image re-measured exactly at a time behind an approximate index (blocks of 1, 2,
4, … up to this: the highest patch alone settles the maximum when the index found its neighbour)."""
QUERY_BLOCK_ELEMENTS = 1 << 24
"""Largest ``queries × bank`` distance block held at once (64 MiB in fp32), whatever the bank size."""


AUTO_EXACT_MAX_ROWS = 4096
"""``knn_index="auto"``: banks up to this size are always searched exactly (cheap next to the backbone)."""
AUTO_MIN_RECALL = 0.99
Setting = dict[str, int]
AUTO_LADDERS: tuple[tuple[str, str, tuple[Setting, ...]], ...] = (
    ("hnsw_pca", "reduced", tuple({"efSearch": e, "k_factor": f} for e, f in
                                  ((16, 8), (16, 16), (32, 16), (64, 16), (64, 32), (128, 32)))),
    ("hnsw_pca", "all", tuple({"efSearch": e} for e in (16, 32, 64, 128, 256))),
    ("ivf", "", tuple({"nprobe": n} for n in (8, 16, 32, 64, 128))),
)
"""``knn_index="auto"``: approximate searches tried in turn, each with its search effort raised until
the recall holds. ``hnsw_pca`` on ``reduced`` dimensions (:func:`reduced_dims`, 96 of 384) with a
full-vector re-ranking of ``k_factor`` candidates comes first: on fitted resnet18 banks of 50 k and
200 k rows it kept recall@1 ≥ 0.995 at ``efSearch`` 16 with 8 candidates, in half the search time and
half the build time of the graph on all 384 dimensions. That graph (HNSW on the rotated bank) is
built next only when the first needed an ``efSearch`` above :data:`AUTO_TRY_NEXT_ABOVE_EF` or missed
the recall, and the faster of the two is kept. IVF only when no HNSW reaches the recall."""
AUTO_TRY_NEXT_ABOVE_EF = 32


def _apply(index: "NearestNeighbours", setting: Setting) -> None:
    """Set a search effort (``efSearch``, ``k_factor``, ``nprobe``) on a built index."""
    for knob, value in setting.items():
        if knob == "efSearch":
            _hnsw_of(index.index).hnsw.efSearch = value
        elif knob == "k_factor":
            refine: Any = faiss.downcast_index(index.index)
            refine.k_factor = value
        elif knob == "nprobe":
            index.index.nprobe = min(value, index.index.nlist)


def _search_ms(index: "NearestNeighbours", probes: np.ndarray, k: int) -> float:
    """Wall time of searching ``probes``, per 1 024 queries (one image's patches at 256 px)."""
    started = time.perf_counter()
    index.neighbours(probes, k)
    return (time.perf_counter() - started) * 1000 * 1024 / max(1, probes.shape[0])


TIMING_PROBES = 1024
"""Probes exact search is timed on in :func:`auto_index` (one 256 px image's patches)."""


def _true_neighbours(candidate: "NearestNeighbours", exact: "NearestNeighbours", probes: np.ndarray,
                     k: int) -> np.ndarray:
    """The probes' exact ``k`` nearest rows. Behind an ``hnsw_pca`` candidate, through its PCA-bounded
    exact search (kept for the first predict), with the candidate's own k-th distances as the upper
    bounds (they are real rows' distances, so never below the exact ones): a small part of the bank
    is read instead of all of it, which made the truth the largest cost of a fit's ``auto``."""
    if _pretransform_of(candidate.index) is None or candidate.bank is None:
        return exact.neighbours(probes, k)
    upper = candidate._search(probes, k)[0][:, -1]
    refiner = candidate._exact_refiner()
    assert isinstance(refiner, PrunedExactSearch)
    return refiner.search(probes, k, upper)[1]


def auto_index(bank: np.ndarray, probes: np.ndarray, k: int, *, distance: str = "l2", seed: int = 0,
               device: Device = "cpu") -> tuple["NearestNeighbours", dict[str, Any]]:
    """The fastest search of ``bank`` that keeps recall@k >= :data:`AUTO_MIN_RECALL`, measured here.

    Exact search up to :data:`AUTO_EXACT_MAX_ROWS` rows (and on CUDA, where the matmul is the fast
    path). Above that, each search of :data:`AUTO_LADDERS` gets the smallest effort whose recall
    against exact search on ``probes`` (patches of the taught images, most not in the bank) holds,
    and is timed on them; the faster of the HNSW searches wins if it is faster than exact search, IVF
    only when no HNSW reaches the recall. Exact search is timed on the first :data:`TIMING_PROBES`
    probes; the truth the recall is measured against comes through the first graph's PCA bound
    (:func:`_true_neighbours`). Returns the index and a report for the manifest (kind, setting,
    measured recall and ms per 1 024 queries, what was refused and why).
    """
    exact = NearestNeighbours.build(bank, kind="exact", distance=distance, seed=seed, device=device)
    report: dict[str, Any] = {"requested": "auto", "kind": "exact", "bank_rows": int(bank.shape[0]),
                              "recall_at_k": 1.0, "k": k, "probe_patches": int(probes.shape[0])}
    if bank.shape[0] <= AUTO_EXACT_MAX_ROWS or probes.shape[0] == 0 or str(device).startswith("cuda"):
        return exact, report
    exact_ms = _search_ms(exact, probes[:TIMING_PROBES], k)
    report["measured_ms"] = {"exact": round(exact_ms, 2)}
    truth: np.ndarray | None = None
    best: tuple[float, NearestNeighbours, dict[str, Any]] | None = None
    for kind, space, ladder in AUTO_LADDERS:
        if best is not None and (kind == "ivf" or best[2]["setting"].get("efSearch", 0) <= AUTO_TRY_NEXT_ABOVE_EF):
            break
        dims = bank.shape[1] if space == "all" else reduced_dims(bank.shape[1])
        candidate = NearestNeighbours.build(bank, kind=kind, distance=distance, seed=seed,
                                            dims=dims if kind == "hnsw_pca" else None)
        prefix = f"{kind} dims {dims}" if kind == "hnsw_pca" else kind
        if truth is None:
            truth = _true_neighbours(candidate, exact, probes, k)
        for setting in ladder:
            _apply(candidate, setting)
            recall = recall_at_k(truth, candidate.neighbours(probes, k))
            if recall >= AUTO_MIN_RECALL:
                ms = _search_ms(candidate, probes, k)
                name = " ".join([prefix, *(f"{knob} {value}" for knob, value in setting.items())])
                report["measured_ms"][name] = round(ms, 2)
                chosen = {"kind": kind, "setting": ({"dims": dims} if kind == "hnsw_pca" else {}) | setting,
                          "recall_at_k": recall}
                if ms < exact_ms and (best is None or ms < best[0]):
                    best = (ms, candidate, chosen)
                break
        else:
            report.setdefault("refused", []).append(
                f"{prefix}: recall {recall:.4f} < {AUTO_MIN_RECALL} at "
                + " ".join(f"{knob} {value}" for knob, value in ladder[-1].items()))
    if best is None:
        return exact, report
    report.update(best[2])
    return best[1], report


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


class PrunedExactSearch:
    """Exact squared-L2 kNN of a few queries, reading all the bank only where a bound cannot rule it out.

    With ``P`` the first :data:`BOUND_DIMS` principal axes of an ``hnsw_pca`` index (orthonormal rows)
    and ``r(x)`` the norm of what ``P`` leaves of ``x − mean``,
    ``‖q − b‖² ≥ ‖P(q − b)‖² + (r(q) − r(b))²`` (Pythagoras, then the reverse triangle inequality on
    the remainder). A bank row whose bound exceeds an upper bound of the query's k-th distance (an
    approximate search's, which found real rows) cannot be among its k nearest; the others are
    measured directly, as :class:`ExactSearch` measures its chosen neighbours. The bound is a squared
    distance between ``(P(x − mean), r(x))`` points, held as an ``N × 33`` float32 copy of the bank
    sorted by its first coordinate; a query reads only the slab of rows whose first-coordinate gap
    alone does not rule them out; numpy only.
    """

    SLACK = 1e-5
    """Relative float32 rounding allowed to the bound, so rounding can only add candidates."""

    def __init__(self, bank: np.ndarray, pretransform: Any):
        pca: Any = faiss.downcast_VectorTransform(pretransform.chain.at(0))
        dims = min(BOUND_DIMS, pca.d_out)
        self.vectors = np.ascontiguousarray(bank, dtype=np.float32)
        self.mean = faiss.vector_to_array(pca.mean).astype(np.float64)
        self.axes = faiss.vector_to_array(pca.A).reshape(pca.d_out, pca.d_in)[:dims].T.astype(np.float64)
        low, rest, total = self._project(self.vectors)
        # The bound is a squared distance between (P(x − mean), r(x)) points: one float32 matvec per
        # query, over the rows sorted by their first coordinate, of which a query reads only the slab
        # |first(q) − first(b)|² ≤ its limit (a fifth of a 200 k bank, for the highest patches).
        points = np.hstack([low, rest[:, None].astype(np.float32)])
        self.order = np.argsort(points[:, 0], kind="stable")
        self.points = np.ascontiguousarray(points[self.order])
        self.first = np.ascontiguousarray(self.points[:, 0])
        self.offsets = ((self.points.astype(np.float64) ** 2).sum(axis=1)
                        - self.SLACK * total[self.order]).astype(np.float32)
        self.largest_total = float(total.max(initial=0.0))

    def _project(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Coordinates on the axes (float32), norm of the remainder and squared norm of ``x − mean``
        (float64, so the remainder's norm keeps its digits when it is small), 16 384 rows at a time."""
        low, rest, total = [], [], []
        for start in range(0, x.shape[0], 16_384):
            centred = x[start:start + 16_384].astype(np.float64) - self.mean
            part = centred @ self.axes
            squared = np.einsum("ij,ij->i", centred, centred)
            low.append(part.astype(np.float32))
            rest.append(np.sqrt(np.maximum(squared - np.einsum("ij,ij->i", part, part), 0.0)))
            total.append(squared)
        return np.concatenate(low), np.concatenate(rest), np.concatenate(total)

    def search(self, queries: np.ndarray, k: int, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(N, k)`` exact squared distances, nearest first, and row ids; ``upper`` ``(N,)``: squared
        distances at least each query's exact k-th one (e.g. the k-th an approximate search found)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        low, rest, total = self._project(queries)
        points = np.hstack([low, rest[:, None].astype(np.float32)])
        upper = np.asarray(upper, dtype=np.float64)
        # bound − slack ≤ upper, with the query's own terms moved to the right-hand side
        limits = (upper + self.SLACK * total - (points.astype(np.float64) ** 2).sum(axis=1)).astype(np.float32)
        # first-coordinate gap² ≤ bound ≤ upper + slack: the slab of sorted rows worth reading
        reach = np.sqrt(np.maximum(upper + self.SLACK * (total + self.largest_total), 0.0)) * (1 + self.SLACK)
        found_d, found_i = [], []
        for i, query in enumerate(queries):
            lo = int(np.searchsorted(self.first, points[i, 0] - reach[i], side="left"))
            hi = int(np.searchsorted(self.first, points[i, 0] + reach[i], side="right"))
            slab = self.offsets[lo:hi] - 2.0 * (self.points[lo:hi] @ points[i]) <= limits[i]
            rows = np.sort(self.order[lo + np.flatnonzero(slab)])
            if rows.size < k:  # cannot happen with a true upper bound; search it all rather than fail
                rows = np.arange(self.vectors.shape[0])
            direct = ((self.vectors[rows] - query[None, :]) ** 2).sum(axis=1)
            best = np.argsort(direct, kind="stable")[:k]
            found_d.append(direct[best])
            found_i.append(rows[best])
        return np.stack(found_d).astype(np.float32), np.stack(found_i).astype(np.int64)


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
        self._refiner: ExactSearch | PrunedExactSearch | None = None
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
              device: Device = "cpu", dims: int | None = None) -> "NearestNeighbours":
        """An index of ``kind`` over ``bank`` (``auto`` without probe patches means exact); ``dims``:
        the principal components an ``hnsw_pca`` graph is searched in (its default otherwise)."""
        if kind == "auto":
            kind = "exact"
        if kind not in _INDEXES:
            raise ValueError(f"unknown kNN index {kind!r}; choose one of: {', '.join(available_indexes())}")
        if kind == "hnsw_pca" and dims is not None:
            index = hnsw_pca_index(bank.shape[1], dims)
        else:
            index = _INDEXES[kind](bank.shape[1], bank.shape[0])
        if not index.is_trained:
            rng = np.random.default_rng(seed)
            if _pretransform_of(index) is not None:  # the PCA: a seeded sample of rows
                rows = rng.choice(bank.shape[0], size=min(bank.shape[0], PCA_TRAIN_ROWS), replace=False)
                index.train(np.ascontiguousarray(bank[np.sort(rows)], dtype=np.float32))
            else:
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
        score reads. Here each image's highest patches are searched again exactly, in growing blocks
        (:data:`REFINE_BLOCK`), until the highest re-measured one is at least every distance not yet
        re-measured: the largest patch distance is then the exact search's. Behind ``hnsw_pca`` that
        exact search skips the bank rows a lower bound rules out (:class:`PrunedExactSearch`).
        """
        b, p, c = embeddings.shape
        if not 1 <= k <= self.size:
            raise ValueError(f"knn k must be in 1..{self.size} (the bank size), got {k}")
        squared, ids = self._search(embeddings.reshape(-1, c), k)
        distances, ids = self.from_squared(squared).reshape(b, p, k), ids.reshape(b, p, k)
        if self.exact is not None or self.bank is None:
            return distances, ids
        squared = squared.reshape(b, p, k)
        refiner = self._exact_refiner()
        for image in range(b):
            order = np.argsort(-distances[image].mean(axis=1))
            start, size = 0, 1
            while start < p:
                block = order[start:start + size]
                if isinstance(refiner, PrunedExactSearch):
                    exact_squared, rows = refiner.search(embeddings[image, block], k, squared[image, block, -1])
                else:
                    exact_squared, rows = refiner.search(embeddings[image, block], k)
                distances[image, block], ids[image, block] = self.from_squared(exact_squared), rows
                start, size = start + size, min(2 * size, REFINE_BLOCK)
                rest = order[start:]
                done = distances[image, order[:start]].mean(axis=1).max()
                if rest.size == 0 or done >= distances[image, rest].mean(axis=1).max():
                    break
        return distances, ids

    def _exact_refiner(self) -> "ExactSearch | PrunedExactSearch":
        """Exact search of the bank for a few patches: pruned by the PCA of an ``hnsw_pca`` index."""
        if self._refiner is None:
            assert self.bank is not None
            pre = _pretransform_of(self.index)
            self._refiner = ExactSearch(self.bank) if pre is None else PrunedExactSearch(self.bank, pre)
        return self._refiner

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
