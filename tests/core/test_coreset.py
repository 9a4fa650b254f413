"""Greedy k-center coreset (PatchCore Algorithm 1) and the streaming memory bank built on it."""

from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pytest

from anomalia.core.coreset import covering_radius, greedy_coreset, random_projection
from anomalia.core.memory_bank import MemoryBankBuilder


def optimal_radius(x: np.ndarray, k: int) -> float:
    """Brute-force k-center: the smallest covering radius over every choice of ``k`` centres."""
    return min(covering_radius(x, x[list(centres)]) for centres in itertools.combinations(range(len(x)), k))


@pytest.mark.parametrize("data_seed", range(6))
@pytest.mark.parametrize("k", [2, 3, 4])
def test_greedy_radius_is_within_twice_the_optimum(data_seed, k):
    rng = np.random.default_rng(data_seed)
    x = np.concatenate([rng.normal(c, 0.3, size=(4, 2)) for c in rng.uniform(-4, 4, size=(3, 2))])
    x = x.astype(np.float32)
    best = optimal_radius(x, k)
    for seed in range(len(x)):  # several random starting points
        greedy = covering_radius(x, x[greedy_coreset(x, k, seed=seed)])
        assert greedy <= 2.0 * best + 1e-5, (seed, greedy, best)


def test_greedy_keeps_the_outliers_whatever_the_seed():
    rng = np.random.default_rng(0)
    inliers = rng.normal(0.0, 1.0, size=(2000, 16))
    outliers = np.zeros((3, 16))
    outliers[0, 0], outliers[1, 1], outliers[2, 2] = 40.0, -50.0, 60.0
    x = np.concatenate([inliers, outliers]).astype(np.float32)
    for seed in range(5):
        chosen = set(greedy_coreset(x, 10, seed=seed).tolist())
        assert {2000, 2001, 2002} <= chosen


def test_each_step_adds_the_point_farthest_from_the_chosen_ones():
    x = np.random.default_rng(1).normal(size=(300, 8)).astype(np.float32)
    chosen = greedy_coreset(x, 12, seed=3)
    assert len(set(chosen.tolist())) == 12
    for step in range(1, 12):
        centres = x[chosen[:step]]
        nearest = np.sqrt(((x[:, None, :] - centres[None]) ** 2).sum(-1)).min(1)
        assert nearest[chosen[step]] == pytest.approx(nearest.max(), rel=1e-4)


def test_same_seed_same_indices_and_the_seed_picks_the_start():
    x = np.random.default_rng(2).normal(size=(500, 32)).astype(np.float32)
    first = greedy_coreset(x, 50, seed=7)
    np.testing.assert_array_equal(first, greedy_coreset(x, 50, seed=7))
    starts = {int(greedy_coreset(x, 1, seed=seed)[0]) for seed in range(10)}
    assert len(starts) > 1


@pytest.mark.parametrize("n", [0, 11])
def test_coreset_size_outside_one_to_n_is_refused(n):
    with pytest.raises(ValueError, match="1..10"):
        greedy_coreset(np.zeros((10, 2), dtype=np.float32), n, seed=0)


def test_random_projection_is_seeded_and_roughly_preserves_distances():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 384)).astype(np.float32)
    matrix = random_projection(384, 128, seed=0)
    np.testing.assert_array_equal(matrix, random_projection(384, 128, seed=0))
    original = np.linalg.norm(x[:100] - x[100:], axis=1)
    projected = np.linalg.norm((x[:100] - x[100:]) @ matrix, axis=1)
    assert np.abs(projected / original - 1.0).max() < 0.35
    np.testing.assert_array_equal(random_projection(64, 128, seed=0), np.eye(64, dtype=np.float32))


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, size=(40, dim))
    x = centres[rng.integers(40, size=n)] + rng.normal(0.0, 0.5, size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_chunked_bank_covers_the_data_about_as_well_as_one_greedy_pass():
    x = clustered(6000, 64, seed=5)
    builder = MemoryBankBuilder(0.1, seed=0, chunk_patches=1000)
    for batch in np.array_split(x, 24):  # uneven batches of ~250 rows
        builder.add(batch)
    bank = builder.finish()
    assert builder.n_seen == 6000
    assert bank.dtype == np.float32 and bank.shape[1] == 64
    # Kept rows are real data rows, and ratio × seen of them (rounded per chunk).
    assert abs(len(bank) - 600) <= 6
    assert np.isin(bank.view([("", bank.dtype)] * 64), x.view([("", x.dtype)] * 64)).all()
    single = covering_radius(x, x[greedy_coreset(x, len(bank), seed=0)])
    chunked = covering_radius(x, bank)
    assert chunked <= 1.25 * single, (chunked, single)
    random_rows = x[np.random.default_rng(0).choice(6000, len(bank), replace=False)]
    assert chunked < covering_radius(x, random_rows)


@pytest.mark.parametrize("ratio", [0.01, 0.1, 0.25, 1.0])
def test_bank_keeps_ratio_times_seen_rows(ratio):
    builder = MemoryBankBuilder(ratio, seed=1, chunk_patches=1024)
    x = clustered(4096 + 512, 32, seed=6)  # four full chunks and a partial one
    for batch in np.split(x, 9):
        builder.add(batch.reshape(2, -1, 32))  # (B, h*w, C) like patch grids: rows are flattened
    bank = builder.finish()
    assert len(bank) == 4 * max(1, round(ratio * 1024)) + max(1, round(ratio * 512))


def test_memory_stays_bounded_by_one_chunk_plus_the_kept_rows():
    """Feeding 8× more data must not need 8× the memory: only the coreset grows."""
    dim, chunk, batch = 128, 4096, 512

    def peak_bytes(n_batches: int) -> tuple[int, int]:
        builder = MemoryBankBuilder(0.05, seed=0, chunk_patches=chunk)
        rng = np.random.default_rng(0)
        tracemalloc.start()
        try:
            for _ in range(n_batches):
                builder.add(rng.standard_normal((batch, dim), dtype=np.float32))
            bank = builder.finish()
            return tracemalloc.get_traced_memory()[1], bank.nbytes
        finally:
            tracemalloc.stop()

    peak_bytes(8)  # first use: compilation and thread start-up allocate once
    small_peak, _ = peak_bytes(32)  # 4 chunks
    large_peak, large_bank = peak_bytes(256)  # 32 chunks, 64 MiB of embeddings in total
    seen_bytes = 256 * batch * dim * 4
    assert large_bank == pytest.approx(0.05 * seen_bytes, rel=0.01)
    assert large_peak < seen_bytes / 4
    assert large_peak < small_peak + 2 * large_bank + chunk * dim * 4


def test_builder_refuses_bad_ratio_and_empty_input():
    for ratio in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="ratio"):
            MemoryBankBuilder(ratio, seed=0)
    with pytest.raises(ValueError, match="no patch embeddings"):
        MemoryBankBuilder(0.1, seed=0).finish()


def test_the_tensor_version_for_gpus_makes_the_same_choices_on_the_cpu():
    """What a CUDA fit runs, checked on the CPU: same start, same farthest-point rule."""
    import torch

    from anomalia.core.coreset import greedy_coreset_torch

    x = np.random.default_rng(11).standard_normal((3000, 24)).astype(np.float32)
    numba_pick = greedy_coreset(x, 150, seed=4)
    torch_pick = greedy_coreset_torch(x, 150, seed=4, device="cpu")
    assert torch_pick[0] == numba_pick[0] and len(set(torch_pick.tolist())) == 150
    assert (torch_pick == numba_pick).mean() > 0.9  # only float near-ties may go the other way
    assert covering_radius(x, x[torch_pick]) == pytest.approx(covering_radius(x, x[numba_pick]), rel=0.05)
    with pytest.raises(ValueError):
        greedy_coreset_torch(x, 0, seed=0, device=torch.device("cpu"))
