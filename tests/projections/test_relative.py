"""Relative representations and Gram/MDS projections."""

import pytest
import torch
from e3nn import o3
from hypothesis import given, settings
from hypothesis import strategies as st

from invlatent import SO3, O3, invariance_error
from invlatent.projections import GramMDSProjection, RelativeProjection, gram_mds, gram_mds_projection, relative_projection

IRREPS = "3x0e + 4x1o + 1x2e"


def test_relative_values_and_global_invariance():
    z = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    r = relative_projection(z, torch.tensor([[1.0, 0.0], [0.0, 3.0]]))
    assert torch.allclose(r, torch.tensor([[1.0, 0.0], [2**-0.5, 2**-0.5]]))
    g = torch.Generator().manual_seed(0)
    Z, A = torch.randn(10, 6, generator=g), torch.randn(4, 6, generator=g)
    Q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))
    m = RelativeProjection(A)
    assert torch.allclose(RelativeProjection(A @ Q.T)(3.0 * Z @ Q.T), m(Z), atol=1e-5)  # global isometry + scale


def test_relative_not_invariant_per_object_but_after_invariant_projection():
    from invlatent.projections.irreps import irrep_norms

    g = torch.Generator().manual_seed(1)
    z = torch.randn(32, o3.Irreps(IRREPS).dim, generator=g, dtype=torch.float64)
    anchors = z[:5]
    G = SO3(IRREPS)
    raw = invariance_error(lambda t: relative_projection(t, anchors), z, G)
    assert raw > 0.1  # fixed anchors: a per-molecule rotation changes the similarities
    n_anchors = irrep_norms(anchors, IRREPS)
    inv = invariance_error(lambda t: relative_projection(irrep_norms(t, IRREPS), n_anchors), z, G)
    assert inv < 1e-5


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_gram_mds_invariant_and_distance_preserving(seed):
    g = torch.Generator().manual_seed(seed)
    V = torch.randn(3, 6, 3, generator=g, dtype=torch.float64)
    Q = o3.rand_matrix(3, dtype=torch.float64) * -1.0  # O(3): the MDS representation is reflection invariant
    X = gram_mds(V)
    assert torch.allclose(gram_mds(V @ Q.transpose(1, 2)), X, atol=1e-6)
    assert torch.allclose(torch.cdist(X, X), torch.cdist(V, V), atol=1e-8)


def test_gram_mds_projection_invariant_under_o3():
    z = torch.randn(16, o3.Irreps(IRREPS).dim, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out = GramMDSProjection(IRREPS)(z)
    assert out.shape == (16, 3 + 12)
    assert torch.allclose(out[:, :3], z[:, :3])
    assert invariance_error(GramMDSProjection(IRREPS), z, O3(IRREPS), relative=True) < 1e-6


def test_bad_input():
    with pytest.raises(ValueError, match="anchors"):
        relative_projection(torch.zeros(2, 3), torch.zeros(4, 2))
    with pytest.raises(TypeError, match="dtype"):
        relative_projection(torch.zeros(2, 3), torch.zeros(4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="NaN"):
        relative_projection(torch.full((2, 3), float("nan")), torch.ones(4, 3))
    with pytest.raises(ValueError, match="dim"):
        gram_mds(torch.zeros(2, 2, 3), dim=3)
    with pytest.raises(ValueError, match="at least 3"):
        gram_mds_projection(torch.zeros(2, 7), "1x0e + 2x1o")
