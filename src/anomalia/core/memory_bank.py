"""Streaming construction of the memory bank of nominal patch embeddings."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from anomalia.core.config import DEFAULT_CHUNK_PATCHES, PATCH_NORMS
from anomalia.core.coreset import PROJECTION_DIM, greedy_coreset, greedy_coreset_torch, random_projection

DEFAULT_WORKERS = 2


def patch_embeddings(features: torch.Tensor, stride: int = 1, norm: str = "l2") -> np.ndarray:
    """``(B, C, h, w)`` features → ``(B, h', w', C)`` patch vectors (seed 000 steps 7–8).

    ``stride`` keeps every ``stride``-th patch in both directions (``PATCH_STRIDE``);
    ``norm`` ``l2`` puts each vector on the unit sphere, ``none`` keeps its magnitude,
    which is what tells a flat scratch from a busy grain on irregular surfaces.
    """
    if norm not in PATCH_NORMS:
        raise ValueError(f"patch norm must be one of {', '.join(PATCH_NORMS)}; got {norm!r}")
    if stride > 1:
        features = features[:, :, ::stride, ::stride]
    grid = features.permute(0, 2, 3, 1).float()
    if norm == "l2":
        grid = torch.nn.functional.normalize(grid, dim=-1)
    return np.ascontiguousarray(grid.numpy(), dtype=np.float32)


class MemoryBankBuilder:
    """Collects patch embeddings image batch by image batch and keeps only a coreset.

    Patches are buffered up to ``chunk_patches``; each full chunk is reduced to
    ``ratio`` of its size by greedy k-center in a random projection, so memory
    stays at one chunk plus the selected rows whatever the number of images.
    The union of per-chunk k-center sets is a composable coreset (Indyk et al.,
    2014): its covering radius is bounded by the largest chunk radius. Chunks are
    reduced in ``workers`` background threads while the backbone embeds the next
    images; at most ``workers`` chunks are in flight, and results keep chunk order.
    """

    def __init__(self, ratio: float, *, seed: int, chunk_patches: int = DEFAULT_CHUNK_PATCHES,
                 workers: int = DEFAULT_WORKERS, device: str | torch.device = "cpu"):
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f"coreset ratio must be in (0, 1], got {ratio}")
        self.ratio = ratio
        self.seed = seed
        self.chunk_patches = chunk_patches
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0
        self._kept: list[Future] = []
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="coreset")
        self.workers = workers
        self._projection: np.ndarray | None = None
        self._chunks = 0
        self.n_seen = 0
        self.device = torch.device(device)

    def add(self, embeddings: np.ndarray) -> None:
        """Add ``(..., C)`` patch vectors."""
        self._pending.append(embeddings.reshape(-1, embeddings.shape[-1]))
        self._pending_rows += self._pending[-1].shape[0]
        self.n_seen += self._pending[-1].shape[0]
        if self._pending_rows >= self.chunk_patches:
            self._reduce_pending()

    def _reduce_pending(self) -> None:
        if not self._pending:
            return
        chunk = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending, self._pending_rows = [], 0
        if self._projection is None:
            self._projection = random_projection(chunk.shape[1], PROJECTION_DIM, seed=self.seed)
        in_flight = [future for future in self._kept if not future.done()]
        if len(in_flight) >= self.workers:
            in_flight[0].result()
        self._kept.append(self._pool.submit(self._select, chunk, self.seed + self._chunks))
        self._chunks += 1

    def _select(self, chunk: np.ndarray, seed: int) -> np.ndarray:
        if self.ratio >= 1.0:
            return chunk
        n = max(1, int(round(self.ratio * chunk.shape[0])))
        projected = chunk @ self._projection
        if self.device.type == "cuda":  # the selection on the GPU the backbone already uses
            chosen = greedy_coreset_torch(projected, n, seed=seed, device=self.device)
        else:
            chosen = greedy_coreset(projected, n, seed=seed)
        return chunk[np.sort(chosen)]

    def finish(self) -> np.ndarray:
        """The bank ``(M, C)`` float32; raises if nothing was added."""
        try:
            self._reduce_pending()
            if not self._kept:
                raise ValueError("no patch embeddings were added to the memory bank")
            parts = [future.result() for future in self._kept]
        finally:
            self.close()
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def close(self) -> None:
        """Stop the worker threads (also after a failed fit)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
