"""A group defined only here (the dihedral group D_4 on 2x2 grids) works with every metric,
projection and diagnostic through the group protocol alone."""

import itertools

import pytest
import torch

from invlatent import (AlignToTemplate, MaxFilter, ReynoldsProjection, align, aligned_interpolation, ambiguity_index,
                       invariance_error, max_filter, pairwise_quotient_distance, quotient_distance, retention)
from invlatent.groups import Group


def _d4_table() -> torch.Tensor:
    """(8, 4): element g sends cell k of the flattened 2x2 grid to cell table[g, k] (output[k] = input[table[g, k]])."""
    cells = torch.arange(4).reshape(2, 2)
    rows = []
    for flip, k in itertools.product((False, True), range(4)):
        grid = cells.T if flip else cells
        rows.append(torch.rot90(grid, k).reshape(4))
    return torch.stack(rows)


class D4(Group):
    """D_4 acting on (B, c, 2, 2) grids by rotations and reflections of the square. Elements: ints 0..7."""

    is_finite = True

    def __init__(self):
        self.table = _d4_table()

    def check_latent(self, z, name="z"):
        if not isinstance(z, torch.Tensor):
            raise TypeError(f"{name} must be a tensor")
        if z.dim() != 4 or z.shape[-2:] != (2, 2):
            raise ValueError(f"{name} must have shape (B, c, 2, 2), got {tuple(z.shape)}")
        return z

    def elements(self, device=None):
        return torch.arange(8, device=device)

    def sample(self, B, generator=None, device=None):
        return torch.randint(8, (B,), generator=generator).to(device)

    def act(self, g, z):
        idx = self.table.to(z.device)[g]  # (B, 4)
        flat = z.flatten(-2)
        return flat.gather(-1, idx[:, None, :].expand_as(flat)).view_as(z)


def brute_force_distance(z1, z2):
    """min over the 8 elements, written out here independently of the protocol defaults."""
    G = D4()
    dists = [(z1 - G.act(torch.full((z1.shape[0],), k), z2)).flatten(1).norm(dim=1) for k in range(8)]
    return torch.stack(dists).min(0).values


def test_d4_is_a_group_action_of_order_8(gen):
    G = D4()
    assert len({tuple(r.tolist()) for r in G.table}) == 8
    z = torch.randn(8, 3, 2, 2, generator=gen(0), dtype=torch.float64)
    g, h = G.sample(8, generator=gen(1)), G.sample(8, generator=gen(2))
    gh = G.act(g, G.act(h, z))
    # the composition is again one of the 8 elements (exact: the action only moves entries)
    assert all(any(torch.equal(gh[i], G.act(torch.tensor([k]), z[i:i + 1])[0]) for k in range(8)) for i in range(8))


def test_quotient_distance_and_align_with_custom_group(gen, dtype, tol):
    G = D4()
    z1 = torch.randn(16, 3, 2, 2, generator=gen(3), dtype=dtype)
    z2 = torch.randn(16, 3, 2, 2, generator=gen(4), dtype=dtype)
    d = quotient_distance(z1, z2, G)
    torch.testing.assert_close(d, brute_force_distance(z1, z2), **tol)
    # a transformed copy is at distance 0, and align recovers it
    g = G.sample(16, generator=gen(5))
    torch.testing.assert_close(quotient_distance(z1, G.act(g, z1), G), torch.zeros(16, dtype=dtype), **tol)
    aligned, h = align(z1, G.act(g, z1), G, return_element=True)
    torch.testing.assert_close(aligned, z1, **tol)
    torch.testing.assert_close(G.act(h, G.act(g, z1)), z1, **tol)
    # pairwise matrix agrees with the per-pair distances
    D = pairwise_quotient_distance(z1, z2, G)
    torch.testing.assert_close(D.diagonal(), d, **tol)
    assert aligned_interpolation(z1, z2, G, torch.tensor([0.0, 0.5, 1.0], dtype=dtype)).shape == (16, 3, 3, 2, 2)


def test_projections_and_diagnostics_with_custom_group(gen):
    G = D4()
    z = torch.randn(40, 2, 2, 2, generator=gen(6), dtype=torch.float64)
    w = torch.randn(5, 2, 2, 2, generator=gen(7), dtype=torch.float64)
    # max filter against a brute-force max over the orbit written here
    brute = torch.stack([(G.act(torch.full((40,), k), z).flatten(1) @ w.flatten(1).T) for k in range(8)]).amax(0)
    torch.testing.assert_close(max_filter(z, G, w), brute)
    mf = MaxFilter(G, (2, 2, 2), n_templates=16, seed=0).double()
    canon = AlignToTemplate(G, (2, 2, 2), seed=0).double()
    rey = ReynoldsProjection(G, (2, 2, 2), n_out=4).double()
    for proj in (mf, canon, rey):
        assert invariance_error(proj, z, G) < 1e-12
    assert invariance_error(lambda t: t, z, G) > 0.1  # the raw grid is not invariant
    assert ambiguity_index(z, G, fn=mf) == pytest.approx(0.0, abs=1e-20)
    r = retention(canon(z).flatten(1), z, G, k=5)
    # alignment to a template is a cross-section: distances are never below the quotient distance
    assert 0.5 < r["distance_correlation"] <= 1.0 + 1e-12
    r_mf = retention(mf(z), z, G, k=5)
    assert set(r_mf) == {"distance_correlation", "knn_agreement", "distortion"} and r_mf["distortion"] >= 1.0
