r"""Test helpers for code built on ``invlatent``: tolerances by dtype, an equivariance assertion,
and a simulated CUDA device (:func:`simulated_cuda`) that finds device bugs without a GPU.

:func:`assert_equivariant` checks :math:`f(g\cdot x) = \rho(g) f(x)` for random group elements,
with the model copied to float64 (like e3nn's ``assert_equivariant``), so a failure means the
model is not equivariant, not that float32 rounded.

Example
-------
>>> import torch
>>> from invlatent import Permutation
>>> lin = torch.nn.Linear(3, 2)            # node-wise, hence permutation equivariant
>>> x = torch.randn(4, 5, 3, generator=torch.Generator().manual_seed(0))
>>> err = assert_equivariant(lin, x, Permutation(), Permutation())
>>> err < 1e-12
True
"""

from __future__ import annotations

from typing import Callable

import torch

from ._simulated_cuda import is_simulated_cuda, simulated_cuda

__all__ = ["tolerance", "assert_equivariant", "simulated_cuda", "is_simulated_cuda"]


def tolerance(dtype: torch.dtype, *, scale: float = 1.0) -> dict:
    r"""``dict(atol=, rtol=)`` for comparing values computed in ``dtype`` in different orders.

    :math:`\mathrm{rtol} = \sqrt{\varepsilon}` times ``scale`` (about ``3e-4`` in float32,
    ``1.5e-8`` in float64), :math:`\mathrm{atol} = 10\,\mathrm{rtol}`: room for the rounding of
    sums of a few hundred terms, far below any real discrepancy.

    Example
    -------
    >>> tolerance(torch.float64)["rtol"] < 1e-7 < tolerance(torch.float32)["rtol"]
    True
    """
    if not isinstance(dtype, torch.dtype) or not (dtype.is_floating_point or dtype.is_complex):
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    if not isinstance(scale, (int, float)) or isinstance(scale, bool):
        raise TypeError(f"scale must be a positive float, got {type(scale).__name__}")
    if scale <= 0:
        raise ValueError(f"scale must be a positive float, got {scale}")
    real = torch.empty(0, dtype=dtype).real.dtype
    rtol = scale * torch.finfo(real).eps ** 0.5
    return {"atol": 10 * rtol, "rtol": rtol}


def assert_equivariant(f: Callable, x: torch.Tensor, input_group, latent_group, *, n_elements: int = 4,
                       generator=0, atol: float | None = None, float64: bool = True) -> float:
    r"""Assert :math:`\max |f(g\cdot x) - \rho(g) f(x)| \le` ``atol``; return the error.

    Parameters
    ----------
    f : callable or nn.Module
        Copied and cast to float64 when ``float64`` (a plain callable must accept float64 input).
    x : Tensor, shape ``(B, *input_shape)``
    input_group, latent_group : groups sharing the element format (see
        :func:`~invlatent.equivariance_error`)
    n_elements : int
    generator : torch.Generator or int seed
    atol : float, optional
        Defaults to :func:`tolerance` of the computation dtype times the output scale.
    float64 : bool

    Returns
    -------
    float -- the measured error (so a test can also print or compare it).
    """
    from .probes._diagnostics import _equivariance_error, check_equivariance_args

    f, x, gen = check_equivariance_args(f, x, input_group, latent_group, n_elements, generator)
    err, scale = _equivariance_error(f, x, input_group, latent_group, n_elements, gen, float64, with_scale=True)
    if atol is None:
        t = tolerance(torch.float64 if float64 else x.dtype)
        atol = t["atol"] + t["rtol"] * scale
    if not err <= atol:
        raise AssertionError(
            f"not equivariant: max |f(g x) - rho(g) f(x)| = {err:.3g} > atol = {atol:.3g} "
            f"(output scale {scale:.3g}, {'float64' if float64 else x.dtype})"
        )
    return err
