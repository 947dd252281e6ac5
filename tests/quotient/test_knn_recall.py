"""QuotientIndex on real codes (issue 41): the sliced sort embedding bounds the quotient distance,
the recall estimate tracks the recall measured against a brute force written apart from the package
(scipy's linear_sum_assignment), it falls when the search is starved, target_recall raises the
candidate count, and bad options get clear errors."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from invlatent.quotient import QuotientIndex
from invlatent.quotient._exact_rows import exact_rows
from invlatent.quotient._index import _directions, _embed64

faiss = pytest.importorskip("faiss")


def brute(Z: np.ndarray, queries, k: int) -> np.ndarray:
    """Squared k-th distances of Z[queries] among all Z (itself excluded): every pair by
    scipy's assignment solver (no code of the package)."""
    out = []
    for q in queries:
        d = []
        for j in range(len(Z)):
            if j != q:
                C = ((Z[q][:, None, :] - Z[j][None, :, :]) ** 2).sum(-1)
                r, c = linear_sum_assignment(C)
                d.append(C[r, c].sum())
        out.append(np.sort(d)[k - 1])
    return np.array(out)


def recall(Z: np.ndarray, queries, found: np.ndarray, edge: np.ndarray) -> float:
    hits = 0
    for q, row, e in zip(queries, found, edge):
        for j in row[row >= 0]:
            C = ((Z[q][:, None, :] - Z[j][None, :, :]) ** 2).sum(-1)
            r, c = linear_sum_assignment(C)
            hits += C[r, c].sum() <= e + 1e-9 * (1 + e)
    return hits / found.size


@pytest.fixture(scope="module")
def codes():
    """The shipped c = 4 graph VAE's posterior means of 1,200 QM9 molecules, padded nodes zero."""
    import invlatent
    from invlatent.book import load_shipped_graph_vae

    vae, _ = load_shipped_graph_vae(4)
    data = invlatent.load_qm9(limit=1200).dense()
    with torch.no_grad():
        mu, _ = vae.encode(data["x"], data["adj"], data["mask"])
    return mu.double().masked_fill(~data["mask"][..., None], 0)


@pytest.fixture(scope="module")
def truth(codes):
    queries = np.arange(0, len(codes), 15)  # 80 queries
    return queries, brute(codes.numpy(), queries, 10)


@pytest.mark.parametrize("c,m", [(1, 32), (2, 8), (3, 7), (4, 32)])
def test_sliced_embedding_is_a_lower_bound_and_keeps_the_norm(c, m):
    g = torch.Generator().manual_seed(c)
    Z = torch.randn(60, 7, c, generator=g, dtype=torch.float64)
    W = _directions(c, m, seed=0)
    assert torch.allclose(W @ W.T, torch.eye(c, dtype=torch.float64), atol=1e-12)  # a tight frame
    E = _embed64(Z, W)
    assert torch.allclose(E.square().sum(1), Z.square().sum((1, 2)))
    lb = torch.cdist(E[:30], E[30:]).square()
    for a in range(30):
        for b in range(30):
            C = ((Z[a][:, None] - Z[30 + b][None]) ** 2).sum(-1).numpy()
            r, col = linear_sum_assignment(C)
            assert lb[a, b] <= C[r, col].sum() * (1 + 1e-12) + 1e-12
    if c == 1:  # sorted codes: an isometry
        C = ((Z[0][:, None] - Z[1][None]) ** 2).sum(-1).numpy()
        r, col = linear_sum_assignment(C)
        assert math.isclose(float((E[0] - E[1]).square().sum()), C[r, col].sum(), rel_tol=1e-12)


def test_exact_rows_equal_the_brute_force(codes, truth):
    queries, edge = truth
    Z = codes
    q = torch.from_numpy(queries[:20])
    W = _directions(4, 32, 0)
    none_v = torch.zeros(20, 0, dtype=torch.float64)
    none_i = torch.zeros(20, 0, dtype=torch.long)
    v, i = exact_rows(Z[q], Z, Z.square().sum((1, 2)), 10, none_v, none_i, exclude=q,
                      embed=lambda z: _embed64(z, W))
    assert np.allclose(v[:, -1].numpy(), edge[:20], rtol=1e-10, atol=1e-12)
    assert (i != q[:, None]).all()


def test_default_hnsw_recall_and_its_estimate_on_real_codes(codes, truth):
    """Default options (target_recall=0.99): recall against the brute force, and the estimate
    (exact search on a sample of the queries) within a few hundredths of it."""
    queries, edge = truth
    ix = QuotientIndex("hnsw")
    ix.add(codes)
    st = {}
    d, i = ix.search(codes, 10, exclude=torch.arange(len(codes)), stats=st)
    measured = recall(codes.numpy(), queries, i[queries].numpy(), edge)
    assert measured >= 0.97
    assert st["recall_estimate"] >= 0.99  # the target is met on the sample
    assert abs(st["recall_estimate"] - measured) <= 0.03
    assert st["recall_sample"] == 200 and st["estimate_pairs"] > 0


def test_estimate_falls_when_the_search_is_starved(codes, truth):
    """A tiny graph searched with efSearch=1 and k_factor=1 and no target: the recall drops, and the
    estimate drops with it (and stays near the measured value)."""
    queries, edge = truth
    ix = QuotientIndex("hnsw", M=4, efConstruction=8, efSearch=1, k_factor=1, target_recall=None, recall_sample=300)
    ix.add(codes)
    st = {}
    _, i = ix.search(codes, 10, exclude=torch.arange(len(codes)), stats=st)
    measured = recall(codes.numpy(), queries, i[queries].numpy(), edge)
    assert measured < 0.9
    assert st["recall_estimate"] < 0.9
    assert abs(st["recall_estimate"] - measured) <= 0.08
    assert st["tuning_rounds"] == 0 and st["k_factor_used"] == 1


def test_target_recall_raises_the_candidate_count(codes, truth):
    queries, edge = truth
    ix = QuotientIndex("hnsw", M=16, efConstruction=32, efSearch=1, k_factor=2, target_recall=0.98)
    ix.add(codes)
    st = {}
    _, i = ix.search(codes, 10, exclude=torch.arange(len(codes)), stats=st)
    assert st["k_factor_used"] > 2 and st["tuning_rounds"] > 1 and st["target_met"]
    assert st["recall_estimate"] >= 0.98
    assert recall(codes.numpy(), queries, i[queries].numpy(), edge) >= 0.95


def test_target_recall_stops_at_eight_times_the_candidates(codes):
    """An unreachable target: the candidate count grows to 8 times the one given, no further, and
    the search says the target was not met."""
    ix = QuotientIndex("hnsw", M=4, efConstruction=8, efSearch=1, k_factor=1, target_recall=1.0)
    ix.add(codes)
    st = {}
    ix.search(codes, 10, exclude=torch.arange(len(codes)), stats=st)
    assert st["target_met"] is False and 8 <= st["k_factor_used"] < 12
    assert st["recall_estimate"] < 1.0


def test_flat_reports_certified_recall(codes):
    ix = QuotientIndex("flat")
    ix.add(codes[:400])
    st = {}
    ix.search(codes[:50], 5, stats=st)
    assert st["recall_estimate"] == 1.0 and st["recall_sample"] == 0


@pytest.mark.parametrize("kwargs,err,name", [
    ({"target_recall": 1.5}, ValueError, "target_recall"),
    ({"target_recall": 0.0}, ValueError, "target_recall"),
    ({"target_recall": "0.99"}, TypeError, "target_recall"),
    ({"target_recall": True}, TypeError, "target_recall"),
    ({"recall_sample": -1}, ValueError, "recall_sample"),
    ({"recall_sample": 2.5}, TypeError, "recall_sample"),
    ({"directions": 0}, ValueError, "directions"),
    ({"directions": "8"}, TypeError, "directions"),
])
def test_bad_options_name_the_argument(kwargs, err, name):
    with pytest.raises(err, match=name):
        QuotientIndex("hnsw", **kwargs)
