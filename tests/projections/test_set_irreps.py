"""Invariant projections of sets of irreps under S_n x SO(3): invariance, masks, what they merge, bad input."""

import pytest
import torch
from e3nn import o3

from invlatent._irreps import float64_default
from invlatent.groups import O3, SO3
from invlatent.projections import (GramInvariants, PooledCompleteInvariants, PooledIrrepNorms, PooledScalars,
                                   gram_invariants, pooled_complete_invariants, pooled_irrep_norms, pooled_scalars)

IRREPS = o3.Irreps("3x0e + 2x1o + 1x1e + 2x2e")  # d = 22


def random_sets(B=16, n=6, seed=0):
    return torch.randn(B, n, IRREPS.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def transform(z, seed, mask=None):
    """A random (sigma, R) through e3nn's own D_from_matrix (independent of the library's action)."""
    g = torch.Generator().manual_seed(seed)
    B, n, _ = z.shape
    sigma = torch.rand(B, n, generator=g).argsort(1)
    if mask is not None:  # permute the real atoms among their own slots; padding stays in place
        sigma = torch.arange(n).repeat(B, 1)
        for b in range(B):
            real = mask[b].nonzero().flatten()
            sigma[b, real] = real[torch.randperm(len(real), generator=g)]
    with float64_default():
        R = o3.rand_matrix(B)
        D = IRREPS.D_from_matrix(R)
    return torch.einsum("bij,bnj->bni", D, z.gather(1, sigma.unsqueeze(-1).expand_as(z)))


def projections(mask=None):
    out = {f"scalars/{p}": (lambda z, p=p: pooled_scalars(z, IRREPS, mask, p)) for p in ("sum", "mean", "sort")}
    out.update({f"norms/{p}": (lambda z, p=p: pooled_irrep_norms(z, IRREPS, mask, p)) for p in ("sum", "mean", "sort")})
    out.update({f"complete/{p}": (lambda z, p=p: pooled_complete_invariants(z, SO3(IRREPS), mask, p))
                for p in ("sum", "sort")})
    out["complete3/sum"] = lambda z: pooled_complete_invariants(z, SO3(IRREPS), mask, "sum", degree=3)
    out["gram"] = lambda z: gram_invariants(z, IRREPS, mask)
    return out


@pytest.mark.parametrize("name", list(projections()))
def test_invariant_to_random_permutations_and_rotations_float64(name):
    f = projections()[name]
    z = random_sets()
    base = f(z)
    worst = 0.0
    for seed in range(3):
        rel = float((f(transform(z, seed)) - base).norm() / base.norm())
        worst = max(worst, rel)
    assert worst <= 1e-10, worst  # the target; measured ~1e-16 (round-off of the sums)
    assert f(z + 0.1 * random_sets(seed=9)).sub(base).abs().max() > 1e-3  # not constant


@pytest.mark.parametrize("name", list(projections()))
def test_padding_atoms_never_change_the_output(name):
    z = random_sets(B=4, n=7, seed=1)
    mask = torch.tensor([[True] * 7, [True] * 5 + [False] * 2, [True] * 2 + [False] * 5, [True, False] * 3 + [True]])
    f = projections(mask)[name]
    base = f(z)
    junk = z + 50.0 * (~mask)[..., None] * random_sets(B=4, n=7, seed=2)
    torch.testing.assert_close(f(junk), base, rtol=1e-12, atol=1e-12)
    # and invariant under (sigma, R) moving real atoms among themselves
    moved = transform(z, 3, mask) * mask[..., None] + (~mask)[..., None] * 3.0
    rel = float((f(moved) - base).norm() / base.norm())
    assert rel <= 1e-10, rel


def test_padding_positions_do_not_matter():
    z = random_sets(B=1, n=4, seed=3)
    padded_end = torch.cat([z, torch.zeros(1, 2, IRREPS.dim, dtype=z.dtype)], 1)
    padded_mid = padded_end[:, [0, 4, 1, 5, 2, 3]]
    m_end = torch.tensor([[True] * 4 + [False] * 2])
    m_mid = m_end[:, [0, 4, 1, 5, 2, 3]]
    for name, f in projections(m_end).items():
        g = projections(m_mid)[name]
        torch.testing.assert_close(f(padded_end), g(padded_mid), rtol=1e-12, atol=1e-12)


def test_values_against_direct_formulas():
    z = random_sets(B=3, n=5, seed=4)
    torch.testing.assert_close(pooled_scalars(z, IRREPS), z[..., :3].sum(1))
    torch.testing.assert_close(pooled_scalars(z, IRREPS, pool="mean"), z[..., :3].mean(1))
    v = z[..., 3:9].reshape(3, 5, 2, 3).norm(dim=-1)  # the two 1o copies
    torch.testing.assert_close(pooled_irrep_norms(z, IRREPS)[:, 3:5], v.sum(1))
    srt = pooled_irrep_norms(z, IRREPS, pool="sort").view(3, 5, -1)
    torch.testing.assert_close(srt[:, :, 3:5], v.sort(1, descending=True).values)
    # Gram of the 1o type: G = X X^T with X the two 1o copies concatenated
    X = z[..., 3:9]
    G = X @ X.transpose(1, 2)
    gram = gram_invariants(z, IRREPS).view(3, 4, 3, 5)  # types 0e, 1o, 1e, 2e; parts; atoms
    eig = torch.linalg.eigvalsh(G).flip(-1)
    torch.testing.assert_close(gram[:, 1, 0], eig)
    torch.testing.assert_close(gram[:, 1, 1], G.diagonal(dim1=1, dim2=2).sort(1, descending=True).values)
    torch.testing.assert_close(gram[:, 1, 2], G.sum(2).sort(1, descending=True).values)


def test_what_the_norms_merge_and_the_gram_keeps():
    # two atoms with 1x1o: same per-atom norms, different angle between the atoms
    a = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=torch.float64)
    b = torch.tensor([[[1.0, 0.0, 0.0], [0.6, 0.8, 0.0]]], dtype=torch.float64)
    torch.testing.assert_close(pooled_irrep_norms(a, "1x1o", pool="sort"), pooled_irrep_norms(b, "1x1o", pool="sort"))
    torch.testing.assert_close(pooled_complete_invariants(a, SO3("1x1o"), pool="sort"),
                               pooled_complete_invariants(b, SO3("1x1o"), pool="sort"))
    assert float((gram_invariants(a, "1x1o") - gram_invariants(b, "1x1o")).abs().max()) > 0.5
    # the sum merges what the sort separates: scalars {1, 3} and {2, 2}
    s1 = torch.tensor([[[1.0], [3.0]]], dtype=torch.float64)
    s2 = torch.tensor([[[2.0], [2.0]]], dtype=torch.float64)
    assert torch.equal(pooled_scalars(s1, "1x0e"), pooled_scalars(s2, "1x0e"))
    assert not torch.equal(pooled_scalars(s1, "1x0e", pool="sort"), pooled_scalars(s2, "1x0e", pool="sort"))


def test_o3_complete_invariants_merge_mirror_images():
    z = random_sets(B=2, n=3, seed=5)
    inv = z * torch.cat([torch.full((mul * ir.dim,), float(ir.p)) for mul, ir in IRREPS]).to(z)
    torch.testing.assert_close(pooled_complete_invariants(z, O3(IRREPS)), pooled_complete_invariants(inv, O3(IRREPS)))


def test_modules_match_functions():
    z = random_sets(B=3, n=4, seed=6)
    mask = torch.tensor([[True] * 4, [True, True, False, False], [True, False, True, True]])
    pairs = [(PooledScalars(IRREPS, pool="sort"), pooled_scalars(z, IRREPS, mask, "sort")),
             (PooledIrrepNorms(IRREPS, pool="mean"), pooled_irrep_norms(z, IRREPS, mask, "mean")),
             (PooledCompleteInvariants(SO3(IRREPS)), pooled_complete_invariants(z, SO3(IRREPS), mask)),
             (GramInvariants(IRREPS, parts=("diagonal",)), gram_invariants(z, IRREPS, mask, parts=("diagonal",)))]
    for module, expected in pairs:
        torch.testing.assert_close(module(z, mask), expected)
        assert "pool" in repr(module) or "parts" in repr(module)


def test_sevenn_sized_gram_is_cheap_and_sized():
    irreps = o3.Irreps("128x0e + 64x1e + 32x2e")
    z = torch.randn(64, 29, irreps.dim, generator=torch.Generator().manual_seed(7))
    out = gram_invariants(z, irreps)
    assert out.shape == (64, 3 * 3 * 29) and out.dtype == torch.float32
    assert pooled_irrep_norms(z, irreps).shape == (64, 224)


def test_bad_inputs():
    z = random_sets(B=2, n=3)
    with pytest.raises(ValueError, match="z must have 3 dimensions"):
        pooled_scalars(z[0], IRREPS)
    with pytest.raises(ValueError, match=r"z has 21 features per atom but irreps"):
        pooled_irrep_norms(z[..., :21], IRREPS)
    with pytest.raises(ValueError, match="pool must be one of"):
        pooled_scalars(z, IRREPS, pool="max")
    with pytest.raises(ValueError, match=r"mask must have shape \(B, n\)"):
        gram_invariants(z, IRREPS, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask must have dtype torch.bool"):
        gram_invariants(z, IRREPS, torch.ones(2, 3))
    with pytest.raises(ValueError, match="parts must be a non-empty sequence"):
        gram_invariants(z, IRREPS, parts=("trace",))
    with pytest.raises(ValueError, match="no 0e channels"):
        pooled_scalars(z[..., 3:9], "2x1o")
    nan = z.clone()
    nan[1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        pooled_complete_invariants(nan, SO3(IRREPS))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        PooledScalars(IRREPS)(z.tolist())
    with pytest.raises(ValueError, match="degree must be 2 or 3"):
        PooledCompleteInvariants(SO3(IRREPS), degree=4)


@pytest.mark.parametrize("group", [SO3, O3])
@pytest.mark.parametrize("pool", ["sum", "mean", "sort"])
def test_fast_complete_invariants_equal_e3nn_tensor_square(group, pool):
    """The inner-product path of pooled_complete_invariants against e3nn's TensorSquare, atom by atom."""
    from invlatent.projections import complete_invariants
    from invlatent.projections._set_irreps import _pool

    irreps = "2x0e + 1x0o + 3x1o + 2x1e + 1x2e + 1x2o"
    G = group(irreps)
    z = torch.randn(5, 4, G.irreps.dim, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    mask = torch.tensor([[True] * 4, [True, True, False, False], [True, False, True, True], [True] * 4, [False] * 4])
    zm = z * mask[..., None]
    per_atom = complete_invariants(zm.reshape(20, -1), G).reshape(5, 4, -1) * mask[..., None]
    ref = _pool(per_atom, mask, pool)
    torch.testing.assert_close(pooled_complete_invariants(z, G, mask, pool), ref, rtol=1e-12, atol=1e-12)
