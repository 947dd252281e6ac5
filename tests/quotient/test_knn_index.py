"""QuotientIndex (FAISS over the sort embedding, exact re-ranking): reported distances are exact
quotient distances, the flat index gives the exact lists, save/load, clear errors."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from invlatent import Permutation, quotient_distance, quotient_knn
from invlatent.quotient import QuotientIndex

faiss = pytest.importorskip("faiss")


def clustered(N, n, c, seed, dup=True):
    g = torch.Generator().manual_seed(seed)
    Z = torch.randn(8, n, c, generator=g, dtype=torch.float64)[torch.randint(0, 8, (N,), generator=g)]
    Z = Z + 0.1 * torch.randn(N, n, c, generator=g, dtype=torch.float64)
    Z = Z.gather(1, torch.argsort(torch.rand(N, n, generator=g), 1)[..., None].expand(-1, -1, c))
    if dup:  # exact duplicates up to a node order: ties at distance 0
        Z[1] = Z[0][torch.randperm(n, generator=g)]
        Z[5] = Z[3]
    mask = torch.arange(n)[None] < torch.randint(max(1, n - 3), n + 1, (N,), generator=g)[:, None]
    return Z, mask


@pytest.mark.parametrize("index,options", [("ivf", {"nlist": 8, "nprobe": 1}), ("hnsw", {"M": 4, "efSearch": 8}),
                                           ("flat", {})])
@pytest.mark.parametrize("c", [1, 3])
def test_reported_distances_are_exact_quotient_distances(index, options, c):
    """Even a deliberately poor index (one IVF list probed, a tiny HNSW graph) reports, for each
    pair it returns, the quotient distance computed independently by the public quotient_distance
    (its own solver and summation order: tolerance)."""
    Z, mask = clustered(600, 6, c, seed=c)
    ix = QuotientIndex(index, k_factor=2, **options)
    ix.add(Z, mask=mask)
    Zq, mq = Z[:50] + 0.05, mask[:50]
    d, i = ix.search(Zq, 7, mask=mq)
    Zm, Zqm = Z.masked_fill(~mask[..., None], 0), Zq.masked_fill(~mq[..., None], 0)
    valid = i >= 0
    assert valid.float().mean() > 0.9
    rows = torch.arange(50)[:, None].expand_as(i)[valid]
    ref = quotient_distance(Zqm[rows], Zm[i[valid]], Permutation())  # pairs, its own solver and order
    assert torch.allclose(d[valid], ref, rtol=1e-10, atol=1e-12)
    assert (d[valid].view(-1).isfinite()).all()
    assert (d.diff(dim=1)[valid[:, 1:]] >= 0).all()  # ascending


@settings(max_examples=25, deadline=None)
@given(N=st.integers(12, 120), n=st.integers(1, 6), c=st.integers(1, 3), k=st.integers(1, 10),
       seed=st.integers(0, 2**31 - 1), masked=st.booleans())
def test_flat_index_equals_exact_search(N, n, c, k, seed, masked):
    """The flat index is exact for every c (c = 1 by isometry, c > 1 by its certificate): the same
    lists as the exact bounded search, ties by index included."""
    Z, mask = clustered(N, n, c, seed)
    mask = mask if masked else None
    d0, i0 = quotient_knn(Z, k, Permutation(), mask=mask)
    st_ = {}
    d1, i1 = quotient_knn(Z, k, Permutation(), mask=mask, method="faiss", index_options={"k_factor": 1},
                          stats=st_)
    assert torch.equal(i0, i1)
    assert torch.allclose(d0, d1, rtol=1e-12, atol=1e-12)


def test_c1_flat_identical_on_structureless_codes():
    g = torch.Generator().manual_seed(4)
    Z = torch.randn(3000, 9, 1, generator=g)
    mask = torch.arange(9)[None] < torch.randint(1, 10, (3000,), generator=g)[:, None]
    st = {}
    a = quotient_knn(Z, 10, Permutation(), mask=mask)
    b = quotient_knn(Z, 10, Permutation(), mask=mask, method="faiss", stats=st)
    assert torch.equal(a[1], b[1]) and torch.allclose(a[0], b[0], rtol=1e-6)
    # c = 1: every candidate's exact value comes from sorting, never from the assignment solver
    assert st["solver_pairs"] == 0 and st["exact_pairs"] == st["candidates"]


def test_save_load_roundtrip(tmp_path):
    Z, mask = clustered(500, 5, 2, seed=7)
    for kind in ("flat", "ivf", "hnsw"):
        ix = QuotientIndex(kind, nlist=6 if kind == "ivf" else None, seed=3)
        ix.add(Z[:400], mask=mask[:400])
        path = tmp_path / f"{kind}.npz"
        ix.save(path)
        iy = QuotientIndex.load(path)
        assert iy.ntotal == 400 and iy.options == dict(ix.options, gpu=None)
        a, b = ix.search(Z[400:], 5, mask=mask[400:]), iy.search(Z[400:], 5, mask=mask[400:])
        assert torch.equal(a[1], b[1]) and torch.equal(a[0], b[0])
        iy.add(Z[400:], mask=mask[400:])  # a loaded index keeps growing
        d, i = iy.search(Z[400:410], 1, mask=mask[400:410])
        assert torch.equal(i[:, 0], torch.arange(400, 410)) and torch.allclose(d, torch.zeros_like(d))
    np.savez(tmp_path / "other.npz", meta=np.array('{"format": "x"}'))
    with pytest.raises(ValueError, match="not a QuotientIndex file"):
        QuotientIndex.load(tmp_path / "other.npz")


def test_bad_parameters():
    Z = torch.randn(30, 4, 2)
    with pytest.raises(ValueError, match="index must be"):
        QuotientIndex("lsh")
    with pytest.raises(TypeError, match="nlist must be an int"):
        QuotientIndex("ivf", nlist=2.5)
    with pytest.raises(ValueError, match="nprobe must be >= 1"):
        QuotientIndex("ivf", nprobe=0)
    with pytest.raises(ValueError, match="solver"):
        QuotientIndex(solver="fast")
    with pytest.raises(TypeError, match="gpu must be"):
        QuotientIndex(gpu="yes")
    if faiss.get_num_gpus() == 0:
        with pytest.raises(ValueError, match="no GPU"):
            QuotientIndex(gpu=True).add(Z)
    ix = QuotientIndex()
    with pytest.raises(ValueError, match="empty"):
        ix.search(Z, 3)
    with pytest.raises(ValueError, match="empty"):
        ix.save("/nonexistent/x.npz")
    ix.add(Z)
    with pytest.raises(ValueError, match=r"shape \(N, 4, 2\)"):
        ix.add(torch.randn(5, 3, 2))
    with pytest.raises(ValueError, match="must have 3 dimensions"):
        ix.search(torch.randn(5, 8), 3)
    with pytest.raises(ValueError, match="k must be between 1 and 29"):
        ix.search(Z, 30, exclude=torch.arange(30))
    with pytest.raises(ValueError, match="exclude must be"):
        ix.search(Z, 3, exclude=torch.arange(5))
    with pytest.raises(ValueError, match="NaN"):
        ix.search(torch.full((2, 4, 2), float("nan")), 3)
    with pytest.raises(TypeError, match="mask"):
        ix.search(Z, 3, mask=torch.ones(30, 4))
    with pytest.raises(ValueError, match="nlist must be <="):
        QuotientIndex("ivf", nlist=100).add(Z)
