"""Greedy k-center coreset subsampling (PatchCore, Algorithm 1)."""

from __future__ import annotations

import numba
import numpy as np
import torch

PROJECTION_DIM = 128


def random_projection(dim_in: int, dim_out: int, *, seed: int) -> np.ndarray:
    """Gaussian Johnson–Lindenstrauss matrix ``(dim_in, dim_out)``; PatchCore's ψ for fast selection."""
    if dim_out >= dim_in:
        return np.eye(dim_in, dtype=np.float32)
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((dim_in, dim_out)) / np.sqrt(dim_out)).astype(np.float32)


@numba.njit(cache=True, nogil=True, fastmath=True)
def _greedy_kernel(x: np.ndarray, sq_norms: np.ndarray, n: int, start: int) -> np.ndarray:  # pragma: no cover
    # One fused pass per step (distance to the new centre, running minimum, argmax), single-threaded
    # on purpose: a BLAS matrix-vector product per step costs 40x more when the cores are shared.
    total, dim = x.shape
    min_dist = np.full(total, np.inf, dtype=np.float32)
    chosen = np.empty(n, dtype=np.int64)
    current = start
    for step in range(n):
        chosen[step] = current
        centre = x[current]
        centre_sq = sq_norms[current]
        farthest = np.float32(-1.0)
        farthest_at = 0
        for i in range(total):
            dot = np.float32(0.0)
            for j in range(dim):
                dot += x[i, j] * centre[j]
            distance = sq_norms[i] - np.float32(2.0) * dot + centre_sq
            if distance < min_dist[i]:
                min_dist[i] = distance
            if min_dist[i] > farthest:
                farthest = min_dist[i]
                farthest_at = i
        current = farthest_at
    return chosen


def greedy_coreset(x: np.ndarray, n: int, *, seed: int) -> np.ndarray:
    """Indices of ``n`` rows of ``x`` ``(N, D)`` chosen by greedy k-center.

    Each step adds the point farthest from everything chosen so far, which
    2-approximates the minimal covering radius; the first point is drawn with ``seed``.
    Releases the GIL, so several chunks can be reduced in parallel threads.
    """
    total = x.shape[0]
    if not 1 <= n <= total:
        raise ValueError(f"coreset size must be in 1..{total}, got {n}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    sq_norms = np.einsum("ij,ij->i", x, x)
    start = int(np.random.default_rng(seed).integers(total))
    return _greedy_kernel(x, sq_norms, n, start)


def greedy_coreset_torch(x: np.ndarray, n: int, *, seed: int, device: str | torch.device) -> np.ndarray:
    """:func:`greedy_coreset` as tensor operations, for a GPU: one matrix-vector product per step.

    Same start point and rule as the CPU kernel; near-ties may be broken differently (float
    summation order), so the covering radius, not every index, is what matches.
    """
    total = x.shape[0]
    if not 1 <= n <= total:
        raise ValueError(f"coreset size must be in 1..{total}, got {n}")
    start = int(np.random.default_rng(seed).integers(total))
    with torch.inference_mode():
        points = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
        sq_norms = (points * points).sum(dim=1)
        min_dist = torch.full((total,), float("inf"), device=points.device)
        chosen = torch.empty(n, dtype=torch.int64, device=points.device)
        current = torch.tensor(start, device=points.device)
        for step in range(n):
            chosen[step] = current
            centre = points[current]
            distance = sq_norms - 2.0 * (points @ centre) + sq_norms[current]
            torch.minimum(min_dist, distance, out=min_dist)
            current = torch.argmax(min_dist)
        return chosen.cpu().numpy()


def covering_radius(x: np.ndarray, centres: np.ndarray) -> float:
    """Largest distance from a row of ``x`` to its nearest centre (the k-center objective)."""
    sq = (x * x).sum(1)[:, None] - 2.0 * x @ centres.T + (centres * centres).sum(1)[None, :]
    return float(np.sqrt(max(float(np.maximum(sq, 0.0).min(1).max()), 0.0)))
