r"""Steerable CNNs from e2cnn / escnn: read the group acting on a network's latent from its field type.

A steerable CNN (e2cnn, its successor escnn) types every feature map with a ``FieldType``: a
list of fields, each transforming under a representation :math:`\rho_j` of the fibre group
:math:`G` (here a finite group of planar rotations, :math:`C_N`). A feature map
:math:`f: \mathbb Z^2 \to \mathbb R^C` transforms as

.. math::

    (g \cdot f)(x) = \rho(g)\, f(g^{-1} x), \qquad \rho = \textstyle\bigoplus_j \rho_j ,

so its spatial mean :math:`\bar f = \frac{1}{|X|}\sum_x f(x) \in \mathbb R^C` (over a domain that
:math:`g` maps onto itself) transforms by :math:`\rho(g)` alone. This module turns the field type
into the ``invlatent`` group acting on that latent:

* every field **regular** and :math:`G = C_N` -- :class:`~invlatent.groups.Cyclic` ``(N)`` on
  ``(B, c, N)`` (``c`` fields of ``N`` channels): e2cnn's regular representation is
  :math:`\rho(k)\, e_j = e_{j+k}`, i.e. :math:`(\rho(k) z)_j = z_{j-k}`, exactly ``Cyclic``'s shift by
  ``k`` (checked on every element when the group is built);
* any other mix of fields of a **finite** group (trivial, irreducible, quotient, regular; also
  :math:`D_N`) -- :class:`FieldGroup`, the group acting on ``(B, C)`` by the field type's own
  matrices :math:`\rho(g)`, element ``k`` being ``fibergroup.elements[k]``;
* continuous groups (:math:`SO(2)`, :math:`O(2)`) -- a ``ValueError``: their fields have no finite
  list of elements (restrict the model to :math:`C_N`, or use an irreps group yourself).

Everything is read duck-typed: ``field_type.representations`` (``.name``, ``.size``),
``field_type.gspace.fibergroup`` (or ``field_type.fibergroup``) with ``.elements`` and
``.order()``, and ``field_type.representation(g)``. e2cnn and escnn both have them; neither is
imported here. The tests run this module on e2cnn 0.2.3 and, where it imports (it needs
numpy < 2), on escnn 1.0.11.

Example
-------
>>> from e2cnn import gspaces, nn as enn                                  # doctest: +SKIP
>>> r2 = gspaces.Rot2dOnR2(N=8)                                           # doctest: +SKIP
>>> ft = enn.FieldType(r2, 4 * [r2.regular_repr])                         # doctest: +SKIP
>>> field_group(ft)                                                       # doctest: +SKIP
Cyclic(8)
>>> x = enn.GeometricTensor(torch.randn(2, 32, 9, 9), ft)                 # doctest: +SKIP
>>> field_latent(x).shape                                                 # doctest: +SKIP
torch.Size([2, 4, 8])
"""

from __future__ import annotations

import torch

from .._validation import check_tensor, describe
from ..groups import Cyclic, Group

__all__ = ["FieldGroup", "field_group", "field_latent", "group_elements", "representation_matrices"]


def _fibergroup(field_type):
    """``(group, elements)`` of a field type's fibre group (a ``ValueError`` if it is not finite)."""
    if not all(hasattr(field_type, a) for a in ("representations", "representation")):
        raise TypeError(f"field_type must be an e2cnn/escnn FieldType (with .representations and "
                        f".representation), got {describe(field_type)}")
    G = getattr(field_type, "fibergroup", None)
    if G is None:
        G = getattr(getattr(field_type, "gspace", None), "fibergroup", None)
    if G is None:
        raise TypeError("field_type has neither .fibergroup nor .gspace.fibergroup: is it an e2cnn/escnn FieldType?")
    order = G.order() if callable(getattr(G, "order", None)) else -1
    if not isinstance(order, int) or order <= 0:
        raise ValueError(f"field_type must be over a finite group (C_N, D_N), got the continuous group "
                         f"{getattr(G, 'name', type(G).__name__)}: it has no finite list of elements to act with")
    elements = list(G.elements)
    if len(elements) != order:
        raise ValueError(f"the fibre group lists {len(elements)} elements but has order {order}")
    return G, elements


def representation_matrices(field_type, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""The matrices :math:`\rho(g_k)` of the whole field type, ``(|G|, C, C)``, ``k`` indexing
    ``fibergroup.elements``.

    Example
    -------
    >>> M = representation_matrices(ft)                                   # doctest: +SKIP
    >>> M.shape                                                           # doctest: +SKIP
    torch.Size([8, 32, 32])
    """
    _, elements = _fibergroup(field_type)
    return torch.stack([torch.as_tensor(field_type.representation(g), dtype=dtype) for g in elements])


class FieldGroup(Group):
    r"""A finite group acting on ``(B, C)`` latents by given orthogonal matrices ``(|G|, C, C)``.

    Element ``k`` acts by ``matrices[k]``: :math:`(g_k \cdot z)_b = M_k z_b`. Built by
    :func:`field_group` from a field type (``matrices[k]`` :math:`= \rho(g_k)` for
    ``fibergroup.elements[k]``); every method of the group protocol (orbits, quotient distances,
    max filters) comes from :class:`~invlatent.groups.Group`'s finite-group implementations.

    Parameters
    ----------
    matrices : Tensor ``(|G|, C, C)``
        Orthogonal matrices (checked to ``1e-6``), element 0 the identity.
    name : str
        For ``repr``.

    Example
    -------
    >>> M = torch.stack([torch.eye(2), -torch.eye(2)])        # Z_2 acting by the sign
    >>> G = FieldGroup(M, "Z2 sign")
    >>> G.act(torch.tensor([1]), torch.tensor([[1.0, 2.0]])).tolist()
    [[-1.0, -2.0]]
    >>> float(G.quotient_distance(torch.tensor([[1.0, 2.0]]), torch.tensor([[-1.0, -2.0]])))
    0.0
    """

    is_finite = True

    def __init__(self, matrices: torch.Tensor, name: str = "FieldGroup"):
        check_tensor(matrices, "matrices", ndim=3, expected="(|G|, C, C)")
        if matrices.shape[1] != matrices.shape[2] or matrices.shape[0] == 0:
            raise ValueError(f"matrices must have shape (|G|, C, C) with |G| >= 1, got {tuple(matrices.shape)}")
        m64 = matrices.to(torch.float64)
        eye = torch.eye(m64.shape[1], dtype=torch.float64, device=m64.device)
        err = float((m64 @ m64.transpose(1, 2) - eye).abs().max())
        if err > 1e-6:
            raise ValueError(f"matrices must be orthogonal (max |M M^T - I| = {err:.1e})")
        if float((m64[0] - eye).abs().max()) > 1e-6:
            raise ValueError("matrices[0] must be the identity (element 0 of the group)")
        self.matrices = m64
        self.name = str(name)

    def __repr__(self) -> str:
        return f"FieldGroup({self.name}, order={self.matrices.shape[0]}, dim={self.matrices.shape[1]})"

    @property
    def dim(self) -> int:
        return int(self.matrices.shape[1])

    def check_latent(self, z, name: str = "z") -> torch.Tensor:
        """Validate ``z`` of shape ``(B, C)``."""
        check_tensor(z, name, ndim=2, shape=(None, self.dim), expected=f"(B, C={self.dim})")
        return z

    def elements(self, device=None) -> torch.Tensor:
        """All element indices ``0 .. |G|-1``: ``(|G|,)``."""
        return torch.arange(self.matrices.shape[0], device=device)

    def sample(self, B: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """``B`` uniformly random element indices, ``(B,)``."""
        from ..groups.base import check_batch_size, check_generator

        check_batch_size(B)
        check_generator(generator)
        gdev = generator.device if generator is not None else "cpu"
        k = torch.randint(0, self.matrices.shape[0], (B,), generator=generator, device=gdev)
        return k.to(device if device is not None else gdev)

    def act(self, g: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        r""":math:`M_{g_b} z_b` for every row ``b``."""
        self.check_latent(z)
        if not isinstance(g, torch.Tensor) or g.is_floating_point() or g.is_complex() or g.dtype == torch.bool:
            raise TypeError(f"g must be a (B,) integer tensor of element indices, got {describe(g)}")
        if g.shape != (z.shape[0],):
            raise ValueError(f"g must have shape (B,) = ({z.shape[0]},) to match z, got {tuple(g.shape)}")
        M = self.matrices.to(device=z.device, dtype=z.dtype)[g.long().to(z.device)]
        return (M @ z.unsqueeze(-1)).squeeze(-1)


def _all_regular(field_type) -> bool:
    return all(getattr(r, "name", None) == "regular" for r in field_type.representations)


def _is_cyclic(G, n: int) -> bool:
    name = str(getattr(G, "name", ""))
    return type(G).__name__ == "CyclicGroup" or name == f"C{n}"


def field_group(field_type) -> Group:
    r"""The ``invlatent`` group acting on :func:`field_latent` of a tensor of this field type.

    Parameters
    ----------
    field_type : e2cnn/escnn ``FieldType``
        Over a finite group.

    Returns
    -------
    Cyclic or FieldGroup
        ``Cyclic(N)`` on ``(B, c, N)`` when every field is regular and the group is :math:`C_N`
        (verified: the field type's :math:`\rho(g_k)` must be the shift by ``k`` on every
        field, for every ``k``); otherwise :class:`FieldGroup` on ``(B, C)`` with the field type's
        matrices.

    Raises
    ------
    TypeError
        ``field_type`` is not a field type.
    ValueError
        A continuous fibre group (:math:`SO(2)`, :math:`O(2)`), or regular fields of :math:`C_N`
        whose matrices are not ``Cyclic``'s shifts.

    Example
    -------
    >>> from e2cnn import gspaces, nn as enn                              # doctest: +SKIP
    >>> r2 = gspaces.Rot2dOnR2(N=8)                                       # doctest: +SKIP
    >>> field_group(enn.FieldType(r2, 3 * [r2.regular_repr]))             # doctest: +SKIP
    Cyclic(8)
    >>> field_group(enn.FieldType(r2, [r2.trivial_repr, r2.irrep(1)]))   # doctest: +SKIP
    FieldGroup(C8 on trivial+irrep_1, order=8, dim=3)
    """
    G, elements = _fibergroup(field_type)
    N = len(elements)
    M = representation_matrices(field_type)
    names = [str(getattr(r, "name", "?")) for r in field_type.representations]
    if _all_regular(field_type) and _is_cyclic(G, N):
        c = M.shape[1] // N
        if M.shape[1] != c * N:
            raise ValueError(f"regular fields of C_{N} must have {N} channels each, got {M.shape[1]} channels")
        cyc = Cyclic(N)
        eye = torch.eye(M.shape[1], dtype=torch.float64).reshape(M.shape[1], c, N)  # rows: basis vectors
        for k in range(N):
            # column j of the shift matrix = Cyclic.act(k, e_j)
            shifted = cyc.act(torch.full((M.shape[1],), k), eye).reshape(M.shape[1], -1).T
            if float((shifted - M[k]).abs().max()) > 1e-6:
                raise ValueError(f"the regular fields of this C_{N} field type do not act as Cyclic({N})'s "
                                 f"shift by {k} on element {elements[k]!r}; use FieldGroup(representation_matrices(ft))")
        return cyc
    label = "+".join(names) if len(names) <= 6 else f"{len(names)} fields"
    return FieldGroup(M, f"{getattr(G, 'name', 'G')} on {label}")


def field_latent(x, field_type=None, *, pool: str = "mean") -> torch.Tensor:
    r"""The latent :func:`field_group`'s group acts on: the spatial mean of a feature map.

    :math:`\bar f = \frac{1}{|X|}\sum_{x \in X} f(x)`, ``(B, C)``, reshaped to ``(B, c, N)`` for
    ``Cyclic(N)`` (field ``i``'s ``N`` channels last). For an input rotated by an element
    :math:`g` that maps the pixel grid onto itself (multiples of 90° on a square grid), the
    network's latent is :math:`\rho(g) \bar f` exactly (up to rounding).

    Parameters
    ----------
    x : GeometricTensor or Tensor ``(B, C, *spatial)``
        A ``GeometricTensor`` brings its own field type; a plain tensor needs ``field_type``.
    field_type : FieldType, optional
    pool : ``"mean"`` or ``"none"``
        ``"none"`` requires no spatial axes (``(B, C)`` or ``(B, C, 1, ..., 1)``).

    Returns
    -------
    Tensor ``(B, c, N)`` (Cyclic) or ``(B, C)`` (FieldGroup)

    Example
    -------
    >>> x = enn.GeometricTensor(torch.randn(2, 24, 9, 9), enn.FieldType(r2, 3 * [r2.regular_repr]))  # doctest: +SKIP
    >>> field_latent(x).shape                                             # doctest: +SKIP
    torch.Size([2, 3, 8])
    """
    if field_type is None:
        field_type = None if isinstance(x, torch.Tensor) else getattr(x, "type", None)
        if field_type is None:
            raise TypeError(f"x must be a GeometricTensor, or pass field_type with a tensor x, got {describe(x)}")
    t = x.tensor if hasattr(x, "tensor") and not isinstance(x, torch.Tensor) else x
    check_tensor(t, "x", min_ndim=2, expected="(B, C, *spatial)")
    C = int(getattr(field_type, "size", t.shape[1]))
    if t.shape[1] != C:
        raise ValueError(f"x must have C = field_type.size = {C} channels on axis 1, got shape {tuple(t.shape)}")
    if pool == "mean":
        z = t.flatten(2).mean(-1) if t.dim() > 2 else t
    elif pool == "none":
        if any(s != 1 for s in t.shape[2:]):
            raise ValueError(f"pool='none' needs x without spatial extent, (B, C) or (B, C, 1, 1), got {tuple(t.shape)}")
        z = t.reshape(t.shape[0], C)
    else:
        raise ValueError(f"pool must be 'mean' or 'none', got {describe(pool)}")
    G = field_group(field_type)
    if isinstance(G, Cyclic):
        return z.reshape(z.shape[0], -1, G.N)
    return z


def group_elements(field_type, elements) -> torch.Tensor:
    """The ``invlatent`` elements ``(B,)`` (shifts for ``Cyclic``, indices for :class:`FieldGroup`) of
    library group elements (e2cnn: ints / tuples; escnn: ``GroupElement``), by their position in
    ``fibergroup.elements``: for :math:`C_N` in e2cnn, element ``k`` (rotation by :math:`2\\pi k/N`)
    is the shift ``k``.

    Example
    -------
    >>> group_elements(ft, [0, 2, 6]).tolist()                            # doctest: +SKIP
    [0, 2, 6]
    """
    _, els = _fibergroup(field_type)
    if not isinstance(elements, (list, tuple)):
        elements = [elements]
    out = []
    for e in elements:
        try:
            out.append(els.index(e))
        except ValueError:
            raise ValueError(f"elements: {e!r} is not an element of the field type's group "
                             f"(elements: {els[:4]}{'...' if len(els) > 4 else ''})") from None
    return torch.tensor(out, dtype=torch.long)
