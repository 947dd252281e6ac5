r"""The cyclic group :math:`C_N` on regular fibres ``(B, ..., N)`` and on their DFT coefficients."""

from __future__ import annotations

import math

import torch

from .._fft_correlation import cyclic_argmax_inner, cyclic_max_inner, use_fft
from .._validation import check_positive_int, check_tensor
from .base import Group, check_batch_size, check_generator, exact_small_distances

__all__ = ["Cyclic", "CyclicFourier"]


class Cyclic(Group):
    r"""The cyclic group :math:`C_N` shifting the last axis of ``(B, ..., N)`` latents.

    An element is an integer shift ``s``; :math:`(s\cdot z)_k = z_{(k-s) \bmod N}`
    (``torch.roll`` by ``s``). This is the regular representation, the layout of group
    convolution fibers (a ``c x N`` latent has ``c`` channels over the ``N`` rotations).

    Example
    -------
    >>> import torch
    >>> C = Cyclic(3)
    >>> C.orbit(torch.tensor([[[1.0, 2.0, 3.0]]]))[0, :, 0].tolist()
    [[1.0, 2.0, 3.0], [3.0, 1.0, 2.0], [2.0, 3.0, 1.0]]
    """

    is_finite = True

    def __init__(self, N: int):
        self.N = check_positive_int(N, "N")

    def __repr__(self) -> str:
        return f"Cyclic({self.N})"

    @property
    def order(self) -> int:
        return self.N

    def check_latent(self, z, name: str = "z") -> torch.Tensor:
        """Validate ``z`` of shape ``(B, ..., N)``."""
        check_tensor(z, name, min_ndim=2, expected=f"(B, c, N={self.N})")
        if z.shape[-1] != self.N:
            raise ValueError(
                f"{name} must have its last axis of size N={self.N} for Cyclic({self.N}), "
                f"expected (B, c, {self.N}), got {tuple(z.shape)}"
            )
        return z

    def sample(self, B: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """``B`` uniformly random shifts in ``{0, ..., N-1}``: a long tensor ``(B,)``."""
        check_batch_size(B)
        check_generator(generator)
        gdev = generator.device if generator is not None else "cpu"
        s = torch.randint(0, self.N, (B,), generator=generator, device=gdev)
        return s.to(device if device is not None else gdev)

    def elements(self, device=None) -> torch.Tensor:
        """All shifts ``0..N-1``: ``(N,)``."""
        return torch.arange(self.N, device=device)

    def _index(self, s: torch.Tensor) -> torch.Tensor:
        k = torch.arange(self.N, device=s.device)
        return (k.unsqueeze(0) - s.unsqueeze(-1)) % self.N  # (B, N)

    def act(self, g: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Shift the ``i``-th latent by ``g[i]`` along the last axis."""
        self.check_latent(z)
        if not isinstance(g, torch.Tensor):
            raise TypeError(f"g must be a (B,) integer tensor of shifts, got {type(g).__name__}")
        if g.is_floating_point() or g.is_complex() or g.dtype == torch.bool:
            raise TypeError(f"g must be an integer tensor of shifts, got {g.dtype}")
        if g.shape != (z.shape[0],):
            raise ValueError(f"g must have shape (B,) = ({z.shape[0]},) to match z, got {tuple(g.shape)}")
        idx = self._index(g.long().to(z.device))  # (B, N)
        idx = idx.view(z.shape[0], *([1] * (z.dim() - 2)), self.N).expand_as(z)
        return z.gather(-1, idx)

    def orbit(self, z: torch.Tensor) -> torch.Tensor:
        """All ``N`` shifts of each latent: ``(B, N, ..., N)``."""
        self.check_latent(z)
        idx = self._index(self.elements(z.device))  # (N shifts, N)
        return z[..., idx].movedim(-2, 1)

    def average(self, z: torch.Tensor) -> torch.Tensor:
        """Group average: the mean over the last axis, broadcast back."""
        self.check_latent(z)
        return z.mean(dim=-1, keepdim=True).expand_as(z)

    # All N shifts of an inner product are one circular cross-correlation: by the real DFT it
    # costs two small matmuls instead of a matmul against the whole orbit (2cN + N^2/2 instead of
    # cN^2 multiply-adds per pair); invlatent._fft_correlation.use_fft holds the measured crossover.
    def template_orbit(self, templates: torch.Tensor) -> torch.Tensor | None:
        """The templates' orbit for the direct path; ``None`` where the FFT path is faster."""
        if templates.is_floating_point() and use_fft(self.N, math.prod(templates.shape[1:-1]), templates.shape[0]):
            return None
        return self.orbit(templates)

    def max_inner(self, z: torch.Tensor, templates: torch.Tensor,
                  template_orbit: torch.Tensor | None = None) -> torch.Tensor:
        r""":math:`\max_s \langle w_t, s\cdot z_b\rangle` as ``(B, T)``: by the real DFT above the crossover."""
        if template_orbit is None and z.is_floating_point() and use_fft(
                self.N, math.prod(z.shape[1:-1]), templates.shape[0]):
            return cyclic_max_inner(z, templates, method="fft")
        return super().max_inner(z, templates, template_orbit)

    def argmax_inner(self, z: torch.Tensor, templates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""``(best, s)``: :math:`\max_s \langle w_t, s\cdot z_b\rangle` ``(B, T)`` and the shifts ``s`` ``(B, T)``.

        By the real DFT above the crossover (:func:`~invlatent._fft_correlation.use_fft` and at
        least 16 templates), otherwise one matmul against the templates' orbit (one template, as
        in :meth:`align_to_template`: the direct matmul, measured 2.2x faster than the DFT at
        ``N = 16, c = 8``). Not differentiable.
        """
        if not z.is_floating_point():
            return super().argmax_inner(z, templates)
        # <w, s.z> = <(-s).w, z>: the correlation of z against the templates' shifts, shift negated
        best, g = cyclic_argmax_inner(z, templates, method="auto")
        return best, (-g) % self.N

    def align_to_template(self, z: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
        r"""Shift every ``z_b`` by the ``s`` maximizing :math:`\langle w, s\cdot z_b\rangle` (:meth:`argmax_inner`)."""
        w = template.to(dtype=z.dtype, device=z.device).unsqueeze(0)
        _, s = self.argmax_inner(z, w)
        return self.act(s[:, 0], z)

    def pairwise_quotient_distance(self, Z1: torch.Tensor, Z2: torch.Tensor | None,
                                   chunk_size: int = 4096) -> torch.Tensor:
        """All pairs; the max inner product over shifts by the real DFT above the crossover, the
        small distances recomputed by direct differences (:func:`~invlatent.groups.base.exact_small_distances`)."""
        Zb = Z1 if Z2 is None else Z2
        if Z1.is_floating_point() and use_fft(self.N, math.prod(Z1.shape[1:-1]), Zb.shape[0]):
            best = cyclic_max_inner(Z1, Zb, method="fft")
            sq = Z1.flatten(1).square().sum(1, keepdim=True) + Zb.flatten(1).square().sum(1).unsqueeze(0) - 2 * best
            return exact_small_distances(sq, Z1, Z2, self.quotient_distance, chunk_size)
        return super().pairwise_quotient_distance(Z1, Z2, chunk_size)


class CyclicFourier(Group):
    r""":math:`C_N` in its Fourier (irreps) view: complex coefficients ``(B, ..., N)``.

    If :math:`\hat z = \operatorname{DFT}(z)` of a regular fiber, a shift by ``s`` multiplies
    frequency :math:`k` by the character :math:`e^{-2\pi i ks/N}`: the action is diagonal, one
    irrep per frequency. Elements are integer shifts ``(B,)`` exactly as for :class:`Cyclic`, so
    ``CyclicFourier(N).act(s, torch.fft.fft(z)) == torch.fft.fft(Cyclic(N).act(s, z))``.

    Example
    -------
    >>> import torch
    >>> z = torch.tensor([[[1.0, 2.0, 0.0, 0.0]]])
    >>> s = torch.tensor([1])
    >>> lhs = CyclicFourier(4).act(s, torch.fft.fft(z))
    >>> bool(torch.allclose(lhs, torch.fft.fft(Cyclic(4).act(s, z))))
    True
    """

    is_finite = True

    def __init__(self, N: int):
        self.N = check_positive_int(N, "N")
        self._cyclic = Cyclic(N)

    def __repr__(self) -> str:
        return f"CyclicFourier({self.N})"

    @property
    def order(self) -> int:
        return self.N

    def check_latent(self, z, name: str = "z") -> torch.Tensor:
        """Validate complex ``z`` of shape ``(B, ..., N)``."""
        check_tensor(z, name, min_ndim=2, expected=f"(B, c, N={self.N}) complex")
        if not z.is_complex():
            raise TypeError(f"{name} must be complex Fourier coefficients for CyclicFourier({self.N}), got {z.dtype}")
        if z.shape[-1] != self.N:
            raise ValueError(f"{name} must have its last axis of size N={self.N}, got {tuple(z.shape)}")
        return z

    def sample(self, B: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """``B`` random shifts ``(B,)``, as :meth:`Cyclic.sample`."""
        return self._cyclic.sample(B, generator=generator, device=device)

    def elements(self, device=None) -> torch.Tensor:
        return torch.arange(self.N, device=device)

    def _characters(self, s: torch.Tensor, dtype) -> torch.Tensor:
        k = torch.arange(self.N, device=s.device, dtype=torch.float64)
        phase = -2 * math.pi * s.to(torch.float64).unsqueeze(-1) * k / self.N  # (B, N)
        return torch.polar(torch.ones_like(phase), phase).to(dtype)

    def act(self, g: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        r"""Multiply frequency ``k`` of the ``i``-th latent by :math:`e^{-2\pi i k g_i/N}`."""
        self.check_latent(z)
        if not isinstance(g, torch.Tensor) or g.is_floating_point() or g.is_complex() or g.dtype == torch.bool:
            raise TypeError(f"g must be a (B,) integer tensor of shifts, got {getattr(g, 'dtype', type(g).__name__)}")
        if g.shape != (z.shape[0],):
            raise ValueError(f"g must have shape (B,) = ({z.shape[0]},) to match z, got {tuple(g.shape)}")
        chi = self._characters(g.to(z.device), z.dtype)
        return z * chi.view(z.shape[0], *([1] * (z.dim() - 2)), self.N)

    def orbit(self, z: torch.Tensor) -> torch.Tensor:
        """All ``N`` shifts: ``(B, N, ..., N)``."""
        self.check_latent(z)
        chi = self._characters(self.elements(z.device), z.dtype)  # (N shifts, N)
        return z.unsqueeze(1) * chi.view(1, self.N, *([1] * (z.dim() - 2)), self.N)

    def average(self, z: torch.Tensor) -> torch.Tensor:
        """Group average: keep frequency 0, zero the rest."""
        self.check_latent(z)
        keep = torch.zeros(self.N, dtype=z.dtype, device=z.device)
        keep[0] = 1
        return z * keep
