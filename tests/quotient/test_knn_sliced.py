"""Exact quotient k-NN by sliced sort bounds (``quotient_knn(method="sliced")``): the bound is a
lower bound for any orthonormal basis, and the lists equal an independent brute force (scipy's
``linear_sum_assignment`` on every pair) on small code-like data with masks, orbit-mates, exact
ties and distance-0 duplicates, with the block, neighbourhood and chunk sizes shrunk so that every
path of the search runs."""

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from invlatent import Cyclic, Permutation, quotient_knn
from invlatent.quotient import _sliced_exact as se


def brute_sq(Z: np.ndarray) -> np.ndarray:
    """All-pairs squared quotient distances, one assignment per pair (the diagonal: inf)."""
    N = len(Z)
    D = np.full((N, N), np.inf)
    for a in range(N):
        for b in range(a + 1, N):
            C = ((Z[a][:, None, :] - Z[b][None, :, :]) ** 2).sum(-1)
            r, c = linear_sum_assignment(C)
            D[a, b] = D[b, a] = C[r, c].sum()
    return D


def brute_knn(Z: np.ndarray, k: int, rtol: float = 1e-12):
    """The k nearest by (distance, index), distances equal within ``rtol`` counted as ties."""
    D = brute_sq(Z)
    N = len(Z)
    out_i = np.empty((N, k), dtype=np.int64)
    for a in range(N):
        o = np.argsort(D[a], kind="stable")
        d = D[a][o]
        # values within round-off of each other are one tie group, ordered by index
        fin = np.isfinite(d)
        key = np.where(fin, np.round(np.where(fin, d, 0) / (rtol * (1 + d[fin].max()))), np.inf)
        o = o[np.lexsort((o, key))]
        out_i[a] = o[:k]
    return np.take_along_axis(D, out_i, 1), out_i


def code_like(N, n, c, seed):
    """Latents like an encoder's codes: a few directions of variation plus noise, real-node masks
    (padded nodes zero), random node orders, orbit-mates (a latent in another node order) and
    exact duplicates."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(3, n * c, generator=g, dtype=torch.float64)
    Z = (torch.randn(N, 3, generator=g, dtype=torch.float64) @ basis).view(N, n, c)
    Z = Z + 0.3 * torch.randn(N, n, c, generator=g, dtype=torch.float64)
    mask = torch.arange(n)[None] < torch.randint(max(1, n - 3), n + 1, (N,), generator=g)[:, None]
    Z = Z.masked_fill(~mask[..., None], 0)
    Z = Z.gather(1, torch.argsort(torch.rand(N, n, generator=g), 1)[..., None].expand(-1, -1, c))
    for a in range(0, N // 5):  # orbit-mates: 1 in 5 latents is another's node order
        Z[N - 1 - a] = Z[a][torch.randperm(n, generator=g)]
    Z[7] = Z[3]  # an exact duplicate
    return Z.contiguous()


@pytest.fixture()
def small_steps(monkeypatch):
    """Blocks, neighbourhoods and chunks small enough that a few hundred latents take every path."""
    monkeypatch.setattr(se, "_LEAF", 8)
    monkeypatch.setattr(se, "_HOOD", 30)
    monkeypatch.setattr(se, "_CHUNK", 37)
    monkeypatch.setattr(se, "_SOLVE", 50)


@pytest.mark.parametrize("c", [1, 2, 4])
def test_sliced_bound_is_a_lower_bound(c):
    g = torch.Generator().manual_seed(c)
    X = torch.randn(200, 6, c, generator=g, dtype=torch.float64)
    Y = X[torch.randperm(200, generator=g)] + 0.5 * torch.randn(200, 6, c, generator=g, dtype=torch.float64)
    U = se._bases(c, 8, seed=0)
    eye = torch.eye(c, dtype=torch.float64)
    assert torch.allclose(U @ U.transpose(1, 2), eye.expand_as(U @ U.transpose(1, 2)), atol=1e-12)
    E = se._embeddings(X, U).double()
    F = se._embeddings(Y, U).double()
    lb = (E - F).square().sum(-1).amax(0)  # max over the bases
    d2 = np.array([brute_sq(np.stack([x, y]))[0, 1] for x, y in zip(X.numpy(), Y.numpy())])
    scale = X.square().sum((1, 2)) + Y.square().sum((1, 2))
    assert bool((lb <= torch.from_numpy(d2) + 1e-5 * scale).all())  # float32 embeddings
    assert float((lb / torch.from_numpy(d2)).mean()) > (0.999 if c == 1 else 0.3)  # c = 1: isometric


def test_dual32_is_a_lower_bound():
    g = torch.Generator().manual_seed(5)
    X = torch.randn(300, 7, 3, generator=g, dtype=torch.float64)
    Y = X + torch.randn(300, 7, 3, generator=g, dtype=torch.float64)
    lb = se._dual32(X.float().permute(2, 1, 0), Y.float().permute(2, 1, 0)).double()
    d2 = np.array([brute_sq(np.stack([x, y]))[0, 1] for x, y in zip(X.numpy(), Y.numpy())])
    tol = 7 * (6 * 3 + 30) * 2.0 ** -24 * (X.square().sum((1, 2)) + Y.square().sum((1, 2)))
    assert bool((lb <= torch.from_numpy(d2) + tol).all())


@pytest.mark.parametrize("c,k,workers", [(1, 3, 1), (2, 5, 2), (4, 10, 1), (4, 4, 2)])
def test_matches_independent_brute_force(small_steps, c, k, workers):
    Z = code_like(220, 6, c, seed=c + k)
    st = {}
    d2, i = se.sliced_exact_knn(Z, k, workers=workers, stats=st, show_progress=False)
    bd, bi = brute_knn(Z.numpy(), k)
    assert np.array_equal(i.numpy(), bi)
    np.testing.assert_allclose(d2.numpy(), bd, rtol=1e-10, atol=1e-12)
    distinct = {tuple(sorted(map(tuple, z.tolist()))) for z in Z}  # equal multisets of rows
    assert st["classes"] == len(distinct)
    assert st["blocks"] > 1 and st["bound_pairs"] > 0 and st["kept_pairs"] < st["bound_pairs"]


def test_quotient_knn_sliced_equals_exact_with_mask(small_steps):
    g = torch.Generator().manual_seed(11)
    Z = torch.randn(150, 5, 3, generator=g)
    mask = torch.arange(5)[None] < torch.randint(2, 6, (150,), generator=g)[:, None]
    d0, i0 = quotient_knn(Z, 6, Permutation(), mask=mask)
    st = {}
    d1, i1 = quotient_knn(Z, 6, Permutation(), mask=mask, method="sliced", stats=st, workers=2)
    assert d1.dtype == Z.dtype and torch.equal(i0, i1)
    torch.testing.assert_close(d0, d1, rtol=1e-5, atol=1e-6)
    assert st["all_pairs"] == 150 * 149 and st["exact_pairs"] < st["all_pairs"]


def test_orbit_mates_first_at_distance_zero(small_steps):
    """The million set's structure: every code in 8 node orders, shuffled."""
    g = torch.Generator().manual_seed(3)
    codes = torch.randn(40, 9, 4, generator=g, dtype=torch.float64)
    member = torch.randperm(320, generator=g) % 40
    Z = torch.stack([codes[m][torch.randperm(9, generator=g)] for m in member.tolist()])
    d2, i = se.sliced_exact_knn(Z, 10, show_progress=False)
    mates = member[i[:, :7]] == member[:, None]
    assert bool(mates.all()) and float(d2[:, :7].max()) <= 1e-18
    for a in range(len(Z)):  # the 7 mates in index order, then the nearest other codes
        assert i[a, :7].tolist() == sorted(set((member == member[a]).nonzero().flatten().tolist()) - {a})
    assert bool((d2[:, 7:] > 0).all())


def test_exact_ties_at_the_edge_are_broken_by_index():
    """Several classes at exactly the k-th distance: the latents with the smaller indices win,
    also beyond the classes found first (the row is searched again)."""
    unit = [[[1., 0.], [0., 0.]], [[0., 1.], [0., 0.]], [[-1., 0.], [0., 0.]], [[0., -1.], [0., 0.]]]
    Z = torch.tensor([[[0., 0.], [0., 0.]]] + unit[::-1] + unit + [[[5., 5.], [5., 5.]]], dtype=torch.float64)
    st = {}
    d2, i = se.sliced_exact_knn(Z, 1, stats=st, show_progress=False)
    assert i[0].tolist() == [1] and float(d2[0, 0]) == 1.0
    assert st["refined_rows"] >= 1
    d2, i = se.sliced_exact_knn(Z, 6, show_progress=False)
    assert i[0].tolist() == [1, 2, 3, 4, 5, 6]  # classes of 2 members each, all at distance 1
    bd, bi = brute_knn(Z.numpy(), 6)
    assert np.array_equal(i.numpy(), bi)


def test_all_latents_one_point():
    Z = torch.ones(6, 3, 2, dtype=torch.float64)
    d2, i = se.sliced_exact_knn(Z, 3, show_progress=False)
    assert i.tolist() == [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2], [0, 1, 2], [0, 1, 2]]
    assert float(d2.abs().max()) == 0.0


def test_quotient_classes():
    Z = torch.tensor([[[1., 2.], [3., 4.]], [[3., 4.], [1., 2.]], [[1., 2.], [3., 5.]], [[3., 4.], [1., 2.]]],
                     dtype=torch.float64)
    first, label = se.quotient_classes(Z)
    assert first.tolist() == [0, 2] and label.tolist() == [0, 0, 1, 0]


def test_bad_input():
    Z = torch.randn(10, 3, 2)
    with pytest.raises(ValueError, match="method='sliced' needs the group Permutation"):
        quotient_knn(torch.randn(10, 6), 2, Cyclic(6), method="sliced")
    with pytest.raises(ValueError, match="method must be"):
        quotient_knn(Z, 2, Permutation(), method="slice")
    bad = Z.clone()
    bad[2, 1, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        quotient_knn(bad, 2, Permutation(), method="sliced")
    with pytest.raises(ValueError, match="k must be"):
        quotient_knn(Z, 10, Permutation(), method="sliced")
