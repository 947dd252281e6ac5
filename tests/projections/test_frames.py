"""PCA frames, canonicalisation, frame averaging and the approximate SO(3) quotient distance."""

import pytest
import torch
from e3nn import o3
from hypothesis import given, settings
from hypothesis import strategies as st

from invlatent import SO3, invariance_error
from invlatent.projections import (
    FrameAveraging,
    LatentFrameCanonicalization,
    PCACanonicalization,
    apply_rotation,
    approx_quotient_distance,
    canonicalize,
    frame_average,
    frame_set,
    latent_frame,
    pca_frame,
)
from invlatent.quotient import quotient_distance

IRREPS = o3.Irreps("2x0e + 3x1o + 2x2e + 1x1e")


def _cloud(B=5, n=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    scale = torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)
    return torch.randn(B, n, 3, generator=g, dtype=torch.float64) * scale


def test_apply_rotation_matches_e3nn():
    R = o3.rand_matrix(4, dtype=torch.float64) * torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)[:, None, None]
    z = torch.randn(4, IRREPS.dim, dtype=torch.float64)
    want = torch.einsum("bij,bj->bi", IRREPS.D_from_matrix(R), z)
    assert torch.allclose(apply_rotation(z, IRREPS, R), want, atol=1e-5)  # e3nn's D: float32 constants
    # our l <= 2 blocks are exact in float64: a homomorphism to round-off
    R2 = o3.rand_matrix(4, dtype=torch.float64)
    lhs = apply_rotation(apply_rotation(z, IRREPS, R2), IRREPS, R)
    assert (lhs - apply_rotation(z, IRREPS, R @ R2)).abs().max() < 1e-12


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), improper=st.booleans())
def test_pca_frame_equivariant(seed, improper):
    X = _cloud(seed=seed)
    R = o3.rand_matrix(5, dtype=torch.float64) * (-1.0 if improper else 1.0)
    F, FR = pca_frame(X, proper=not improper), pca_frame(X @ R.transpose(1, 2), proper=not improper)
    assert torch.allclose(FR, F @ R.transpose(1, 2), atol=1e-6)
    assert torch.allclose(F @ F.transpose(1, 2), torch.eye(3, dtype=X.dtype).expand(5, 3, 3), atol=1e-10)


def test_proper_frame_is_rotation_and_mask():
    X = _cloud()
    assert torch.allclose(torch.linalg.det(pca_frame(X)), torch.ones(5, dtype=X.dtype))
    padded = torch.cat([X, torch.full((5, 2, 3), 100.0, dtype=X.dtype)], dim=1)
    mask = torch.ones(5, 9, dtype=torch.bool)
    mask[:, 7:] = False
    assert torch.allclose(pca_frame(padded, mask), pca_frame(X))


def test_canonicalize_and_frame_average_are_invariant():
    X = _cloud(seed=3)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(5, IRREPS.dim, generator=g, dtype=torch.float64)  # an "equivariant latent" of X
    R = o3.rand_matrix(5, dtype=torch.float64)
    zR = apply_rotation(z, IRREPS, R)
    XR = X @ R.transpose(1, 2)
    can, fa = PCACanonicalization(IRREPS), FrameAveraging(IRREPS, proper=False)
    assert torch.allclose(can(z, X), can(zR, XR), atol=1e-5)
    assert torch.allclose(fa(z, X), fa(zR, XR), atol=1e-5)
    # averaging over all 8 sign flips kills every component that is odd under an axis flip
    avg = frame_average(z, IRREPS, frame_set(X, proper=False))
    sl = IRREPS.slices()[1]  # the 3x1o block
    assert avg[:, sl].abs().max() < 1e-10 and avg[:, IRREPS.slices()[0]].sub(z[:, :2]).abs().max() < 1e-12
    assert canonicalize(z, IRREPS, pca_frame(X)).shape == z.shape


def test_latent_frame_projection_invariant_core_diagnostic():
    z = torch.randn(16, IRREPS.dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    err = invariance_error(LatentFrameCanonicalization(IRREPS), z, SO3(IRREPS), n_elements=3, relative=True)
    assert err < 1e-5  # e3nn Wigner matrices carry ~1e-7 relative round-off
    assert invariance_error(lambda t: t, z, SO3(IRREPS), relative=True) > 0.1


def test_approx_quotient_distance_bounds():
    irreps = o3.Irreps("2x0e + 3x1o")  # l <= 1: exact reference by Kabsch
    g = torch.Generator().manual_seed(4)
    z1 = torch.randn(10, irreps.dim, generator=g, dtype=torch.float64)
    z2 = torch.randn(10, irreps.dim, generator=g, dtype=torch.float64)
    exact = quotient_distance(z1, z2, SO3(irreps))
    approx = approx_quotient_distance(z1, z2, SO3(irreps), steps=5)
    assert torch.all(approx >= exact - 1e-6) and torch.allclose(approx, exact, atol=1e-3)
    # a rotated copy (with l = 2 parts) is at distance ~0 from its original
    z = torch.randn(6, IRREPS.dim, generator=g, dtype=torch.float64)
    zR = apply_rotation(z, IRREPS, o3.rand_matrix(6, dtype=torch.float64))
    assert approx_quotient_distance(z, zR, SO3(IRREPS), steps=10).max() < 1e-3 * z.norm(dim=1).min()


def test_bad_input():
    with pytest.raises(ValueError, match="points"):
        pca_frame(torch.zeros(2, 3, 2))
    with pytest.raises(ValueError, match="z"):
        canonicalize(torch.zeros(2, 5), IRREPS, torch.eye(3).expand(2, 3, 3))
    with pytest.raises(ValueError, match="frame"):
        canonicalize(torch.zeros(2, IRREPS.dim), IRREPS, torch.eye(3).expand(3, 3, 3))
    with pytest.raises(ValueError, match="l = 1"):
        latent_frame(torch.zeros(2, 5), "5x0e")
    with pytest.raises(ValueError, match="irreps"):
        latent_frame(torch.zeros(2, 5), "not irreps")
    with pytest.raises(ValueError, match="weights"):
        pca_frame(torch.randn(2, 4, 3), weights=-torch.ones(2, 4))
