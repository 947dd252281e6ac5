"""Interpolation paths at equal step length and their per-path scores (closed-form cases)."""

import numpy as np
import pytest
import torch

from invlatent.book import equal_step_paths, mean_ci, path_scores


def test_equal_steps_are_at_most_step_apart_and_hit_both_ends():
    g = torch.Generator().manual_seed(0)
    za, zb = torch.randn(5, 9, 1, generator=g, dtype=torch.float64), torch.randn(5, 9, 1, generator=g, dtype=torch.float64)
    pts, pair, t, length = equal_step_paths(za, zb, step=0.3)
    for p in range(5):
        q = pts[pair == p]
        gaps = (q[1:] - q[:-1]).flatten(1).norm(dim=1)
        # equal gaps of length/K <= step (K = ceil(length/step)); float64 round-off only
        assert torch.allclose(gaps, gaps[0].expand_as(gaps), rtol=1e-12, atol=1e-12)
        assert float(gaps.max()) <= 0.3 + 1e-12 and float(gaps.max()) > 0.3 * (len(q) - 2) / (len(q) - 1)
        assert torch.allclose(q[0], za[p]) and torch.allclose(q[-1], zb[p])
    assert torch.allclose(length, (zb - za).flatten(1).norm(dim=1))


def test_scores_closed_form():
    # path 0: C -> CC -> CCC -> CCCC  (length 3: one heavy atom per unit length, all valid)
    # path 1: C -> invalid -> CO      (length 2: half the inner steps valid... one inner step, invalid)
    smiles = ["C", "CC", "CCC", "CCCC", "C", None, "CO"]
    pair = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    t = torch.tensor([0, 1 / 3, 2 / 3, 1, 0, 0.5, 1], dtype=torch.float64)
    length = torch.tensor([3.0, 2.0], dtype=torch.float64)
    s = path_scores(smiles, pair, t, length, (["C", "C"], ["CCCC", "CO"]))
    assert s["step_validity"].tolist() == [1.0, 0.0] and s["all_valid"].tolist() == [1.0, 0.0]
    assert s["n_inner"].tolist() == [2, 1]
    assert s["d_heavy_atoms"][0] == pytest.approx(1.0) and s["d_rings"][0] == 0.0
    assert s["d_heavy_atoms"][1] == pytest.approx(0.5)          # C -> CO over length 2
    assert s["sim_nearer_end"][1] == 0.0                        # an invalid decode scores 0
    assert 0 < s["sim_nearer_end"][0] < 1


def test_mean_ci_normal_interval():
    m, h = mean_ci(np.array([0.0, 1.0, np.nan, 1.0, 0.0]))
    assert m == 0.5 and h == pytest.approx(1.96 * np.std([0, 1, 1, 0], ddof=1) / 2)


def test_bad_step():
    with pytest.raises(ValueError, match="step"):
        equal_step_paths(torch.zeros(1, 2, 1), torch.ones(1, 2, 1), step=0.0)
    with pytest.raises(ValueError, match="za and zb"):
        equal_step_paths(torch.zeros(1, 2, 1), torch.ones(2, 2, 1), step=1.0)
