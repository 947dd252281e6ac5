r"""Matching the aggregate posterior to the prior, on orbits: an MMD between sorted codes.

A VAE's KL term pulls every posterior :math:`q(z \mid G)` towards :math:`\mathcal N(0, I)`; a
small KL weight :math:`\beta`, needed for reconstruction, leaves the *aggregate* posterior
:math:`q(z) = \mathbb E_G\, q(z \mid G)` far from the prior, and prior draws land where the
decoder was never trained. The maximum mean discrepancy (MMD) penalty of InfoVAE and the
Wasserstein autoencoder (Zhao et al. 2019; Tolstikhin et al. 2018) compares :math:`q(z)` with
the prior as distributions, without penalising how much each code says about its molecule.

For a permutation-equivariant encoder the codes of one molecule form an orbit, so the penalty
compares **orbits**: both samples pass through the sort projection :math:`s` (per channel,
along the nodes), an invariant that is injective on orbits when :math:`c = 1`. With the
inverse multiquadratic kernel :math:`k(a, b) = \sum_{s} C_s / (C_s + \lVert a - b\rVert^2)`,
:math:`C_s = 2 d\, s` for :math:`d = n c` and the scales :math:`s` of :data:`SCALES`, the
unbiased estimate from :math:`z_1..z_B \sim q` and :math:`w_1..w_B \sim \mathcal N(0, I)` is

.. math::

   \widehat{\mathrm{MMD}}^2 = \frac{1}{B(B-1)} \sum_{i \ne j} \big[k(s(z_i), s(z_j))
   + k(s(w_i), s(w_j))\big] - \frac{2}{B^2} \sum_{i, j} k(s(z_i), s(w_j)).
"""

from __future__ import annotations

import torch

#: Kernel scales :math:`s` (multiples of :math:`2d`), as in the Wasserstein autoencoder.
SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def sorted_mmd(z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    r"""Unbiased MMD² between two batches of node codes, compared as orbits (sorted along
    the nodes, per channel); see the module docstring for the formula.

    ``z`` (B, n, c) and ``w`` (B', n, c), B, B' ≥ 2. Returns a scalar tensor (differentiable;
    it may be slightly negative, being unbiased). Invariant under node permutations of every
    code of either batch. No input checks: a training-loop helper.

    Example
    -------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> z = torch.randn(500, 9, 1, generator=g, dtype=torch.float64)
    >>> same = sorted_mmd(z, torch.randn(500, 9, 1, generator=g, dtype=torch.float64))
    >>> shifted = sorted_mmd(z + 1.0, torch.randn(500, 9, 1, generator=g, dtype=torch.float64))
    >>> bool(abs(same) < 0.01 < shifted)
    True
    """
    a = z.sort(dim=1).values.flatten(1)
    b = w.sort(dim=1).values.flatten(1)
    d = a.shape[1]

    def kernel(x, y):
        sq = torch.cdist(x, y).pow(2)
        return sum((2.0 * d * s) / (2.0 * d * s + sq) for s in SCALES)

    def within(x):
        m = x.shape[0]
        k = kernel(x, x)
        return (k.sum() - k.diagonal().sum()) / (m * (m - 1))

    return within(a) + within(b) - 2.0 * kernel(a, b).mean()
