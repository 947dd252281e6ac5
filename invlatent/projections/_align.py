r"""Alignment to a template (canonicalization): a cross-section by orbit alignment.

.. math::

    p(z) = \rho(g^\star) z, \qquad g^\star = \arg\min_{g\in G} \lVert w - \rho(g) z\rVert
    = \arg\max_{g} \langle w, \rho(g) z\rangle .

Every orbit is mapped to its point closest to the template :math:`w`: one output per orbit
(a cross-section, unique for generic :math:`z`), in the original latent space, so the
output can be decoded. It is discontinuous where two orbit points tie
(the price of a cross-section for non-isometric cases) :cite:`kaba2023equivariance`.
"""

from __future__ import annotations

import torch
from torch import nn

from .._validation import check_tensor
from ..groups.base import check_group, check_group_latent, template_alignment
from ._common import check_batch_latent, check_latent_shape, check_seed, group_first, random_templates

__all__ = ["align_to_template", "AlignToTemplate"]


def align_to_template(z: torch.Tensor, group, template: torch.Tensor) -> torch.Tensor:
    r"""Move every latent to the point of its orbit closest to ``template``.

    Parameters
    ----------
    z : Tensor, shape ``(B, *latent_shape)``
    group : group object (its ``align_to_template``, else its ``align``)
    template : Tensor, shape ``latent_shape`` (one template shared by the batch)
        (The old order ``align_to_template(z, template, group)`` works for one release, with a
        ``DeprecationWarning``.)

    Returns
    -------
    Tensor, shape ``(B, *latent_shape)``

    Example
    -------
    >>> import torch
    >>> from invlatent import Cyclic
    >>> w = torch.tensor([[1.0, 0.0, 0.0]])
    >>> align_to_template(torch.tensor([[[0.0, 0.0, 5.0]], [[5.0, 0.0, 0.0]]]), Cyclic(3), w).tolist()
    [[[5.0, 0.0, 0.0]], [[5.0, 0.0, 0.0]]]
    """
    group, template = group_first(group, template, "align_to_template", "template")
    check_group(group)
    check_group_latent(group, z, "z")
    check_tensor(template, "template", expected="latent_shape (no batch axis)")
    if template.shape != z.shape[1:]:
        raise ValueError(
            f"template must have shape {tuple(z.shape[1:])} (the latent shape of z, no batch axis), got {tuple(template.shape)}"
        )
    return _align_to_template(z, group, template)


def _align_to_template(z, group, template):
    """:func:`align_to_template` without input checks, through the group protocol
    (:func:`invlatent.groups.base.template_alignment`)."""
    return template_alignment(group, z, template)


class AlignToTemplate(nn.Module):
    """Module form of :func:`align_to_template` with a seeded random (or given) template.

    Example
    -------
    >>> import torch
    >>> from invlatent import Permutation
    >>> P = Permutation()
    >>> canon = AlignToTemplate(P, (4, 2), seed=0)
    >>> z = torch.randn(2, 4, 2, generator=torch.Generator().manual_seed(0))
    >>> g = P.sample(2, generator=torch.Generator().manual_seed(1))
    >>> bool(torch.equal(canon(z), canon(P.act(g, z))))
    True
    """

    def __init__(self, group, latent_shape, seed: int = 0, template: torch.Tensor | None = None):
        super().__init__()
        check_group(group)
        self.group = group
        self.latent_shape = check_latent_shape(latent_shape)
        self.seed = check_seed(seed)
        if template is None:
            template = random_templates((1, *self.latent_shape), self.seed)[0]
        check_tensor(template, "template", shape=self.latent_shape, expected=f"{self.latent_shape}")
        if tuple(template.shape) != self.latent_shape:
            raise ValueError(f"template must have shape {self.latent_shape}, got {tuple(template.shape)}")
        self.register_buffer("template", template.clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_batch_latent(z, self.group, self.latent_shape)
        return _align_to_template(z, self.group, self.template)
