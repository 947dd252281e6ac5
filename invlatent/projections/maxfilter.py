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

import math

import torch
from torch import nn

from .._validation import check_positive_int, check_tensor
from .._fft_correlation import cyclic_max_inner, use_fft
from ..groups import Cyclic, Permutation, check_group
from ..quotient import batched_assignment
from ._common import check_batch_latent, check_latent_shape, check_seed, random_templates

__all__ = ["max_filter", "MaxFilter"]

#: Largest number of elements of the ``(b, T, |G|)`` inner-product block computed at once (64 MB in float32).
_MAX_INTERMEDIATE = 1 << 24


def _max_filter_permutation(z: torch.Tensor, w: torch.Tensor, chunk: int = 1 << 15) -> torch.Tensor:
    B, n, c = z.shape
    T = w.shape[0]
    if c == 1:  # rearrangement inequality: the max pairs sorted with sorted
        zs = z[..., 0].sort(dim=1).values
        ws = w[..., 0].sort(dim=1).values
        return zs @ ws.T
    scores = torch.einsum("tic,bjc->btij", w, z).reshape(B * T, n, n)  # <w_i, z_j>
    vals = [-batched_assignment(-scores[s:s + chunk])[0] for s in range(0, B * T, chunk)]
    return torch.cat(vals).view(B, T)


def max_filter(z: torch.Tensor, templates: torch.Tensor, group, *, template_orbit: torch.Tensor | None = None) -> torch.Tensor:
    r"""Max filter :math:`p_i(z) = \max_g \langle w_i, \rho(g) z\rangle` for a finite group.

    Parameters
    ----------
    z : Tensor, shape ``(B, *latent_shape)``
    templates : Tensor, shape ``(T, *latent_shape)``
    group : a finite group (:class:`~invlatent.groups.Permutation`, :class:`~invlatent.groups.Cyclic`, ...)
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
    >>> max_filter(torch.tensor([[[0.0, 2.0, -1.0]]]), w, Cyclic(3)).tolist()
    [[2.0]]
    """
    check_group(group, finite=not isinstance(group, Permutation))
    group.check_latent(z, "z")
    check_tensor(templates, "templates", expected="(T, *latent_shape)")
    if templates.shape[1:] != z.shape[1:]:
        raise ValueError(
            f"templates must have shape (T, {', '.join(map(str, z.shape[1:]))}) to match z, got {tuple(templates.shape)}"
        )
    w = templates.to(dtype=z.dtype, device=z.device)
    if isinstance(group, Permutation):
        return _max_filter_permutation(z, w)
    if not getattr(group, "is_finite", False):
        raise TypeError(f"max_filter needs a finite group, got {group!r}")
    if isinstance(group, Cyclic) and z.is_floating_point() and use_fft(group.N, math.prod(z.shape[1:-1]), w.shape[0]):
        return cyclic_max_inner(z, w, method="fft")  # circular cross-correlation by the real DFT
    orb = group.orbit(w) if template_orbit is None else template_orbit.to(dtype=z.dtype, device=z.device)
    T, G = orb.shape[:2]
    # group-major columns: the max over g is then an elementwise max of |G| contiguous (b, T)
    # slices (streaming), not a reduction over a short last axis
    flat_orbit = orb.transpose(0, 1).reshape(G * T, -1).T
    # one matmul against the whole template orbit, in batch chunks so that the (b, |G|, T)
    # intermediate stays below _MAX_INTERMEDIATE elements (bounded memory, same result)
    step = max(1, _MAX_INTERMEDIATE // (T * G))
    zf = z.flatten(1)
    if zf.shape[0] <= step:
        return (zf @ flat_orbit).view(-1, G, T).amax(dim=1)
    return torch.cat([(zf[i:i + step] @ flat_orbit).view(-1, G, T).amax(dim=1) for i in range(0, zf.shape[0], step)])


class MaxFilter(nn.Module):
    r"""Random max-filter bank: ``(B, *latent_shape) -> (B, n_templates)``.

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
    n_templates : int
    seed : int

    Example
    -------
    >>> import torch
    >>> from invlatent import Cyclic
    >>> C = Cyclic(8)
    >>> mf = MaxFilter(C, (2, 8), n_templates=4, seed=0)
    >>> z = torch.randn(3, 2, 8, generator=torch.Generator().manual_seed(1))
    >>> g = C.sample(3, generator=torch.Generator().manual_seed(2))
    >>> mf(z).shape, bool(torch.allclose(mf(z), mf(C.act(g, z)), atol=1e-6))
    (torch.Size([3, 4]), True)
    """

    def __init__(self, group, latent_shape, n_templates: int, seed: int = 0):
        super().__init__()
        check_group(group, finite=not isinstance(group, Permutation))
        if not getattr(group, "is_finite", False):
            raise TypeError(f"MaxFilter needs a finite group (Permutation, Cyclic, ...), got {group!r}")
        self.group = group
        self.latent_shape = check_latent_shape(latent_shape)
        self.n_templates = check_positive_int(n_templates, "n_templates")
        self.seed = check_seed(seed)
        w = random_templates((self.n_templates, *self.latent_shape), self.seed)
        group.check_latent(w, "templates (from latent_shape)")
        self.register_buffer("templates", w)
        if not isinstance(group, Permutation):
            self.register_buffer("template_orbit", group.orbit(w), persistent=False)
        else:
            self.template_orbit = None

    def extra_repr(self) -> str:
        return f"group={self.group!r}, latent_shape={self.latent_shape}, n_templates={self.n_templates}, seed={self.seed}"

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_batch_latent(z, self.group, self.latent_shape)
        return max_filter(z, self.templates, self.group, template_orbit=self.template_orbit)
