"""Pooled invariants, map scores and the regression table."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LinearRegression, Ridge

from invlatent.book import map_r2, pooled_invariants, regression_scores


def test_pooled_invariants_ignore_order_and_padding():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(5, 9, 2, generator=g, dtype=torch.float64)
    mask = torch.arange(9)[None, :] < torch.tensor([[3], [9], [5], [1], [7]])
    perm = torch.stack([torch.randperm(9, generator=g) for _ in range(5)])
    zp = z.gather(1, perm[..., None].expand(-1, -1, 2))
    mp = mask.gather(1, perm)
    out = pooled_invariants(z, mask)
    assert out.shape == (5, 6)
    assert torch.allclose(out, pooled_invariants(zp, mp), rtol=1e-12, atol=1e-12)
    # closed form, one molecule at a time (a loop instead of the masked reductions)
    for b in range(5):
        real = z[b][mask[b]]
        ref = torch.cat([real.sum(0), real.mean(0), real.max(0).values])
        assert torch.allclose(out[b], ref, rtol=1e-12, atol=1e-12)
    z2 = z.clone()
    z2[~mask] = 1e6  # padding values never matter
    assert torch.allclose(pooled_invariants(z2, mask), out, rtol=1e-12, atol=1e-12)


def test_map_r2_reads_structure_and_not_noise():
    rng = np.random.default_rng(1)
    xy = rng.uniform(-1, 1, size=(500, 2))
    assert map_r2(xy, np.sin(3 * xy[:, 0]) + xy[:, 1]) > 0.9
    assert map_r2(xy, rng.normal(size=500)) < 0.1
    with pytest.raises(ValueError):
        map_r2(xy, np.zeros(10))


def test_regression_scores_rows_and_exact_linear_fit():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 3))
    targets = {"lin": X @ np.array([1.0, -2.0, 0.5]), "noise": rng.normal(size=200)}
    feats = {"x": X, "x0": X[:, :1]}
    regs = {"ols": LinearRegression, "ridge": lambda: Ridge(alpha=1e-9)}
    rows = regression_scores(feats, targets, regs, np.arange(150), np.arange(150, 200))
    assert len(rows) == 2 * 2 * 2
    by = {(r["features"], r["target"], r["regressor"]): r for r in rows}
    assert by[("x", "lin", "ols")]["R2"] == pytest.approx(1.0, abs=1e-9)
    assert by[("x", "lin", "ols")]["MAE"] == pytest.approx(0.0, abs=1e-9)
    assert by[("x0", "lin", "ridge")]["R2"] < 0.5  # one of three inputs explains little
    assert by[("x", "noise", "ols")]["R2"] < 0.1
    with pytest.raises(ValueError, match="rows"):
        regression_scores({"x": X[:10]}, targets, regs, np.arange(5), np.arange(5, 10))
