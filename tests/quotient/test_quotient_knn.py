"""quotient_knn (bounds + exact assignment) against brute force over all pairs, and the batched solvers."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from invlatent import Cyclic, Permutation, pairwise_quotient_distance, quotient_knn
from invlatent.quotient._batched_assignment import have_lapx, solve_assignment


def _brute_force(Z: np.ndarray, k: int):
    """All ordered pairs by scipy; the value summed over the query's rows in order (float64)."""
    N, n, c = Z.shape
    D = np.full((N, N), np.inf)
    for i in range(N):
        for j in range(N):
            if i == j:
                continue
            cost = np.zeros((n, n))
            for ch in range(c):
                d = Z[i, :, ch][:, None] - Z[j, :, ch][None, :]
                cost = d * d if ch == 0 else cost + d * d
            r, col = linear_sum_assignment(cost)
            v = cost[0, col[0]]
            for row in range(1, n):
                v = v + cost[row, col[row]]
            D[i, j] = v
    order = np.argsort(D, axis=1, kind="stable")[:, :k]  # ties by index
    return np.sqrt(np.take_along_axis(D, order, 1)), order


@st.composite
def latents(draw):
    N = draw(st.integers(2, 24))
    n = draw(st.integers(1, 6))
    c = draw(st.integers(1, 4))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    Z = torch.randn(N, n, c, generator=g, dtype=dtype)
    if draw(st.booleans()):  # clustered: a few centres plus small noise
        centres = torch.randn(3, n, c, generator=g, dtype=dtype)
        Z = centres[torch.randint(0, 3, (N,), generator=g)] + 0.05 * Z
    if draw(st.booleans()) and N >= 3:  # exact duplicates up to a node permutation: ties
        Z[1] = Z[0][torch.randperm(n, generator=g)]
    counts = torch.randint(1, n + 1, (N,), generator=g)
    mask = torch.arange(n)[None, :] < counts[:, None] if draw(st.booleans()) else None
    k = draw(st.integers(1, N - 1))
    return Z, mask, k


@settings(max_examples=80, deadline=None)
@given(data=latents(), block=st.integers(1, 9), first=st.integers(0, 5))
def test_knn_equals_brute_force(data, block, first):
    Z, mask, k = data
    d, idx = quotient_knn(Z, k, Permutation(), mask=mask, block_size=block, first_candidates=k + first, solver="scipy")
    Zm = Z if mask is None else Z.masked_fill(~mask[..., None], 0)
    ref_d, ref_i = _brute_force(Zm.double().numpy(), k)
    assert d.dtype == Z.dtype and d.shape == idx.shape == (len(Z), k)
    assert (idx.numpy() == ref_i).all()
    assert np.allclose(d.double().numpy(), ref_d, rtol=1e-6 if Z.dtype == torch.float32 else 1e-12, atol=1e-12)
    # and the same distances as the public all-pairs function (its own summation order: tolerance)
    D = pairwise_quotient_distance(Zm.double(), None, Permutation())
    assert torch.allclose(D.gather(1, idx), d.double(), atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(data=latents(), leaf=st.integers(1, 6), block=st.integers(1, 9))
def test_cluster_pruning_equals_brute_force(data, leaf, block):
    """Small clusters (``leaf``) so that the cluster bound prunes at these sizes."""
    from invlatent.quotient._knn import knn_permutation

    Z, mask, k = data
    Zm = (Z if mask is None else Z.masked_fill(~mask[..., None], 0)).double()
    d, idx = knn_permutation(Zm, k, block, k + 2 if k + 2 < len(Z) else k, "scipy", None, leaf=leaf)
    ref_d, ref_i = _brute_force(Zm.numpy(), k)
    assert (idx.numpy() == ref_i).all()
    assert np.allclose(d.numpy(), ref_d, rtol=1e-12, atol=1e-12)


def test_cluster_pruning_prunes_and_is_exact_on_clustered_latents():
    """300 latents in 6 tight clusters, random node orders and per-cluster masks: identical lists
    to sorting the brute-force matrix, and most pairs never get a bound computed."""
    from invlatent.quotient._knn import exact_sq

    g = torch.Generator().manual_seed(5)
    N, n, c, C = 300, 9, 4, 6
    lab = torch.randint(0, C, (N,), generator=g)
    counts = torch.randint(3, n + 1, (C,), generator=g)[lab]
    Z = torch.randn(C, n, c, generator=g, dtype=torch.float64)[lab] + 0.05 * torch.randn(N, n, c, generator=g,
                                                                                          dtype=torch.float64)
    mask = torch.arange(n)[None] < counts[:, None]
    perm = torch.argsort(torch.rand(N, n, generator=g), 1)
    Z, mask = Z.gather(1, perm[..., None].expand(-1, -1, c)), mask.gather(1, perm)
    stats = {}
    d, idx = quotient_knn(Z, 5, Permutation(), mask=mask, stats=stats)
    Zm = Z.masked_fill(~mask[..., None], 0)
    iu = torch.triu_indices(N, N, 1)
    D = torch.full((N, N), float("inf"), dtype=torch.float64)
    D[iu[0], iu[1]] = exact_sq(Zm[iu[0]], Zm[iu[1]], solver="scipy")
    D[iu[1], iu[0]] = exact_sq(Zm[iu[1]], Zm[iu[0]], solver="scipy")  # query rows first, as in quotient_knn
    ref_d, ref_i = D.sort(dim=1, stable=True)
    # indices exactly (integers); distances to float64 round-off: the two sides may sum an optimal
    # matching found by different solvers (lapx / scipy), equal up to the last bits
    assert torch.equal(idx, ref_i[:, :5])
    assert torch.allclose(d, ref_d[:, :5].sqrt(), rtol=1e-12, atol=1e-12)
    assert stats["clusters"] > 1 and stats["bound_pairs"] < 0.5 * stats["all_pairs"], stats


def test_knn_lapx_solver_matches_scipy():
    if not have_lapx():
        pytest.skip("optional dependency lapx not installed")
    g = torch.Generator().manual_seed(3)
    Z = torch.randn(150, 9, 4, generator=g, dtype=torch.float64)
    mask = torch.arange(9)[None] < torch.randint(1, 10, (150,), generator=g)[:, None]
    a = quotient_knn(Z, 10, Permutation(), mask=mask, solver="lapx")
    b = quotient_knn(Z, 10, Permutation(), mask=mask, solver="scipy")
    # padded query rows make optimal permutations non-unique: equal totals summed in another
    # order can differ in the last bit, so distances are compared to round-off
    assert torch.equal(a[1], b[1]) and torch.allclose(a[0], b[0], rtol=1e-13, atol=0)


@settings(max_examples=40, deadline=None)
@given(B=st.integers(0, 30), n=st.integers(1, 9), ties=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_solvers_are_optimal(B, n, ties, seed):
    rng = np.random.default_rng(seed)
    C = rng.integers(0, 3, (B, n, n)).astype(np.float64) if ties else rng.random((B, n, n))
    if B and n > 1:
        C[0, :, n // 2:] = 0.0  # zero columns, as padded nodes give
    ref = np.array([c[linear_sum_assignment(c)].sum() for c in C])
    for solver in ["scipy"] + (["lapx"] if have_lapx() else []):
        perm = solve_assignment(C, solver)
        assert perm.shape == (B, n)
        assert all(sorted(p) == list(range(n)) for p in perm)  # permutations
        assert np.allclose(np.take_along_axis(C, perm[:, :, None], 2).sum((1, 2)), ref, atol=1e-12)


def test_knn_other_groups_and_bad_input():
    Z = torch.randn(20, 2, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    d, idx = quotient_knn(Z, 3, Cyclic(8))
    D = pairwise_quotient_distance(Z, None, Cyclic(8))
    D.fill_diagonal_(float("inf"))
    ref_d, ref_i = D.sort(dim=1, stable=True)
    assert torch.equal(idx, ref_i[:, :3]) and torch.allclose(d, ref_d[:, :3])
    with pytest.raises(ValueError, match="k must be"):
        quotient_knn(Z, 20, Cyclic(8))
    with pytest.raises(ValueError, match="mask is only defined"):
        quotient_knn(Z, 2, Cyclic(8), mask=torch.ones(20, 2, dtype=torch.bool))
    with pytest.raises(TypeError):
        quotient_knn(torch.zeros(5, 3, 2), 2, Permutation(), mask=torch.ones(5, 3))
    with pytest.raises(ValueError, match="solver"):
        solve_assignment(np.zeros((2, 3, 3)), "fast")
