"""Three interpolation lines, decoded and scored; the length-matched window control."""

import itertools

import numpy as np
import pytest
import torch

from invlatent.groups import Permutation
from invlatent.models.graph_vae import GraphVAE
from invlatent.book import decode_lines, path_table, three_lines, window_all_valid
from invlatent.quotient import quotient_distance


def test_aligned_line_is_the_quotient_geodesic():
    g = torch.Generator().manual_seed(0)
    codes = torch.randn(12, 6, 2, generator=g, dtype=torch.float64)
    perm = torch.stack([torch.randperm(6, generator=g) for _ in range(12)])
    codes_perm = codes.gather(1, perm[..., None].expand(-1, -1, 2))
    ia, ib = torch.arange(6), torch.arange(6, 12)
    za, ends, g_star, step = three_lines(codes, codes_perm, ia, ib)
    # the aligned end is a relabelling of the random-order end ...
    back = ends["raw, random order"].gather(1, g_star[..., None].expand(-1, -1, 2))
    assert torch.equal(back, ends["aligned"])
    # ... at the exact quotient distance (an independent solver: brute force over 6! orders)
    brute = torch.tensor([min(float((za[p] - codes[ib[p]][list(s)]).norm()) for s in itertools.permutations(range(6)))
                          for p in range(6)], dtype=torch.float64)
    length = (ends["aligned"] - za).flatten(1).norm(dim=1)
    assert torch.allclose(length, brute, rtol=1e-10, atol=1e-12)
    assert torch.allclose(length, quotient_distance(za, codes[ib], Permutation()), rtol=1e-10, atol=1e-12)
    for raw in ("raw, dataset order", "raw, random order"):
        assert bool(((ends[raw] - za).flatten(1).norm(dim=1) >= length - 1e-12).all())
    assert step == pytest.approx(0.1 * float(length.median()))


def test_decode_lines_scores_every_line_and_starts_at_the_encoded_code():
    torch.manual_seed(0)
    model = GraphVAE(hidden=8, decoder="sort-transformer").eval()
    g = torch.Generator().manual_seed(1)
    codes = torch.randn(6, 9, 1, generator=g)
    za, ends_b, _, step = three_lines(codes, codes.flip(1), torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]))
    ends = (["C"] * 3, ["CC"] * 3)
    results, decoded = decode_lines(model, za, ends_b, step, ends)
    assert list(results) == list(ends_b)
    for name, r in results.items():
        assert all(v.shape == (3,) for v in r.values())
        sm, pair, t = decoded[name]
        assert len(sm) == len(pair) == len(t) and set(pair.tolist()) == {0, 1, 2}
        assert np.allclose(r["length"], (ends_b[name] - za).flatten(1).norm(dim=1).numpy())
    table = path_table(results)
    assert list(table.columns) == list(ends_b) and "step validity" in table.index
    assert all(" ± " in v for v in table.values.ravel())


def test_window_all_valid_against_brute_force():
    rng = np.random.default_rng(0)
    smiles, pair, t, windows, expected = [], [], [], [], []
    for p in range(40):
        K = int(rng.integers(1, 12))  # K steps: K - 1 inner points
        valid = rng.random(K - 1) < 0.8
        sm = ["C"] + ["C" if v else None for v in valid] + ["C"]
        smiles += sm
        pair += [p] * (K + 1)
        t += list(np.arange(K + 1) / K)
        w = int(rng.integers(0, K + 2))  # may be 0, or longer than the path
        windows.append(w)
        n = len(valid)
        if w == 0 or n == 0:
            expected.append(np.nan)
            continue
        w = min(w, n)
        runs = [valid[s:s + w].all() for s in range(n - w + 1)]  # every run, one by one
        expected.append(np.mean(runs))
    got = window_all_valid(smiles, torch.tensor(pair), torch.tensor(t, dtype=torch.float64), np.array(windows))
    assert np.allclose(got, expected, equal_nan=True)
    assert np.isnan(got).any() and (got[np.isfinite(got)] < 1).any()


def test_window_all_valid_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="one entry per decoded point"):
        window_all_valid(["C"], torch.tensor([0, 0]), torch.tensor([0.0, 1.0]), np.array([1]))
