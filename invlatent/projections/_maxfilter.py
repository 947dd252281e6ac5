r"""Random max filters: invariant projections with many templates (Cahill, Iverson & Mixon).

For templates :math:`w_1, \dots, w_T` the max filter is

.. math::

    p_i(z) = \max_{g\in G} \langle w_i, \rho(g) z\rangle, \qquad i = 1, \dots, T .

It is invariant (the max runs over the whole orbit), Lipschitz, and with enough random
templates it separates orbits of finite groups :cite:`cahill2022group`. For a finite group
it is one matmul against all group-transformed templates followed by a max over the group
axis; for :math:`S_n` the max over :math:`n!` permutations is a linear assignment problem
(sorting for one channel, the batched subset dynamic program for ``c > 1``).
"""

from __future__ import annotations

import torch
from torch import nn

from .._validation import check_positive_int, check_tensor
from ..groups.base import check_group, check_group_latent
from ._common import check_batch_latent, check_latent_shape, check_seed, group_first, random_templates, renamed_count

__all__ = ["max_filter", "MaxFilter"]

def max_filter(z: torch.Tensor, group, templates: torch.Tensor, *, template_orbit: torch.Tensor | None = None) -> torch.Tensor:
    r"""Max filter :math:`p_i(z) = \max_g \langle w_i, \rho(g) z\rangle` for a finite group.

    Parameters
    ----------
    z : Tensor, shape ``(B, *latent_shape)``
    group : a finite group (:class:`~invlatent.groups.Permutation`, :class:`~invlatent.groups.Cyclic`, ...);
        the max is the group's ``max_inner`` (see :mod:`invlatent.groups.base`)
    templates : Tensor, shape ``(T, *latent_shape)``
        (The old order ``max_filter(z, templates, group)`` works for one release, with a
        ``DeprecationWarning``.)
    template_orbit : Tensor, shape ``(T, |G|, *latent_shape)``, optional
        Precomputed ``group.orbit(templates)`` (the module caches it).

    Returns
    -------
    Tensor, shape ``(B, T)``

    Example
    -------
    >>> import torch
    >>> from invlatent import Cyclic
    >>> w = torch.tensor([[[1.0, 0.0, 0.0]]])
    >>> max_filter(torch.tensor([[[0.0, 2.0, -1.0]]]), Cyclic(3), w).tolist()
    [[2.0]]
    """
    group, templates = group_first(group, templates, "max_filter", "templates")
    check_group(group, finite=True)
    check_group_latent(group, z, "z")
    check_tensor(templates, "templates", expected="(T, *latent_shape)")
    if templates.shape[1:] != z.shape[1:]:
        raise ValueError(
            f"templates must have shape (T, {', '.join(map(str, z.shape[1:]))}) to match z, got {tuple(templates.shape)}"
        )
    if template_orbit is not None:
        check_tensor(template_orbit, "template_orbit", expected="(T, |G|, *latent_shape)")
    return _max_filter(z, group, templates, template_orbit)


def _max_filter(z, group, templates, template_orbit=None):
    """:func:`max_filter` without input checks."""
    w = templates.to(dtype=z.dtype, device=z.device)
    if template_orbit is not None:
        template_orbit = template_orbit.to(dtype=z.dtype, device=z.device)
    return group.max_inner(z, w, template_orbit)


class MaxFilter(nn.Module):
    r"""Random max-filter bank: ``(B, *latent_shape) -> (B, n_out)``.

    Templates are unit-norm Gaussian draws from ``seed`` (a buffer, so ``.to()``/``state_dict``
    carry them); for groups with an orbit the transformed templates are cached. For node sets
    of different sizes, zero-padded rows take part as zero nodes (pad with zeros, e.g. by
    :func:`~invlatent.groups.to_dense_nodes`).

    Parameters
    ----------
    group : finite group
    latent_shape : tuple of int
        E.g. ``(n, c)`` for :class:`~invlatent.groups.Permutation`, ``(c, N)`` for
        :class:`~invlatent.groups.Cyclic`.
    n_out : int
        Number of templates (outputs); the same name as in every random projection.
        ``n_templates=`` still works for one release, with a ``DeprecationWarning``.
    seed : int

    Example
    -------
    >>> import torch
    >>> from invlatent import Cyclic
    >>> C = Cyclic(8)
    >>> mf = MaxFilter(C, (2, 8), n_out=4, seed=0)
    >>> z = torch.randn(3, 2, 8, generator=torch.Generator().manual_seed(1))
    >>> g = C.sample(3, generator=torch.Generator().manual_seed(2))
    >>> mf(z).shape, bool(torch.allclose(mf(z), mf(C.act(g, z)), atol=1e-6))
    (torch.Size([3, 4]), True)
    """

    def __init__(self, group, latent_shape, n_out: int | None = None, seed: int = 0, *, n_templates: int | None = None):
        super().__init__()
        check_group(group, finite=True)
        self.group = group
        self.latent_shape = check_latent_shape(latent_shape)
        self.n_out = check_positive_int(renamed_count(n_out, n_templates, "n_templates"), "n_out")
        self.seed = check_seed(seed)
        w = random_templates((self.n_out, *self.latent_shape), self.seed)
        check_group_latent(group, w, "templates (from latent_shape)")
        self.register_buffer("templates", w)
        self.register_buffer("template_orbit", group.template_orbit(w), persistent=False)

    def extra_repr(self) -> str:
        return f"group={self.group!r}, latent_shape={self.latent_shape}, n_out={self.n_out}, seed={self.seed}"

    @property
    def n_templates(self) -> int:
        """Deprecated name of :attr:`n_out` (the number of templates)."""
        return self.n_out

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_batch_latent(z, self.group, self.latent_shape)
        return _max_filter(z, self.group, self.templates, self.template_orbit)
