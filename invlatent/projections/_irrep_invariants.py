r"""Invariants of :math:`SO(3)`/:math:`O(3)` latents laid out as e3nn ``Irreps``.

* :func:`irrep_norms` -- the norm of every irrep copy (exactly ``e3nn.o3.Norm``): invariant,
  cheap, lossy: it forgets the angles *between* copies.
* :func:`complete_invariants` -- the quadratic invariants ``o3.TensorSquare(irreps, filter_ir_out=0e)``
  (for each :math:`l` the Gram matrix :math:`\langle x^{(l)}_u, x^{(l)}_v\rangle` of its copies) and,
  with ``degree=3``, the cubic ones (the tensor square contracted with the latent again, e.g.
  triple products :math:`u\cdot(v\times w)`, which tell a configuration from its mirror image).
  Gram matrices determine a set of vectors up to :math:`O(3)` (and up to :math:`SO(3)` with the
  triple products); cubic invariants also couple different :math:`l`.

Use ``group="O3"`` to keep only the ``0e`` outputs (invariant under reflections too) and
``group="SO3"`` (default) to also keep the pseudoscalars ``0o``.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from .._irreps import check_irreps_latent, float64_default, parse_irreps
from ..groups import O3, SO3
from ..groups._rotation import rotation_group
from .._validation import describe

__all__ = ["irrep_norms", "complete_invariants", "IrrepNorms", "CompleteInvariants"]


class IrrepNorms(nn.Module):
    """Norm of every irrep copy: ``(B, irreps.dim) -> (B, irreps.num_irreps)`` (wraps ``o3.Norm``).

    Constants are built in float64 and cast to ``dtype`` (default: torch's default dtype);
    pass ``dtype=torch.float64`` for float64 work (casting a float32 module later keeps
    float32-rounded constants).

    Example
    -------
    >>> import torch
    >>> IrrepNorms("1x0e + 1x1o")(torch.tensor([[-2.0, 3.0, 0.0, 4.0]])).tolist()
    [[2.0, 5.0]]
    """

    def __init__(self, irreps, squared: bool = False, dtype: torch.dtype | None = None):
        super().__init__()
        from e3nn import o3

        self.irreps = parse_irreps(irreps)
        with float64_default():
            self.norm = o3.Norm(self.irreps, squared=squared)
        self.to(dtype or torch.get_default_dtype())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_irreps_latent(z, self.irreps)
        return self.norm(z)


class CompleteInvariants(nn.Module):
    """Quadratic (and cubic) invariants of an irreps latent; see :func:`complete_invariants`.

    ``(B, irreps.dim) -> (B, irreps_out.dim)``. Constants are built in float64 and cast to
    ``dtype`` (default: torch's default dtype); pass ``dtype=torch.float64`` for float64 work.

    Example
    -------
    >>> import torch
    >>> from invlatent import O3
    >>> m = CompleteInvariants(O3("2x1o"))
    >>> m.irreps_out, m(torch.randn(4, 6)).shape
    (3x0e, torch.Size([4, 3]))
    """

    def __init__(self, group, degree: int = 2, dtype: torch.dtype | None = None):
        super().__init__()
        from e3nn import o3

        if isinstance(degree, str):  # old signature CompleteInvariants(irreps, "SO3"/"O3", degree, dtype)
            group = rotation_group(group, degree, stacklevel=3)
            degree, dtype = (dtype, None) if isinstance(dtype, int) else (2, dtype)
        group = rotation_group(group, stacklevel=3)
        self.irreps = group.irreps
        outs = group.invariant_irreps
        if degree not in (2, 3):
            raise ValueError(f"degree must be 2 or 3, got {describe(degree)}")
        self.group, self.degree = group, degree
        with float64_default():  # exact constants; cast below
            self.square = o3.TensorSquare(self.irreps, filter_ir_out=outs)
            irreps_out = self.square.irreps_out
            self.cubic = None
            if degree == 3:
                self.full_square = o3.TensorSquare(self.irreps)
                self.cubic = o3.FullTensorProduct(self.full_square.irreps_out, self.irreps, filter_ir_out=outs)
                irreps_out = irreps_out + self.cubic.irreps_out
        self.irreps_out = irreps_out.simplify()
        self.to(dtype or torch.get_default_dtype())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_irreps_latent(z, self.irreps)
        out = self.square(z)
        if self.cubic is not None:
            out = torch.cat([out, self.cubic(self.full_square(z), z)], dim=-1)
        return out


@lru_cache(maxsize=32)
def _cached(kind: str, irreps: str, dtype: torch.dtype, *args):
    if kind == "norms":
        (squared,) = args
        return IrrepNorms(irreps, squared, dtype=dtype)
    group, degree = args
    return CompleteInvariants((O3 if group == "O3" else SO3)(irreps), degree, dtype=dtype)


def irrep_norms(z: torch.Tensor, irreps, squared: bool = False) -> torch.Tensor:
    r"""Norm of every irrep copy, :math:`\lVert x^{(l)}_u\rVert` -- the same numbers as ``e3nn.o3.Norm``.

    Parameters
    ----------
    z : Tensor, shape ``(B, irreps.dim)``
    irreps : e3nn ``Irreps`` or str
    squared : bool

    Returns
    -------
    Tensor, shape ``(B, irreps.num_irreps)``

    Example
    -------
    >>> import torch
    >>> irrep_norms(torch.tensor([[3.0, 0.0, 4.0, 1.0, 0.0, 0.0]]), "2x1o").tolist()
    [[5.0, 1.0]]
    """
    ir = parse_irreps(irreps)
    check_irreps_latent(z, ir)
    return _cached("norms", str(ir), z.dtype, bool(squared)).to(device=z.device)(z)


def complete_invariants(z: torch.Tensor, group, degree: int = 2, *args) -> torch.Tensor:
    r"""Polynomial invariants of an irreps latent through e3nn tensor products.

    ``degree=2``: ``o3.TensorSquare(irreps, filter_ir_out=["0e"(, "0o")])`` -- every inner product
    :math:`\langle x^{(l)}_u, x^{(l)}_v\rangle` between copies of the same :math:`l`
    (the Gram matrices, upper triangle). ``degree=3`` appends
    :math:`((x\otimes x)_{L} \otimes x)_{0}`: all cubic invariants (triple products, couplings
    across :math:`l`).

    Parameters
    ----------
    z : Tensor, shape ``(B, group.irreps.dim)``
    group : :class:`~invlatent.groups.SO3` (keep ``0e`` and ``0o``) or :class:`~invlatent.groups.O3`
        (``0e`` only). Irreps (the old ``complete_invariants(z, irreps, "SO3")``) still work
        for one release, with a ``DeprecationWarning``.
    degree : 2 or 3

    Returns
    -------
    Tensor, shape ``(B, k)``

    Example
    -------
    >>> import torch
    >>> u, v = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    >>> w = torch.tensor([0.6, 0.8, 0.0])            # |w| = |v| but a different angle to u
    >>> za, zb = torch.cat([u, v])[None], torch.cat([u, w])[None]
    >>> bool(torch.allclose(irrep_norms(za, "2x1o"), irrep_norms(zb, "2x1o")))
    True
    >>> G = SO3("2x1o")
    >>> bool(torch.allclose(complete_invariants(za, G), complete_invariants(zb, G)))
    False
    """
    if isinstance(degree, str):  # old signature complete_invariants(z, irreps, "SO3"/"O3", degree)
        group, degree = rotation_group(group, degree, stacklevel=3), (args[0] if args else 2)
    group = rotation_group(group, stacklevel=3)
    check_irreps_latent(z, group.irreps)
    if degree not in (2, 3):
        raise ValueError(f"degree must be 2 or 3, got {describe(degree)}")
    kind = "SO3" if "0o" in group.invariant_irreps else "O3"
    return _cached("complete", str(group.irreps), z.dtype, kind, degree).to(device=z.device)(z)
