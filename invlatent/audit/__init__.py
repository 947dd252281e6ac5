r"""Your model: capture its latents, audit their symmetry, and check what its irreps labels mean.

The step before any invariant projection. A projection for a group :math:`G` is only as right as
the action it assumes, :math:`f(g \cdot x) = \rho(g) f(x)`; this subpackage measures that
assumption on a real model:

* :mod:`._capture` -- :func:`capture_latents` / :class:`LatentCapture`: the features of any
  named layers, read by forward hooks, per node or per graph;
* :mod:`._audit` -- :func:`equivariance_audit`: transform the input, act on the captured
  features, report the relative error per layer against a dtype tolerance
  (:func:`plot_equivariance_audit` draws it);
* :mod:`._basis` -- when the audit fails for irreps features: :func:`rotation_pairs` (features of
  rotated inputs), :func:`diagnose_basis` (which degrees fail; a sign, an orthogonal change of
  basis or a component order) and :func:`fit_basis` (the per-degree orthogonal change of basis,
  with its residual, handed to :class:`~invlatent.groups.SO3`/:class:`~invlatent.groups.O3`).

Example
-------
>>> import torch
>>> from invlatent.audit import capture_latents
>>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU())
>>> feats = capture_latents(net, ["0"], torch.randn(2, 3))
>>> tuple(feats["0"].shape)
(2, 4)
"""

from ._audit import equivariance_audit, plot_equivariance_audit
from ._basis import BasisFit, BlockFit, diagnose_basis, fit_basis, rotation_pairs
from ._capture import LatentCapture, capture_latents

__all__ = [
    "capture_latents",
    "LatentCapture",
    "equivariance_audit",
    "plot_equivariance_audit",
    "rotation_pairs",
    "fit_basis",
    "diagnose_basis",
    "BasisFit",
    "BlockFit",
]
