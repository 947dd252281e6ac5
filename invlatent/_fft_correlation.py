r"""Cyclic cross-correlation by the real DFT: :math:`\max_g \langle x_i, g\cdot y_j\rangle` for :math:`C_N`.

For the cyclic group acting on the last axis by ``torch.roll`` (the regular representation),
the inner products of :math:`x` with all :math:`N` shifts of :math:`y` form a circular
cross-correlation, summed over the ``c`` channels:

.. math::

    r_{ij}(g) = \langle x_i, g\cdot y_j\rangle
              = \frac1N \sum_{f=0}^{N-1} e^{2\pi i f g/N} \sum_{c} \hat x_{i,c}(f)\,\overline{\hat y_{j,c}(f)} .

The direct way is one real matmul of ``(B, cN)`` against the ``(cN, T N)`` orbit of the
templates: :math:`2 c N^2` flops per output pair ``(i, j)``. Here the same numbers come from
two small real matmuls per pair: the frequency products (``F = N//2 + 1`` frequencies, real
and imaginary parts, :math:`\approx 4cN` flops) and the inverse real DFT of the ``2F``
coefficients into the ``N`` shifts (:math:`\approx 2N^2` flops); the ratio is
:math:`cN / (2c + N)`, 4 at ``N = 16, c = 8``. The shifts come out as ``N`` contiguous rows,
so the max over the group is an elementwise max of contiguous blocks. Work is done in chunks
of ``x`` so that the ``(2F, b, T)`` intermediate stays in cache.

Rounding: the DFT matrices are built in float64 and cast to the input dtype; in float32 the
result agrees with the direct matmul to about ``1e-6`` of :math:`\lVert x\rVert\lVert y\rVert`
(tested in ``tests/test_fft_maxfilter.py``).

Example
-------
>>> import torch
>>> from invlatent._fft_correlation import cyclic_max_inner
>>> x = torch.tensor([[[1.0, 0.0, 0.0, 0.0]]])
>>> y = torch.tensor([[[0.0, 0.0, 2.0, 0.0]], [[0.0, -1.0, 0.0, 0.0]]])
>>> cyclic_max_inner(x, y, method="fft").round(decimals=5).tolist()
[[2.0, 0.0]]
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

__all__ = ["cyclic_max_inner", "use_fft"]

#: Intermediate ``(2F, b, T)`` elements per chunk of ``x`` (about 1 MB in float32: L2-sized).
_CHUNK_ELEMENTS = 1 << 18


def use_fft(N: int, c: int, T: int) -> bool:
    r"""The size rule: ``True`` where the DFT path is measured faster than the direct matmul.

    Flop ratio direct / DFT is :math:`cN/(2c+N)`, but the DFT path runs more, smaller matmuls,
    so the crossover was measured: 2-core shared CPU, one thread, float32, ``B = 4096``,
    ``T = 256``, median of 5 per cell, both methods in one process
    (``benchmarks/bench_fft_crossover.py`` reprints the table). Speed-up direct / DFT::

        N  |  c=1    c=2    c=8   c=32
        2      1.10   0.91   0.88   0.55
        4      1.16   1.18   1.01   0.80
        8      4.03   2.17   1.56   2.09
        16     2.69   2.03   3.78   3.12
        32     2.23   2.09   4.60   7.35
        64     1.44   2.32   4.94   8.05

    The DFT path wins at every ``c`` from ``N = 8`` on, is a wash at ``N = 4`` and loses at
    ``N = 2``, so the rule is ``N >= 8`` (``c`` and ``T`` scale both sides alike).
    """
    return N >= 8


@lru_cache(maxsize=16)
def _dft_tables(N: int):
    """Float64 tables: forward ``(N, 2F)`` (cos | -sin) and inverse ``(N, 2F)`` (rows: shifts g)."""
    F = N // 2 + 1
    k = torch.arange(N, dtype=torch.float64)
    f = torch.arange(F, dtype=torch.float64)
    ang = 2 * math.pi * k[:, None] * f[None, :] / N  # (N, F)
    forward = torch.cat([torch.cos(ang), -torch.sin(ang)], dim=1)  # x_hat = x @ forward: (re | im)
    weight = torch.full((F,), 2.0, dtype=torch.float64)  # f and N - f pair up, except 0 and N/2
    weight[0] = 1.0
    if N % 2 == 0:
        weight[-1] = 1.0
    # r(g) = 1/N sum_f w_f (Re P_f cos(2 pi f g / N) - Im P_f sin(2 pi f g / N))
    # columns ordered (f, re|im), like the rows of the spectrum below
    inverse = torch.stack([weight * torch.cos(ang), -weight * torch.sin(ang)], dim=2).reshape(N, 2 * F) / N
    return forward, inverse


def _template_spectrum(y: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
    r"""``(2F, 2c, T)``: for frequency ``f``, row block ``[Re | Im]`` of :math:`\hat x\,\overline{\hat y}`.

    With :math:`\hat x = a + ib`, :math:`\hat y = p + iq`:
    :math:`\operatorname{Re}(\hat x \bar{\hat y}) = ap + bq`, :math:`\operatorname{Im} = bp - aq`.
    """
    T, c, N = y.shape
    F = N // 2 + 1
    yh = (y.reshape(T * c, N).double() @ forward).view(T, c, 2, F)
    p, q = yh[:, :, 0], yh[:, :, 1]  # (T, c, F)
    re = torch.cat([p, q], dim=1)  # (T, 2c, F): coefficients of [a | b]
    im = torch.cat([-q, p], dim=1)
    return torch.stack([re, im], dim=0).permute(3, 0, 2, 1).reshape(2 * F, 2 * c, T)


def _max_inner_fft(x: torch.Tensor, y: torch.Tensor, chunk: int | None) -> torch.Tensor:
    B, c, N = x.shape
    T = y.shape[0]
    F = N // 2 + 1
    forward64, inverse64 = _dft_tables(N)
    # even N: r(g + N/2) = E_g - O_g with E, O the even- and odd-frequency parts of r(g) = E_g + O_g,
    # so max(r(g), r(g + N/2)) = E_g + |O_g|: half the shifts, each from half the frequencies
    half = N % 2 == 0 and N >= 2
    order = torch.cat([torch.arange(0, F, 2), torch.arange(1, F, 2)]) if half else torch.arange(F)
    Fe = (F + 1) // 2  # number of even frequencies
    spec = _template_spectrum(y, forward64.to(y.device)).view(F, 2, 2 * c, T)[order.to(y.device)]
    spec = spec.reshape(2 * F, 2 * c, T).to(x.dtype)  # (2F, 2c, T), frequencies in `order`
    forward = forward64.to(device=x.device, dtype=x.dtype)
    inv = inverse64.view(N, F, 2)[:, order].reshape(N, 2 * F)
    if half:
        inv_even = inv[: N // 2, : 2 * Fe].contiguous().to(device=x.device, dtype=x.dtype)
        inv_odd = inv[: N // 2, 2 * Fe:].contiguous().to(device=x.device, dtype=x.dtype)
    else:
        inverse = inv.to(device=x.device, dtype=x.dtype)
    order = order.to(x.device)
    if chunk is None:
        chunk = max(1, _CHUNK_ELEMENTS // (2 * F * T))
    grad = torch.is_grad_enabled() and (x.requires_grad or spec.requires_grad)
    out, parts = (None, []) if grad else (x.new_empty(B, T), None)
    for s in range(0, B, chunk):
        xc = x[s:s + chunk]
        b = xc.shape[0]
        xh = (xc.reshape(b * c, N) @ forward).view(b, c, 2, F)  # (b, c, re|im, F)
        # (F, b, [re c | im c]) in `order`, repeated for the real and the imaginary output part: (2F, b, 2c)
        A = xh.permute(3, 0, 2, 1).reshape(F, 1, b, 2 * c)[order].expand(F, 2, b, 2 * c).reshape(2 * F, b, 2 * c)
        P = torch.bmm(A, spec).view(2 * F, b * T)  # [f, re|im] of sum_c x_hat conj(y_hat)
        if half:
            R = inv_even @ P[: 2 * Fe]  # (N/2, b T): E_g
            O = inv_odd @ P[2 * Fe:]  # (N/2, b T): O_g
            R = R + O.abs() if grad else R.add_(O.abs_())
        else:
            R = inverse @ P  # (N, b T): the N shifts as contiguous rows
        if grad:  # differentiable: keep the chunks, concatenate
            parts.append(R.amax(dim=0).view(b, T))
        else:  # written in place (no copy of the (B, T) result)
            torch.amax(R, dim=0, out=out[s:s + b].view(-1))
    if grad:
        return torch.cat(parts) if parts else x.new_zeros(0, T)
    return out


def _max_inner_direct(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    T, c, N = y.shape
    orb = torch.stack([torch.roll(y, g, dims=-1) for g in range(N)], dim=0)  # (N, T, c, N)
    return (x.reshape(x.shape[0], c * N) @ orb.reshape(N * T, c * N).T).view(x.shape[0], N, T).amax(dim=1)


def cyclic_max_inner(x: torch.Tensor, y: torch.Tensor, *, method: str = "auto", chunk: int | None = None) -> torch.Tensor:
    r"""All-pairs maximal inner product over :math:`C_N`: :math:`M_{ij} = \max_g \langle x_i, g\cdot y_j\rangle`.

    ``g`` shifts the last axis (:class:`~invlatent.groups.Cyclic`); the value is symmetric,
    :math:`\max_g\langle x, g\cdot y\rangle = \max_g \langle g\cdot x, y\rangle`.

    Parameters
    ----------
    x : Tensor, shape ``(B, ..., N)``, real floating
    y : Tensor, shape ``(T, ..., N)``, same trailing shape and dtype
    method : ``"auto"`` (:func:`use_fft`), ``"fft"`` or ``"direct"``
    chunk : int, optional
        Rows of ``x`` per step of the DFT path (default: a ``(2F, b, T)`` block of ``2^18`` elements).

    Returns
    -------
    Tensor, shape ``(B, T)``
    """
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(f"x and y must share the trailing shape (..., N), got {tuple(x.shape)} and {tuple(y.shape)}")
    if method not in ("auto", "fft", "direct"):
        raise ValueError(f"method must be 'auto', 'fft' or 'direct', got {method!r}")
    N = x.shape[-1]
    c = math.prod(x.shape[1:-1])
    x3 = x.reshape(x.shape[0], c, N)
    y3 = y.to(dtype=x.dtype, device=x.device).reshape(y.shape[0], c, N)
    if method == "direct" or (method == "auto" and not use_fft(N, c, y3.shape[0])):
        return _max_inner_direct(x3, y3)
    return _max_inner_fft(x3, y3, chunk)
