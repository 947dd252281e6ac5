"""benchmarks/report.py's tables of the real k-NN sets (issue 41) on the recorded runs: every real set
present, no value missing, the recall and the index's own estimate side by side; and the brute
force of benchmarks/knn_real.py against scipy on every pair of a small set."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

ROOT = Path(__file__).resolve().parents[2]


def _load(name):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


report = _load("report")
knn_real = _load("knn_real")


def test_real_table_is_complete():
    knn = report.load_knn(ROOT / "benchmarks" / "results")
    real = report.knn_real(knn)
    assert set(real["set"]) <= set(report.REAL_SETS.values())
    assert len(real) >= 3 and not real.isna().any().any()
    assert (real["|error|"] - (real["estimate"] - real["recall@10"]).abs()).abs().max() < 1e-12
    emb = report.knn_embeddings(knn)
    assert "sort (axes)" in set(emb["embedding"]) and not emb.isna().any().any()


def test_brute_force_equals_all_pairs():
    g = np.random.default_rng(0)
    Z = g.normal(size=(150, 5, 3))
    Z[7] = Z[3][g.permutation(5)]  # a tie at distance 0
    queries = np.array([0, 3, 7, 149])
    d, i, _ = knn_real.brute_knn(Z, queries, 6, first=4, chunk=16)
    for row, q in enumerate(queries):
        full = []
        for j in range(len(Z)):
            C = ((Z[q][:, None] - Z[j][None]) ** 2).sum(-1)
            r, c = linear_sum_assignment(C)
            full.append(np.inf if j == q else C[r, c].sum())
        order = np.lexsort((np.arange(len(Z)), full))[:6]
        assert np.allclose(d[row], np.array(full)[order], rtol=1e-12, atol=1e-12)
        assert list(i[row]) == list(order)


def test_sliced_table_is_complete():
    """The exact runs by sliced bounds: every recorded set has a row, with its counts per class,
    and the exact run of the c = 4 codes returned the brute force's lists."""
    knn = report.load_knn(ROOT / "benchmarks" / "results")
    sliced = report.knn_sliced(knn)
    names = [n for n in knn if n.startswith("sliced_") and n[len("sliced_"):] in report.REAL_SETS]
    assert len(sliced) == len(names) >= 1
    assert set(sliced["set"]) <= set(report.REAL_SETS.values())
    assert not sliced.drop(columns="identical lists").isna().any().any()
    assert ((sliced["exact / query"] <= sliced["kept / query"]) & (sliced["classes"] <= sliced["N"])).all()
    assert (sliced["recall@10"] == 1.0).all()
    assert report.knn_sliced({}).empty
