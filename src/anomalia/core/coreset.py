"""Greedy k-center coreset subsampling (PatchCore, Algorithm 1)."""

from __future__ import annotations

import numpy as np

PROJECTION_DIM = 128


def random_projection(dim_in: int, dim_out: int, *, seed: int) -> np.ndarray:
    """Gaussian Johnson–Lindenstrauss matrix ``(dim_in, dim_out)``; PatchCore's ψ for fast selection."""
    if dim_out >= dim_in:
        return np.eye(dim_in, dtype=np.float32)
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((dim_in, dim_out)) / np.sqrt(dim_out)).astype(np.float32)


def greedy_coreset(x: np.ndarray, n: int, *, seed: int) -> np.ndarray:
    """Indices of ``n`` rows of ``x`` ``(N, D)`` chosen by greedy k-center.

    Each step adds the point farthest from everything chosen so far, which
    2-approximates the minimal covering radius. Distances are updated in place
    from squared norms so each step costs one matrix–vector product.
    """
    total = x.shape[0]
    if not 1 <= n <= total:
        raise ValueError(f"coreset size must be in 1..{total}, got {n}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    sq_norms = np.einsum("ij,ij->i", x, x)
    min_dist = np.full(total, np.inf, dtype=np.float32)
    chosen = np.empty(n, dtype=np.int64)
    current = int(np.random.default_rng(seed).integers(total))
    scratch = np.empty(total, dtype=np.float32)
    for step in range(n):
        chosen[step] = current
        np.dot(x, x[current], out=scratch)
        scratch *= -2.0
        scratch += sq_norms
        scratch += sq_norms[current]
        np.minimum(min_dist, scratch, out=min_dist)
        current = int(np.argmax(min_dist))
    return chosen


def covering_radius(x: np.ndarray, centres: np.ndarray) -> float:
    """Largest distance from a row of ``x`` to its nearest centre (the k-center objective)."""
    sq = (x * x).sum(1)[:, None] - 2.0 * x @ centres.T + (centres * centres).sum(1)[None, :]
    return float(np.sqrt(max(float(np.maximum(sq, 0.0).min(1).max()), 0.0)))
