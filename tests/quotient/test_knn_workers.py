"""The exact k-NN and the FAISS re-ranking on several threads (one intra-op thread each), and the
solver-free exact distance of pairs whose rows have distinct nearest columns."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from invlatent import Permutation, quotient_knn
from invlatent._threads import intra_op_threads, map_blocks
from invlatent.quotient._knn import exact_sq


def _scipy_sq(a: np.ndarray, b: np.ndarray) -> float:
    cost = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    r, c = linear_sum_assignment(cost)
    return float(cost[r, c].sum())


@st.composite
def latents(draw):
    N = draw(st.integers(4, 60))
    n = draw(st.integers(1, 7))
    c = draw(st.integers(1, 4))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    Z = torch.randn(N, n, c, generator=g, dtype=torch.float64)
    if draw(st.booleans()):  # clustered, so that clusters and groups prune
        Z = torch.randn(4, n, c, generator=g, dtype=torch.float64)[torch.randint(0, 4, (N,), generator=g)] + 0.05 * Z
    if draw(st.booleans()):  # a node-permuted duplicate: an exact tie
        Z[1] = Z[0][torch.randperm(n, generator=g)]
    mask = torch.arange(n)[None] < torch.randint(1, n + 1, (N,), generator=g)[:, None]
    return Z, (mask if draw(st.booleans()) else None), draw(st.integers(1, min(8, N - 1)))


@settings(max_examples=40, deadline=None)
@given(data=latents(), workers=st.integers(2, 4))
def test_workers_do_not_change_the_result(data, workers):
    """Each pair's distance is evaluated on its own, in a fixed order, whatever block or thread
    solves it (elementwise operations only, no reduction across pairs, one process); the threads
    only split the query blocks, so the lists and values are identical, bit for bit."""
    Z, mask, k = data
    one = quotient_knn(Z, k, Permutation(), mask=mask, workers=1)
    many = quotient_knn(Z, k, Permutation(), mask=mask, workers=workers, memory_budget=1 << 20)
    assert torch.equal(one[1], many[1]) and torch.equal(one[0], many[0])


def test_solver_free_pairs_are_optimal():
    """Near-duplicates up to a node order (rows have distinct nearest columns: no solver) and
    unrelated pairs (mostly the solver), against scipy's Hungarian solver, pair by pair."""
    g = torch.Generator().manual_seed(3)
    P, n, c = 400, 9, 4
    a = torch.randn(P, n, c, generator=g, dtype=torch.float64)
    perm = torch.argsort(torch.rand(P, n, generator=g), 1)
    near = a.gather(1, perm[..., None].expand(-1, -1, c)) + 1e-3 * torch.randn(P, n, c, generator=g, dtype=torch.float64)
    far = torch.randn(P, n, c, generator=g, dtype=torch.float64)
    for b, expect_solver in ((near, False), (far, True)):
        counts = {}
        got = exact_sq(a, b, "scipy", counts).numpy()
        ref = np.array([_scipy_sq(x, y) for x, y in zip(a.numpy(), b.numpy())])
        # two optimal matchings summed in different orders: float64 round-off of ~n terms
        assert np.allclose(got, ref, rtol=1e-12, atol=1e-14)
        if expect_solver:
            assert counts["solver_pairs"] > 0.9 * P, counts  # random pairs rarely have distinct nearest columns
        else:
            assert counts["solver_pairs"] == 0, counts


def test_solver_free_check_rejects_shared_nearest_columns():
    """Two rows with the same nearest column: the row minima are not a matching, and the pair
    goes to the solver (the greedy answer 0 + 0 would be wrong: the optimum is 1)."""
    a = torch.tensor([[[0.0, 0.0], [0.1, 0.0]]], dtype=torch.float64)
    b = torch.tensor([[[0.05, 0.0], [1.05, 0.0]]], dtype=torch.float64)
    counts = {}
    got = float(exact_sq(a, b, "scipy", counts)[0])
    assert counts["solver_pairs"] == 1
    assert got == pytest.approx(_scipy_sq(a[0].numpy(), b[0].numpy()), rel=1e-12)


def test_intra_op_threads_restores_the_count():
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with intra_op_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), intra_op_threads(1):
            raise RuntimeError("inside")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)


def test_map_blocks_keeps_order_and_uses_one_intra_op_thread():
    seen = []

    def fn(x):
        seen.append(torch.get_num_threads())
        return x * x

    assert map_blocks(fn, list(range(50)), workers=3) == [x * x for x in range(50)]
    assert map_blocks(fn, [4], workers=1) == [16]
    assert set(seen) == {1}


def test_index_search_workers_do_not_change_the_result():
    pytest.importorskip("faiss")
    from invlatent.quotient import QuotientIndex

    g = torch.Generator().manual_seed(4)
    Z = torch.randn(20, 6, 3, generator=g, dtype=torch.float64)[torch.randint(0, 20, (3000,), generator=g)]
    Z = Z + 0.05 * torch.randn(3000, 6, 3, generator=g, dtype=torch.float64)
    index = QuotientIndex("hnsw")
    index.add(Z)
    ex = torch.arange(3000)
    one = index.search(Z, 5, exclude=ex, batch=256, workers=1)
    two = index.search(Z, 5, exclude=ex, batch=256, workers=2)
    # exact equality is right here: the same batches, and each re-ranked distance is evaluated
    # pair by pair with elementwise operations in a fixed order (no reduction across pairs),
    # in one process, so the thread a batch runs on cannot change a bit of it
    assert torch.equal(one[1], two[1]) and torch.equal(one[0], two[0])


def test_bad_workers():
    Z = torch.randn(20, 3, 2)
    with pytest.raises(TypeError, match="workers must be an int"):
        quotient_knn(Z, 3, Permutation(), workers=1.5)
    with pytest.raises(ValueError, match="workers must be a positive int"):
        quotient_knn(Z, 3, Permutation(), workers=0)


@settings(max_examples=40, deadline=None)
@given(data=latents(), hood=st.integers(1, 4), leaf=st.integers(1, 5))
def test_neighbourhood_certificate_equals_brute_force(data, hood, leaf):
    """Neighbourhoods of 1-4 clusters (of 1-5 latents): blocks either prove that no cluster outside
    their neighbourhood holds a neighbour or measure all clusters; either way the lists are those
    of sorting the brute-force matrix (scipy's solver, ties by index)."""
    import invlatent.quotient._knn as knn_mod

    Z, mask, k = data
    Zm = (Z if mask is None else Z.masked_fill(~mask[..., None], 0)).double()
    stats = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(knn_mod, "_HOOD", hood)
        d, idx = knn_mod.knn_permutation(Zm, k, 4, min(len(Z) - 1, k + 2), "scipy", stats, leaf=leaf)
    ref = np.full((len(Z), len(Z)), np.inf)
    for i in range(len(Z)):
        for j in range(len(Z)):
            if i != j:
                ref[i, j] = _scipy_sq(Zm[i].numpy(), Zm[j].numpy())
    order = np.argsort(ref, axis=1, kind="stable")[:, :k]
    assert (idx.numpy() == order).all()
    assert np.allclose(d.numpy() ** 2, np.take_along_axis(ref, order, 1), rtol=1e-10, atol=1e-12)
    assert 0 <= stats["wide_blocks"] <= stats["blocks"]


def test_neighbourhoods_prune_on_clustered_latents():
    """Well-separated families: most blocks need only their neighbourhood (the K x K pass is done
    once, not per block)."""
    g = torch.Generator().manual_seed(6)
    lab = torch.randint(0, 60, (3000,), generator=g)
    Z = 3 * torch.randn(60, 6, 3, generator=g, dtype=torch.float64)[lab]
    Z = Z + 0.05 * torch.randn(3000, 6, 3, generator=g, dtype=torch.float64)
    stats = {}
    quotient_knn(Z, 5, Permutation(), stats=stats, workers=1)
    assert stats["clusters"] > 48 and stats["wide_blocks"] < 0.2 * stats["blocks"], stats
