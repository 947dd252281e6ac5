"""Quotient distances against brute force and scipy; alignment; interpolation; pairwise matrices."""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from invlatent import (O3, SO3, Cyclic, Permutation, align, aligned_interpolation,
                       pairwise_quotient_distance, quotient_distance)
from invlatent.quotient import batched_assignment




def brute_force(z1, z2, group):
    orb = group.orbit(z2)
    return (orb - z1.unsqueeze(1)).flatten(2).norm(dim=2).min(dim=1).values


@settings(max_examples=30, deadline=None)
@given(B=st.integers(1, 64), n=st.integers(1, 9), seed=st.integers(0, 10**6))
def test_batched_assignment_matches_scipy(gen, B, n, seed):
    cost = torch.rand(B, n, n, generator=gen(seed), dtype=torch.float64)
    value, perm = batched_assignment(cost, method="dp")
    ref = np.array([c[linear_sum_assignment(c)].sum() for c in cost.numpy()])
    assert np.allclose(value.numpy(), ref, atol=1e-12)
    assert torch.equal(perm.sort(dim=1).values, torch.arange(n).expand(B, n))
    assert torch.allclose(cost.gather(2, perm.unsqueeze(-1)).sum((1, 2)), value)


def test_dp_and_scipy_agree_and_dp_has_gradients(gen, dtype):
    cost = torch.rand(50, 7, 7, generator=gen(0), dtype=dtype)
    v_dp, _ = batched_assignment(cost, method="dp")
    v_sp, _ = batched_assignment(cost, method="scipy")
    assert torch.allclose(v_dp, v_sp, atol=1e-5 if dtype == torch.float32 else 1e-12)


def test_dp_gradients(gen):
    c = torch.rand(2, 4, 4, generator=gen(1), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: batched_assignment(x, method="dp")[0], (c,))
    c = torch.rand(3, 6, 6, generator=gen(2), dtype=torch.float64, requires_grad=True)
    v, p = batched_assignment(c, method="dp")
    (g,) = torch.autograd.grad(v.sum(), c)
    # d value / d cost = the matching; exact: the value is a sum of selected entries, so each
    # gradient entry is exactly 1.0 or 0.0 in any order
    assert torch.equal(g, torch.zeros_like(g).scatter_(2, p.unsqueeze(-1), 1.0))


def test_assignment_falls_back_to_scipy_above_nine_nodes(gen):
    cost = torch.rand(3, 11, 11, generator=gen(0), dtype=torch.float64)
    value, _ = batched_assignment(cost)
    ref = [c[linear_sum_assignment(c)].sum() for c in cost.numpy()]
    assert np.allclose(value.numpy(), ref)


@pytest.mark.parametrize("n,c", [(1, 1), (3, 1), (5, 1), (7, 1), (3, 2), (5, 3), (6, 2)])
def test_permutation_distance_matches_brute_force(gen, n, c, dtype):
    P = Permutation(n)
    z1 = torch.randn(16, n, c, generator=gen(n * 10 + c), dtype=dtype)
    z2 = torch.randn(16, n, c, generator=gen(n * 10 + c + 1), dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    assert torch.allclose(quotient_distance(z1, z2, Permutation()), brute_force(z1, z2, P), atol=tol)


def test_permutation_distance_matches_scipy_for_nine_nodes(gen, dtype):
    z1 = torch.randn(32, 9, 4, generator=gen(0), dtype=dtype)
    z2 = torch.randn(32, 9, 4, generator=gen(1), dtype=dtype)
    d = quotient_distance(z1, z2, Permutation())
    ref = []
    for a, b in zip(z1.double().numpy(), z2.double().numpy()):
        C = ((a[:, None] - b[None]) ** 2).sum(-1)
        ref.append(np.sqrt(C[linear_sum_assignment(C)].sum()))
    assert np.allclose(d.double().numpy(), ref, atol=1e-5 if dtype == torch.float32 else 1e-10)


def test_cyclic_distance_matches_brute_force_and_is_invariant(gen, dtype):
    C = Cyclic(7)
    z1 = torch.randn(20, 3, 7, generator=gen(0), dtype=dtype)
    z2 = torch.randn(20, 3, 7, generator=gen(1), dtype=dtype)
    d = quotient_distance(z1, z2, C)
    manual = torch.stack([(z1 - torch.roll(z2, s, -1)).flatten(1).norm(dim=1) for s in range(7)]).min(0).values
    assert torch.allclose(d, manual)
    g = C.sample(20, generator=gen(2))
    h = C.sample(20, generator=gen(3))
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    assert torch.allclose(quotient_distance(C.act(g, z1), C.act(h, z2), C), d, atol=tol)


@pytest.mark.parametrize("group", [Permutation(), Cyclic(5)])
def test_quotient_distance_is_a_pseudometric(gen, group):
    shape = (5, 2) if isinstance(group, Permutation) else (2, 5)
    a, b, c = (torch.randn(30, *shape, generator=gen(s), dtype=torch.float64) for s in range(3))
    dab, dbc, dac = (quotient_distance(x, y, group) for x, y in [(a, b), (b, c), (a, c)])
    assert torch.allclose(dab, quotient_distance(b, a, group))
    assert (dac <= dab + dbc + 1e-12).all()
    assert torch.allclose(quotient_distance(a, a, group), torch.zeros(30, dtype=torch.float64))
    assert (dab <= (a - b).flatten(1).norm(dim=1) + 1e-12).all()


@pytest.mark.parametrize("Group", [SO3, O3])
def test_rotation_alignment_recovers_a_rotated_copy(gen, Group):
    G = Group("1x0e + 3x1o + 1x1e + 1x0o")
    z = torch.randn(10, G.irreps.dim, generator=gen(0), dtype=torch.float64)
    g = G.sample(10, generator=gen(1))
    assert quotient_distance(z, G.act(g, z), G).max() < 1e-10
    # and it beats (or equals) many random elements
    z2 = torch.randn(10, G.irreps.dim, generator=gen(2), dtype=torch.float64)
    d = quotient_distance(z, z2, G)
    h = G.sample(10 * 20, generator=gen(10))  # 20 random elements per pair, one batch
    others = (z.repeat(20, 1) - G.act(h, z2.repeat(20, 1))).norm(dim=1).view(20, 10)
    assert (d <= others + 1e-10).all()


def test_rotation_alignment_rejects_high_l():
    with pytest.raises(NotImplementedError, match="l <= 1"):
        align(torch.zeros(2, 5), torch.zeros(2, 5), SO3("1x2e"))


@pytest.mark.parametrize("Group", [SO3, O3])
def test_high_l_quotient_distance_is_the_approximate_search_behind_the_protocol(gen, Group):
    from invlatent.projections import approx_quotient_distance

    G = Group("1x0e + 2x1o + 1x2e")
    z1 = torch.randn(8, G.irreps.dim, generator=gen(0), dtype=torch.float64)
    z2 = torch.randn(8, G.irreps.dim, generator=gen(1), dtype=torch.float64)
    d = quotient_distance(z1, z2, G)
    # exact: the old function is a checked wrapper of the same method, the same ops in the same order
    assert torch.equal(d, approx_quotient_distance(z1, z2, G))
    assert torch.equal(G.quotient_distance(z1, z2, steps=5), approx_quotient_distance(z1, z2, G, steps=5))
    with torch.no_grad():  # the search runs its own autograd
        assert torch.equal(quotient_distance(z1, z2, G), d)
    # an upper bound: never above the identity (one of its starting points); rotated copies at ~0
    assert (d <= (z1 - z2).norm(dim=1) + 1e-12).all()
    assert quotient_distance(z1, G.act(G.sample(8, generator=gen(2)), z1), G).max() < 1e-3
    # the pairwise form goes through it too; a search in another batch starts from other tiny
    # offsets and stops (30 steps) at another point near the same minimum: measured within 6e-5
    D = pairwise_quotient_distance(z1[:4], z2[:4], G)
    assert torch.allclose(D.diagonal(), d[:4], rtol=1e-3)


@pytest.mark.parametrize("group,shape", [(Permutation(), (6, 1)), (Permutation(), (6, 3)), (Cyclic(8), (2, 8))])
def test_align_returns_the_closest_orbit_point(gen, group, shape):
    z1 = torch.randn(12, *shape, generator=gen(0), dtype=torch.float64)
    z2 = torch.randn(12, *shape, generator=gen(1), dtype=torch.float64)
    aligned, g = align(z1, z2, group, return_element=True)
    assert torch.allclose((z1 - aligned).flatten(1).norm(dim=1), quotient_distance(z1, z2, group))
    assert torch.equal(group.act(g, z2), aligned)  # exact: both are the same gather / roll of z2


@pytest.mark.parametrize("group,shape", [(Permutation(), (5, 1)), (Permutation(), (4, 2)), (Cyclic(6), (3, 6))])
def test_pairwise_matches_per_pair(gen, group, shape):
    Z1 = torch.randn(7, *shape, generator=gen(0), dtype=torch.float64)
    Z2 = torch.randn(5, *shape, generator=gen(1), dtype=torch.float64)
    D = pairwise_quotient_distance(Z1, Z2, group, chunk_size=8)
    assert D.shape == (7, 5)
    ref = torch.stack([quotient_distance(Z1[i].expand(5, *shape), Z2, group) for i in range(7)])
    assert torch.allclose(D, ref, atol=1e-10)


def test_aligned_interpolation_endpoints_and_quotient_geodesic(gen):
    P = Permutation()
    z1 = torch.randn(4, 6, 2, generator=gen(0), dtype=torch.float64)
    z2 = torch.randn(4, 6, 2, generator=gen(1), dtype=torch.float64)
    path = aligned_interpolation(z1, z2, P, torch.linspace(0, 1, 5))
    assert path.shape == (4, 5, 6, 2)
    assert torch.allclose(path[:, 0], z1)
    assert torch.allclose(quotient_distance(path[:, -1], z2, P), torch.zeros(4, dtype=torch.float64), atol=1e-12)
    # the midpoint is half-way in the quotient metric (the path is a quotient geodesic here)
    d = quotient_distance(z1, z2, P)
    mid = path[:, 2]
    assert torch.allclose(quotient_distance(z1, mid, P), d / 2, atol=1e-10)
    assert torch.allclose(quotient_distance(mid, z2, P), d / 2, atol=1e-10)


def test_quotient_distance_gradients_are_finite():
    z1 = torch.randn(3, 5, 2, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(3, 5, 2, dtype=torch.float64)
    quotient_distance(z1, z2, Permutation()).sum().backward()
    assert torch.isfinite(z1.grad).all() and z1.grad.abs().sum() > 0
