r"""Invariant projections of sets of irreps ``(B, n, irreps.dim)`` under :math:`S_n \times SO(3)`.

An equivariant network's node features of a molecule are a set of per-atom irreps vectors:
re-ordering the atoms permutes the rows, rotating the molecule applies :math:`D(R)` to every row
(:class:`~invlatent.groups.Product`). Every projection here is invariant to both, each a function
and an ``nn.Module`` with the same arguments:

==================================  =============================================================
projection                          what it keeps
==================================  =============================================================
:func:`pooled_scalars`              the model's own ``0e`` channels, pooled over atoms
:func:`pooled_irrep_norms`          the norm of every irrep copy of every atom, pooled
:func:`pooled_complete_invariants`  every per-atom quadratic (cubic) invariant, pooled
:func:`gram_invariants`             cross-atom inner products :math:`\langle x_i^{(t)}, x_j^{(t)}\rangle`,
                                    pooled canonically (spectrum, diagonal, row sums)
==================================  =============================================================

Per-atom invariants :math:`f(x_i)` become set invariants by a **pooling** over atoms (``pool``):

* ``"sum"`` -- :math:`\sum_i m_i f(x_i)` (``m`` the node mask); merges sets with the same total;
* ``"mean"`` -- the sum divided by the number of real atoms; also merges a set with its copies
  repeated (and is blind to the atom count);
* ``"sort"`` -- every channel sorted over the atoms (descending, padding last, padded values 0),
  flattened to ``(B, n * k)`` in (rank, channel) order: the per-channel multisets. It merges sets
  whose channels have the same multisets of values but pair them differently across atoms.

Padding atoms (``mask == False``) never change the output: their rows are set to zero before any
computation and placed last by the sorts.

Example
-------
>>> import torch
>>> from invlatent.groups import Permutation, Product, SO3
>>> irreps = "2x0e + 1x1o + 1x2e"
>>> z = torch.randn(4, 5, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
>>> G = Product(Permutation(), SO3(irreps))
>>> gz = G.act(G.sample(4, generator=torch.Generator().manual_seed(1)), z)
>>> [bool(torch.allclose(f(z, irreps), f(gz, irreps), atol=1e-12))
...  for f in (pooled_scalars, pooled_irrep_norms, gram_invariants)]
[True, True, True]
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from .._irreps import parse_irreps
from .._validation import check_mask, check_tensor, describe
from ._irrep_invariants import complete_invariants, irrep_norms

__all__ = ["pooled_scalars", "PooledScalars", "pooled_irrep_norms", "PooledIrrepNorms",
           "pooled_complete_invariants", "PooledCompleteInvariants", "gram_invariants", "GramInvariants"]

_POOLS = ("sum", "mean", "sort")
_GRAM_PARTS = ("eigenvalues", "diagonal", "row_sums")
#: Largest per-chunk intermediate (elements) of the per-atom invariants before pooling.
_CHUNK_ELEMENTS = 1 << 24


def _check_set(z, irreps, mask, name: str = "z"):
    check_tensor(z, name, ndim=3, expected=f"(B, n, irreps.dim={irreps.dim})")
    if z.shape[2] != irreps.dim:
        raise ValueError(f"{name} has {z.shape[2]} features per atom but irreps {irreps} has dimension "
                         f"{irreps.dim}; expected (B, n, {irreps.dim}), got {tuple(z.shape)}")
    check_mask(mask, z, "mask", name)


def _check_pool(pool):
    if pool not in _POOLS:
        raise ValueError(f"pool must be one of {_POOLS}, got {describe(pool)}")
    return pool


def _masked(z, mask):
    return z if mask is None else z * mask.to(z.device).unsqueeze(-1).to(z.dtype)


def _sort_atoms(f, mask):
    """Every channel of ``f`` ``(B, n, k)`` sorted over atoms, descending, padding last (as 0)."""
    if mask is None:
        return f.sort(dim=1, descending=True).values
    pad = ~mask.to(f.device).unsqueeze(-1).expand_as(f)
    s = f.masked_fill(pad, float("-inf")).sort(dim=1, descending=True).values
    return s.masked_fill(torch.isinf(s), 0.0)


def _pool(f, mask, pool):
    """Pool per-atom invariants ``f`` ``(B, n, k)`` over atoms (rows of padding already zero)."""
    if pool == "sort":
        return _sort_atoms(f, mask).flatten(1)
    total = f.sum(dim=1)
    if pool == "sum":
        return total
    count = f.new_full((f.shape[0], 1), f.shape[1]) if mask is None else mask.sum(1, keepdim=True).to(f)
    return total / count.clamp_min(1)


def _per_atom_pooled(z, mask, pool, fn):
    """``fn`` on the rows ``(B*n, d) -> (B*n, k)``, pooled, in chunks of sets (bounded memory)."""
    B, n, d = z.shape
    z = _masked(z, mask)
    first = fn(z[:1].reshape(n, d))
    k = first.shape[1]
    step = max(1, _CHUNK_ELEMENTS // max(1, n * max(k, d)))
    out = []
    for s in range(0, B, step):
        zc = z[s:s + step]
        f = fn(zc.reshape(-1, d)).reshape(zc.shape[0], n, k)
        if mask is not None:  # invariants of a zero row need not be zero (e.g. constants): zero them
            f = f * mask[s:s + step].to(f.device).unsqueeze(-1).to(f.dtype)
        out.append(_pool(f, None if mask is None else mask[s:s + step], pool))
    return torch.cat(out)


def _scalar_index(irreps):
    idx = [i for (mul, ir), sl in zip(irreps, irreps.slices()) if ir.l == 0 and ir.p == 1
           for i in range(sl.start, sl.stop)]
    if not idx:
        raise ValueError(f"irreps {irreps} has no 0e channels to pool")
    return torch.tensor(idx)


def pooled_scalars(z: torch.Tensor, irreps, mask: torch.Tensor | None = None, pool: str = "sum") -> torch.Tensor:
    r"""The ``0e`` channels of every atom, pooled over atoms: :math:`\operatorname{pool}_i\, x_i^{(0e)}`.

    The model's own invariant channels, read without any further computation.

    **Merges**: everything the model put into ``l >= 1`` (and ``0o``) channels -- sets that differ
    only there are merged -- plus what the pooling merges (see the module docstring).

    Parameters
    ----------
    z : Tensor, shape ``(B, n, irreps.dim)``
    irreps : e3nn Irreps or str
    mask : bool Tensor, shape ``(B, n)``, optional (``True`` = real atom)
    pool : ``"sum"``, ``"mean"`` or ``"sort"``

    Returns
    -------
    Tensor, shape ``(B, k)`` (``k`` = number of ``0e`` channels), ``(B, n * k)`` for ``"sort"``

    Example
    -------
    >>> import torch
    >>> z = torch.tensor([[[1.0, 5.0, 0.0, 0.0], [2.0, 0.0, 7.0, 0.0]]])   # 1x0e + 1x1o per atom
    >>> pooled_scalars(z, "1x0e + 1x1o").tolist(), pooled_scalars(z, "1x0e + 1x1o", pool="sort").tolist()
    ([[3.0]], [[2.0, 1.0]])
    """
    ir = parse_irreps(irreps)
    _check_set(z, ir, mask)
    _check_pool(pool)
    idx = _scalar_index(ir).to(z.device)
    return _pool(_masked(z, mask).index_select(2, idx), mask, pool)


def pooled_irrep_norms(z: torch.Tensor, irreps, mask: torch.Tensor | None = None, pool: str = "sum",
                       squared: bool = False) -> torch.Tensor:
    r"""The norm of every irrep copy of every atom (:func:`~invlatent.irrep_norms`), pooled over atoms.

    :math:`\operatorname{pool}_i \bigl(\lVert x_{i,u}^{(l)}\rVert\bigr)_u`; ``0e`` channels become
    their absolute values.

    **Merges**: within an atom, every relative orientation -- the angles between copies and between
    degrees (two atoms whose copies have the same lengths but point differently); the sign of the
    scalars; across atoms, how the atoms are arranged relative to each other (only per-atom
    quantities survive); plus what the pooling merges.

    Parameters
    ----------
    z : Tensor, shape ``(B, n, irreps.dim)``
    irreps : e3nn Irreps or str
    mask : bool Tensor, shape ``(B, n)``, optional
    pool : ``"sum"``, ``"mean"`` or ``"sort"``
    squared : bool

    Returns
    -------
    Tensor, shape ``(B, irreps.num_irreps)`` (``(B, n * irreps.num_irreps)`` for ``"sort"``)

    Example
    -------
    >>> import torch
    >>> z = torch.tensor([[[-1.0, 3.0, 4.0, 0.0], [2.0, 0.0, 0.0, 1.0]]])
    >>> pooled_irrep_norms(z, "1x0e + 1x1o").tolist()
    [[3.0, 6.0]]
    """
    ir = parse_irreps(irreps)
    _check_set(z, ir, mask)
    _check_pool(pool)
    return _per_atom_pooled(z, mask, pool, lambda rows: irrep_norms(rows, ir, squared=squared))


@lru_cache(maxsize=16)
def _square_plan(irreps_str: str, proper: bool):
    r"""How to compute ``complete_invariants(.., degree=2)`` as scaled inner products of copies, or ``None``.

    e3nn's ``TensorSquare(irreps, filter_ir_out=0e(, 0o))`` outputs, per instruction, the inner
    products :math:`\langle x_u, x_v\rangle` of copies (all pairs of two different irreps, the pairs
    ``u < v`` and the squares ``u = u`` within one) times a constant. The same numbers come from
    batched inner products at a fraction of the cost. The plan is read from e3nn's instruction list
    and its constants are fitted against ``TensorSquare`` on random float64 rows, then **verified**
    on other rows; if anything differs (another e3nn version), ``None``: use e3nn.
    """
    from e3nn import o3

    try:
        from e3nn.o3._tensor_product._sub import _square_instructions_full
    except ImportError:  # pragma: no cover - another e3nn layout
        return None
    from ..groups._rotation import O3, SO3

    irreps_in = o3.Irreps(irreps_str).simplify()
    filt = [o3.Irrep("0e")] + ([o3.Irrep("0o")] if proper else [])
    try:
        _, instr = _square_instructions_full(irreps_in, filt, "component")
    except Exception:  # pragma: no cover
        return None
    instr = [(i1, i2, mode) for i1, i2, _, mode, _, _ in sorted(instr, key=lambda t: t[2])]
    group = (SO3 if proper else O3)(irreps_str)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, irreps_in.dim, generator=g, dtype=torch.float64)
    ref = complete_invariants(x, group)
    raw = _square_raw(x.unsqueeze(1), irreps_in, instr, None).squeeze(1)
    if raw.shape != ref.shape or bool((raw[0] == 0).any()):
        return None
    scale = ref[0] / raw[0]
    err = float((raw[1:] * scale - ref[1:]).abs().max() / ref[1:].abs().max())
    if not err <= 1e-12:
        return None
    return irreps_in, instr, scale


def _square_raw(z, irreps_in, instr, mask, pooled: bool = False):
    """Inner products of copies per atom ``(B, n, k)``, or summed over atoms ``(B, k)`` if ``pooled``."""
    blocks = [z[..., sl].reshape(*z.shape[:2], mul, ir.dim) for (mul, ir), sl in zip(irreps_in, irreps_in.slices())]
    eq = "bnum,bnvm->buv" if pooled else "bnum,bnvm->bnuv"
    out = []
    for i1, i2, mode in instr:
        if mode == "uuu":
            sq = blocks[i1].square().sum(-1)
            out.append(sq.sum(1) if pooled else sq)
            continue
        G = torch.einsum(eq, blocks[i1], blocks[i2])
        if mode == "uvuv":
            out.append(G.flatten(-2))
        else:  # "uvu<v": pairs u < v, row-major
            m = G.shape[-1]
            iu, iv = torch.triu_indices(m, m, offset=1, device=G.device)
            out.append(G[..., iu, iv])
    return torch.cat(out, dim=-1)


def pooled_complete_invariants(z: torch.Tensor, group, mask: torch.Tensor | None = None, pool: str = "sum",
                               degree: int = 2) -> torch.Tensor:
    r"""Every per-atom quadratic (``degree=3``: and cubic) invariant (:func:`~invlatent.complete_invariants`), pooled.

    Per atom, the Gram matrices :math:`\langle x_{i,u}^{(l)}, x_{i,v}^{(l)}\rangle` of its copies
    (``degree=2``) determine the atom's features up to :math:`O(3)`, separately for each degree.

    **Merges**: within an atom, the relative orientation of *different* degrees (``degree=2``;
    ``degree=3`` couples them) and, for ``O3``, mirror images; across atoms, every relative
    orientation of one atom to another (each atom is rotated independently: a set of atoms each
    rotated by its own :math:`R_i` is merged with the original); plus what the pooling merges.
    Output size grows quadratically with the multiplicities (``128x0e+64x1e+32x2e``: 10,864 per
    atom), so prefer ``"sum"``/``"mean"`` for wide irreps: with ``degree=2`` they are computed as
    inner products summed over atoms directly (the same numbers as e3nn's ``TensorSquare`` up to
    round-off, checked against it when first used), without the per-atom outputs.

    Parameters
    ----------
    z : Tensor, shape ``(B, n, group.irreps.dim)``
    group : :class:`~invlatent.groups.SO3` or :class:`~invlatent.groups.O3`
    mask : bool Tensor, shape ``(B, n)``, optional
    pool : ``"sum"``, ``"mean"`` or ``"sort"``
    degree : 2 or 3

    Returns
    -------
    Tensor, shape ``(B, k)`` (``(B, n * k)`` for ``"sort"``)

    Example
    -------
    >>> import torch
    >>> from invlatent.groups import SO3
    >>> z = torch.tensor([[[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]]])    # one atom, two orthogonal 1o vectors
    >>> pooled_complete_invariants(z, SO3("2x1o")).shape
    torch.Size([1, 3])
    """
    from ..groups._rotation import rotation_group

    group = rotation_group(group)
    _check_set(z, group.irreps, mask)
    _check_pool(pool)
    if degree not in (2, 3):
        raise ValueError(f"degree must be 2 or 3, got {describe(degree)}")
    plan = _square_plan(str(group.irreps), "0o" in group.invariant_irreps) if degree == 2 else None
    if plan is None:
        return _per_atom_pooled(z, mask, pool, lambda rows: complete_invariants(rows, group, degree))
    irreps_in, instr, scale = plan
    zm = _masked(z, mask)
    scale = scale.to(device=z.device, dtype=z.dtype)
    if pool == "sort":
        return _pool(_square_raw(zm, irreps_in, instr, mask) * scale, mask, pool)
    total = _square_raw(zm, irreps_in, instr, mask, pooled=True) * scale  # summed over atoms directly
    if pool == "sum":
        return total
    count = z.new_full((z.shape[0], 1), z.shape[1]) if mask is None else mask.sum(1, keepdim=True).to(z)
    return total / count.clamp_min(1)


def _check_parts(parts):
    if isinstance(parts, str) or not parts or any(p not in _GRAM_PARTS for p in parts):
        raise ValueError(f"parts must be a non-empty sequence from {_GRAM_PARTS}, got {describe(parts)}")
    return tuple(parts)


def _irrep_types(irreps):
    """``[(label, [slices])]``: the feature slices of every irrep type ``(l, p)``."""
    types: dict = {}
    for (mul, ir), sl in zip(irreps, irreps.slices()):
        types.setdefault(str(ir), []).append(sl)
    return list(types.items())


def gram_invariants(z: torch.Tensor, irreps, mask: torch.Tensor | None = None, *,
                    parts=_GRAM_PARTS) -> torch.Tensor:
    r"""Cross-atom Gram matrices per irrep type, pooled canonically over atoms.

    For every irrep type :math:`t = (l, p)` of ``irreps`` let :math:`X_t \in \mathbb{R}^{n\times
    m_t(2l+1)}` hold each atom's copies of type :math:`t`. The Gram matrix

    .. math::

        G_t = X_t X_t^\top,\qquad (G_t)_{ij} = \sum_u \langle x_{i,u}^{(t)}, x_{j,u}^{(t)}\rangle ,

    is invariant to rotations (:math:`D(R)` is orthogonal) and *equivariant* to permutations
    (:math:`G \mapsto P G P^\top`). This book's canonical pooling turns it into a fixed-size
    :math:`S_n`-invariant: for each type, concatenated in the order of ``parts``,

    * ``"eigenvalues"`` -- the spectrum of :math:`G_t`, descending (``n`` values);
    * ``"diagonal"`` -- the multiset :math:`\{(G_t)_{ii}\}` (squared norms), descending, padding last;
    * ``"row_sums"`` -- the multiset :math:`\{\sum_j (G_t)_{ij}\} = \{\langle x_i, \textstyle\sum_j x_j\rangle\}`
      (each atom's projection on the set's total), descending, padding last.

    Output: ``(B, T * len(parts) * n)`` for ``T`` irrep types (SevenNet-0's ``128x0e+64x1e+32x2e``
    with 29 atoms: 261 numbers). Cost: one batched ``(n, n)`` product and ``eigvalsh`` per type.

    **Merges**: the spectrum is that of the scatter matrix :math:`X_t^\top X_t`, so it merges any
    two sets :math:`X' = U X_t Q` for *any* orthogonal :math:`U` of atom space (not only
    permutations); together with the diagonal and row sums it still merges sets with equal spectra
    and equal multisets of norms and total-projections but a different arrangement of the Gram
    entries (e.g. which atoms are close to which). Summing over copies merges sets that differ by
    an orthogonal mixing of the copies of a type, and separate types are never compared, so the
    relative orientation of the ``l = 1`` and ``l = 2`` channels is lost. Padding atoms give zero
    rows and columns (zero eigenvalues; placed last).

    Parameters
    ----------
    z : Tensor, shape ``(B, n, irreps.dim)``
    irreps : e3nn Irreps or str
    mask : bool Tensor, shape ``(B, n)``, optional
    parts : sequence from ``("eigenvalues", "diagonal", "row_sums")``

    Returns
    -------
    Tensor, shape ``(B, T * len(parts) * n)``

    Example
    -------
    >>> import torch
    >>> z = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]])        # two orthogonal 1o vectors
    >>> gram_invariants(z, "1x1o").tolist()                            # spectrum, norms^2, row sums
    [[4.0, 1.0, 4.0, 1.0, 4.0, 1.0]]
    """
    ir = parse_irreps(irreps)
    _check_set(z, ir, mask)
    parts = _check_parts(parts)
    zm = _masked(z, mask)
    B, n, _ = z.shape
    out = []
    for _, slices in _irrep_types(ir):
        X = torch.cat([zm[..., sl] for sl in slices], dim=-1)  # (B, n, m_t (2l+1))
        G = X @ X.transpose(1, 2)
        for part in parts:
            if part == "eigenvalues":
                vals = torch.linalg.eigvalsh(G).flip(-1)  # descending; zeros for padding / rank deficiency
                out.append(vals)
            elif part == "diagonal":
                out.append(_sort_atoms(G.diagonal(dim1=1, dim2=2).unsqueeze(-1), mask).squeeze(-1))
            else:
                out.append(_sort_atoms(G.sum(2).unsqueeze(-1), mask).squeeze(-1))
    return torch.cat(out, dim=1)


class _SetProjection(nn.Module):
    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._args.items())


class PooledScalars(_SetProjection):
    """Module form of :func:`pooled_scalars`: ``forward(z, mask=None)``.

    Example
    -------
    >>> import torch
    >>> PooledScalars("1x0e + 1x1o", pool="mean")(torch.ones(2, 3, 4)).tolist()
    [[1.0], [1.0]]
    """

    def __init__(self, irreps, pool: str = "sum"):
        super().__init__()
        self.irreps, self.pool = parse_irreps(irreps), _check_pool(pool)
        self._args = {"irreps": str(self.irreps), "pool": pool}

    def forward(self, z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return pooled_scalars(z, self.irreps, mask, self.pool)


class PooledIrrepNorms(_SetProjection):
    """Module form of :func:`pooled_irrep_norms`: ``forward(z, mask=None)``.

    Example
    -------
    >>> import torch
    >>> PooledIrrepNorms("1x1o")(torch.tensor([[[3.0, 4.0, 0.0]]])).tolist()
    [[5.0]]
    """

    def __init__(self, irreps, pool: str = "sum", squared: bool = False):
        super().__init__()
        self.irreps, self.pool, self.squared = parse_irreps(irreps), _check_pool(pool), squared
        self._args = {"irreps": str(self.irreps), "pool": pool, "squared": squared}

    def forward(self, z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return pooled_irrep_norms(z, self.irreps, mask, self.pool, self.squared)


class PooledCompleteInvariants(_SetProjection):
    """Module form of :func:`pooled_complete_invariants`: ``forward(z, mask=None)``.

    Example
    -------
    >>> import torch
    >>> from invlatent.groups import O3
    >>> PooledCompleteInvariants(O3("2x1o"), pool="sort")(torch.randn(2, 4, 6)).shape
    torch.Size([2, 12])
    """

    def __init__(self, group, pool: str = "sum", degree: int = 2):
        super().__init__()
        from ..groups._rotation import rotation_group

        self.group, self.pool = rotation_group(group), _check_pool(pool)
        if degree not in (2, 3):
            raise ValueError(f"degree must be 2 or 3, got {describe(degree)}")
        self.degree = degree
        self._args = {"group": self.group, "pool": pool, "degree": degree}

    def forward(self, z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return pooled_complete_invariants(z, self.group, mask, self.pool, self.degree)


class GramInvariants(_SetProjection):
    """Module form of :func:`gram_invariants`: ``forward(z, mask=None)``.

    Example
    -------
    >>> import torch
    >>> GramInvariants("1x0e + 1x1o", parts=("eigenvalues",))(torch.randn(2, 5, 4)).shape
    torch.Size([2, 10])
    """

    def __init__(self, irreps, *, parts=_GRAM_PARTS):
        super().__init__()
        self.irreps, self.parts = parse_irreps(irreps), _check_parts(parts)
        self._args = {"irreps": str(self.irreps), "parts": self.parts}

    def forward(self, z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return gram_invariants(z, self.irreps, mask, parts=self.parts)
