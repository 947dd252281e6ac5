"""The product group S_n x SO(3) on sets of irreps (B, n, irreps.dim), through the group protocol."""

import pytest
import torch

from invlatent._irreps import float64_default
from invlatent.groups import O3, SO3, Permutation, Product, check_group
from invlatent.probes import ambiguity_index, invariance_error, retention

IRREPS = "2x0e + 1x1o + 1x2e"


def latents(B=6, n=4, seed=0):
    return torch.randn(B, n, SO3(IRREPS).irreps.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_protocol_and_action_against_e3nn():
    G = check_group(Product(Permutation(), SO3(IRREPS)))
    assert G.is_finite is False
    z = latents()
    sigma, R = G.sample(6, generator=torch.Generator().manual_seed(1))
    out = G.act((sigma, R), z)
    sigma = sigma.materialize(4)  # Permutation() without n: lazy elements, fixed when they act
    with float64_default():
        D = SO3(IRREPS).irreps.D_from_matrix(R)  # independent: e3nn's Wigner matrices
    expected = torch.einsum("bij,bnj->bni", D, z.gather(1, sigma.unsqueeze(-1).expand_as(z)))
    torch.testing.assert_close(out, expected)


def test_action_is_a_group_action(gen):
    G = Product(Permutation(4), SO3(IRREPS))
    z = latents()
    (s1, R1), (s2, R2) = G.sample(6, generator=gen(2)), G.sample(6, generator=gen(3))
    twice = G.act((s1, R1), G.act((s2, R2), z))
    # (s1, R1)(s2, R2) = (s2 o s1, R1 R2): out_i = R1 R2 z[s2[s1[i]]]
    composed = (s2.gather(1, s1), R1 @ R2)
    torch.testing.assert_close(twice, G.act(composed, z))


def test_mask_keeps_padding_in_place():
    G = Product(Permutation(), SO3(IRREPS))
    z = latents(B=2, n=5)
    mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    z = z * mask[..., None]
    g = G.sample(2, generator=torch.Generator().manual_seed(4))
    out = G.act(g, z, mask=mask)
    assert float(out[0, 3:].abs().max()) == 0.0
    torch.testing.assert_close(out.norm(dim=2).sort(dim=1).values, z.norm(dim=2).sort(dim=1).values)


def test_diagnostics_work_with_the_product():
    G = Product(Permutation(), SO3(IRREPS))
    z = latents(B=40, n=4, seed=5)

    def norms_sum(t):  # an invariant: per-atom norms of each irrep, summed over atoms
        return torch.stack([t[..., 0], t[..., 1], t[..., 2:5].norm(dim=-1), t[..., 5:].norm(dim=-1)], -1).sum(1)

    assert invariance_error(norms_sum, z, G, relative=True) < 1e-12
    assert invariance_error(lambda t: t, z, G, relative=True) > 0.1
    assert ambiguity_index(z, G, fn=norms_sum) < 1e-20
    raw = ambiguity_index(z, G)
    # E|g z - z|^2 / E|z - z'|^2: the scalars move only by permutation, the l >= 1 parts by both
    assert 0.5 < raw < 1.5
    r = retention(norms_sum(z[:12]), z[:12], G, k=3)
    assert set(r) == {"distance_correlation", "knn_agreement", "distortion"}
    assert 0.0 < r["distance_correlation"] <= 1.0


def test_average_and_o3_fiber():
    G = Product(Permutation(), O3("1x0e + 1x1o"))
    z = latents(B=3, n=4)[..., :4]
    avg = G.average(z)
    torch.testing.assert_close(avg[..., 0], z[..., 0].mean(1, keepdim=True).expand(3, 4))
    assert float(avg[..., 1:].abs().max()) == 0.0
    g = G.sample(3, generator=torch.Generator().manual_seed(6))
    assert bool((torch.linalg.det(g[1]).abs() - 1).abs().max() < 1e-12)


def test_bad_inputs():
    G = Product(Permutation(), SO3(IRREPS))
    z = latents()
    with pytest.raises(ValueError, match="z must have 3 dimensions"):
        G.check_latent(z[0])
    with pytest.raises(ValueError, match=r"irreps 2x0e\+1x1o\+1x2e has dimension 10"):
        G.check_latent(z[..., :9])
    nan = z.clone()
    nan[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        G.check_latent(nan)
    with pytest.raises(TypeError, match=r"g must be a tuple \(sigma, h\)"):
        G.act(torch.eye(3).expand(6, 3, 3), z)
    g = G.sample(5)
    with pytest.raises(ValueError, match="B=6"):
        G.act(g, z)
    with pytest.raises(TypeError, match="fiber must be a group"):
        Product(Permutation(), "1x1o")
