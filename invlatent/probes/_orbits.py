r"""Orbits sampled in input space: invariant projections when the latent action is unknown.

A network made invariant only by data augmentation has no known action :math:`\rho(g)` on its
latent. We can still *generate* the orbit of an input and encode it: for :math:`G` equally spaced
angles :math:`\theta_k = \theta_0 + 2\pi k / G`,

.. math::

    Z(x) = \big[f(R_{\theta_0} x),\ f(R_{\theta_1} x),\ \dots,\ f(R_{\theta_{G-1}} x)\big]
    \in \mathbb{R}^{d \times G} .

Rotating the input by :math:`2\pi/G` shifts the columns cyclically, :math:`Z(R_{2\pi/G}\, x) =
\operatorname{roll}(Z(x), -1)` (exactly for :math:`G = 4` on the pixel grid, up to interpolation
otherwise), so :math:`Z(x)` is a regular-representation fibre of :math:`C_G` — the latent layout of
:class:`invlatent.Cyclic` — and every :math:`C_G` projection of the package applies to it: the mean
over the orbit (test-time augmentation), the max, random max filters. The price is :math:`G`
forward passes per input, and invariance to angles between the :math:`G` samples is only
approximate.

Example
-------
>>> import torch
>>> from invlatent.models.cnn import CNN
>>> cnn = CNN(channels=(4,), latent_dim=8).eval()
>>> x = torch.rand(3, 1, 28, 28)
>>> Z = orbit_latents(cnn.encode, x, n_angles=4)
>>> Z.shape
torch.Size([3, 8, 4])
>>> Zr = orbit_latents(cnn.encode, torch.rot90(x, 1, dims=(-2, -1)), n_angles=4)
>>> bool(torch.allclose(Zr, Z.roll(-1, dims=-1), atol=1e-5))   # C_4 acts by a cyclic shift
True
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .._validation import check_positive_int, check_tensor

__all__ = ["orbit_latents", "orbit_spread", "view_correlation"]


@torch.no_grad()
def orbit_latents(
    encode: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    n_angles: int,
    *,
    offset: float | torch.Tensor = 0.0,
    batch_size: int = 512,
) -> torch.Tensor:
    r"""Encode :math:`G` = ``n_angles`` equally spaced rotations of every image.

    Parameters
    ----------
    encode : callable
        Maps images ``(b, C, H, W)`` to latents ``(b, *latent_shape)``.
    x : Tensor, shape ``(B, C, H, W)``
    n_angles : int
        :math:`G`; multiples of 90 degrees use :func:`torch.rot90` (exact), other angles
        :func:`invlatent.images.rotate` (bilinear).
    offset : float or Tensor ``(B,)``
        :math:`\theta_0` in degrees (a per-image start angle, e.g. the unknown pose).
    batch_size : int
        Images per forward pass (``B * G`` passes in total).

    Returns
    -------
    Tensor, shape ``(B, *latent_shape, G)``
        Column :math:`k` is :math:`f(R_{\theta_0 + 360k/G}\, x)`.
    """
    check_tensor(x, "x", ndim=4, expected="(B, C, H, W)")
    G = check_positive_int(n_angles, "n_angles")
    check_positive_int(batch_size, "batch_size")
    B = x.shape[0]
    off = torch.as_tensor(offset, dtype=x.dtype, device=x.device)
    if off.dim() == 0:
        off = off.expand(B)
    if off.shape != (B,):
        raise ValueError(f"offset must be a scalar or a tensor of shape (B,) = ({B},), got {tuple(off.shape)}")
    return _orbit_latents(encode, x, G, off, batch_size)


def _orbit_latents(encode, x: torch.Tensor, G: int, off: torch.Tensor, batch_size: int):
    """:func:`orbit_latents` of checked input; ``off`` (B,): start angles in degrees."""
    from ..images._rotate import rot90, rotate

    B = x.shape[0]
    exact = (360 % G == 0) and (360 // G) % 90 == 0 and bool((off % 90 == 0).all())
    out = []
    for k in range(G):
        angle = off + 360.0 * k / G
        # multiples of 90 degrees: exact pixel permutations; otherwise interpolation
        xs = rot90(x, (angle // 90).long()) if exact else rotate(x, angle)
        zs = [encode(xs[i:i + batch_size]) for i in range(0, B, batch_size)]
        out.append(torch.cat(zs))
    return torch.stack(out, dim=-1)


def orbit_spread(Z: torch.Tensor) -> torch.Tensor:
    r"""Root-mean-square distance of orbit samples from their mean, per input.

    .. math:: s(x) = \Big(\tfrac1G \sum_k \lVert Z_{:,k} - \bar Z \rVert^2\Big)^{1/2}

    Zero for an exactly invariant encoder. ``Z`` has shape ``(B, d, G)``; returns ``(B,)``.
    """
    check_tensor(Z, "Z", ndim=3, expected="(B, d, G)")
    return (Z - Z.mean(-1, keepdim=True)).pow(2).sum(1).mean(-1).sqrt()


def view_correlation(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-8) -> float:
    r"""Mean diagonal of the cross-correlation matrix of two views' codes (Barlow Twins' invariance term).

    With codes standardised over the batch, :math:`C_{jj} = \tfrac1B \sum_b \hat z^{(1)}_{bj}
    \hat z^{(2)}_{bj}`; Barlow Twins (Zbontar et al., 2021) drives :math:`C_{jj} \to 1`. This returns
    :math:`\tfrac1d \sum_j C_{jj}`: 1 for codes that do not change between the views.

    Parameters
    ----------
    z1, z2 : Tensor, shape ``(B, d)``, the codes of two views of the same ``B`` inputs.
    """
    check_tensor(z1, "z1", ndim=2, expected="(B, d)")
    check_tensor(z2, "z2", ndim=2, expected="(B, d)")
    if z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must have the same shape (B, d), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if z1.shape[0] < 2:
        raise ValueError("z1 and z2 need at least 2 rows to standardise over the batch")
    a = (z1 - z1.mean(0)) / (z1.std(0) + eps)
    b = (z2 - z2.mean(0)) / (z2.std(0) + eps)
    return float((a * b).mean(0).mean() * z1.shape[0] / (z1.shape[0] - 1))
