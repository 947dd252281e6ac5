r"""The product :math:`S_n \times G` acting on sets of latents ``(B, n, d)``: atoms permuted, each atom's row acted on by ``G``.

A molecule seen by an equivariant network is a *set* of per-atom latents: re-ordering the atoms
permutes the rows, and rotating the molecule applies :math:`D(R)` to every row. The two actions
commute, so :math:`(\sigma, R)` acts by

.. math::

    \bigl((\sigma, R)\cdot z\bigr)_i = D(R)\, z_{\sigma(i)} .

:class:`Product` implements the group protocol (:mod:`invlatent.groups.base`) for it, so
:func:`~invlatent.invariance_error`, :func:`~invlatent.ambiguity_index` and
:func:`~invlatent.retention` work with set-of-irreps latents.

Example
-------
>>> import torch
>>> from invlatent.groups import Permutation, SO3
>>> G = Product(Permutation(), SO3("1x0e + 1x1o"))
>>> z = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
>>> g = G.sample(2, generator=torch.Generator().manual_seed(1))
>>> gz = G.act(g, z)
>>> bool(torch.allclose(gz.norm(dim=(1, 2)), z.norm(dim=(1, 2))))     # an isometry
True
>>> bool(G.quotient_distance(z, gz).max() < 1e-8)                      # same orbit: ~0 (an upper bound)
True
"""

from __future__ import annotations

import torch

from .._validation import check_tensor, describe
from .base import Group, check_group

__all__ = ["Product"]


def _repeat_rows(h, n: int, name: str = "g"):
    """One fiber element per atom: ``h`` ``(B, ...)`` repeated ``n`` times along the batch."""
    if not isinstance(h, torch.Tensor):
        raise TypeError(f"{name}[1] must be a tensor of B fiber elements, got {type(h).__name__}")
    return h.repeat_interleave(n, dim=0)


class Product(Group):
    r""":math:`S_n \times G` on sets ``(B, n, d)``: a permutation of the rows and ``fiber`` on every row.

    Parameters
    ----------
    permutation : :class:`~invlatent.groups.Permutation`
        The group of the node axis (axis 1).
    fiber : group acting on rows ``(B, d)``
        E.g. :class:`~invlatent.groups.SO3` or :class:`~invlatent.groups.O3` on irreps.

    Notes
    -----
    An element is a tuple ``(sigma, h)``: ``sigma`` in the permutation group's format
    (``(B, n)`` indices, or :class:`~invlatent.groups.LazyPermutations`) and ``h`` a batch of
    ``B`` fiber elements (rotations ``(B, 3, 3)``). ``act(g, z, mask)`` applies
    :math:`z_i \mapsto h\cdot z_{\sigma(i)}`; with a node ``mask`` ``(B, n)`` the real atoms are
    permuted among their slots and padding stays in place (the fiber acts on every row; a zero
    padding row stays zero).

    ``quotient_distance`` (rotation fibers only) is the **upper bound** of
    :func:`~invlatent.quotient.set_quotient_bounds` -- the distance at the best
    :math:`(\sigma, R)` an alternating assignment / rotation search finds; the lower bound is there
    too. ``align`` returns the orbit point of that search. ``is_finite`` is that of the fiber
    (``False`` for rotations).

    Example
    -------
    >>> import torch
    >>> from invlatent.groups import Permutation, SO3
    >>> G = Product(Permutation(), SO3("1x1o"))
    >>> z = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]])
    >>> R = torch.tensor([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    >>> G.act((torch.tensor([[1, 0]]), R), z).norm(dim=2).tolist()      # rows swapped, norms kept
    [[2.0, 1.0]]
    """

    def __init__(self, permutation, fiber):
        check_group(permutation, "permutation")
        check_group(fiber, "fiber")
        self.permutation, self.fiber = permutation, fiber
        self.is_finite = bool(permutation.is_finite and fiber.is_finite)

    def __repr__(self) -> str:
        return f"Product({self.permutation!r}, {self.fiber!r})"

    @property
    def irreps(self):
        """The fiber's irreps (rotation fibers)."""
        return getattr(self.fiber, "irreps", None)

    # -- protocol -------------------------------------------------------------------------------
    def check_latent(self, z, name: str = "z") -> torch.Tensor:
        """Validate ``z`` of shape ``(B, n, d)``: finite, ``d`` what the fiber expects."""
        dim = getattr(self.irreps, "dim", None)
        check_tensor(z, name, ndim=3, expected=f"(B, n, {'d' if dim is None else f'irreps.dim={dim}'})")
        if dim is not None and z.shape[2] != dim:
            raise ValueError(f"{name} has {z.shape[2]} features per atom but irreps {self.irreps} has dimension "
                             f"{dim}; expected (B, n, {dim}), got {tuple(z.shape)}")
        self.permutation.check_latent(z, name)
        self.fiber.check_latent(z.reshape(-1, z.shape[2]), f"{name} (rows)")
        return z

    def sample(self, B: int, generator: torch.Generator | None = None, device=None):
        """``(sigma, h)``: ``B`` random permutations and ``B`` random fiber elements."""
        sigma = self.permutation.sample(B, generator=generator, device=device)
        return sigma, self.fiber.sample(B, generator=generator, device=device)

    def _split(self, g, B: int):
        if not isinstance(g, tuple) or len(g) != 2:
            raise TypeError(f"g must be a tuple (sigma, h) of permutations and fiber elements, got {describe(g)}")
        sigma, h = g
        nb = len(sigma)
        if nb != B or getattr(h, "shape", (None,))[0] != B:
            raise ValueError(f"g must hold B={B} permutations and B fiber elements, got {nb} and "
                             f"{getattr(h, 'shape', (None,))[0]}")
        return sigma, h

    def act(self, g, z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        r""":math:`z_i \mapsto h \cdot z_{\sigma(i)}` for every set in the batch."""
        self.check_latent(z)
        sigma, h = self._split(g, z.shape[0])
        B, n, d = z.shape
        rows = self.fiber.act(_repeat_rows(h, n), z.reshape(B * n, d)).reshape(B, n, d)
        if mask is None:
            return self.permutation.act(sigma, rows)
        return self.permutation.act(sigma, rows, mask=mask)

    def average(self, z: torch.Tensor) -> torch.Tensor:
        """Group average: the mean row (permutations), then the fiber's average of it."""
        self.check_latent(z)
        B, n, d = z.shape
        mean = self.permutation.average(z)
        return self.fiber.average(mean.reshape(B * n, d)).reshape(B, n, d)

    def _bounds_search(self, z1, z2, mask1=None, mask2=None, starts: int = 8, generator=0):
        from ..quotient._set_bounds import _gen, _search, check_set_latents
        from ._rotation import SO3

        if not isinstance(self.fiber, SO3):
            raise NotImplementedError(f"quotient distances of {self!r} are implemented for SO3/O3 fibers")
        check_set_latents(z1, z2, self.fiber.irreps, mask1, mask2)
        return _search(z1, z2, self.fiber.irreps, not self.fiber._with_inversion, mask1, mask2, starts, _gen(generator))

    def quotient_distance(self, z1: torch.Tensor, z2: torch.Tensor, mask1=None, mask2=None, *,
                          starts: int = 8, generator=0) -> torch.Tensor:
        r"""An **upper bound** on :math:`\min_{\sigma, R}\lVert z_1 - (\sigma, R)\cdot z_2\rVert`, ``(B,)``.

        The alternating assignment / rotation search of
        :func:`~invlatent.quotient.set_quotient_bounds`; detached. Exact on the orbit itself: 0 up
        to round-off for ``z2`` in ``z1``'s orbit, with or without ``l = 1`` channels (the search
        starts from Kabsch on the vectors and from the eigenframes of equivariant symmetric
        matrices built from the ``l >= 2`` channels; generic sets: atoms told apart by their
        invariants, distinct eigenvalues).
        """
        return self._bounds_search(z1, z2, mask1, mask2, starts, generator)[1]

    def align(self, z1: torch.Tensor, z2: torch.Tensor, mask1=None, mask2=None):
        """``(aligned, (sigma, R))``: the orbit point of ``z2`` found by the upper-bound search."""
        _, _, sigma, R = self._bounds_search(z1, z2, mask1, mask2)
        B, n, d = z2.shape
        z2m = z2 if mask2 is None else z2 * mask2.unsqueeze(-1).to(z2.dtype)
        R = R.to(device=z2.device)
        rows = self.fiber.act(R.repeat_interleave(n, 0), z2m.gather(1, sigma.unsqueeze(-1).expand_as(z2m))
                              .reshape(B * n, d))
        return rows.reshape(B, n, d), (sigma, R)
