"""Wigner matrices of degree l >= 3 (``invlatent._irreps.wigner_blocks``) against e3nn's own.

The package builds :math:`D^l(R)` from e3nn's Euler angles and generators, each one-parameter
factor :math:`\\exp(\\theta X)` by its spectral form (cosines and sines of :math:`m\\theta` times
fixed matrices). Independent checks: e3nn's ``D_from_matrix`` (``matrix_exp`` of the generators),
orthogonality, and the homomorphism :math:`D(R_1 R_2) = D(R_1) D(R_2)`.
"""

import pytest
import torch
from e3nn import o3

from invlatent._irreps import float64_default, wigner_blocks

EPS = torch.finfo(torch.float64).eps


def _rotations(B: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    q = torch.randn(B, 4, generator=g, dtype=torch.float64)
    R = o3.quaternion_to_matrix(q / q.norm(dim=1, keepdim=True))
    # and the awkward ones: identity, a half turn, and turns next to e3nn's gimbal points (beta = 0, pi)
    z = torch.zeros(3, dtype=torch.float64)
    edge = o3.angles_to_matrix(z + 0.3, torch.tensor([0.0, 1e-9, torch.pi - 1e-9], dtype=torch.float64), z - 1.1)
    return torch.cat([R, torch.eye(3, dtype=torch.float64)[None],
                      o3.angles_to_matrix(*(torch.tensor([torch.pi], dtype=torch.float64),) * 3), edge])


@pytest.mark.parametrize("l", [3, 4, 5, 6])
def test_matches_e3nn_and_is_a_representation(l):
    R = _rotations(64)
    D, det = wigner_blocks(o3.Irreps(f"1x{l}e"), R)
    with float64_default():
        ref = o3.Irrep(l, 1).D_from_matrix(R)
    # entries are O(1); both sides sum O(l) products of O(1) terms in different orders: round-off
    # of a few hundred eps (e3nn's matrix_exp is itself accurate to ~1e-14 here)
    tol = 200 * (2 * l + 1) * EPS
    assert (D[l] - ref).abs().max() <= tol
    eye = torch.eye(2 * l + 1, dtype=torch.float64)
    assert (D[l] @ D[l].transpose(-1, -2) - eye).abs().max() <= tol
    R1, R2 = R[:32], R[32:64]
    D12, _ = wigner_blocks(o3.Irreps(f"1x{l}e"), R1 @ R2)
    assert (D12[l] - D[l][:32] @ D[l][32:64]).abs().max() <= tol
    assert torch.allclose(det, torch.ones_like(det))


def test_float32_rotations_keep_their_dtype_and_agree():
    R = _rotations(16)
    D64, _ = wigner_blocks(o3.Irreps("1x4e"), R)
    D32, _ = wigner_blocks(o3.Irreps("1x4e"), R.float())
    # wigner_blocks computes in float64 whatever R's dtype: only R's own rounding differs
    assert D32[4].dtype == torch.float64
    assert (D32[4] - D64[4]).abs().max() <= 100 * torch.finfo(torch.float32).eps
