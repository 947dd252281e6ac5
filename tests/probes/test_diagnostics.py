"""Diagnostics: equivariance/invariance errors, ambiguity index, retention."""

import pytest
import torch

from invlatent import (Cyclic, MaxFilter, Permutation, ReynoldsProjection, ambiguity_index,
                       equivariance_error, invariance_error, pairwise_quotient_distance, retention,
                       sort_projection)
from invlatent.probes import distance_correlation, knn_agreement



def test_equivariance_error_detects_a_broken_model(gen):
    x = torch.randn(4, 6, 3, generator=gen(0))
    good = torch.nn.Linear(3, 2)
    assert equivariance_error(good, x, Permutation(), Permutation()) < 1e-12

    class Broken(torch.nn.Module):
        def forward(self, x):
            return x[..., :2] + torch.arange(x.shape[1], dtype=x.dtype).view(1, -1, 1)  # node-index bias

    assert equivariance_error(Broken(), x, Permutation(), Permutation()) > 0.5


def test_equivariance_error_is_float64_and_leaves_the_model_alone(gen):
    lin = torch.nn.Linear(3, 3)
    x = torch.randn(5, 4, 3, generator=gen(0))
    equivariance_error(lin, x, Permutation(), Permutation())
    assert lin.weight.dtype == torch.float32  # a copy was cast, not the model


def test_invariance_error_zero_for_projections_positive_for_raw(gen):
    z = torch.randn(16, 5, 2, generator=gen(0), dtype=torch.float64)
    assert invariance_error(sort_projection, z, Permutation()) == 0.0
    assert invariance_error(lambda t: t, z, Permutation()) > 0.5
    assert invariance_error(lambda t: t, z, Permutation(), relative=True) <= 2.0


def test_ambiguity_index(gen):
    z = torch.randn(200, 8, 1, generator=gen(0), dtype=torch.float64)
    raw = ambiguity_index(z, Permutation())
    assert abs(raw - 7 / 8) < 0.1  # E|pi z - z|^2 = 2(n-1) vs 2n between iid objects
    assert ambiguity_index(z, Permutation(), fn=sort_projection) == 0.0


def test_distance_correlation_and_knn_basics(gen):
    x = torch.randn(30, 2, generator=gen(0), dtype=torch.float64)
    D = torch.cdist(x, x)
    assert abs(distance_correlation(D, 2 * D) - 1) < 1e-12
    y = torch.randn(30, 2, generator=gen(1), dtype=torch.float64)
    assert distance_correlation(D, torch.cdist(y, y)) < 0.6
    assert knn_agreement(D, D, k=5) == 1.0


def test_retention_of_sorting_is_perfect_and_of_reynolds_is_poor(gen):
    z = torch.randn(80, 6, 1, generator=gen(0), dtype=torch.float64)
    P = Permutation()
    r = retention(sort_projection(z), z, P, k=5)
    # knn_agreement == 1.0 is exact here: the two float64 distance matrices differ by ~1e-15 and
    # every point's 5th and 6th neighbours are >= 1.3e-4 apart (measured), so no neighbour flips
    assert r["distance_correlation"] > 1 - 1e-9 and r["knn_agreement"] == 1.0 and abs(r["distortion"] - 1) < 1e-9
    rr = retention(ReynoldsProjection(P, (6, 1), 1).double()(z), z, P, k=5)
    # the mean node code keeps the coarse scale (measured dcor 0.89) but not the neighbourhoods
    assert rr["knn_agreement"] < 0.5 and rr["distortion"] > 5 and rr["distance_correlation"] < 0.95


def test_retention_rises_with_the_number_of_templates(gen):
    C = Cyclic(8)
    z = torch.randn(120, 2, 8, generator=gen(0), dtype=torch.float64)
    Dq = pairwise_quotient_distance(z, None, C)
    scores = [retention(MaxFilter(C, (2, 8), T, seed=0).double()(z), Dq, k=10) for T in (2, 8, 64)]
    dc = [s["distance_correlation"] for s in scores]
    kn = [s["knn_agreement"] for s in scores]
    assert dc[0] < dc[1] < dc[2] and dc[2] > 0.9
    assert kn[0] < kn[2]


def test_retention_accepts_a_matrix_or_latents_identically(gen):
    z = torch.randn(30, 2, 5, generator=gen(0), dtype=torch.float64)
    C = Cyclic(5)
    p = MaxFilter(C, (2, 5), 16).double()(z)
    a = retention(p, z, C, k=4)
    b = retention(p, pairwise_quotient_distance(z, None, C), k=4)
    assert a == pytest.approx(b)


def test_equivariance_error_with_e3nn_on_irreps(gen):
    from e3nn import o3

    from invlatent import SO3

    irreps_in, irreps_out = o3.Irreps("2x0e + 2x1o"), o3.Irreps("1x0e + 3x1o + 1x2e")

    class Square(torch.nn.Module):
        def __init__(self, shift=False):
            super().__init__()
            self.tp = o3.FullyConnectedTensorProduct(irreps_in, irreps_in, irreps_out)
            self.shift = shift

        def forward(self, t):
            out = self.tp(t, t)
            return out + t[:, :1] if self.shift else out

    x = torch.randn(6, irreps_in.dim, generator=gen(0))
    err = equivariance_error(Square(), x, SO3(irreps_in), SO3(irreps_out))
    assert err < 1e-6  # model cast to float64; e3nn's float32-built constants limit it to ~1e-7
    broken = equivariance_error(Square(shift=True), x, SO3(irreps_in), SO3(irreps_out))
    assert broken > 1e-2  # adding a scalar to every output coordinate breaks the vector parts
    with pytest.raises(TypeError, match="pass an nn.Module"):
        equivariance_error(lambda t: Square().tp(t, t), x, SO3(irreps_in), SO3(irreps_out))
