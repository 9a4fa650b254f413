"""Contract suite every kNN index kind must pass, plus recall of the approximate ones."""

from __future__ import annotations

import numpy as np
import pytest

from anomalia.core.knn import NearestNeighbours, available_indexes, recall_at_k

KINDS = available_indexes()
APPROXIMATE = [kind for kind in KINDS if kind != "exact"]


def unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def structured_bank(n: int, *, dim: int = 384, clusters: int = 64, rank: int = 16, seed: int = 0) -> np.ndarray:
    """L2-normalised rows on ``clusters`` low-rank blobs: shaped like patch embeddings, not like
    uniform noise (on which no index, exact or not, has meaningful neighbours)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    basis = (rng.standard_normal((rank, dim)) / np.sqrt(rank)).astype(np.float32)
    x = centres[rng.integers(clusters, size=n)] + 0.8 * rng.standard_normal((n, rank)).astype(np.float32) @ basis
    x += 0.05 * rng.standard_normal((n, dim)).astype(np.float32)
    return unit_rows(x)


def brute_force_sorted(bank: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``(Q, N)`` Euclidean distances, each row ascending, in float64."""
    diff = queries.astype(np.float64)[:, None, :] - bank.astype(np.float64)[None, :, :]
    return np.sort(np.sqrt((diff**2).sum(-1)), axis=1)


@pytest.fixture(scope="module")
def small():
    data = structured_bank(700, dim=32, clusters=8, rank=4, seed=3)
    return data[:600], data[600:]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("k", [1, 3, 9])
def test_mean_distance_matches_brute_force(kind, k, small):
    bank, queries = small
    got = NearestNeighbours.build(bank, kind=kind).mean_distance(queries, k)
    expected = brute_force_sorted(bank, queries)[:, :k].mean(1)
    assert got.shape == (len(queries),)
    # An approximate index may miss a neighbour, never find a closer one than exists.
    assert np.all(got >= expected - 1e-4)
    close = np.isclose(got, expected, atol=1e-4)
    assert close.mean() >= (1.0 if kind == "exact" else 0.95), f"{kind}: {close.mean():.3f} of queries exact"


@pytest.mark.parametrize("kind", KINDS)
def test_cosine_is_half_the_squared_l2_and_matches_one_minus_cos(kind, small):
    bank, queries = small
    k = 4
    cosine = NearestNeighbours.build(bank, kind=kind, distance="cosine").mean_distance(queries, k)
    l2 = NearestNeighbours.build(bank, kind=kind, distance="l2")
    nearest = brute_force_sorted(bank, queries)[:, :k]
    one_minus_cos = np.sort(1.0 - queries.astype(np.float64) @ bank.T.astype(np.float64), axis=1)[:, :k].mean(1)
    ok = np.isclose(cosine, one_minus_cos, atol=1e-4)
    assert ok.mean() >= (1.0 if kind == "exact" else 0.95)
    np.testing.assert_allclose((nearest**2 / 2).mean(1)[ok], one_minus_cos[ok], atol=1e-6)
    # Same neighbours, different scale: cosine(d) = d²/2 with d < √2 means cosine < l2 here.
    assert np.all(cosine < l2.mean_distance(queries, k))


@pytest.mark.parametrize("kind", KINDS)
def test_serialisation_round_trip_gives_identical_results(kind, small):
    bank, queries = small
    original = NearestNeighbours.build(bank, kind=kind, distance="cosine")
    data = original.to_bytes()
    assert isinstance(data, bytes) and len(data) > bank.nbytes // 2
    restored = NearestNeighbours.from_bytes(data, "cosine")
    assert restored.size == original.size == len(bank)
    np.testing.assert_array_equal(restored.mean_distance(queries, 3), original.mean_distance(queries, 3))
    np.testing.assert_array_equal(restored.neighbours(queries, 3), original.neighbours(queries, 3))


@pytest.mark.parametrize("kind", KINDS)
def test_k_outside_one_to_bank_size_is_refused(kind):
    bank = structured_bank(50, dim=16, clusters=2, rank=2)
    index = NearestNeighbours.build(bank, kind=kind)
    assert index.mean_distance(bank[:2], 50).shape == (2,)
    for k in (0, 51):
        with pytest.raises(ValueError, match="bank size"):
            index.mean_distance(bank[:2], k)


@pytest.mark.parametrize("kind", KINDS)
def test_build_is_deterministic_for_a_seed(kind, small):
    bank, queries = small
    first = NearestNeighbours.build(bank, kind=kind, seed=5).neighbours(queries, 3)
    second = NearestNeighbours.build(bank, kind=kind, seed=5).neighbours(queries, 3)
    np.testing.assert_array_equal(first, second)


def test_unknown_kind_and_distance_list_the_valid_ones(small):
    bank, _ = small
    with pytest.raises(ValueError) as error:
        NearestNeighbours.build(bank, kind="annoy")
    assert all(kind in str(error.value) for kind in KINDS)
    with pytest.raises(ValueError, match="l2, cosine"):
        NearestNeighbours.build(bank, distance="manhattan")


def test_the_registry_has_exact_and_an_approximate_kind():
    assert "exact" in KINDS and {"hnsw", "ivf"} <= set(KINDS)


@pytest.fixture(scope="module")
def realistic():
    """A 20 000 × 384 bank (a coreset of ~200 images at 256 px) and 500 unseen queries."""
    data = structured_bank(20_500, seed=11)
    bank, queries = data[:20_000], data[20_000:]
    exact_ids = NearestNeighbours.build(bank).neighbours(queries, 3)
    return bank, queries, exact_ids


@pytest.mark.slow
@pytest.mark.parametrize("kind", APPROXIMATE)
def test_approximate_recall_at_k_is_at_least_095(kind, realistic):
    bank, queries, exact_ids = realistic
    index = NearestNeighbours.build(bank, kind=kind, seed=0)
    recall = recall_at_k(exact_ids, index.neighbours(queries, 3))
    assert recall >= 0.95, f"{kind} recall@3 = {recall:.3f}"
    # The mean-distance patch score it feeds is unchanged for (almost) every query.
    exact_scores = NearestNeighbours.build(bank).mean_distance(queries, 3)
    assert np.isclose(index.mean_distance(queries, 3), exact_scores, atol=1e-4).mean() >= 0.95


def test_recall_at_k_counts_shared_ids():
    exact = np.array([[1, 2, 3], [4, 5, 6]])
    assert recall_at_k(exact, exact) == 1.0
    assert recall_at_k(exact, np.array([[3, 2, 9], [7, 8, 9]])) == pytest.approx(2 / 6)


def test_ivf_keeps_about_64_vectors_per_list_and_probes_16(small):
    """README "Speed": inverted lists of ~64 vectors, 16 of them probed (all when there are fewer)."""
    bank, _ = small
    index = NearestNeighbours.build(bank, kind="ivf").index
    assert (index.nlist, index.nprobe) == (600 // 64, 600 // 64)
    large = NearestNeighbours.build(structured_bank(2048, dim=16, seed=5), kind="ivf").index
    assert (large.nlist, large.nprobe) == (32, 16)


def test_the_default_seed_is_zero():
    """On unstructured vectors with 16 of 32 lists probed the training seed shows in the results."""
    vectors = unit_rows(np.random.default_rng(0).standard_normal((2400, 16)))
    bank, queries = vectors[:2048], vectors[2048:]

    def found(**seed) -> np.ndarray:
        return NearestNeighbours.build(bank, kind="ivf", **seed).neighbours(queries, 5)

    np.testing.assert_array_equal(found(), found(seed=0))
    assert (found(seed=1) != found(seed=0)).any()


def test_an_unknown_kind_gets_the_exact_list(small):
    with pytest.raises(ValueError, match="^unknown kNN index 'annoy'; choose one of: auto, exact, hnsw, hnsw_pca, ivf$"):
        NearestNeighbours.build(small[0], kind="annoy")


@pytest.mark.parametrize("k", [1, 3, 9])
def test_exact_search_in_torch_matches_faiss_flat_index(k, monkeypatch):
    """The matmul + top-k search (what CUDA runs, and the CPU too) against faiss's own flat index,
    with blocks of queries small enough that the block loop is exercised."""
    import faiss

    import anomalia.core.knn as knn

    monkeypatch.setattr(knn, "QUERY_BLOCK_ELEMENTS", 600 * 7)  # 7 queries per block
    bank = structured_bank(600, dim=48, clusters=12, rank=6, seed=5)
    queries = structured_bank(50, dim=48, clusters=12, rank=6, seed=6)
    flat = faiss.IndexFlatL2(48)
    flat.add(bank)
    want_d, want_i = flat.search(queries, k)
    got_d, got_i = knn.ExactSearch(bank).search(queries, k)
    assert got_i.shape == (50, k) and got_i.dtype == np.int64
    np.testing.assert_allclose(got_d, want_d, rtol=1e-4, atol=1e-5)
    assert (got_i == want_i).mean() > 0.99  # only exact ties may swap


def test_a_flat_index_is_searched_by_the_torch_search_even_after_a_round_trip():
    bank = structured_bank(300, dim=16, clusters=4, rank=3, seed=7)
    index = NearestNeighbours.build(bank, kind="exact")
    loaded = NearestNeighbours.from_bytes(index.to_bytes(), "l2")  # vectors rebuilt from the faiss file
    assert index.exact is not None and loaded.exact is not None
    queries = structured_bank(20, dim=16, clusters=4, rank=3, seed=8)
    np.testing.assert_allclose(loaded.search(queries, 2)[0], index.search(queries, 2)[0], rtol=1e-5)
    assert NearestNeighbours.build(bank, kind="hnsw").exact is None


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_exact_search_on_cuda_matches_the_cpu():
    bank = structured_bank(5000, dim=384, seed=9)
    queries = structured_bank(1024, dim=384, seed=10)
    cpu_d, cpu_i = NearestNeighbours.build(bank).search(queries, 3)
    gpu_d, gpu_i = NearestNeighbours.build(bank, device="cuda").search(queries, 3)
    np.testing.assert_allclose(gpu_d, cpu_d, rtol=1e-4, atol=1e-5)
    assert (gpu_i == cpu_i).mean() > 0.99


def test_auto_keeps_a_small_bank_exact_and_takes_the_fastest_index_that_keeps_the_recall(monkeypatch):
    import anomalia.core.knn as knn

    bank = structured_bank(6000, dim=64, clusters=16, rank=4, seed=11)
    probes = structured_bank(2048, dim=64, clusters=16, rank=4, seed=12)
    monkeypatch.setattr(knn, "AUTO_EXACT_MAX_ROWS", 10_000)
    index, report = knn.auto_index(bank, probes, 1)
    assert index.exact is not None and report["kind"] == "exact" and report["bank_rows"] == 6000
    monkeypatch.setattr(knn, "AUTO_EXACT_MAX_ROWS", 1000)
    index, report = knn.auto_index(bank, probes, 1)
    timings = report["measured_ms"]
    assert "exact" in timings and any(name.startswith(("hnsw", "ivf")) for name in timings)
    if report["kind"] != "exact":  # taken only because it beat exact search, as measured
        chosen = f"{report['kind']} {' '.join(f'{k} {v}' for k, v in report['setting'].items())}"
        assert timings[chosen] < timings["exact"] and timings[chosen] == min(timings.values())
    truth = NearestNeighbours.build(bank).neighbours(probes, 1)
    assert recall_at_k(truth, index.neighbours(probes, 1)) >= 0.99
    if report["kind"] != "exact":
        loaded = NearestNeighbours.from_bytes(index.to_bytes(), "l2")  # the search effort is saved with it
        assert (loaded.neighbours(probes, 1) == index.neighbours(probes, 1)).all()
    monkeypatch.setattr(knn, "AUTO_MIN_RECALL", 1.01)  # unreachable: exact search, and the report says why
    index, report = knn.auto_index(bank, probes, 1)
    assert index.exact is not None and report["kind"] == "exact" and len(report["refused"]) == 3
    assert [r.split(":")[0] for r in report["refused"]] == ["hnsw_pca dims 16", "hnsw_pca dims 64", "ivf"]


def test_a_fit_with_auto_records_its_choice(good_images):
    from anomalia.core.detector import PatchCore, PatchCoreConfig

    detector = PatchCore(PatchCoreConfig(weights="random", knn_index="auto", holdout_fraction=0.0)).fit(good_images[:4])
    assert detector.knn_report_["requested"] == "auto" and detector.knn_report_["kind"] == "exact"
    assert detector.knn_report_["probe_patches"] == 4 * 64 and detector.knn_.exact is not None


@pytest.mark.parametrize("k", [1, 3])
def test_behind_an_approximate_index_each_images_largest_distance_is_the_exact_one(k):
    """An IVF probing 1 list of many misses neighbours (inflated distances); the image's maximum,
    what its score reads, must still be exact search's."""
    bank = structured_bank(4000, dim=32, clusters=16, rank=4, seed=21)
    images = structured_bank(4 * 256, dim=32, clusters=16, rank=4, seed=22).reshape(4, 256, 32)
    poor = NearestNeighbours.build(bank, kind="ivf")
    poor.index.nprobe = 1
    exact = NearestNeighbours.build(bank)
    raw = poor.search(images.reshape(-1, 32), k)[0].mean(axis=1).reshape(4, 256)
    truth = exact.search(images.reshape(-1, 32), k)[0].mean(axis=1).reshape(4, 256)
    assert (raw > truth + 1e-4).mean() > 0.05  # the index really is poor: the test means something
    refined = poor.search_images(images, k)[0].mean(axis=2)
    np.testing.assert_allclose(refined.max(axis=1), truth.max(axis=1), rtol=1e-5)
    assert (refined >= truth - 1e-5).all()  # never below exact: only upper bounds or exact values


@pytest.mark.parametrize("kind", ["exact", "hnsw", "hnsw_pca", "ivf"])
def test_adding_rows_to_an_index_finds_them(kind):
    bank = structured_bank(1200, dim=32, clusters=8, rank=4, seed=31)
    index = NearestNeighbours.build(bank[:1000], kind=kind)
    index.add(bank[1000:], bank)
    assert index.size == 1200
    found = index.neighbours(bank[1000:1100], 1)[:, 0]
    assert (found == np.arange(1000, 1100)).mean() > 0.95  # each added row is its own nearest neighbour


@pytest.mark.parametrize("dims", [8, 32])
@pytest.mark.parametrize("k", [1, 3])
def test_pruned_exact_search_equals_exact_search(dims, k):
    """The PCA lower bound only skips rows that cannot be neighbours: same distances and rows as
    exact search, from any upper bound at least the exact k-th distance (here exactly it, 1.5x it, and
    +inf: float32 rounding of the bound must never drop the true neighbour)."""
    from anomalia.core.knn import ExactSearch, PrunedExactSearch, _pretransform_of

    bank = structured_bank(3000, dim=32, clusters=12, rank=6, seed=41)
    queries = structured_bank(64, dim=32, clusters=12, rank=6, seed=42)
    queries[:8] += 0.5  # far from every row, as an anomalous patch is: the bound prunes less there
    index = NearestNeighbours.build(bank, kind="hnsw_pca", dims=dims)
    pruned = PrunedExactSearch(bank, _pretransform_of(index.index))
    want_d, want_i = ExactSearch(bank).search(queries, k)
    for upper in (want_d[:, -1], want_d[:, -1] * 1.5, np.full(len(queries), np.inf)):
        got_d, got_i = pruned.search(queries, k, upper)
        np.testing.assert_allclose(got_d, want_d, rtol=1e-5, atol=1e-6)
        assert (got_i == want_i).mean() > 0.99  # only exact ties may swap


@pytest.mark.parametrize("k", [1, 3])
def test_hnsw_pca_behind_few_dimensions_keeps_each_images_largest_distance_exact(k):
    """A 4-of-32-dimension graph re-ranking 2 candidates misses neighbours; the refinement through
    the pruned exact search still gives each image's maximum exactly."""
    import anomalia.core.knn as knn

    bank = structured_bank(4000, dim=32, clusters=16, rank=4, seed=21)
    images = structured_bank(4 * 256, dim=32, clusters=16, rank=4, seed=22).reshape(4, 256, 32)
    poor = NearestNeighbours.build(bank, kind="hnsw_pca", dims=4)
    knn._apply(poor, {"efSearch": 4, "k_factor": 1})
    truth = NearestNeighbours.build(bank).search(images.reshape(-1, 32), k)[0].mean(axis=1).reshape(4, 256)
    raw = poor.search(images.reshape(-1, 32), k)[0].mean(axis=1).reshape(4, 256)
    assert (raw > truth + 1e-4).mean() > 0.05
    refined = poor.search_images(images, k)[0].mean(axis=2)
    assert isinstance(poor._refiner, knn.PrunedExactSearch)
    np.testing.assert_allclose(refined.max(axis=1), truth.max(axis=1), rtol=1e-5)
    assert (refined >= truth - 1e-5).all()


def test_hnsw_pca_round_trip_keeps_its_search_settings_and_results():
    import anomalia.core.knn as knn

    bank = structured_bank(3000, dim=64, clusters=16, rank=4, seed=51)
    queries = structured_bank(300, dim=64, clusters=16, rank=4, seed=52)
    for dims, setting in ((64, {"efSearch": 24}), (16, {"efSearch": 20, "k_factor": 7})):
        index = NearestNeighbours.build(bank, kind="hnsw_pca", dims=dims)
        knn._apply(index, setting)
        loaded = NearestNeighbours.from_bytes(index.to_bytes(), "l2", bank=bank)
        assert knn._hnsw_of(loaded.index).hnsw.efSearch == setting["efSearch"]
        if "k_factor" in setting:
            assert knn.faiss.downcast_index(loaded.index).k_factor == 7
        assert loaded.exact is None and knn._pretransform_of(loaded.index) is not None
        np.testing.assert_array_equal(loaded.neighbours(queries, 3), index.neighbours(queries, 3))
        images = queries.reshape(3, 100, 64)
        np.testing.assert_array_equal(loaded.search_images(images, 2)[0], index.search_images(images, 2)[0])


def test_auto_builds_the_full_graph_only_when_the_reduced_one_needs_a_high_effort(monkeypatch):
    """The reduced-dimension graph comes first; the full one is built when it needed efSearch > 32 (or
    failed), and the faster of the two is kept; with a recall neither reaches, IVF, then exact search."""
    import anomalia.core.knn as knn

    bank = structured_bank(6000, dim=64, clusters=16, rank=4, seed=11)
    probes = structured_bank(2048, dim=64, clusters=16, rank=4, seed=12)
    monkeypatch.setattr(knn, "AUTO_EXACT_MAX_ROWS", 1000)
    built = []
    real_build = NearestNeighbours.build.__func__

    def recording_build(cls, bank, **options):
        built.append((options.get("kind"), options.get("dims")))
        return real_build(cls, bank, **options)

    monkeypatch.setattr(NearestNeighbours, "build", classmethod(recording_build))
    # search time is the machine's business, not the test's: every graph beats exact search here
    monkeypatch.setattr(knn, "_search_ms", lambda index, probes, k: 1000.0 if index.exact is not None else 1.0)
    monkeypatch.setattr(knn, "AUTO_TRY_NEXT_ABOVE_EF", 10_000)  # never: one graph only
    _, report = knn.auto_index(bank, probes, 1)
    assert built[:2] == [("exact", None), ("hnsw_pca", 16)]
    reduced_kept_recall = any(name.startswith("hnsw_pca dims 16") for name in report["measured_ms"])
    if reduced_kept_recall:  # it won (every graph beats exact here): nothing else was built
        assert report["setting"]["dims"] == 16 and built == [("exact", None), ("hnsw_pca", 16)]
    else:  # it failed the recall: the full graph was tried next
        assert report["refused"][0].startswith("hnsw_pca dims 16") and built[2] == ("hnsw_pca", 64)
    built.clear()
    monkeypatch.setattr(knn, "AUTO_TRY_NEXT_ABOVE_EF", 0)  # always: both graphs measured
    index, report = knn.auto_index(bank, probes, 1)
    assert built[:3] == [("exact", None), ("hnsw_pca", 16), ("hnsw_pca", 64)]
    assert (("ivf", None) in built) == (report["kind"] != "hnsw_pca")  # IVF only when no graph won
    graphs = {name: ms for name, ms in report["measured_ms"].items() if name.startswith("hnsw_pca")}
    if report["kind"] == "hnsw_pca":
        assert report["measured_ms"][" ".join(["hnsw_pca", *(f"{k} {v}" for k, v in report["setting"].items())])] \
            == min(graphs.values())
        assert report["recall_at_k"] >= 0.99


@pytest.mark.parametrize("k", [1, 3])
def test_the_truth_auto_measures_recall_against_is_exact_search(k):
    """``auto`` takes its truth through the first graph's PCA bound, not a full exact search: it must
    be exact search's neighbours all the same (a wrong truth would pass or fail any index)."""
    import anomalia.core.knn as knn

    bank = structured_bank(6000, dim=64, clusters=16, rank=4, seed=71)
    probes = structured_bank(1500, dim=64, clusters=16, rank=4, seed=72)
    probes[:100] += 0.3  # far from the bank, as an anomalous patch is
    exact = NearestNeighbours.build(bank)
    graph = NearestNeighbours.build(bank, kind="hnsw_pca", dims=16)
    knn._apply(graph, {"efSearch": 8, "k_factor": 1})  # a poor search: loose upper bounds
    truth = knn._true_neighbours(graph, exact, probes, k)
    want_d, want_i = exact.search(probes, k)
    got_d = np.sqrt(((bank[truth] - probes[:, None, :]) ** 2).sum(axis=2))
    np.testing.assert_allclose(got_d, want_d, rtol=1e-5, atol=1e-6)
    assert (truth == want_i).mean() > 0.99  # only exact ties may swap
    assert isinstance(graph._refiner, knn.PrunedExactSearch)  # kept for the first predict


def test_auto_falls_back_to_exact_when_no_approximate_index_keeps_the_recall(monkeypatch):
    import anomalia.core.knn as knn

    bank = structured_bank(3000, dim=32, clusters=8, rank=4, seed=61)
    probes = structured_bank(512, dim=32, clusters=8, rank=4, seed=62)
    monkeypatch.setattr(knn, "AUTO_EXACT_MAX_ROWS", 1000)
    monkeypatch.setattr(knn, "recall_at_k", lambda exact, approx: 0.5)  # every candidate misses half
    index, report = knn.auto_index(bank, probes, 1)
    assert index.exact is not None and report["kind"] == "exact" and report["recall_at_k"] == 1.0
    assert len(report["refused"]) == 3 and all("0.5000 < 0.99" in line for line in report["refused"])


def test_hnsw_pca_searches_without_torch(tmp_path):
    """A runtime-only install (no torch) loads an ``hnsw_pca`` index and gets the same distances,
    refinement included: faiss and numpy only."""
    import json
    import subprocess
    import sys

    bank = structured_bank(2000, dim=32, clusters=8, rank=4, seed=71)
    images = structured_bank(2 * 128, dim=32, clusters=8, rank=4, seed=72).reshape(2, 128, 32)
    index = NearestNeighbours.build(bank, kind="hnsw_pca", dims=8)
    (tmp_path / "index").write_bytes(index.to_bytes())
    np.save(tmp_path / "bank.npy", bank)
    np.save(tmp_path / "images.npy", images)
    script = (
        "import sys, json\n"
        "sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from anomalia.core.knn import NearestNeighbours\n"
        f"folder = {str(tmp_path)!r}\n"
        "bank = np.load(folder + '/bank.npy')\n"
        "index = NearestNeighbours.from_bytes(open(folder + '/index', 'rb').read(), 'l2', bank=bank)\n"
        "distances = index.search_images(np.load(folder + '/images.npy'), 2)[0]\n"
        "print(json.dumps({'torch': index._refiner is None or 'torch' in sys.modules and sys.modules['torch'] is not None,"
        " 'distances': distances.tolist()}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    answer = json.loads(done.stdout)
    assert answer["torch"] is False
    np.testing.assert_allclose(answer["distances"], index.search_images(images, 2)[0], rtol=1e-6)
