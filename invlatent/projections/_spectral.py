r"""Fourier invariants of cyclic fibers (:math:`C_N`, and :math:`SO(2)` sampled at ``N`` angles).

With :math:`F_a(k) = \sum_m z_{a,m} e^{-2\pi i km/N}` the DFT of channel ``a``, a shift by ``s``
multiplies :math:`F_a(k)` by :math:`e^{-2\pi i ks/N}`. Products whose frequencies sum to zero
are therefore invariant:

* power spectrum :math:`|F_a(k)|^2` -- invariant but lossy: it forgets every phase, so a
  signal and its mirror image (and many more) are merged;
* bispectrum :math:`B_{ab}(k_1,k_2) = F_a(k_1) F_b(k_2) \overline{F_b(k_1+k_2)}` -- invariant and,
  for generic signals, complete: the phases are recovered recursively
  :cite:`kondor2007novel,sanborn2023bispectral`.
"""

from __future__ import annotations

import torch
from torch import nn

from .._validation import check_tensor

__all__ = ["power_spectrum", "bispectrum", "PowerSpectrum", "Bispectrum"]


def _check(z):
    return check_tensor(z, "z", min_ndim=2, expected="(B, c, N)")


def power_spectrum(z: torch.Tensor) -> torch.Tensor:
    r"""Power spectrum over the last axis: :math:`P_a(k) = |F_a(k)|^2 / N`, :math:`k = 0..\lfloor N/2\rfloor`.

    Normalised so that :math:`\sum_{k=0}^{N-1} P_a(k) = \lVert z_a\rVert^2` (Parseval); only the
    non-redundant half is returned (real input).

    Parameters
    ----------
    z : Tensor, shape ``(B, ..., N)``, real

    Returns
    -------
    Tensor, shape ``(B, ..., N // 2 + 1)``

    Example
    -------
    >>> import torch
    >>> z = torch.tensor([[[1.0, 0.0, 0.0, 0.0]]])
    >>> power_spectrum(z).tolist()
    [[[0.25, 0.25, 0.25]]]
    """
    return _power_spectrum(_check(z))


def _power_spectrum(z: torch.Tensor) -> torch.Tensor:
    """:func:`power_spectrum` without input checks."""
    return torch.fft.rfft(z, dim=-1, norm="ortho").abs().square()


def bispectrum(z: torch.Tensor, full: bool = False) -> torch.Tensor:
    r"""Bispectrum invariants over the last axis, as real features.

    ``full=False`` (default): for every channel :math:`b` the :math:`2N` complex numbers

    .. math::

        & B_{bb}(0, k) = F_b(0)\,|F_b(k)|^2, \\
        & B_{0b}(1, k) = F_0(1)\,F_b(k)\,\overline{F_b(k+1)}, \qquad k = 0..N-1,

    a reduced set that is complete for generic signals *jointly over channels* (the phases of
    channel :math:`b` are fixed relative to the first harmonic of channel 0, so channels cannot
    be shifted independently). Returned as real and imaginary parts: ``(B, ..., c, 4N)``.

    ``full=True``: the full per-channel bispectrum :math:`B_{bb}(k_1, k_2)` for all
    :math:`k_1, k_2` (real and imaginary parts), ``(B, ..., c, 2N^2)``; complete per channel
    only up to independent shifts of the channels.

    Parameters
    ----------
    z : Tensor, shape ``(B, ..., c, N)``, real
    full : bool

    Returns
    -------
    Tensor, shape ``(B, ..., c, 4N)`` or ``(B, ..., c, 2N^2)``

    Example
    -------
    >>> import torch
    >>> z = torch.tensor([[[0.0, 1.0, 3.0, 2.0, 5.0]]])
    >>> mirror = z.flip(-1)                       # same power spectrum, different orbit
    >>> bool(torch.allclose(power_spectrum(z), power_spectrum(mirror)))
    True
    >>> bool(torch.allclose(bispectrum(z), bispectrum(mirror)))
    False
    >>> bool(torch.allclose(bispectrum(z), bispectrum(z.roll(1, -1)), atol=1e-5))
    True
    """
    return _bispectrum(_check(z), bool(full))


def _bispectrum(z: torch.Tensor, full: bool) -> torch.Tensor:
    """:func:`bispectrum` without input checks."""
    N = z.shape[-1]
    F = torch.fft.fft(z, dim=-1, norm="ortho")  # (..., c, N) complex
    k = torch.arange(N, device=z.device)
    if full:
        B = F.unsqueeze(-1) * F.unsqueeze(-2) * F[..., (k.unsqueeze(1) + k.unsqueeze(0)) % N].conj()
        return torch.view_as_real(B).flatten(-3)
    if z.dim() < 3:
        F = F.unsqueeze(-2)  # (B, N) -> one channel
    b0 = F[..., 0:1] * F.abs().square()  # B_bb(0, k), (..., c, N)
    f01 = F[..., 0:1, 1:2] if N > 1 else F[..., 0:1, 0:1]  # F_0(1), shared by all channels
    b1 = f01 * F * F[..., (k + 1) % N].conj()  # B_0b(1, k)
    out = torch.view_as_real(torch.cat([b0, b1], dim=-1)).flatten(-2)
    return out if z.dim() >= 3 else out.squeeze(-2)


class PowerSpectrum(nn.Module):
    """Module form of :func:`power_spectrum`: ``(B, ..., N) -> (B, ..., N // 2 + 1)``.

    Example
    -------
    >>> import torch
    >>> PowerSpectrum()(torch.ones(2, 3, 6)).shape
    torch.Size([2, 3, 4])
    """

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return _power_spectrum(_check(z))


class Bispectrum(nn.Module):
    """Module form of :func:`bispectrum`: ``(B, ..., c, N) -> (B, ..., c, 4N)`` (or ``2N^2`` if ``full``).

    Example
    -------
    >>> import torch
    >>> Bispectrum()(torch.ones(2, 3, 6)).shape
    torch.Size([2, 3, 24])
    """

    def __init__(self, full: bool = False):
        super().__init__()
        self.full = bool(full)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return _bispectrum(_check(z), self.full)
