"""QuotientIndex stores each point of the quotient once: latents that are the same multiset of rows
(node orders of one latent, exact duplicates) share one FAISS entry, and searches expand each class
into its members. Checked against a brute force written apart from the package (scipy's
assignment solver on every pair)."""

import json

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from invlatent.quotient import QuotientIndex

faiss = pytest.importorskip("faiss")


def orbit_copies(base, copies, n, c, seed):
    """``base`` random latents, each in ``copies`` random node orders, shuffled: ``(Z, point)``."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(base, n, c, generator=g, dtype=torch.float64)
    point = torch.arange(base).repeat_interleave(copies)
    perm = torch.argsort(torch.rand(len(point), n, generator=g), 1)
    Z = X[point].gather(1, perm[..., None].expand(-1, -1, c))
    order = torch.randperm(len(point), generator=g)
    return Z[order], point[order]


def brute(Zq, Z):
    """Squared quotient distances of every query to every latent (scipy, one pair at a time)."""
    out = np.empty((len(Zq), len(Z)))
    for a, x in enumerate(Zq.numpy()):
        for b, y in enumerate(Z.numpy()):
            C = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
            r, s = linear_sum_assignment(C)
            out[a, b] = C[r, s].sum()
    return out


def check_lists(d, i, D, k, exclude=None):
    """Returned lists against the brute-force matrix ``D``: the distances are the k smallest (to
    round-off: the two sides sum in different orders) and every index returned has the distance given."""
    D = D.copy()
    if exclude is not None:
        D[np.arange(len(D)), exclude.numpy()] = np.inf
    want = np.sort(D, 1)[:, :k]
    got = d.numpy() ** 2
    tol = 1e-10 * (1 + want)
    assert np.all(np.abs(got - want) <= tol)
    assert np.all(np.abs(np.take_along_axis(D, i.numpy(), 1) - got) <= tol)


@pytest.mark.parametrize("index", ["flat", "hnsw", "ivf"])
def test_orbit_copies_share_one_entry(index):
    """60 latents in 5 node orders each, added in two parts: 60 classes and 60 FAISS entries; every
    latent's 4 orbit-mates lead its list at distance 0, in ascending index order, and the lists
    are the brute force's."""
    Z, point = orbit_copies(60, 5, 6, 3, seed=1)
    opts = {"nlist": 4} if index == "ivf" else {}
    ix = QuotientIndex(index, target_recall=None, k_factor=8, **opts)
    ix.add(Z[:170])
    ix.add(Z[170:])  # the second part's points are mostly known already
    assert ix.ntotal == 300 and ix.nclasses == 60 and ix._index.ntotal == 60
    k = 7
    d, i = ix.search(Z, k, exclude=torch.arange(300))
    mates = point[i[:, :4]] == point[:, None]
    assert bool(mates.all()) and float(d[:, :4].max()) <= 1e-12
    assert bool((i[:, :4].diff(dim=1) > 0).all())  # ties by index
    q = torch.arange(0, 300, 7)
    check_lists(d[q], i[q], brute(Z[q], Z), k, exclude=q)


@pytest.mark.parametrize("exclude", [False, True])
def test_flat_ties_by_index_on_integer_latents(exclude):
    """Latents with coordinates in {0, 1, 2}: many are one point, and many different points lie at
    exactly the same distance (integer sums are exact on both sides). The flat index's lists equal
    the brute force sorted by (distance, index), ties across classes included."""
    g = torch.Generator().manual_seed(5)
    Z = torch.randint(0, 3, (150, 3, 2), generator=g).double()
    ix = QuotientIndex("flat")
    ix.add(Z)
    assert ix.nclasses < 150
    D = brute(Z, Z)
    ex = torch.arange(150) if exclude else None
    if exclude:
        D[np.arange(150), np.arange(150)] = np.inf
    for k in (1, 4, 9):
        d, i = ix.search(Z, k, exclude=ex)
        want = np.lexsort((np.broadcast_to(np.arange(150), D.shape), D), axis=1)[:, :k]
        assert np.array_equal(i.numpy(), want)
        # the index's squared distances are exact integers; d is their square root
        assert np.allclose(d.numpy() ** 2, np.take_along_axis(D, want, 1), rtol=1e-14, atol=0)


def test_hash_collisions_do_not_merge_points(monkeypatch):
    """With every row hash equal, no two different points may share a class: the index then keeps
    duplicates apart too, and returns the same lists as with real hashes."""
    import invlatent.quotient._index as mod
    import invlatent.quotient._kernels as kernels

    Z, _ = orbit_copies(30, 3, 5, 2, seed=2)
    ref = QuotientIndex("flat")
    ref.add(Z)
    want = ref.search(Z, 6, exclude=torch.arange(90))
    def collide(canon):
        return np.zeros(len(canon), dtype=np.uint64)

    monkeypatch.setattr(mod, "_hash_rows", collide)  # the index's lookup of stored points
    monkeypatch.setattr(kernels, "_hash_rows", collide)  # the grouping within one batch
    ix = QuotientIndex("flat")
    ix.add(Z[:40])
    ix.add(Z[40:])
    assert 30 < ix.nclasses <= 90  # no merge of different points (only copies of the first row merge)
    d, i = ix.search(Z, 6, exclude=torch.arange(90))
    # exact equality is sound here: each pair's distance is elementwise differences summed over
    # rows in a fixed order (quotient._kernels.exact_sq), the same bits in any batch, so equal
    # points tie exactly and both indexes break ties by index
    assert torch.equal(i, want[1])
    assert torch.allclose(d, want[0], rtol=0, atol=1e-12)


def test_save_load_keeps_classes_and_reads_format_2(tmp_path):
    """The classes survive save/load, a later add still finds them, and a file of the previous
    format (one stored latent per FAISS entry, no classes) loads and searches the same."""
    Z, point = orbit_copies(40, 4, 5, 2, seed=3)
    ix = QuotientIndex("flat")
    ix.add(Z)
    path = tmp_path / "ix.npz"
    ix.save(path)
    iy = QuotientIndex.load(path)
    assert (iy.ntotal, iy.nclasses) == (160, 40)
    d0, i0 = ix.search(Z[:20], 5)
    d1, i1 = iy.search(Z[:20], 5)
    assert torch.equal(i0, i1) and torch.allclose(d0, d1, rtol=0, atol=1e-12)
    iy.add(Z[:10])  # points it holds: no new class
    assert (iy.ntotal, iy.nclasses) == (170, 40)

    old = QuotientIndex("flat")
    old.add(Z)
    old.save(path)
    with np.load(path) as data:
        parts = {key: data[key] for key in data.files}
    meta = json.loads(str(parts["meta"]))
    meta["format"] = "invlatent.QuotientIndex/2"
    distinct = torch.from_numpy(parts["Z"]).flip(1)  # /2 stored the latents as given: other node orders
    parts.update(meta=np.array(json.dumps(meta)), Z=distinct.numpy())
    del parts["label"]
    v2 = tmp_path / "v2.npz"
    with open(v2, "wb") as fh:
        np.savez(fh, **parts)
    iz = QuotientIndex.load(v2)
    assert (iz.ntotal, iz.nclasses) == (40, 40)
    d2, i2 = iz.search(distinct, 3)
    check_lists(d2, i2, brute(distinct, distinct), 3)


def test_load_rejects_bad_classes(tmp_path):
    Z, _ = orbit_copies(10, 2, 4, 2, seed=4)
    ix = QuotientIndex("flat")
    ix.add(Z)
    path = tmp_path / "ix.npz"
    ix.save(path)
    with np.load(path) as data:
        parts = {key: data[key] for key in data.files}
    for name, label in [("outside", np.full(20, 10)), ("float", np.zeros(20)), ("short", np.arange(5))]:
        bad = tmp_path / f"{name}.npz"
        with open(bad, "wb") as fh:
            np.savez(fh, **dict(parts, label=label))
        with pytest.raises(ValueError, match="classes"):
            QuotientIndex.load(bad)
    del parts["label"]
    with open(tmp_path / "nolabel.npz", "wb") as fh:
        np.savez(fh, **parts)
    with pytest.raises(ValueError, match="not label"):
        QuotientIndex.load(tmp_path / "nolabel.npz")
