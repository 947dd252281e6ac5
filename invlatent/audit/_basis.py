r"""Label and basis check: when captured irreps features fail the audit, find out why, and fix it.

A model from another library may label its features with e3nn irreps (``"1x1o + 1x2e"``) while
storing each degree in its own real basis, in another component order, or with the other parity.
:class:`~invlatent.groups.SO3` then applies e3nn's Wigner matrices to the wrong coordinates and the
audit fails. For each irrep block ``mul x l p`` of the labels (``d = 2l + 1`` components, ``mul``
copies) this module asks which of these explains the block's action

.. math::

    f_l(g\,x) = s_p(g)\; Q\, D^l(g_+)\, Q^\top f_l(x), \qquad
    g_+ = \det(g)\, g,\quad s_p(g) = p \text{ if } \det g = -1 \text{ else } 1,

with :math:`D^l` e3nn's Wigner matrix and :math:`Q \in O(2l+1)` the unknown change of basis
(features :math:`= Q \cdot` e3nn coordinates, the same :math:`Q` for the ``mul`` copies):

* **labelled** -- :math:`Q = I` with the labelled parity (what ``SO3``/``O3`` assume);
* **(a) parity** -- :math:`Q = I` with the other parity;
* **(b) basis** -- the fitted :math:`Q` (:func:`fit_basis`), with the better parity;
* **(c) permutation** -- the fitted :math:`Q` rounded to the nearest signed permutation matrix
  (a component order, possibly with sign conventions such as the Condon--Shortley phase).

**The fit** (exact on noise-free data). With :math:`M = Q^\top`, every pair
:math:`(a, b) = (f_l(x), f_l(g x))` gives the linear equations
:math:`M b - s_p(g) D^l(g_+) M a = 0` in :math:`M`. Their least-squares normal matrix

.. math::

    G = I \otimes \textstyle\sum (a a^\top + b b^\top) - H - H^\top, \qquad
    H = \textstyle\sum_{\text{pairs}} s_p(g)\, D^l(g_+) \otimes b a^\top

(:math:`d^2 \times d^2`, row-major :math:`\operatorname{vec} M`) is summed in one pass over the
pairs; its eigenvector of the smallest eigenvalue is :math:`\operatorname{vec} M` up to scale, and
the polar factor of :math:`M` (an SVD, :math:`U V^\top`) is the orthogonal solution.

**What is identifiable.** :math:`D^l` is absolutely irreducible, so by Schur's lemma the matrices
commuting with every :math:`D^l(R)` are the multiples of :math:`I`: given pairs whose features span
:math:`\mathbb{R}^{2l+1}` under at least two generic rotations, the solutions of
:math:`M Q D^l Q^\top = D^l M` form the line :math:`c\, Q^\top` (reported as ``identifiable``: the
second-smallest eigenvalue of :math:`G` is clearly positive), and :math:`Q` is determined up to its
sign. :math:`Q` and :math:`-Q` give the same action; since :math:`2l+1` is odd exactly one of them
has :math:`\det = +1`, and that one is returned, so blocks of one degree that share a basis get the
same matrix. The sign of a whole converted block is a convention no rotation reveals (it commutes
with the action): invariants stay invariants, and the audit passes; only invariants odd in that
block (e.g. a coupling :math:`1 \otimes 1 \to 2` with a degree-2 block) change sign. Noisy data give
the least-squares estimate of the same construction (no iterative refinement). Parity is
identifiable only from improper elements (:math:`\det g = -1`) among ``g``; without them the
labelled parity is kept and ``parity_tested`` is False.

Example
-------
>>> import torch
>>> from invlatent.groups import O3
>>> G = O3("2x1o + 1x2e")
>>> gen = torch.Generator().manual_seed(0)
>>> z = torch.randn(200, 11, generator=gen, dtype=torch.float64)
>>> g = G.sample(200, generator=gen)
>>> perm = torch.tensor([1, 2, 0, 4, 5, 3, 6, 7, 8, 9, 10])   # vectors stored as (y, z, x)
>>> fit = fit_basis(z[:, perm], G.act(g, z)[:, perm], g, "2x1o + 1x2e")
>>> fit.table()[["irreps", "verdict"]]
  irreps      verdict
0   2x1o  permutation
1   1x2e           ok
>>> fit.blocks[0].perm.tolist()                 # feature i is e3nn component perm[i]
[1, 2, 0]
>>> bool(torch.allclose(fit.to_e3nn(z[:, perm]), z))
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .._irreps import parse_irreps, wigner_blocks
from .._validation import check_positive_int, check_tensor, describe

__all__ = ["BlockFit", "BasisFit", "fit_basis", "diagnose_basis", "rotation_pairs"]

#: Default verdict tolerance: this factor times the machine epsilon of the features' dtype.
TOLERANCE_FACTOR = 1e3


@dataclass(frozen=True)
class BlockFit:
    r"""The fit of one irrep block ``mul x l p`` (see :func:`fit_basis`).

    Attributes
    ----------
    irreps : str
        The block's label, e.g. ``"2x1o"``.
    l, mul : int
        Degree and number of copies.
    parity : int
        The labelled parity (``1`` for ``e``, ``-1`` for ``o``).
    fitted_parity : int
        The parity of the best fit (the labelled one unless improper elements show otherwise).
    Q : Tensor ``(2l+1, 2l+1)``, float64
        Orthogonal, :math:`\det Q = +1`; features :math:`= Q\,\cdot` e3nn coordinates (each copy).
    perm, signs : LongTensor ``(2l+1,)``, Tensor ``(2l+1,)``
        The signed permutation nearest to :math:`\pm Q`: feature ``i`` is ``signs[i]`` times e3nn
        component ``perm[i]`` (global sign chosen so that most signs are ``+1``).
    rel_error, parity_residual, residual, permutation_residual : float
        Relative errors :math:`\lVert f(gx) - \rho(g) f(x)\rVert / \lVert f(x)\rVert` (Frobenius
        over all pairs and copies) of the labelled action, of the other parity, of the fitted basis
        and of the signed permutation (both with ``fitted_parity``). ``parity_residual`` is NaN when
        ``g`` holds no improper element.
    identifiable : bool
        Whether the data determine :math:`Q` up to sign (a one-dimensional null space of the normal
        matrix: second-smallest eigenvalue :math:`> 10^3` times the smallest and
        :math:`> 10^{-10}` times the largest; for ``l = 0``: nonzero features).
    """

    irreps: str
    l: int
    mul: int
    parity: int
    fitted_parity: int
    Q: torch.Tensor = field(repr=False)
    perm: torch.Tensor = field(repr=False)
    signs: torch.Tensor = field(repr=False)
    rel_error: float
    parity_residual: float
    residual: float
    permutation_residual: float
    identifiable: bool

    def verdict(self, tolerance: float) -> str:
        """``"ok"``, ``"parity"``, ``"permutation"`` / ``"signed permutation"`` or ``"basis"`` (with
        ``" + parity"`` when the parity is also wrong), ``"not identifiable"`` or ``"unexplained"``:
        the first hypothesis, in that order, whose residual is at most ``tolerance``."""
        if self.rel_error <= tolerance:
            return "ok"
        if self.parity_residual <= tolerance:  # NaN compares False
            return "parity"
        flip = " + parity" if self.fitted_parity != self.parity else ""
        if self.permutation_residual <= tolerance:
            kind = "permutation" if bool((self.signs > 0).all()) else "signed permutation"
            return kind + flip
        if self.residual <= tolerance:
            return "basis" + flip
        return "unexplained" if self.identifiable else "not identifiable"


def _irreps_str(mul: int, l: int, p: int) -> str:
    return f"{mul}x{l}{'e' if p == 1 else 'o'}"


@dataclass(frozen=True)
class BasisFit:
    r"""Per-block orthogonal changes of basis fitted by :func:`fit_basis`, and the fix they give.

    ``to_e3nn(z)`` maps features into e3nn's basis (:math:`f \mapsto Q^\top f` per copy of each
    block); :attr:`irreps` are the labels with the fitted parities; ``group("O3")`` is the group
    that then acts correctly, for every projection (``complete_invariants(fit.to_e3nn(z), fit.group())``)
    and for the audit, which reads the converted features through ``select``:
    ``equivariance_audit(model, data, layer, RotatePositions(improper=True), fit.group("O3"),
    select=fit.to_e3nn)``.

    >>> import torch
    >>> from invlatent.groups import SO3
    >>> G = SO3("1x1o")
    >>> gen = torch.Generator().manual_seed(0)
    >>> z, g = torch.randn(50, 3, generator=gen, dtype=torch.float64), G.sample(50, generator=gen)
    >>> Q = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))[0]
    >>> fit = fit_basis(z @ Q.T, G.act(g, z) @ Q.T, g, "1x1o")
    >>> fit.table()["verdict"].tolist(), fit.max_residual < 1e-12
    (['basis'], True)
    >>> e = fit.to_e3nn(z @ Q.T)                    # e3nn's basis, up to one sign per block
    >>> bool(torch.allclose(fit.group("SO3").act(g, e), fit.to_e3nn(G.act(g, z) @ Q.T)))
    True

    Attributes
    ----------
    labelled_irreps : e3nn.o3.Irreps
        The irreps the features were labelled with.
    blocks : list of BlockFit
        One per block of ``labelled_irreps``.
    parity_tested : bool
        Whether ``g`` held improper elements (parity identifiable).
    tolerance : float
        The tolerance of the verdicts of :meth:`table`.
    """

    labelled_irreps: Any  # e3nn.o3.Irreps
    blocks: list[BlockFit]
    parity_tested: bool
    tolerance: float

    @property
    def irreps(self):
        """``o3.Irreps`` of the labels with the fitted parities (the labels to use after :meth:`to_e3nn`)."""
        from e3nn import o3

        return o3.Irreps([(b.mul, (b.l, b.fitted_parity)) for b in self.blocks])

    @property
    def max_residual(self) -> float:
        """The largest residual of the fitted bases over the blocks (``residual`` of each block)."""
        return max(b.residual for b in self.blocks)

    def matrix(self) -> torch.Tensor:
        r"""The block-diagonal orthogonal matrix ``B`` ``(dim, dim)`` with features :math:`= B \cdot` e3nn
        coordinates (``I_mul`` :math:`\otimes Q` per block), float64."""
        return torch.block_diag(*[torch.kron(torch.eye(b.mul, dtype=b.Q.dtype, device=b.Q.device), b.Q)
                                  for b in self.blocks])

    def _map(self, z, name: str, to_e3nn: bool) -> torch.Tensor:
        dim = self.labelled_irreps.dim
        check_tensor(z, name, min_ndim=1, shape=(dim,), expected=f"(..., dim={dim})", allow_empty=True)
        out = []
        for b, sl in zip(self.blocks, self.labelled_irreps.slices()):
            Q = b.Q.to(device=z.device, dtype=z.dtype)
            part = z[..., sl].reshape(*z.shape[:-1], b.mul, 2 * b.l + 1)
            out.append((part @ (Q if to_e3nn else Q.T)).reshape(*z.shape[:-1], -1))  # rows: Q^T f or Q f
        return torch.cat(out, dim=-1)

    def to_e3nn(self, z: torch.Tensor) -> torch.Tensor:
        r"""Features ``(..., dim)`` in the labelled basis to e3nn's basis: :math:`Q^\top f` per copy."""
        return self._map(z, "z", to_e3nn=True)

    def from_e3nn(self, z: torch.Tensor) -> torch.Tensor:
        r"""The inverse of :meth:`to_e3nn`: :math:`Q f` per copy."""
        return self._map(z, "z", to_e3nn=False)

    def group(self, kind: str = "O3"):
        """``SO3(self.irreps)`` or ``O3(self.irreps)``: the group acting on :meth:`to_e3nn`'s output."""
        from ..groups import O3, SO3

        if not isinstance(kind, str):
            raise TypeError(f"kind must be 'SO3' or 'O3', got {type(kind).__name__}")
        if kind not in ("SO3", "O3"):
            raise ValueError(f"kind must be 'SO3' or 'O3', got {describe(kind)}")
        return (O3 if kind == "O3" else SO3)(self.irreps)

    def table(self, tolerance: float | None = None):
        """The diagnosis as a ``pandas.DataFrame``, one row per block: ``irreps``, ``l``,
        ``rel_error`` (labelled), ``parity_flip``, ``basis``, ``permutation`` (residuals of the
        three explanations), ``fitted_parity`` (``"e"``/``"o"``), ``identifiable``, ``verdict``
        (see :meth:`BlockFit.verdict`; ``tolerance`` defaults to :attr:`tolerance`)."""
        import pandas as pd

        tol = self.tolerance if tolerance is None else _check_tolerance(tolerance)
        rows = [{"irreps": b.irreps, "l": b.l, "rel_error": b.rel_error, "parity_flip": b.parity_residual,
                 "basis": b.residual, "permutation": b.permutation_residual,
                 "fitted_parity": "e" if b.fitted_parity == 1 else "o", "identifiable": b.identifiable,
                 "verdict": b.verdict(tol)} for b in self.blocks]
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        parity = "tested" if self.parity_tested else "not tested (no improper element in g)"
        table = self.table().to_string(float_format=lambda v: f"{v:.2e}")
        return (f"BasisFit(labelled {str(self.labelled_irreps)!r}, fitted {str(self.irreps)!r}, parity {parity}, "
                f"tolerance {self.tolerance:.1e})\n{table}")


def _check_tolerance(tolerance) -> float:
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)):
        raise TypeError(f"tolerance must be a positive float or None, got {type(tolerance).__name__}")
    if not (tolerance > 0 and math.isfinite(tolerance)):
        raise ValueError(f"tolerance must be a positive finite float, got {describe(tolerance)}")
    return float(tolerance)


def _check_inputs(z, z_moved, g, irreps):
    ir = parse_irreps(irreps)
    check_tensor(z, "z", ndim=2, expected=f"(n, irreps.dim={ir.dim})")
    check_tensor(z_moved, "z_moved", ndim=2, expected=f"(n, irreps.dim={ir.dim})")
    check_tensor(g, "g", ndim=3, shape=(None, 3, 3), expected="(n, 3, 3)")
    if z.shape[1] != ir.dim:
        raise ValueError(f"z has {z.shape[1]} features but irreps {ir} has dimension {ir.dim}; "
                         f"expected (n, {ir.dim}), got {tuple(z.shape)}")
    if z_moved.shape != z.shape:
        raise ValueError(f"z_moved must have the shape of z {tuple(z.shape)}, got {tuple(z_moved.shape)}")
    if g.shape[0] != z.shape[0]:
        raise ValueError(f"g must hold one (3, 3) matrix per row of z: expected ({z.shape[0]}, 3, 3), "
                         f"got {tuple(g.shape)}")
    g64 = g.to(torch.float64)
    err = float((g64 @ g64.transpose(1, 2) - torch.eye(3, dtype=torch.float64, device=g.device)).abs().max())
    if err > 1e-4:
        raise ValueError(f"g must hold orthogonal matrices (elements of O(3)); max |g g^T - I| = {err:.2e}")
    return ir


def _nearest_signed_permutation(Q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(perm, signs)`` of the signed permutation matrix nearest to ``Q`` (max sum of ``|Q[i, perm[i]]|``)."""
    from scipy.optimize import linear_sum_assignment

    _, cols = linear_sum_assignment(-Q.abs().cpu().numpy())
    perm = torch.as_tensor(cols, dtype=torch.long, device=Q.device)
    signs = torch.sign(Q[torch.arange(Q.shape[0], device=Q.device), perm])
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    if signs.sum() < 0:  # 2l + 1 is odd: never a tie
        signs = -signs
    return perm, signs


def _residual(A, B, D, Q, s) -> float:
    """``||Q^T b - s D Q^T a||`` over all pairs and copies, relative to ``||a||``."""
    # rows k, copies c: A, B (n, mul, d); D (n, d, d); s (n,)
    Ae, Be = A @ Q, B @ Q  # rows of Q^T a
    pred = (Ae @ D.transpose(1, 2)) * s.view(-1, 1, 1)
    num = float((Be - pred).norm())
    den = float(A.norm())
    if den == 0:
        return 0.0 if num == 0 else math.inf
    return num / den


def _fit_block(A, B, D, s, d: int):
    """``(Q, eigenvalues)`` minimising ``sum ||M b - s D M a||^2`` over ``M = Q^T`` (see the module docstring)."""
    S = torch.einsum("kcq,kcr->qr", A, A) + torch.einsum("kcq,kcr->qr", B, B)
    C = torch.einsum("kcq,kcr->kqr", B, A)  # b a^T per row
    H = torch.einsum("kpr,kqs->pqrs", D * s.view(-1, 1, 1), C).reshape(d * d, d * d)
    G = torch.kron(torch.eye(d, dtype=A.dtype, device=A.device), S) - H - H.T
    evals, evecs = torch.linalg.eigh(G)
    M = evecs[:, 0].reshape(d, d)
    U, _, Vh = torch.linalg.svd(M)
    Q = (U @ Vh).T.contiguous()
    if torch.linalg.det(Q) < 0:
        Q = -Q
    return Q, evals


def fit_basis(z: torch.Tensor, z_moved: torch.Tensor, g: torch.Tensor, irreps, *,
              tolerance: float | None = None) -> BasisFit:
    r"""Fit, per irrep block, the orthogonal change of basis :math:`Q` (and the parity) under which
    the features transform as labelled: :math:`f_l(g x) = s_p(g)\, Q D^l(g_+) Q^\top f_l(x)`.

    Least squares over all rows and copies, solved exactly on noise-free data by the smallest
    eigenvector of the normal matrix of the linear equations :math:`Q^\top b = s_p(g) D^l(g_+)
    Q^\top a`, projected onto :math:`O(2l+1)` by the polar factor (see the module docstring, which
    also says what is identifiable: :math:`Q` up to sign, returned with :math:`\det Q = +1`). When
    ``g`` holds improper elements, both parities are fitted and the better one is kept.

    Parameters
    ----------
    z : Tensor ``(n, irreps.dim)``
        Features :math:`f(x)` (a row per node and element; :func:`rotation_pairs` builds them).
    z_moved : Tensor ``(n, irreps.dim)``
        Features :math:`f(g x)`, row by row.
    g : Tensor ``(n, 3, 3)``
        The element of :math:`O(3)` (or :math:`SO(3)`) of each row.
    irreps : str or e3nn.o3.Irreps
        The labels (``mul x l p`` blocks; the ``mul`` copies of a block share :math:`Q`).
    tolerance : float, optional
        For the verdicts of :meth:`BasisFit.table`; default ``1e3 * eps`` of ``z``'s dtype
        (``2.2e-13`` for float64, ``1.2e-4`` for float32). Features of a float32 model cast to
        float64 are only float32-accurate: pass a float32-level tolerance then.

    Returns
    -------
    BasisFit
        ``blocks[i].Q``, residuals, ``to_e3nn``, ``irreps``, ``group()``, ``table()``.

    Raises
    ------
    TypeError
        ``z``, ``z_moved`` or ``g`` not a floating tensor; ``irreps`` not irreps; ``tolerance`` not a float.
    ValueError
        Shapes that do not match ``(n, irreps.dim)`` / ``(n, 3, 3)``; non-orthogonal ``g``; NaN/inf.

    Example
    -------
    >>> import torch
    >>> from invlatent.groups import O3
    >>> G = O3("1x1o + 1x2e")
    >>> gen = torch.Generator().manual_seed(0)
    >>> z = torch.randn(100, 8, generator=gen, dtype=torch.float64)
    >>> g = G.sample(100, generator=gen)
    >>> fit = fit_basis(z, G.act(g, z), g, "1x1e + 1x2e")      # the vector is labelled with the wrong parity
    >>> fit.table()["verdict"].tolist(), str(fit.irreps)
    (['parity', 'ok'], '1x1o+1x2e')
    """
    ir = _check_inputs(z, z_moved, g, irreps)
    tol = TOLERANCE_FACTOR * torch.finfo(z.dtype).eps if tolerance is None else _check_tolerance(tolerance)
    dev = z.device
    z64 = z.to(torch.float64)
    zm64, g64 = (t.to(device=dev, dtype=torch.float64) for t in (z_moved, g))
    Ds, det = wigner_blocks(ir, g64)
    improper = det < 0
    parity_tested = bool(improper.any())
    blocks = []
    for (mul, irrep), sl in zip(ir, ir.slices()):
        l, p, d = irrep.l, irrep.p, irrep.dim
        A = z64[:, sl].reshape(-1, mul, d)
        B = zm64[:, sl].reshape(-1, mul, d)
        D = Ds[l].to(dev)
        one = torch.ones_like(det)

        def sign(par):
            return torch.where(improper, one * par, one)

        eye = torch.eye(d, dtype=torch.float64, device=dev)
        rel = _residual(A, B, D, eye, sign(p))
        flip = _residual(A, B, D, eye, sign(-p)) if parity_tested else math.nan
        fits = []
        for par in ((p, -p) if parity_tested else (p,)):
            Q, evals = _fit_block(A, B, D, sign(par), d)
            fits.append((_residual(A, B, D, Q, sign(par)), par, Q, evals))
        res, par, Q, evals = min(fits, key=lambda t: t[0])
        perm, signs = _nearest_signed_permutation(Q)
        P = torch.zeros(d, d, dtype=torch.float64, device=dev)
        P[torch.arange(d, device=dev), perm] = signs
        lam = evals.abs()
        if d == 1:  # Q = +-1: nothing to identify beyond the sign, as long as there are features
            identifiable = bool(A.norm() > 0)
        else:
            identifiable = bool(lam[1] > 1e3 * lam[0] and lam[1] > 1e-10 * lam[-1])
        blocks.append(BlockFit(irreps=_irreps_str(mul, l, p), l=l, mul=mul, parity=p, fitted_parity=par, Q=Q,
                               perm=perm, signs=signs, rel_error=rel, parity_residual=flip, residual=res,
                               permutation_residual=_residual(A, B, D, P, sign(par)), identifiable=identifiable))
    return BasisFit(labelled_irreps=ir, blocks=blocks, parity_tested=parity_tested, tolerance=tol)


def diagnose_basis(z: torch.Tensor, z_moved: torch.Tensor, g: torch.Tensor, irreps, *,
                   tolerance: float | None = None):
    r"""Which irrep blocks fail the labelled action, and whether a parity flip, an orthogonal change
    of basis or a component order explains each: ``fit_basis(...).table()``.

    Arguments as :func:`fit_basis`. Returns a ``pandas.DataFrame``, one row per block (columns in
    :meth:`BasisFit.table`); a block's ``verdict`` names the first explanation whose relative
    residual is within ``tolerance``: ``ok``, ``parity``, ``permutation`` (or ``signed
    permutation``), ``basis`` (the last two may add ``+ parity``), else ``unexplained`` (or ``not
    identifiable`` when the data cannot determine :math:`Q`).

    Example
    -------
    >>> import torch
    >>> from invlatent.groups import O3
    >>> G = O3("1x0e + 1x1o")
    >>> gen = torch.Generator().manual_seed(0)
    >>> z = torch.randn(64, 4, generator=gen, dtype=torch.float64)
    >>> g = G.sample(64, generator=gen)
    >>> diagnose_basis(z, G.act(g, z), g, "1x0o + 1x1o")["verdict"].tolist()
    ['parity', 'ok']
    """
    return fit_basis(z, z_moved, g, irreps, tolerance=tolerance).table()


def rotation_pairs(model, inputs, layer: str, *, input_group=None, n_elements: int = 8, generator=0,
                   dtype: torch.dtype | None = None, select=None, forward=None):
    r"""Captured features of ``layer`` on the inputs and on ``n_elements`` random rotations of them:
    the ``(z, z_moved, g)`` that :func:`fit_basis` and :func:`diagnose_basis` take.

    For each element :math:`g_k` of ``input_group.sample`` (by default
    :class:`~invlatent.groups.RotatePositions` with ``improper=True``: rotations and inversions, so
    that parity is tested), the layer's latent ``(N, dim)`` is captured on :math:`x` and on
    :math:`g_k x` (as :func:`~invlatent.audit.equivariance_audit` does, ``stop=True``).

    Parameters
    ----------
    model, inputs, select, forward
        As in :func:`~invlatent.audit.equivariance_audit`.
    layer : str
        One name from ``model.named_modules()``; its latent must be a tensor ``(N, dim)``.
    input_group : optional
        ``sample``/``act`` on the inputs, elements ``(1, 3, 3)`` (one per input) or ``(N, 3, 3)``
        (one per latent row). Pass ``RotatePositions()`` for a model that is only
        :math:`SO(3)`-equivariant.
    n_elements : int
    generator : torch.Generator or int seed
    dtype : torch.dtype, optional
        Cast a deep copy of the model and the inputs' floating tensors (default: the model's dtype,
        no cast).

    Returns
    -------
    z, z_moved : Tensor ``(n_elements * N, dim)``
    g : Tensor ``(n_elements * N, 3, 3)``, float64

    Example
    -------
    >>> import torch
    >>> from invlatent.groups import RotatePositions
    >>> class Pos(torch.nn.Module):       # features: positions in the m order (y, z, x) of real harmonics
    ...     def forward(self, data):
    ...         return data["pos"][:, [1, 2, 0]]
    >>> m = torch.nn.Sequential()
    >>> m.add_module("pos", Pos())
    >>> data = {"pos": torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))}
    >>> z, zm, g = rotation_pairs(m, data, "pos", n_elements=4)
    >>> fit = fit_basis(z, zm, g, "1x1o")
    >>> fit.table()["verdict"].item(), fit.blocks[0].perm.tolist()   # e3nn orders l=1 as (x, y, z)
    ('permutation', [1, 2, 0])
    """
    import copy

    from torch import nn

    from ..groups._input_actions import RotatePositions
    from ._audit import _cast, _gen, _model_dtype, _run, _sample
    from ._capture import _check_layers, _check_select

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(layer, str):
        raise TypeError(f"layer must be one module name (a str), got {type(layer).__name__}")
    _check_layers(model, [layer])
    select = _check_select(select)
    if input_group is None:
        input_group = RotatePositions(improper=True)
    elif not all(hasattr(input_group, m) for m in ("sample", "act")):
        raise TypeError(f"input_group must have sample() and act() (e.g. RotatePositions()), got "
                        f"{type(input_group).__name__}")
    check_positive_int(n_elements, "n_elements")
    if dtype is not None and dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32, torch.float64 or None, got {describe(dtype)}")
    if forward is None:
        def forward(m, x):
            return m(x)
    elif not callable(forward):
        raise TypeError(f"forward must be a callable (model, inputs) or None, got {type(forward).__name__}")
    gen = _gen(generator)
    work, x = model, inputs
    if dtype is not None:
        if _model_dtype(model) != dtype:
            work = copy.deepcopy(model).to(dtype)
        x = _cast(inputs, dtype)

    def latent(inp):
        lat, _ = _run(work, inp, [layer], select, forward)
        out = lat[layer]
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            raise ValueError(f"layer {layer!r} must give a tensor (N, dim), got {describe(out)}")
        return out.detach()

    base = latent(x)
    zs, zms, gs = [], [], []
    for _ in range(n_elements):
        el = _sample(input_group, inputs, gen)
        if not isinstance(el, torch.Tensor) or el.dim() != 3 or el.shape[1:] != (3, 3):
            raise ValueError(f"input_group.sample must give (B, 3, 3) matrices, got {describe(el)}")
        moved = latent(input_group.act(el, x))
        if el.shape[0] not in (1, base.shape[0]):
            raise ValueError(f"input_group sampled {el.shape[0]} elements; the latent of {layer!r} has "
                             f"{base.shape[0]} rows (expected 1 element or one per row)")
        zs.append(base)
        zms.append(moved)
        gs.append(el.to(device=base.device, dtype=torch.float64).expand(base.shape[0], 3, 3))
    return torch.cat(zs), torch.cat(zms), torch.cat(gs)
