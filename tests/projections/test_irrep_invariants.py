"""Spectral (C_N) and irreps (SO3/O3) invariants: invariance, separation where the lossy ones merge."""

import pytest
import torch
from e3nn import o3

from invlatent import (O3, SO3, Bispectrum, CompleteInvariants, Cyclic, IrrepNorms, PowerSpectrum,
                       bispectrum, complete_invariants, invariance_error, irrep_norms, power_spectrum)

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}



@pytest.mark.parametrize("module", [PowerSpectrum(), Bispectrum(), Bispectrum(full=True)], ids=["power", "bi", "bi-full"])
def test_spectral_invariance_gradients_batch_split(gen, module, dtype):
    C = Cyclic(9)
    z = torch.randn(16, 3, 9, generator=gen(0), dtype=dtype)
    scale = float(module(z).abs().max())
    assert invariance_error(module, z, C, generator=1) <= TOL[dtype] * max(scale, 1.0)
    zz = z.double().requires_grad_()
    out = module(zz)
    out.square().sum().backward()
    assert torch.isfinite(zz.grad).all()
    assert torch.allclose(torch.cat([module(zz[:5]), module(zz[5:])]), out, atol=1e-12)


def test_power_spectrum_parseval(gen):
    z = torch.randn(5, 2, 8, generator=gen(0), dtype=torch.float64)
    P = power_spectrum(z)
    full = torch.cat([P, P[..., 1:-1].flip(-1)], dim=-1)  # the redundant half of a real signal
    assert torch.allclose(full.sum(-1), z.square().sum(-1))


def test_bispectrum_separates_what_the_power_spectrum_merges(gen):
    z = torch.randn(50, 1, 7, generator=gen(0), dtype=torch.float64)
    mirror = z.flip(-1)  # same power spectrum; for a generic signal not a shift of it
    assert torch.allclose(power_spectrum(z), power_spectrum(mirror), atol=1e-12)
    gap = (bispectrum(z) - bispectrum(mirror)).flatten(1).norm(dim=1)
    assert gap.min() > 1e-3


def test_reduced_bispectrum_is_joint_over_channels(gen):
    """Shifting one channel alone changes the reduced bispectrum (not the per-channel full one)."""
    z = torch.randn(20, 2, 6, generator=gen(0), dtype=torch.float64)
    z2 = z.clone()
    z2[:, 1] = z[:, 1].roll(2, -1)
    assert torch.allclose(bispectrum(z, full=True), bispectrum(z2, full=True), atol=1e-10)
    assert (bispectrum(z) - bispectrum(z2)).flatten(1).norm(dim=1).min() > 1e-3


IRREPS = "2x0e + 1x0o + 3x1o + 1x1e + 2x2e"


@pytest.mark.parametrize("Group,group_name", [(SO3, "SO3"), (O3, "O3")])
@pytest.mark.parametrize("degree", [2, 3])
def test_irreps_invariance(gen, Group, group_name, degree, dtype):
    irreps = IRREPS if degree == 2 else "1x0e + 1x0o + 2x1o + 1x2e"  # cubic: a smaller layout keeps it fast
    G = Group(irreps)
    z = torch.randn(8, G.irreps.dim, generator=gen(0), dtype=dtype)
    fn = CompleteInvariants(G, degree=degree, dtype=dtype)
    scale = max(float(fn(z).abs().max()), 1.0)
    assert invariance_error(fn, z, G, generator=1) <= TOL[dtype] * scale
    assert invariance_error(IrrepNorms(irreps, dtype=dtype), z, G, generator=1) <= TOL[dtype] * 10


def test_irrep_norms_equal_e3nn_norm(gen):
    z = torch.randn(6, o3.Irreps(IRREPS).dim, generator=gen(0))
    assert torch.allclose(irrep_norms(z, IRREPS), o3.Norm(IRREPS)(z))
    assert torch.allclose(irrep_norms(z, IRREPS, squared=True), o3.Norm(IRREPS, squared=True)(z))


def test_complete_invariants_separate_what_norms_merge(gen):
    u = torch.randn(30, 3, generator=gen(0), dtype=torch.float64)
    v = torch.randn(30, 3, generator=gen(1), dtype=torch.float64)
    # w: v rotated about a random axis, same length, different angle to u
    R = o3.rand_matrix(30, dtype=torch.float64)
    w = torch.einsum("bij,bj->bi", R, v)
    za, zb = torch.cat([u, v], 1), torch.cat([u, w], 1)
    assert torch.allclose(irrep_norms(za, "2x1o"), irrep_norms(zb, "2x1o"), atol=1e-12)
    gap = (complete_invariants(za, SO3("2x1o")) - complete_invariants(zb, SO3("2x1o"))).norm(dim=1)
    assert gap.min() > 1e-4


def test_cubic_invariants_tell_mirror_images_apart_under_so3(gen):
    z = torch.randn(20, 9, generator=gen(0), dtype=torch.float64)  # three polar vectors
    mirror = -z  # the inversion: an element of O(3) but not of SO(3)
    G, H = SO3("3x1o"), O3("3x1o")
    quad_a, quad_b = complete_invariants(z, G), complete_invariants(mirror, G)
    assert torch.allclose(quad_a, quad_b, atol=1e-12)  # Gram matrices cannot tell
    cub_a, cub_b = complete_invariants(z, G, degree=3), complete_invariants(mirror, G, degree=3)
    assert (cub_a - cub_b).norm(dim=1).min() > 1e-4  # the triple product flips sign
    o3a = complete_invariants(z, H, degree=3)
    assert torch.allclose(o3a, complete_invariants(mirror, H, degree=3), atol=1e-12)


def test_irreps_instead_of_a_group_still_work_with_a_deprecation_warning(gen):
    z = torch.randn(5, 9, generator=gen(0), dtype=torch.float64)
    with pytest.warns(DeprecationWarning, match="SO3"):
        old = complete_invariants(z, "3x1o")
    with pytest.warns(DeprecationWarning, match="O3"):
        old_o3 = complete_invariants(z, "3x1o", "O3", 3)
    torch.testing.assert_close(old, complete_invariants(z, SO3("3x1o")))
    torch.testing.assert_close(old_o3, complete_invariants(z, O3("3x1o"), degree=3))
    with pytest.warns(DeprecationWarning):
        assert CompleteInvariants("3x1o", "O3").irreps_out == CompleteInvariants(O3("3x1o")).irreps_out


def test_irreps_gradients_and_batch_split(gen):
    z = torch.randn(9, o3.Irreps(IRREPS).dim, generator=gen(0), dtype=torch.float64, requires_grad=True)
    for fn in (IrrepNorms(IRREPS, dtype=torch.float64), CompleteInvariants(SO3(IRREPS), degree=2, dtype=torch.float64)):
        out = fn(z)
        (g,) = torch.autograd.grad(out.sum(), z)
        assert torch.isfinite(g).all()
        assert torch.allclose(torch.cat([fn(z[:4]), fn(z[4:])]), out, atol=1e-12)
