r"""The quotient metric, orbit alignment and aligned interpolation.

For a group :math:`G` acting by isometries on latents, the distance between two orbits is

.. math::

    d([z], [z']) = \min_{g\in G} \lVert z - \rho(g) z' \rVert .

How the minimum is found is the group's business (its ``align``, ``quotient_distance`` and
``pairwise_quotient_distance``, see :mod:`invlatent.groups.base`); the functions here check
their input once and call the group. The built-in groups:

* :class:`~invlatent.groups.Permutation`, one channel (``c = 1``): sort both codes
  (rearrangement inequality) -- :math:`O(n \log n)`;
* :class:`~invlatent.groups.Permutation`, ``c > 1``: a linear assignment problem with costs
  :math:`C_{ij} = \lVert z_i - z'_j \rVert^2`, solved exactly and batched by dynamic
  programming over subsets (:func:`~invlatent.quotient.batched_assignment`, :math:`n \le 9`) and by
  ``scipy.optimize.linear_sum_assignment`` one pair at a time for larger ``n``;
* :class:`~invlatent.groups.Cyclic` (and any finite group with ``orbit``): one matmul
  against the whole orbit, then a min over the group axis;
* :class:`~invlatent.groups.SO3` / :class:`~invlatent.groups.O3` on irreps with
  :math:`l \le 1`: the Kabsch / orthogonal Procrustes solution (exact); with :math:`l \ge 2`
  parts only :func:`quotient_distance` (and the pairwise form) is defined, and it is an upper
  bound found by a Kabsch-initialised search (:func:`~invlatent.projections.approx_quotient_distance`).

Example
-------
>>> import torch
>>> from invlatent import Permutation, quotient_distance, align
>>> z1 = torch.tensor([[[0.0], [1.0], [5.0]]])
>>> z2 = torch.tensor([[[5.0], [0.0], [1.0]]])   # the same set, re-ordered
>>> float(quotient_distance(z1, z2, Permutation()))
0.0
>>> align(z1, z2, Permutation())[0, :, 0].tolist()
[0.0, 1.0, 5.0]
"""

from __future__ import annotations

import torch

from .._validation import check_positive_int, check_same_shape, describe
from ..groups.base import check_group, check_group_latent

__all__ = ["quotient_distance", "pairwise_quotient_distance", "align", "aligned_interpolation"]


def _check_pair(z1, z2, group):
    check_group(group)
    check_group_latent(group, z1, "z1")
    check_group_latent(group, z2, "z2")
    check_same_shape(z1, z2, "z1", "z2")


def align(z1: torch.Tensor, z2: torch.Tensor, group, *, return_element: bool = False):
    r"""The point of :math:`z_2`'s orbit closest to :math:`z_1` (pairwise over the batch).

    .. math::

        \operatorname{align}(z_1, z_2) = \rho(g^\star) z_2,\qquad
        g^\star = \arg\min_{g\in G} \lVert z_1 - \rho(g) z_2\rVert .

    Parameters
    ----------
    z1, z2 : Tensor, shape ``(B, *latent_shape)``
        Same shape and dtype; the layout of ``group``.
    group : group object
        :class:`~invlatent.groups.Permutation`, :class:`~invlatent.groups.Cyclic`, another
        finite group with ``orbit``, or :class:`~invlatent.groups.SO3`/:class:`~invlatent.groups.O3`
        with :math:`l\le 1` irreps.
    return_element : bool
        Also return :math:`g^\star` (a batch of elements in the group's format).

    Returns
    -------
    Tensor, shape ``(B, *latent_shape)`` (and the elements if ``return_element``).

    Example
    -------
    >>> import torch
    >>> from invlatent import Cyclic
    >>> z1 = torch.tensor([[[1.0, 0.0, 0.0, 0.0]]])
    >>> z2 = torch.tensor([[[0.0, 0.0, 0.9, 0.0]]])
    >>> aligned, g = align(z1, z2, Cyclic(4), return_element=True)
    >>> aligned.tolist(), g.tolist()
    ([[[0.9, 0.0, 0.0, 0.0]]], [2])
    """
    _check_pair(z1, z2, group)
    aligned, g = group.align(z1, z2)
    return (aligned, g) if return_element else aligned


def quotient_distance(z1: torch.Tensor, z2: torch.Tensor, group) -> torch.Tensor:
    r"""Quotient distance, one per pair: :math:`d_i = \min_g \lVert z_{1,i} - \rho(g) z_{2,i}\rVert`.

    Exact for every built-in group but :class:`~invlatent.groups.SO3`/:class:`~invlatent.groups.O3`
    on irreps with :math:`l \ge 2`, where it is an upper bound (a Kabsch-initialised search,
    :meth:`invlatent.groups.SO3.quotient_distance`).

    Parameters
    ----------
    z1, z2 : Tensor, shape ``(B, *latent_shape)``
    group : group object (see :func:`align` for the supported groups)

    Returns
    -------
    Tensor, shape ``(B,)``, differentiable almost everywhere (the SO(3) search with :math:`l \ge 2`:
    detached).

    Example
    -------
    >>> import torch
    >>> from invlatent import Permutation
    >>> z1 = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    >>> z2 = torch.tensor([[[1.0, 0.0], [0.0, 1.5]]])   # c = 2: an assignment problem
    >>> round(float(quotient_distance(z1, z2, Permutation())), 4)
    0.5
    """
    _check_pair(z1, z2, group)
    return group.quotient_distance(z1, z2)


def pairwise_quotient_distance(Z1: torch.Tensor, Z2: torch.Tensor | None, group, *, chunk_size: int = 4096) -> torch.Tensor:
    r"""Matrix of quotient distances :math:`D_{ij} = d([Z_{1,i}], [Z_{2,j}])`.

    Finite groups with ``orbit`` use one matmul of ``Z1`` against the whole orbit of ``Z2``
    (:math:`\lVert a-b\rVert^2 = \lVert a\rVert^2 + \lVert b\rVert^2 - 2\langle a,b\rangle`) and a
    max over the group axis; permutations sort (``c = 1``) or solve all assignments in
    chunks of ``chunk_size`` pairs.

    Small distances are exact. The one-matmul form has an absolute error of about
    :math:`\sqrt{u}\,\lVert z\rVert` near zero (:math:`u` the unit roundoff: :math:`2.4\cdot 10^{-4}
    \lVert z\rVert` in float32), enough to reorder near neighbours and twins. So every entry whose
    computed square is below :math:`\tau(\lVert a\rVert^2+\lVert b\rVert^2)`,
    :math:`\tau = 2(D+2)u(1+u^{-1/2})` (:math:`D` the latent size), is recomputed by the direct
    difference (the group's ``quotient_distance``), with the error of a direct norm; every other
    entry has relative error at most :math:`\sqrt{u}` (:math:`1.1\cdot 10^{-8}` in float64,
    :math:`2.4\cdot 10^{-4}` in float32; :func:`~invlatent.groups.base.exact_small_distances`).
    With ``Z2=None`` the diagonal is exactly 0 and the matrix exactly symmetric. The pair-by-pair
    groups (permutations with ``c > 1``, SO(3)/O(3)) compute every entry by direct differences.

    Parameters
    ----------
    Z1 : Tensor, shape ``(N1, *latent_shape)``
    Z2 : Tensor, shape ``(N2, *latent_shape)``, or ``None`` for ``Z1`` against itself
    group : group object

    Returns
    -------
    Tensor, shape ``(N1, N2)``

    Example
    -------
    >>> import torch
    >>> from invlatent import Cyclic
    >>> Z = torch.tensor([[[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]], [[2.0, 0.0, 0.0]]])
    >>> pairwise_quotient_distance(Z, None, Cyclic(3)).round(decimals=3).tolist()
    [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]
    """
    check_group(group)
    check_group_latent(group, Z1, "Z1")
    if Z2 is None:
        Z2 = Z1
    check_group_latent(group, Z2, "Z2")
    if Z1.shape[1:] != Z2.shape[1:]:
        raise ValueError(f"Z1 and Z2 must share the latent shape, got {tuple(Z1.shape)} and {tuple(Z2.shape)}")
    if Z1.dtype != Z2.dtype:
        raise TypeError(f"Z1 and Z2 must have the same dtype, got {Z1.dtype} and {Z2.dtype}")
    check_positive_int(chunk_size, "chunk_size")
    return group.pairwise_quotient_distance(Z1, None if Z2 is Z1 else Z2, chunk_size)


def aligned_interpolation(z1: torch.Tensor, z2: torch.Tensor, group, t) -> torch.Tensor:
    r"""Interpolate from :math:`z_1` to the aligned :math:`z_2`: :math:`(1-t) z_1 + t\,\operatorname{align}(z_1, z_2)`.

    Straight lines between *aligned* codes are geodesics of the quotient (for finite groups
    near generic points): the path never passes through a mixture of two poses.

    Parameters
    ----------
    z1, z2 : Tensor, shape ``(B, *latent_shape)``
    group : group object
    t : float or 1-D Tensor/sequence of ``T`` values

    Returns
    -------
    Tensor, shape ``(B, *latent_shape)`` for a float ``t``, ``(B, T, *latent_shape)`` otherwise.

    Example
    -------
    >>> import torch
    >>> from invlatent import Permutation
    >>> z1 = torch.tensor([[[0.0], [2.0]]]); z2 = torch.tensor([[[4.0], [0.0]]])
    >>> aligned_interpolation(z1, z2, Permutation(), 0.5)[0, :, 0].tolist()
    [0.0, 3.0]
    """
    _check_pair(z1, z2, group)
    aligned, _ = group.align(z1, z2)
    if isinstance(t, (float, int)) and not isinstance(t, bool):
        return (1 - t) * z1 + t * aligned
    tt = torch.as_tensor(t, dtype=z1.dtype, device=z1.device) if not isinstance(t, torch.Tensor) else t
    if not tt.is_floating_point() or tt.dim() != 1 or tt.numel() == 0:
        raise ValueError(f"t must be a float or a non-empty 1-D float tensor/sequence, got {describe(t)}")
    tt = tt.to(dtype=z1.dtype, device=z1.device).view(1, -1, *([1] * (z1.dim() - 1)))
    return (1 - tt) * z1.unsqueeze(1) + tt * aligned.unsqueeze(1)
