r"""Cyclic cross-correlation by the real DFT: :math:`\max_g \langle x_i, g\cdot y_j\rangle` for :math:`C_N`.

For the cyclic group acting on the last axis by ``torch.roll`` (the regular representation),
the inner products of :math:`x` with all :math:`N` shifts of :math:`y` form a circular
cross-correlation, summed over the ``c`` channels:

.. math::

    r_{ij}(g) = \langle x_i, g\cdot y_j\rangle
              = \frac1N \sum_{f=0}^{N-1} e^{2\pi i f g/N} P_{ij}(f), \qquad
      P_{ij}(f) = \sum_{c} \hat x_{i,c}(f)\,\overline{\hat y_{j,c}(f)} .

The direct way is one real matmul of ``(B, cN)`` against the ``(cN, T N)`` orbit of the
templates: :math:`c N^2` multiply-adds per output pair ``(i, j)``. Here the same numbers come
from two small real matmuls per block of rows of ``x``:

1. **Frequency products.** A real signal's spectrum has ``N`` real degrees of freedom: the real
   parts of :math:`f = 0, \dots, \lfloor N/2\rfloor` and the imaginary parts of
   :math:`0 < f < N/2`. Each is one *row*; with :math:`\hat x = a + ib`, :math:`\hat y = p + iq`,
   :math:`\operatorname{Re} P = \sum_c a p + b q` and :math:`\operatorname{Im} P = \sum_c b p - a q`,
   so every row is a ``(b, 2c) @ (2c, T)`` real matmul against precomputed template
   coefficients: one batched matmul ``(N, b, 2c) @ (N, 2c, T) -> (N, b, T)``,
   :math:`2cN` multiply-adds per pair.
2. **Shifts.** The inverse real DFT is an ``(N, N)`` matrix applied to the ``N`` rows. For even
   ``N`` only half of it is needed: with :math:`E_g` and :math:`O_g` the parts of :math:`r(g)`
   from the even and the odd frequencies, :math:`r(g + N/2) = E_g - O_g`, so
   :math:`\max(r(g), r(g + N/2)) = E_g + \lvert O_g\rvert`; :math:`E` and :math:`O` for
   :math:`g < N/2` are two ``(N/2, N/2)`` matmuls (:math:`N^2/2` multiply-adds per pair), and the
   max over the group is an elementwise max of ``N/2`` contiguous rows.

Per pair :math:`2cN + N^2/2` multiply-adds against :math:`cN^2`: 5.3 times fewer at
``N = 16, c = 8``. Work is done in blocks of rows of ``x`` so that the ``(N, b, T)`` products stay
in cache, into buffers reused from block to block; the transform of ``x`` is done once per larger
block (a small matmul and a transpose).

Rounding: the DFT matrices are built in float64 and cast to the input dtype; in float32 the
result agrees with the direct matmul to about ``1e-6`` of :math:`\lVert x\rVert\lVert y\rVert`
(tested in ``tests/projections/test_fft_maxfilter.py``).

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

__all__ = ["cyclic_argmax_inner", "cyclic_max_inner", "use_fft"]

#: Elements of one ``(N, b, T)`` block of frequency products (1 MB in float32, the size of this
#: machine's L2): sets the rows ``b`` per step. At ``N = 16, c = 8, T = 256, B = 1e5`` (one thread,
#: medians of 9 rounds interleaved with the numpy loop, CPU time, a loaded 2-core machine) the rows
#: b = 32, 64, 128, 256 gave 2.5, 2.8, 2.8, 2.6 times the loop's speed: 64 here.
_BLOCK_ELEMENTS = 1 << 18
#: Elements of the transformed ``x`` per transform step ``(b', N, 2c)``: one matmul and one transpose.
_TRANSFORM_ELEMENTS = 1 << 18


def use_fft(N: int, c: int, T: int) -> bool:
    r"""The size rule: ``True`` where the DFT path is measured faster than the direct matmul.

    Multiply-adds per pair are :math:`cN^2` direct and :math:`2cN + N^2/2` (even ``N``) or
    :math:`2cN + N^2` (odd ``N``) here, but the DFT path runs more, smaller matmuls, so the
    crossover was measured: 2-core shared CPU, one thread, float32, ``B = 4096``, ``T = 256``,
    median of 5 per cell, both methods in one process (``benchmarks/bench_fft_crossover.py``
    reprints the table; the rows 3, 5, 6, 7 from a second run). Speed-up direct / DFT::

        N  |  c=1    c=2    c=8   c=32
        2      0.34   0.84   0.57   0.87
        3      2.82     -    1.12   0.83
        4      1.80   1.30   1.45   1.58
        5      1.60     -    1.26   2.29
        6      0.81     -    1.31   1.64
        7      1.60     -    3.75   2.23
        8      3.25   3.21   3.42   2.92
        16     2.86   3.22   4.25   4.77
        32     3.19   2.55   5.47   8.60
        64     2.61   2.34   5.53  12.11

    The DFT path wins nearly everywhere from ``N = 4`` on and loses at ``N = 2`` (``N = 3`` is
    a wash), so the rule is ``N >= 4`` (``c`` and ``T`` scale both sides alike). Before the
    half-spectrum rows and buffers of this version the crossover was ``N = 8``.
    """
    return N >= 4


#: Fewest templates for which :func:`cyclic_argmax_inner` takes the DFT path ("auto"). The DFT of
#: each row of ``x`` (``2cN^2`` multiply-adds, a dense ``(N, 2N)`` matmul) is paid once per row and
#: shared by the ``T`` templates, while the direct path is ``cN^2`` per row and template, so for few
#: templates the direct matmul wins. Measured (one thread, a loaded 2-core machine, B = 2e4,
#: float32, CPU time, median of 3) direct / DFT for T = 1, 2, 4, 8, 16, 32:
#: N=16 c=8: 0.10 0.31 0.47 0.64 1.16 1.42; N=8 c=8: 0.23 0.26 0.40 0.55 0.95 1.08;
#: N=32 c=8: 0.13 0.28 0.51 0.73 1.37 2.10; N=16 c=2: 0.22 0.32 0.46 0.84 1.20 1.86.
_ARGMAX_MIN_TEMPLATES = 16


@lru_cache(maxsize=16)
def _real_dft(N: int):
    """Float64 tables of the ``N`` spectrum rows, even frequencies first.

    Returns ``(forward, inverse, is_im)``: ``forward`` ``(N, 2N)`` maps a signal to the ``(a, b)``
    pair of each row (columns ordered row-major, ``a`` then ``b``), ``inverse`` ``(N, N)`` maps the
    rows of :math:`P` to the shifts :math:`r(g)`, ``is_im`` ``(N,)`` marks the imaginary-part rows.
    """
    rows = [(f, im) for f in range(N // 2 + 1) for im in (False, True) if not im or 0 < 2 * f < N]
    rows.sort(key=lambda row: row[0] % 2)  # stable: even frequencies first (the half trick below)
    f = torch.tensor([row[0] for row in rows], dtype=torch.float64)
    is_im = torch.tensor([row[1] for row in rows])
    k = torch.arange(N, dtype=torch.float64)
    turns = torch.remainder(k[:, None] * f[None, :], N)  # (N, rows): f k mod N, exact in float64
    ang = 2 * math.pi * turns / N
    sin = torch.where(torch.remainder(2 * turns, N) == 0, 0.0, torch.sin(ang))  # exact zeros at 0 and pi
    forward = torch.stack([torch.cos(ang), -sin], dim=2).reshape(N, 2 * N)  # x_hat(f) = a + i b
    # r(g) = 1/N sum_f w_f (Re P_f cos(2 pi f g / N) - Im P_f sin(2 pi f g / N)); w_f = 2 where f and N - f pair up
    weight = torch.where((f == 0) | (2 * f == N), 1.0, 2.0).to(torch.float64) / N
    inverse = torch.where(is_im[None, :], -sin, torch.cos(ang)) * weight  # (g, rows): k plays g
    return forward, inverse, is_im


def _template_spectrum(y: torch.Tensor, forward: torch.Tensor, is_im: torch.Tensor) -> torch.Tensor:
    r"""``(N, 2c, T)``: for each row, the coefficients of ``[a | b]`` (the ``x`` spectrum) in that row of :math:`P`.

    With :math:`\hat y = p + iq`: a real-part row has ``[p | q]``, an imaginary-part row ``[-q | p]``.
    """
    T, c, N = y.shape
    yh = (y.reshape(T * c, N).double() @ forward).view(T, c, N, 2)
    p, q = yh[..., 0], yh[..., 1]  # (T, c, rows)
    coef = torch.cat([torch.where(is_im, -q, p), torch.where(is_im, p, q)], dim=1)  # (T, 2c, rows)
    return coef.permute(2, 1, 0).contiguous()


def _shift_max(P: torch.Tensor, inverse: torch.Tensor, half: bool, out: torch.Tensor | None,
               buf: torch.Tensor | None) -> torch.Tensor:
    """Max over the shifts of one block: ``P`` ``(N, b*T)`` rows -> ``(b*T,)`` (into ``out``, reusing ``buf``)."""
    N, bt = P.shape
    if out is None:  # differentiable
        if half:
            EO = torch.bmm(inverse, P.view(2, N // 2, bt))
            return (EO[0] + EO[1].abs()).amax(dim=0)
        return (inverse @ P).amax(dim=0)
    if half:
        EO = torch.bmm(inverse, P.view(2, N // 2, bt), out=buf.view(2, N // 2, bt))
        E = EO[0].add_(EO[1].abs_())
        return torch.amax(E, dim=0, out=out)
    return torch.amax(torch.mm(inverse, P, out=buf), dim=0, out=out)


def _shift_argmax(P: torch.Tensor, inverse: torch.Tensor, half: bool) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Max and argmax over the shifts of one block: ``P`` ``(N, b*T)`` rows -> ``(b*T,)`` values and shifts ``g``.

    Even ``N``: the larger of :math:`r(g) = E_g + O_g` and :math:`r(g + N/2) = E_g - O_g` is
    :math:`E_g + \lvert O_g\rvert`, at ``g`` where :math:`O_g \ge 0` and ``g + N/2`` otherwise.
    """
    N, bt = P.shape
    if half:
        EO = torch.bmm(inverse, P.view(2, N // 2, bt))
        E, O = EO[0], EO[1]
        val, g = (E + O.abs()).max(dim=0)
        neg = O.gather(0, g.unsqueeze(0)).squeeze(0) < 0
        return val, g + neg.long() * (N // 2)
    return (inverse @ P).max(dim=0)


def _max_inner_fft(x: torch.Tensor, y: torch.Tensor, chunk: int | None, argmax: bool = False):
    B, c, N = x.shape
    T = y.shape[0]
    forward64, inverse64, is_im = _real_dft(N)
    spec = _template_spectrum(y, forward64.to(y.device), is_im.to(y.device)).to(x.dtype)  # (N, 2c, T)
    forward = forward64.to(device=x.device, dtype=x.dtype)
    half = N % 2 == 0
    h = N // 2
    inverse = inverse64[:h] if half else inverse64  # even N: the shifts g < N/2 only
    if half:
        inverse = torch.stack([inverse[:, :h], inverse[:, h:]])  # (2, N/2, N/2): E and O
    inverse = inverse.contiguous().to(device=x.device, dtype=x.dtype)
    if chunk is None:
        chunk = max(1, _BLOCK_ELEMENTS // max(1, N * T))
    step = chunk * max(1, _TRANSFORM_ELEMENTS // (2 * c * N * chunk))  # rows per transform of x
    grad = not argmax and torch.is_grad_enabled() and (x.requires_grad or spec.requires_grad)
    out, parts = (None, []) if grad else (x.new_empty(B, T), None)
    idx = x.new_empty(B, T, dtype=torch.long) if argmax else None
    bufs = {}
    for s in range(0, B, step):
        xs = x[s:s + step]
        b = xs.shape[0]
        # the x spectrum rows (N, b, 2c): (a | b) of every row; a transpose copy, then strided views
        A = (xs.reshape(b * c, N) @ forward).view(b, c, 2 * N).transpose(1, 2).contiguous()
        A = A.view(b, N, 2 * c).transpose(0, 1)
        for i, A_blk in zip(range(s, s + b, chunk), A.split(chunk, dim=1)):
            n = A_blk.shape[1]
            if argmax:
                v, g = _shift_argmax(torch.bmm(A_blk, spec).view(N, n * T), inverse, half)
                out[i:i + n], idx[i:i + n] = v.view(n, T), g.view(n, T)
                continue
            if grad:
                parts.append(_shift_max(torch.bmm(A_blk, spec).view(N, n * T), inverse, half, None, None).view(n, T))
                continue
            if n not in bufs:  # (N, n, T) products and (N, n T) shifts, reused block to block
                bufs[n] = (x.new_empty(N, n, T), x.new_empty(N, n * T))
            P = torch.bmm(A_blk, spec, out=bufs[n][0])
            _shift_max(P.view(N, n * T), inverse, half, out[i:i + n].view(-1), bufs[n][1])
    if argmax:
        return out, idx
    if grad:
        return torch.cat(parts) if parts else x.new_zeros(0, T)
    return out


def _max_inner_direct(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    T, c, N = y.shape
    orb = torch.stack([torch.roll(y, g, dims=-1) for g in range(N)], dim=0)  # (N, T, c, N)
    return (x.reshape(x.shape[0], c * N) @ orb.reshape(N * T, c * N).T).view(x.shape[0], N, T).amax(dim=1)


def _check_pair(x: torch.Tensor, y: torch.Tensor, method: str) -> tuple[int, int]:
    """``(N, c)`` of a pair ``x`` (B, ..., N), ``y`` (T, ..., N) after checking shapes and ``method``."""
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(f"x and y must share the trailing shape (..., N), got {tuple(x.shape)} and {tuple(y.shape)}")
    if method not in ("auto", "fft", "direct"):
        raise ValueError(f"method must be 'auto', 'fft' or 'direct', got {method!r}")
    N = x.shape[-1]
    c = math.prod(x.shape[1:-1])
    return N, c


def cyclic_max_inner(x: torch.Tensor, y: torch.Tensor, *, method: str = "auto",
                     chunk: int | None = None) -> torch.Tensor:
    r"""All-pairs maximal inner product over :math:`C_N`: :math:`M_{ij} = \max_g \langle x_i, g\cdot y_j\rangle`.

    ``g`` shifts the last axis (:class:`~invlatent.groups.Cyclic`); the value is symmetric,
    :math:`\max_g\langle x, g\cdot y\rangle = \max_g \langle g\cdot x, y\rangle`.

    Parameters
    ----------
    x : Tensor, shape ``(B, ..., N)``, real floating
    y : Tensor, shape ``(T, ..., N)``, same trailing shape and dtype
    method : ``"auto"`` (:func:`use_fft`), ``"fft"`` or ``"direct"``
    chunk : int, optional
        Rows of ``x`` per step of the DFT path (default: an ``(N, b, T)`` block of ``2^18`` elements).

    Returns
    -------
    Tensor, shape ``(B, T)``
    """
    N, c = _check_pair(x, y, method)
    x3 = x.reshape(x.shape[0], c, N)
    y3 = y.to(dtype=x.dtype, device=x.device).reshape(y.shape[0], c, N)
    if method == "direct" or (method == "auto" and not use_fft(N, c, y3.shape[0])):
        return _max_inner_direct(x3, y3)
    return _max_inner_fft(x3, y3, chunk)


def cyclic_argmax_inner(x: torch.Tensor, y: torch.Tensor, *, method: str = "auto",
                        chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Max and argmax over :math:`C_N` of :math:`\langle x_i, g\cdot y_j\rangle`: ``(B, T)`` values and shifts.

    As :func:`cyclic_max_inner` (same arguments and paths; ``"auto"`` takes the DFT only from
    16 templates on, ``_ARGMAX_MIN_TEMPLATES``: below that the direct matmul is faster), but
    also returns the shift ``g``
    (a long tensor ``(B, T)`` in ``0..N-1``, ``torch.roll`` by ``g``) attaining the maximum. The
    values are not differentiable (computed under ``no_grad``). Ties may resolve differently on
    the two paths (the direct path picks the smallest ``g``).

    Example
    -------
    >>> x = torch.tensor([[[1.0, 0.0, 0.0, 0.0]]])
    >>> y = torch.tensor([[[0.0, 0.0, 2.0, 0.0]], [[0.0, -1.0, 3.0, 0.0]]])
    >>> cyclic_argmax_inner(x, y, method="fft")[1].tolist()
    [[2, 2]]
    """
    N, c = _check_pair(x, y, method)
    with torch.no_grad():
        x3 = x.detach().reshape(x.shape[0], c, N)
        y3 = y.detach().to(dtype=x.dtype, device=x.device).reshape(y.shape[0], c, N)
        T = y3.shape[0]
        if method == "direct" or (method == "auto" and not (use_fft(N, c, T) and T >= _ARGMAX_MIN_TEMPLATES)):
            orb = torch.stack([torch.roll(y3, g, dims=-1) for g in range(N)], dim=0)  # (N, T, c, N)
            return (x3.reshape(x3.shape[0], c * N) @ orb.reshape(N * T, c * N).T).view(-1, N, T).max(dim=1)
        return _max_inner_fft(x3, y3, chunk, argmax=True)
