r"""Random linear maps of the group average (Reynolds operator).

.. math::

    p(z) = A \, \bar z, \qquad \bar z = \frac{1}{|G|}\sum_{g\in G} \rho(g) z
    \;\;(\text{or } \textstyle\int_G \rho(g) z\,dg),

with a fixed random matrix :math:`A`. Truly linear and invariant, but lossy: it only sees
the projection of :math:`z` onto the fixed subspace of the representation (for
:math:`S_n` the mean node code; for :math:`C_N` the channel means; for
:math:`SO(3)` the scalars). It is the baseline the nonlinear projections must beat.
"""

from __future__ import annotations

import torch
from torch import nn

from .._validation import check_positive_int, check_tensor
from ..groups.base import check_group, check_group_latent
from ._common import check_batch_latent, check_latent_shape, check_seed, group_first, random_templates

__all__ = ["reynolds_projection", "ReynoldsProjection"]


def reynolds_projection(z: torch.Tensor, group, weight: torch.Tensor) -> torch.Tensor:
    r"""Linear map of the group average: :math:`p(z) = W \operatorname{vec}(\bar z)`.

    Parameters
    ----------
    z : Tensor, shape ``(B, *latent_shape)``
    group : group object with ``average``
    weight : Tensor, shape ``(k, prod(latent_shape))``
        (The old order ``reynolds_projection(z, weight, group)`` works for one release, with a
        ``DeprecationWarning``.)

    Returns
    -------
    Tensor, shape ``(B, k)``

    Example
    -------
    >>> import torch
    >>> from invlatent import Permutation
    >>> z = torch.tensor([[[1.0], [3.0]]])
    >>> reynolds_projection(z, Permutation(), torch.tensor([[1.0, 1.0]])).tolist()  # 2 x mean
    [[4.0]]
    """
    group, weight = group_first(group, weight, "reynolds_projection", "weight")
    check_group(group)
    check_group_latent(group, z, "z")
    D = z[0].numel()
    check_tensor(weight, "weight", ndim=2, expected=f"(k, {D})")
    if weight.shape[1] != D:
        raise ValueError(f"weight must have shape (k, {D}) to match z of shape {tuple(z.shape)}, got {tuple(weight.shape)}")
    return _reynolds_projection(z, group, weight)


def _reynolds_projection(z, group, weight):
    """:func:`reynolds_projection` without input checks."""
    return group.average(z).flatten(1) @ weight.to(dtype=z.dtype, device=z.device).T


class ReynoldsProjection(nn.Module):
    """Seeded random linear map of the group average: ``(B, *latent_shape) -> (B, n_out)``.

    Example
    -------
    >>> import torch
    >>> from invlatent import Cyclic
    >>> p = ReynoldsProjection(Cyclic(4), (3, 4), n_out=5)
    >>> p(torch.zeros(2, 3, 4)).shape
    torch.Size([2, 5])
    """

    def __init__(self, group, latent_shape, n_out: int, seed: int = 0):
        super().__init__()
        check_group(group)
        self.group = group
        self.latent_shape = check_latent_shape(latent_shape)
        self.n_out = check_positive_int(n_out, "n_out")
        self.seed = check_seed(seed)
        D = 1
        for s in self.latent_shape:
            D *= s
        self.register_buffer("weight", random_templates((self.n_out, D), self.seed))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_batch_latent(z, self.group, self.latent_shape)
        return _reynolds_projection(z, self.group, self.weight)
