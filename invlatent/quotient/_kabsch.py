r"""Kabsch / orthogonal Procrustes: the best rotation between two sets of 3-vectors.

.. math::

    R^\star = \arg\min_{R\in SO(3)} \sum_k \lVert p_k - R q_k\rVert^2
    = V \operatorname{diag}(1, 1, \det(VU^\top)) U^\top, \qquad Q^\top P = U S V^\top .
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import torch

__all__ = ["kabsch", "l1_basis"]


def kabsch(P: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """Rotations ``R`` ``(B, 3, 3)`` in SO(3) minimising ``sum_k ||P_k - R Q_k||^2``; ``P``, ``Q`` ``(B, m, 3)``."""
    H = Q.transpose(1, 2) @ P  # (B, 3, 3)
    U, S, Vh = torch.linalg.svd(H)
    d = torch.sign(torch.linalg.det(Vh.transpose(1, 2) @ U.transpose(1, 2)))
    d = torch.where(d == 0, torch.ones_like(d), d)
    E = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=1))
    return Vh.transpose(1, 2) @ E @ U.transpose(1, 2)


@lru_cache(maxsize=None)
def l1_basis() -> torch.Tensor:
    """The permutation ``P`` with ``Irreps("1o").D_from_matrix(R) = P R P^T`` (found, not assumed: e3nn-version proof)."""
    from e3nn import o3

    R = o3.angles_to_matrix(*torch.tensor([0.3, 1.1, -0.7], dtype=torch.float64))
    D = o3.Irreps("1o").D_from_matrix(R)
    eye = torch.eye(3, dtype=torch.float64)
    best = min(itertools.permutations(range(3)), key=lambda p: float((D - eye[list(p)] @ R @ eye[list(p)].T).abs().max()))
    return eye[list(best)]
