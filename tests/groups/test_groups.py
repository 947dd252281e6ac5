"""Group actions: they are actions, they are seeded, masks keep padding, finite groups list elements."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from invlatent import O3, SO3, Cyclic, Permutation
from invlatent.groups import LazyPermutations




@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 5), n=st.integers(1, 7), c=st.integers(1, 3), seed=st.integers(0, 10**6))
def test_permutation_is_action_and_isometry(gen, dtype, B, n, c, seed):
    P = Permutation(n)
    z = torch.randn(B, n, c, generator=gen(seed), dtype=dtype)
    g, h = P.sample(B, generator=gen(seed + 1)), P.sample(B, generator=gen(seed + 2))
    # composition: acting by h then g equals acting by the composed index h[g]
    gh = h.gather(1, g)
    assert torch.equal(P.act(g, P.act(h, z)), P.act(gh, z))
    # rows are re-ordered, so the multiset of rows (and the norm) is kept
    assert torch.allclose(P.act(g, z).norm(dim=(1, 2)), z.norm(dim=(1, 2)))
    assert torch.equal(P.act(g, z).sort(dim=1).values, z.sort(dim=1).values)


def test_permutation_sample_is_seeded_and_uniform(gen):
    P = Permutation(3)
    a = P.sample(6000, generator=gen(0))
    assert torch.equal(a, P.sample(6000, generator=gen(0)))
    assert torch.equal(a.sort(dim=1).values, torch.arange(3).expand(6000, 3))
    counts = torch.tensor([(a == torch.tensor(p)).all(1).sum() for p in itertools.permutations(range(3))])
    assert counts.min() > 900 and counts.max() < 1100  # 1000 expected each; 3 sigma ~ 87


def test_lazy_permutations_before_n_is_known(gen):
    P = Permutation()
    g = P.sample(4, generator=gen(0))
    assert isinstance(g, LazyPermutations)
    z = torch.randn(4, 6, 2, generator=gen(1))
    out1, out2 = P.act(g, z), P.act(g, z)
    assert torch.equal(out1, out2)  # deterministic
    assert torch.equal(out1.sort(dim=1).values, z.sort(dim=1).values)
    assert not torch.equal(out1, z)


def test_mask_keeps_padding_in_place(gen):
    P = Permutation()
    z = torch.randn(50, 6, 2, generator=gen(0))
    counts = torch.randint(1, 7, (50,), generator=gen(1))
    mask = torch.arange(6).unsqueeze(0) < counts.unsqueeze(1)
    mask = mask[:, torch.randperm(6, generator=gen(2))]  # padding not necessarily at the end
    z = z * mask.unsqueeze(-1)
    out = P.act(P.sample(50, generator=gen(3)), z, mask=mask)
    assert torch.equal(out[~mask], z[~mask])
    for b in range(5):
        assert torch.equal(out[b][mask[b]].sort(dim=0).values, z[b][mask[b]].sort(dim=0).values)


def test_permutation_elements_and_orbit(gen):
    P = Permutation(4)
    els = P.elements()
    assert els.shape == (24, 4) and len({tuple(e.tolist()) for e in els}) == 24
    z = torch.randn(2, 4, 3, generator=gen(0))
    orb = P.orbit(z)
    assert orb.shape == (2, 24, 4, 3)
    assert torch.equal(orb[:, 5], P.act(els[5].expand(2, 4), z))


def test_cyclic_action(gen, dtype):
    C = Cyclic(6)
    z = torch.randn(3, 2, 6, generator=gen(0), dtype=dtype)
    g, h = C.sample(3, generator=gen(1)), C.sample(3, generator=gen(2))
    assert torch.equal(C.act(g, C.act(h, z)), C.act((g + h) % 6, z))
    for b in range(3):
        assert torch.equal(C.act(g, z)[b], torch.roll(z[b], int(g[b]), dims=-1))
    orb = C.orbit(z)
    assert orb.shape == (3, 6, 2, 6)
    assert torch.equal(orb[:, 2], C.act(torch.full((3,), 2), z))
    assert torch.allclose(C.average(z), z.mean(-1, keepdim=True).expand_as(z))


@pytest.mark.parametrize("Group", [SO3, O3])
def test_rotation_groups_are_orthogonal_actions(gen, Group, dtype):
    G = Group("2x0e + 1x0o + 2x1o + 1x1e + 1x2e")
    z = torch.randn(5, G.irreps.dim, generator=gen(0), dtype=dtype)
    g, h = G.sample(5, generator=gen(1)), G.sample(5, generator=gen(2))
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    assert torch.allclose(G.act(g, G.act(h, z)), G.act(g @ h, z), atol=tol)
    assert torch.allclose(G.act(g, z).norm(dim=1), z.norm(dim=1), atol=tol)
    assert torch.allclose(g.transpose(1, 2) @ g, torch.eye(3, dtype=torch.float64).expand(5, 3, 3), atol=1e-12)
    dets = torch.linalg.det(G.sample(200, generator=gen(3)))
    if Group is SO3:
        assert torch.allclose(dets, torch.ones(200, dtype=torch.float64))
    else:
        assert (dets < 0).any() and (dets > 0).any()
    avg = G.average(z)
    assert torch.allclose(G.act(g, avg), avg, atol=tol)  # the average is fixed by the group


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_cyclic_fourier_view_matches_the_regular_action(gen, dtype):
    from invlatent import CyclicFourier, quotient_distance

    C, F = Cyclic(7), CyclicFourier(7)
    real = torch.float32 if dtype == torch.complex64 else torch.float64
    z = torch.randn(6, 2, 7, generator=gen(0), dtype=real)
    g = C.sample(6, generator=gen(1))
    tol = 1e-5 if real == torch.float32 else 1e-10
    assert torch.allclose(F.act(g, torch.fft.fft(z).to(dtype)), torch.fft.fft(C.act(g, z)).to(dtype), atol=tol)
    z2 = torch.randn(6, 2, 7, generator=gen(2), dtype=real)
    # the DFT is unitary up to sqrt(N): same quotient distances in both views
    dF = quotient_distance(torch.fft.fft(z, norm="ortho").to(dtype), torch.fft.fft(z2, norm="ortho").to(dtype), F)
    assert torch.allclose(dF.to(real), quotient_distance(z, z2, C), atol=tol)
    assert torch.allclose(F.average(torch.fft.fft(z).to(dtype))[..., 1:], torch.zeros((), dtype=dtype))


def test_sparse_permutation_and_dense_conversion(gen):
    from invlatent import permute_sparse, sort_projection, to_dense_nodes

    sizes = torch.tensor([3, 1, 5, 2])
    batch = torch.repeat_interleave(torch.arange(4), sizes)
    x = torch.randn(int(sizes.sum()), 2, generator=gen(0))
    xp, order = permute_sparse(x, batch, 4, generator=gen(1))
    assert torch.equal(batch[order], batch)  # nodes stay in their graph
    assert not torch.equal(xp, x)
    z, mask = to_dense_nodes(x, batch, 4)
    zp, maskp = to_dense_nodes(xp, batch, 4)
    assert z.shape == (4, 5, 2) and torch.equal(mask, maskp) and torch.equal(mask.sum(1), sizes)
    assert torch.equal(sort_projection(z, mask), sort_projection(zp, maskp))  # invariant per graph
    with pytest.raises(ValueError, match="batch must be sorted"):
        permute_sparse(x, batch.flip(0), 4)
    with pytest.raises(ValueError, match=r"batch must hold graph indices in \[0, size=3\)"):
        to_dense_nodes(x, batch, 3)
