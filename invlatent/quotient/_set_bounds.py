r"""Bounds on the quotient distance of sets of irreps under :math:`S_n \times SO(3)` (or :math:`S_n \times O(3)`).

A latent :math:`z \in \mathbb{R}^{n\times d}` holds one e3nn irreps vector :math:`z_i` per atom;
a permutation :math:`\sigma` re-orders the atoms and a rotation :math:`R` acts on every atom by
the Wigner matrix :math:`D(R)`. The quotient distance

.. math::

    d([z], [z'])^2 = \min_{\sigma\in S_n,\; R\in SO(3)} \sum_{i=1}^n \lVert z_i - D(R)\, z'_{\sigma(i)}\rVert^2

couples a discrete and a continuous search, and no exact polynomial method is known (for a
fixed :math:`R` it is an assignment problem, for a fixed :math:`\sigma` a rotation fit).
:func:`set_quotient_bounds` brackets it:

**Lower bound** (assignment on per-atom invariants). Write :math:`f(x)` for the vector of the
scalar channels of :math:`x` (``0e``, and ``0o`` for :math:`SO(3)`; :math:`|x|` of ``0o`` for
:math:`O(3)`) followed by the norm :math:`\lVert x_u^{(l)}\rVert` of every copy with :math:`l\ge 1`.
Because every :math:`D^{l}(R)` is orthogonal, the reverse triangle inequality gives, copy by copy,
:math:`\lVert x_u - D^l(R) y_u\rVert \ge \bigl|\lVert x_u\rVert - \lVert y_u\rVert\bigr|`, while the
scalar channels are unchanged by :math:`R`. Hence for *every* :math:`(\sigma, R)`

.. math::

    \sum_i \lVert z_i - D(R) z'_{\sigma(i)}\rVert^2 \;\ge\; \sum_i \lVert f(z_i) - f(z'_{\sigma(i)})\rVert^2
    \;\ge\; \min_{\pi\in S_n} \sum_i \lVert f(z_i) - f(z'_{\pi(i)})\rVert^2 =: L_1^2 ,

and taking the minimum over :math:`(\sigma, R)` on the left gives :math:`d \ge L_1`. A second,
usually tighter bound :math:`L_2` keeps the copies of one degree together: replace the single
rotation by an independent orthogonal matrix per atom pair and irrep type,
:math:`c_{ij} = \sum_{\text{scalars}} (z_i - z'_j)^2 + \sum_t \min_{Q\in O(2l+1)} \sum_u
\lVert z^{(t)}_{i,u} - Q z'^{(t)}_{j,u}\rVert^2` (orthogonal Procrustes in closed form: the nuclear
norm of :math:`\sum_u z_{i,u} z'^{\top}_{j,u}`; :math:`SO(3)` exactly for :math:`l = 1`). Each
:math:`D^l(R)` is one such matrix, so :math:`\lVert z_i - D(R) z'_j\rVert^2 \ge c_{ij}` for every
:math:`R`, and as above :math:`d^2 \ge \min_\pi \sum_i c_{i\pi(i)} =: L_2^2`. The lower bound is
:math:`\max(L_1, L_2)`, two exact linear assignment problems per pair. (:math:`L_2` is computed
from :math:`\lVert z\rVert^2 + \lVert z'\rVert^2 - 2\lVert K\rVert_*`, so near zero it carries
rounding of order :math:`\sqrt{\varepsilon}\,\lVert z\rVert`; the returned lower bound is never
above the returned upper bound.)

**Upper bound** (alternating assignment and rotation fit). Any :math:`(\sigma, R)` gives
:math:`d \le \bigl(\sum_i \lVert z_i - D(R) z'_{\sigma(i)}\rVert^2\bigr)^{1/2}`. From ``starts``
initial rotations -- the Kabsch rotation between the atom sums of the ``l = 1`` channels (the sum
over atoms is permutation invariant, so it needs no matching), with ``l >= 2`` channels the best
three *frame rotations* (below), the identity, the Kabsch rotation after the lower bound's
matching, and random rotations -- alternate

1. :math:`\sigma \leftarrow` the optimal assignment for the current :math:`R` (Hungarian / subset
   dynamic program on :math:`C_{ij} = \lVert z_i - D(R) z'_j\rVert^2`);
2. :math:`R \leftarrow` the best rotation for the current :math:`\sigma`: Kabsch on all ``l = 1``
   copies (exact when :math:`l_{\max}\le 1`), then, with ``l >= 2`` channels, Riemannian gradient
   ascent with backtracking on :math:`\sum_l \langle M_l, D^l(R)\rangle_F`,
   :math:`M_l = \sum_{i,u} z^{(l)}_{i,u} {z'^{(l)}_{\sigma(i),u}}^\top`;

until the value stops decreasing (or reaches zero). Each step never increases the objective, and
the returned value is the exact distance at the best :math:`(\sigma, R)` found (with ``l >= 2``,
after Gauss-Newton steps on the exact residuals, which take an orbit copy to round-off), so it
is a valid upper bound whatever the search misses.

*Frame rotations* need no ``l = 1`` channel. Every atom gets a symmetric traceless
:math:`3\times 3` matrix :math:`T(z_i)` with :math:`T(D(R) z_i) = R\, T(z_i)\, R^\top` (an
``l = 2`` copy *is* such a matrix in Cartesian coordinates; an ``l = 1`` copy gives
:math:`v v^\top - |v|^2 I/3`, an ``l >= 3`` copy its quadratic ``l = 2`` part; the copies are mixed
with fixed generic weights). If :math:`T_a = R\, T_b R^\top` with distinct eigenvalues, the
eigenframes (rows sorted by eigenvalue, proper) satisfy :math:`R = F_a^\top S F_b` for one of the
four proper sign matrices :math:`S`. The frames are taken pooled over atoms (weights 1 and
:math:`\lVert z_i\rVert^2`: permutation invariant, no matching) and per atom (the two atoms of
:math:`z` with the widest eigengap against the two atoms of :math:`z'` closest in their
invariants: the pooled matrix vanishes for symmetric sets). The 24 candidates are ranked by
:math:`\sum_i \min_j C_{ij} + \sum_j \min_i C_{ij}` (no assignment solved; 0 at the rotation of an
exact copy). On an exact rotated and permuted copy one of them is the rotation itself, so the
upper bound is 0 up to round-off whatever the irreps (generic sets: distinct eigenvalues, atoms
told apart by their invariants). The tests compare both bounds with brute force (every permutation
times a multi-start rotation optimisation) on sets of up to 5 atoms.

Padding atoms (``mask == False``) are set to zero: the distance is that of the zero-padded
sets (as in :meth:`invlatent.groups.Permutation.knn`).

Example
-------
>>> import torch
>>> from invlatent import SO3
>>> g = torch.Generator().manual_seed(0)
>>> z = torch.randn(2, 4, 7, generator=g, dtype=torch.float64)       # irreps 1x0e + 2x1o, 4 atoms
>>> R = SO3("1x0e + 2x1o").sample(2, generator=g)
>>> zR = SO3("1x0e + 2x1o").act(R.repeat_interleave(4, 0), z.reshape(8, 7)).reshape(2, 4, 7)
>>> lower, upper = set_quotient_bounds(z, zR.flip(1), "1x0e + 2x1o")  # rotated and re-ordered copies
>>> bool(upper.max() < 1e-10), bool((lower <= upper + 1e-12).all())
(True, True)
"""

from __future__ import annotations

from functools import lru_cache

import torch

from .._irreps import parse_irreps, wigner_blocks
from .._validation import check_mask, check_positive_int, check_same_shape, check_tensor, describe
from ._assignment import _batched_assignment
from ._kabsch import l1_basis

__all__ = ["set_quotient_bounds", "pairwise_set_quotient_bounds"]

#: Largest number of elements of the per-chunk tensors (moments ``n^2 sum_l (2l+1)^2`` per pair and the like).
_CHUNK_ELEMENTS = 1 << 24


def _gen(generator):
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, int) and not isinstance(generator, bool):
        return torch.Generator().manual_seed(generator)
    raise TypeError(f"generator must be a torch.Generator, an int seed or None, got {type(generator).__name__}")


def _resolve(irreps):
    """``(irreps, proper)`` from irreps (SO(3)) or an SO3/O3 group."""
    from ..groups._rotation import SO3

    if isinstance(irreps, SO3):
        return irreps.irreps, not irreps._with_inversion
    return parse_irreps(irreps), True


def check_set_latents(z1, z2, irreps, mask1=None, mask2=None):
    """Validate a pair of set-of-irreps latents ``(B, n, irreps.dim)`` and their masks."""
    for name, z in (("z1", z1), ("z2", z2)):
        check_tensor(z, name, ndim=3, expected=f"(B, n, irreps.dim={irreps.dim})")
        if z.shape[2] != irreps.dim:
            raise ValueError(f"{name} has {z.shape[2]} features per atom but irreps {irreps} has dimension "
                             f"{irreps.dim}; expected (B, n, {irreps.dim}), got {tuple(z.shape)}")
    check_same_shape(z1, z2, "z1", "z2")
    check_mask(mask1, z1, "mask1", "z1")
    check_mask(mask2, z2, "mask2", "z2")


def _zero_padding(z, mask):
    return z if mask is None else z * mask.to(z.device).unsqueeze(-1).to(z.dtype)


def invariant_features(z: torch.Tensor, irreps, proper: bool = True) -> torch.Tensor:
    """Per-atom invariants ``f``: scalar channels (signed; ``|0o|`` for O(3)) and the norm of every ``l >= 1`` copy."""
    feats = []
    for (mul, ir), sl in zip(irreps, irreps.slices()):
        x = z[..., sl]
        if ir.l == 0:
            feats.append(x if (ir.p == 1 or proper) else x.abs())
        else:
            feats.append(x.reshape(*z.shape[:-1], mul, ir.dim).norm(dim=-1))
    return torch.cat(feats, dim=-1)


def _exact_sq_cost(x, y):
    """``(P, n, n)`` squared distances from exact differences (no ``|x|^2 + |y|^2 - 2xy`` cancellation)."""
    return torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist").square()


def _lower(a, b, irreps, proper):
    """``(lower, perm)``: the larger of the norm bound and the Procrustes bound; ``perm`` the norm bound's matching."""
    fa, fb = invariant_features(a, irreps, proper), invariant_features(b, irreps, proper)
    value, perm = _batched_assignment(_exact_sq_cost(fa, fb))
    # the value from the chosen matching, from exact differences
    diff = fa - fb.gather(1, perm.unsqueeze(-1).expand_as(fb))
    norm_bound = diff.square().sum((1, 2)).clamp_min(0)
    procrustes, _ = _batched_assignment(_procrustes_cost(a, b, irreps, proper))
    return torch.maximum(norm_bound, procrustes.clamp_min(0)).sqrt(), perm


def _procrustes_cost(a, b, irreps, proper):
    r"""``(P, n, n)``: :math:`c_{ij} \le \min_{R} \lVert a_i - D(R) b_j\rVert^2`, each degree rotated on its own.

    Relax the one rotation shared by all atoms and degrees to an independent orthogonal matrix
    :math:`Q_t` per atom pair and irrep type :math:`t` (degree :math:`l` for SO(3), :math:`(l, p)`
    for O(3)): :math:`\min_{Q\in O(2l+1)} \sum_u \lVert a_u - Q b_u\rVert^2 = \lVert a\rVert^2 +
    \lVert b\rVert^2 - 2\lVert K\rVert_*` with :math:`K = \sum_u a_u b_u^\top` (orthogonal
    Procrustes; :math:`\sigma_1 + \sigma_2 + \operatorname{sign}(\det K)\,\sigma_3` for
    :math:`l = 1` under SO(3), where :math:`D^1(R)` ranges over SO(3) exactly). Scalars enter
    exactly (``0o`` under O(3) as :math:`-2|a||b|`).
    """
    groups: dict = {}
    for (mul, ir), sl in zip(irreps, irreps.slices()):
        key = (ir.l, 1 if (proper and ir.l > 0) else ir.p)
        groups.setdefault(key, []).append((mul, ir, sl))
    inner = a.new_zeros(a.shape[0], a.shape[1], a.shape[1])
    for (l, p), parts in groups.items():
        A = torch.cat([a[..., sl].reshape(*a.shape[:2], mul, ir.dim) for mul, ir, sl in parts], -2)
        B = torch.cat([b[..., sl].reshape(*b.shape[:2], mul, ir.dim) for mul, ir, sl in parts], -2)
        if l == 0:
            if proper or p == 1:
                inner = inner + torch.einsum("pium,pjum->pij", A, B)
            else:  # a pseudoscalar may flip: the best case is |a||b|
                inner = inner + torch.einsum("pium,pjum->pij", A.abs(), B.abs())
            continue
        K = torch.einsum("pium,pjun->pijmn", A, B)
        sv = torch.linalg.svdvals(K)
        if l == 1 and proper:
            d = torch.sign(torch.linalg.det(K))
            sv = torch.cat([sv[..., :2], sv[..., 2:] * torch.where(d == 0, torch.ones_like(d), d).unsqueeze(-1)], -1)
        inner = inner + sv.sum(-1)
    na, nb = a.square().sum(-1), b.square().sum(-1)
    return (na.unsqueeze(2) + nb.unsqueeze(1) - 2 * inner).clamp_min(0)


def _parity(z, irreps):
    """The action of the inversion ``-I``: every irrep multiplied by its parity."""
    sign = torch.cat([torch.full((mul * ir.dim,), float(ir.p), dtype=z.dtype, device=z.device)
                      for mul, ir in irreps])
    return z * sign


def _by_l(z, irreps):
    """``{l: (..., m_l, 2l+1)}`` for the degrees ``l >= 1``."""
    out = {}
    for (mul, ir), sl in zip(irreps, irreps.slices()):
        if ir.l >= 1:
            out.setdefault(ir.l, []).append(z[..., sl].reshape(*z.shape[:-1], mul, ir.dim))
    return {l: torch.cat(v, dim=-2) for l, v in out.items()}


def _rotate(b, irreps, R):
    """:math:`D(R)` applied to every atom of ``b`` ``(P, n, d)`` with one proper rotation per problem ``(P, 3, 3)``."""
    blocks, _ = wigner_blocks(irreps, R)
    out = []
    for (mul, ir), sl in zip(irreps, irreps.slices()):
        part = b[..., sl]
        if ir.l >= 1:
            D = blocks[ir.l].to(b.dtype)
            part = (part.reshape(*b.shape[:2], mul, ir.dim) @ D.transpose(1, 2).unsqueeze(1)).reshape(*b.shape[:2], -1)
        out.append(part)
    return torch.cat(out, dim=-1)


def _sq_dist(a, b, irreps, sigma, R):
    r"""Exact :math:`\sum_i \lVert a_i - D(R) b_{\sigma(i)}\rVert^2` from differences, ``(P,)``."""
    bs = b.gather(1, sigma.unsqueeze(-1).expand_as(b))
    return (a - _rotate(bs, irreps, R)).square().sum((1, 2))


class _PairMoments:
    r"""Everything the search needs about a batch of pairs ``(a, b)``, computed once.

    With :math:`K^l_{ij} = \sum_u a^{(l)}_{i,u} {b^{(l)}_{j,u}}^\top` (``(2l+1) x (2l+1)`` per atom
    pair) and :math:`S_{ij}` the scalar inner products,

    .. math::

        \lVert a_i - D(R) b_j\rVert^2 = \lVert a_i\rVert^2 + \lVert b_j\rVert^2
        - 2\bigl(S_{ij} + \textstyle\sum_{l\ge 1} \langle K^l_{ij}, D^l(R)\rangle_F\bigr),

    so a cost matrix for a new rotation costs :math:`O(n^2 \sum_l (2l+1)^2)` instead of rotating
    every atom, and the rotation fit for a matching reads :math:`M_l = \sum_i K^l_{i\sigma(i)}`.
    """

    def __init__(self, a, b, irreps):
        self.na = a.square().sum(-1)  # (P, n)
        self.nb = b.square().sum(-1)
        scal = [sl for (mul, ir), sl in zip(irreps, irreps.slices()) if ir.l == 0]
        if scal:
            sa = torch.cat([a[..., sl] for sl in scal], -1)
            sb = torch.cat([b[..., sl] for sl in scal], -1)
            self.S = sa @ sb.transpose(1, 2)
        else:
            self.S = a.new_zeros(a.shape[0], a.shape[1], a.shape[1])
        A, B = _by_l(a, irreps), _by_l(b, irreps)
        self.K = {l: torch.einsum("pium,pjun->pijmn", A[l], B[l]) for l in A}  # (P, n, n, 2l+1, 2l+1)

    def subset(self, idx):
        """The moments of the pairs ``idx`` only."""
        out = _PairMoments.__new__(_PairMoments)
        out.na, out.nb, out.S = self.na[idx], self.nb[idx], self.S[idx]
        out.K = {l: K[idx] for l, K in self.K.items()}
        return out

    def cost(self, R, S_starts: int):
        """``(P*S, n, n)`` squared distances for rotations ``R`` ``(P*S, 3, 3)`` (``S`` per pair)."""
        P, n = self.na.shape
        inner = self.S.unsqueeze(1).expand(P, S_starts, n, n)
        if self.K:
            blocks, _ = wigner_blocks(_irreps_of(self.K), R)
            for l, K in self.K.items():
                D = blocks[l].to(K.dtype).view(P, S_starts, 2 * l + 1, 2 * l + 1)
                inner = inner + torch.einsum("pijmn,psmn->psij", K, D)
        c = self.na.view(P, 1, n, 1) + self.nb.view(P, 1, 1, n) - 2 * inner
        return c.reshape(P * S_starts, n, n)

    def moments(self, sigma, S_starts: int):
        r""":math:`M_l = \sum_i K^l_{i\sigma(i)}` for matchings ``sigma`` ``(P*S, n)``."""
        P, n = self.na.shape
        sig = sigma.view(P, S_starts, n)
        p = torch.arange(P, device=sig.device).view(P, 1, 1)
        i = torch.arange(n, device=sig.device).view(1, 1, n)
        return {l: K[p, i, sig].sum(2).reshape(P * S_starts, 2 * l + 1, 2 * l + 1) for l, K in self.K.items()}

    def sum_moments(self):
        r""":math:`\sum_{i,j} K^l_{ij}`: the moments of the atom sums (no matching needed)."""
        return {l: K.sum((1, 2)) for l, K in self.K.items()}


def _irreps_of(K):
    """An ``Irreps`` with one copy of each degree in ``K`` (what :func:`wigner_blocks` needs)."""
    return _degrees(tuple(sorted(K)))


@lru_cache(maxsize=None)
def _degrees(ls):
    from e3nn import o3

    return o3.Irreps([(1, (l, 1)) for l in ls])


def _assign(pm: _PairMoments, R, S_starts: int):
    """The optimal matching for fixed ``R`` (costs by the expansion: they only choose ``sigma``)."""
    return _batched_assignment(pm.cost(R, S_starts).clamp_min(0))[1]


def _max_trace_rotation(H):
    r""":math:`\arg\max_{R\in SO(3)} \langle H, R\rangle_F` (Kabsch), ``H`` ``(P, 3, 3)``."""
    U, _, Vh = torch.linalg.svd(H)
    d = torch.sign(torch.linalg.det(U @ Vh))
    d = torch.where(d == 0, torch.ones_like(d), d)
    E = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=1))
    return U @ E @ Vh


def _kabsch_l1(M1):
    r"""The rotation maximising :math:`\langle M_1, D^1(R)\rangle` (``D^1 = P R P^T`` in e3nn's basis)."""
    P = l1_basis().to(device=M1.device, dtype=M1.dtype)
    return _max_trace_rotation(P.T @ M1 @ P)


def _objective(M, R):
    blocks, _ = wigner_blocks(_irreps_of(M), R)
    return sum((M[l] * blocks[l].to(M[l].dtype)).sum((1, 2)) for l in M)


def _skew(w):
    z = torch.zeros_like(w[:, 0])
    return torch.stack([torch.stack([z, -w[:, 2], w[:, 1]], -1),
                        torch.stack([w[:, 2], z, -w[:, 0]], -1),
                        torch.stack([-w[:, 1], w[:, 0], z], -1)], -2)


def _rodrigues(w):
    r""":math:`\exp([w]_\times)` for a batch of axis-angle vectors ``w`` ``(P, 3)``."""
    theta = w.norm(dim=1).view(-1, 1, 1)
    K = _skew(w)
    small = theta < 1e-8
    t = torch.where(small, torch.ones_like(theta), theta)
    a = torch.where(small, 1 - theta ** 2 / 6, torch.sin(t) / t)
    b = torch.where(small, 0.5 - theta ** 2 / 24, (1 - torch.cos(t)) / t ** 2)
    eye = torch.eye(3, dtype=w.dtype, device=w.device).expand_as(K)
    return eye + a * K + b * (K @ K)


@lru_cache(maxsize=None)
def _generators(l: int) -> torch.Tensor:
    r"""``(3, 2l+1, 2l+1)``: :math:`L_k = \frac{d}{dt} D^l(\exp(t J_k))|_{t=0}` (central differences, float64)."""
    h = 1e-6
    plus, _ = wigner_blocks(_degrees((l,)), _rodrigues(h * torch.eye(3, dtype=torch.float64)))
    minus, _ = wigner_blocks(_degrees((l,)), _rodrigues(-h * torch.eye(3, dtype=torch.float64)))
    return (plus[l] - minus[l]) / (2 * h)


def _refine(M, R, iters: int):
    r"""Riemannian gradient ascent with backtracking on :math:`f(R) = \sum_l \langle M_l, D^l(R)\rangle`.

    The gradient along :math:`R \exp(t J_k)` is :math:`\sum_l \langle M_l, D^l(R) L^l_k\rangle`
    (:func:`_generators`). A step is accepted only if it increases ``f`` (so the result is never
    worse than ``R``); the step size grows by 1.5 after an accepted step and halves after a
    rejected one.
    """
    irreps = _irreps_of(M)
    L = {l: _generators(l).to(device=R.device, dtype=R.dtype) for l in M}
    scale = sum(M[l].flatten(1).norm(dim=1) * (l * (l + 1)) for l in M)
    alpha = 1.0 / scale.clamp_min(torch.finfo(R.dtype).tiny)
    blocks, _ = wigner_blocks(irreps, R)
    f = sum((M[l] * blocks[l]).sum((1, 2)) for l in M)
    for _ in range(iters):
        g = sum(torch.einsum("pab,pac,kcb->pk", M[l], blocks[l], L[l]) for l in M)  # <M, D L_k>
        R_new = R @ _rodrigues(alpha.unsqueeze(1) * g)
        new_blocks, _ = wigner_blocks(irreps, R_new)
        f_new = sum((M[l] * new_blocks[l]).sum((1, 2)) for l in M)
        ok = f_new > f
        R = torch.where(ok.view(-1, 1, 1), R_new, R)
        f = torch.where(ok, f_new, f)
        blocks = {l: torch.where(ok.view(-1, 1, 1), new_blocks[l], blocks[l]) for l in M}
        alpha = torch.where(ok, alpha * 1.5, alpha * 0.5)
    return R


def _polish(a, b, irreps, sigma, R, iters: int = 2):
    r"""``(sq_value, R)``: Gauss-Newton steps on the exact residuals :math:`r = a - D(R) b_\sigma` at fixed ``sigma``.

    The search compares rotations by the moment expansion :math:`\text{const} - 2\langle M, D(R)\rangle`,
    whose cancellation hides a rotation error :math:`\delta` below :math:`\sqrt{\varepsilon}`
    (:math:`\delta^2 \lVert z\rVert^2` is lost in the rounding of :math:`\lVert z\rVert^2`). Here the
    residuals are differences: with :math:`J_k = D(R) L_k b_\sigma` (:func:`_generators`),
    :math:`r(R e^{[w]_\times}) \approx r - J w`, and the step :math:`w = (J^\top J)^{-1} J^\top r`
    converges quadratically to round-off on an orbit (two steps from :math:`\sqrt{\varepsilon}`).
    :math:`J^\top J = \sum (L_k b)\cdot(L_{k'} b)` does not depend on :math:`R` (``D`` is
    orthogonal) and :math:`J_k^\top r = (L_k b)\cdot D(R)^\top r`. A step is kept only if the exact
    value decreases.
    """
    P = a.shape[0]
    bs = b.gather(1, sigma.unsqueeze(-1).expand_as(b))
    parts = [(mul, ir, sl) for (mul, ir), sl in zip(irreps, irreps.slices()) if ir.l >= 1]
    Lb = [torch.einsum("kab,pnub->pnuak", _generators(ir.l).to(device=a.device, dtype=a.dtype),
                       bs[..., sl].reshape(P, -1, mul, ir.dim)).reshape(P, -1, 3) for mul, ir, sl in parts]
    H = sum(x.transpose(1, 2) @ x for x in Lb)  # (P, 3, 3)
    eye = torch.eye(3, dtype=a.dtype, device=a.device)
    H = H + (1e-12 * H.diagonal(dim1=1, dim2=2).sum(1).clamp_min(torch.finfo(a.dtype).tiny)).view(P, 1, 1) * eye
    val = (a - _rotate(bs, irreps, R)).square().sum((1, 2))
    for _ in range(iters):
        blocks, _ = wigner_blocks(irreps, R)
        g = 0
        for (mul, ir, sl), x in zip(parts, Lb):
            r = a[..., sl].reshape(P, -1, mul, ir.dim) - bs[..., sl].reshape(P, -1, mul, ir.dim) @ blocks[ir.l].to(
                a.dtype).transpose(1, 2).unsqueeze(1)
            Dtr = (r @ blocks[ir.l].to(a.dtype).unsqueeze(1)).reshape(P, -1)  # D^T r, per row: r D
            g = g + (x * Dtr.unsqueeze(-1)).sum(1)  # (P, 3)
        w = torch.linalg.solve(H, g.unsqueeze(-1)).squeeze(-1)
        R_new = R @ _rodrigues(w)
        new = (a - _rotate(bs, irreps, R_new)).square().sum((1, 2))
        ok = new < val
        R = torch.where(ok.view(P, 1, 1), R_new, R)
        val = torch.where(ok, new, val)
    return val, R


def _fit_rotation(M, R, refine_iters: int):
    """The better of ``R`` and the Kabsch rotation on the ``l = 1`` moments, refined when ``l >= 2`` is present."""
    if not M:  # scalars only: the rotation does not matter
        return R
    if 1 in M:
        cands = torch.stack([R, _kabsch_l1(M[1])])
        vals = torch.stack([_objective(M, c) for c in cands])  # (2, P), larger is better
        R = cands[vals.argmax(0), torch.arange(R.shape[0], device=R.device)]
    if max(M) >= 2 or 1 not in M:
        R = _refine(M, R, refine_iters)
    return R


def _frame_candidates(a, b, irreps):
    r"""``(P, K, 3, 3)`` rotations :math:`R` with :math:`T(a) \approx R\, T(b)\, R^\top` from equivariant matrices.

    :func:`~._rotation_search.node_matrix` gives every atom one symmetric traceless matrix
    :math:`T_i` with :math:`T(D(R) x) = R\, T(x)\, R^\top` (from the ``l = 1``, ``l = 2`` and the
    quadratic part of ``l >= 3`` channels); its eigenframe turns into :math:`R` up to four sign
    patterns (:func:`~._rotation_search.frame_rotations`). Two kinds of frames:

    * **pooled** over atoms (no matching needed: :math:`\sum_i w_i T_i` with invariant weights
      :math:`w_i = 1` and :math:`w_i = \lVert z_i\rVert^2`);
    * **per atom**: the two atoms of ``a`` with the widest eigengap, each against the two atoms of
      ``b`` closest in their invariants (copy norms, scalars, eigenvalues) -- the pooled matrix
      vanishes for symmetric sets, an atom's does not.

    On an exact orbit copy with distinct eigenvalues one candidate is the rotation itself.
    """
    from ._rotation_search import eigenframe, eigengap, frame_rotations, node_matrix

    P, n, _ = a.shape
    Ta, Tb = node_matrix(a, irreps), node_matrix(b, irreps)  # (P, n, 3, 3)
    na, nb = a.square().sum(-1), b.square().sum(-1)
    cands = []
    for wa, wb in ((None, None), (na, nb)):
        Pa = Ta.sum(1) if wa is None else (wa[..., None, None] * Ta).sum(1)
        Pb = Tb.sum(1) if wb is None else (wb[..., None, None] * Tb).sum(1)
        cands.append(frame_rotations(eigenframe(Pa)[0], eigenframe(Pb)[0]))  # (P, 4, 3, 3)
    Fa, la = eigenframe(Ta)
    Fb, lb = eigenframe(Tb)
    A, k = min(2, n), min(2, n)
    anchors = eigengap(la).topk(A, dim=1).indices  # (P, A)
    fa = torch.cat([invariant_features(a, irreps), la], -1)
    fb = torch.cat([invariant_features(b, irreps), lb], -1)
    fa = fa.gather(1, anchors.unsqueeze(-1).expand(P, A, fa.shape[-1]))
    partners = _exact_sq_cost(fa, fb).topk(k, dim=2, largest=False).indices  # (P, A, k)
    Fa = Fa.gather(1, anchors[..., None, None].expand(P, A, 3, 3))
    Fb = Fb.gather(1, partners.reshape(P, A * k)[..., None, None].expand(P, A * k, 3, 3)).view(P, A, k, 3, 3)
    cands.append(frame_rotations(Fa.unsqueeze(2), Fb).reshape(P, A * k * 4, 3, 3))
    return torch.cat(cands, dim=1)


def _screen(pm: _PairMoments, cands, count: int):
    r"""The ``count`` most promising of ``cands`` ``(P, K, 3, 3)`` per pair, ``(P, count, 3, 3)``, no assignment solved.

    Score: :math:`\sum_i \min_j C_{ij} + \sum_j \min_i C_{ij}` with
    :math:`C_{ij} = \lVert a_i - D(R) b_j\rVert^2` (0 at the rotation of an exact orbit copy).
    Candidates within 1e-3 (Frobenius) of a better one are passed over, so the starts differ.
    """
    P, K = cands.shape[:2]
    n = pm.na.shape[1]
    C = pm.cost(cands.reshape(P * K, 3, 3), K).clamp_min(0).view(P, K, n, n)
    score = C.min(3).values.sum(2) + C.min(2).values.sum(2)  # (P, K)
    pa = torch.arange(P, device=cands.device)
    out = []
    for _ in range(min(count, K)):
        best = score.argmin(1)
        R = cands[pa, best]  # (P, 3, 3)
        out.append(R)
        near = (cands - R.unsqueeze(1)).flatten(2).norm(dim=2) < 1e-3
        score = torch.where(near, torch.full_like(score, float("inf")), score)
    return torch.stack(out, dim=1)


#: Frame starts (:func:`_frame_candidates` after :func:`_screen`) when ``l >= 2`` channels are present.
_FRAME_STARTS = 3


def _starts(pm: _PairMoments, sigma_lb, starts: int, gen, dtype, device, frames=None):
    """``(P, S, 3, 3)`` initial rotations.

    In order: the atom-sum Kabsch rotation (``l = 1``), the best frame rotation (``l >= 2``:
    ``frames`` ``(P, F, 3, 3)``, best first), the identity, the Kabsch rotation after the lower
    bound's matching (``l = 1``), the other frame rotations; the first ``starts`` of them, then
    random rotations up to ``starts``.
    """
    from ..groups._rotation import _random_rotation

    P = pm.na.shape[0]
    cands = []
    if 1 in pm.K:
        cands.append(_kabsch_l1(pm.sum_moments()[1]))
    if frames is not None:
        cands.append(frames[:, 0])
    cands.append(torch.eye(3, dtype=dtype, device=device).expand(P, 3, 3))
    if 1 in pm.K:
        cands.append(_kabsch_l1(pm.moments(sigma_lb, 1)[1]))
    if frames is not None:
        cands.extend(frames[:, i] for i in range(1, frames.shape[1]))
    cands = [c.unsqueeze(1) for c in cands[:starts]]
    k = starts - len(cands)
    if k > 0:
        cands.append(_random_rotation(P * k, gen, dtype, device).view(P, k, 3, 3))
    return torch.cat(cands, dim=1)


def _upper(a, b, irreps, sigma_lb, starts: int, gen, max_rounds: int = 20, refine_iters: int = 20):
    """Best ``(sq_value, sigma, R)`` of the alternating search from ``starts`` initial rotations.

    The search tracks values by the moment expansion (cheap) and keeps working only on the pairs
    where some start still improved in the last round and the best value is not yet zero (to the
    expansion's round-off); the returned value is recomputed from exact differences at the best
    ``(sigma, R)`` of each pair, after :func:`_polish` of ``R`` when ``l >= 2`` channels are present.
    """
    P, n, d = a.shape
    pm = _PairMoments(a, b, irreps)
    frames = None
    if irreps.lmax >= 2:  # without a closed form: starts from the frames of equivariant matrices
        frames = _screen(pm, _frame_candidates(a, b, irreps), _FRAME_STARTS)
    R = _starts(pm, sigma_lb, starts, gen, a.dtype, a.device, frames).clone()  # (P, S, 3, 3)
    S = R.shape[1]
    best = torch.full((P, S), float("inf"), dtype=a.dtype, device=a.device)
    best_sigma = torch.zeros(P, S, n, dtype=torch.long, device=a.device)
    best_R = R.clone()
    ar = torch.arange(n, device=a.device)
    active = torch.arange(P, device=a.device)
    for _ in range(max_rounds):
        Pa = active.numel()
        sub = pm if Pa == P else pm.subset(active)
        Ra = R[active].reshape(Pa * S, 3, 3)
        sigma = _assign(sub, Ra, S)
        M = sub.moments(sigma, S)
        Ra = _fit_rotation(M, Ra, refine_iters)
        p_idx = torch.arange(Pa, device=a.device).repeat_interleave(S)
        scal = sub.S[p_idx.unsqueeze(1), ar.unsqueeze(0), sigma].sum(1)
        const = (sub.na.sum(1) + sub.nb.sum(1)).repeat_interleave(S)
        val = (const - 2 * (scal + (_objective(M, Ra) if M else 0.0))).view(Pa, S)
        old = best[active]
        improved = val < old - 1e-12 * const.view(Pa, S).abs().clamp_min(1e-300)
        best[active] = torch.where(improved, val, old)
        best_sigma[active] = torch.where(improved.unsqueeze(-1), sigma.view(Pa, S, n), best_sigma[active])
        best_R[active] = torch.where(improved.view(Pa, S, 1, 1), Ra.view(Pa, S, 3, 3), best_R[active])
        R[active] = Ra.view(Pa, S, 3, 3)
        # a pair stops when no start improved, or when its best value is zero as far as the expansion
        # can tell (an orbit copy found: 0 is the minimum, the polish below takes it to round-off)
        zero = best[active].min(1).values <= 64 * torch.finfo(a.dtype).eps * const.view(Pa, S)[:, 0]
        active = active[improved.any(1) & ~zero]
        if active.numel() == 0:
            break
    k = best.argmin(1)
    pa = torch.arange(P, device=a.device)
    sigma, R = best_sigma[pa, k], best_R[pa, k]
    if irreps.lmax >= 2:  # the rotation came from gradient steps on the expansion: finish on exact residuals
        sq, R = _polish(a, b, irreps, sigma, R)
        return sq, sigma, R
    return _sq_dist(a, b, irreps, sigma, R), sigma, R


def _search(z1, z2, irreps, proper, mask1, mask2, starts, gen):
    """``(lower, upper, sigma, R)`` on validated input; ``R`` may be improper for O(3)."""
    a = _zero_padding(z1.detach(), mask1).double()
    b = _zero_padding(z2.detach(), mask2).double()
    n = a.shape[1]
    # pairs in chunks: the moments K hold n^2 sum_l (2l+1)^2 numbers per pair
    m2 = max(1, sum((2 * l + 1) ** 2 for l in {ir.l for _, ir in irreps if ir.l >= 1}))
    per_pair = n * m2 * (n + starts) + 24 * n * n + 4 * n * irreps.dim  # 24: frame candidates
    step = max(1, _CHUNK_ELEMENTS // per_pair)
    if a.shape[0] > step:
        parts = [_search(z1[s:s + step], z2[s:s + step], irreps, proper,
                         None if mask1 is None else mask1[s:s + step], None if mask2 is None else mask2[s:s + step],
                         starts, gen) for s in range(0, a.shape[0], step)]
        return tuple(torch.cat([p[i] for p in parts]) for i in range(4))
    lower, sigma_lb = _lower(a, b, irreps, proper)
    sq, sigma, R = _upper(a, b, irreps, sigma_lb, starts, gen)
    if not proper:  # O(3) = SO(3) x {I, -I}: also search against the inverted set
        sq2, sigma2, R2 = _upper(a, _parity(b, irreps), irreps, sigma_lb, starts, gen)
        better = sq2 < sq
        sq = torch.where(better, sq2, sq)
        sigma = torch.where(better.unsqueeze(1), sigma2, sigma)
        R = torch.where(better.view(-1, 1, 1), -R2, R)
    upper = sq.clamp_min(0).sqrt()
    # rounding: the bounds are computed by different sums; never report lower > upper
    lower = torch.minimum(lower, upper)
    return lower.to(z1.dtype), upper.to(z1.dtype), sigma, R


def set_quotient_bounds(z1: torch.Tensor, z2: torch.Tensor, irreps, mask1: torch.Tensor | None = None,
                        mask2: torch.Tensor | None = None, *, starts: int = 8, generator=0):
    r"""Lower and upper bounds on :math:`d([z_1], [z_2])` under :math:`S_n \times SO(3)`, pair by pair.

    See the module docstring for the two bounds and the proof that the lower one is one.

    Parameters
    ----------
    z1, z2 : Tensor, shape ``(B, n, irreps.dim)``
        Pairs of sets of irreps (same shape and dtype).
    irreps : e3nn Irreps or str, or an :class:`~invlatent.groups.SO3` / :class:`~invlatent.groups.O3` group
        Irreps mean :math:`SO(3)`; an ``O3`` group adds the inversion.
    mask1, mask2 : bool Tensor, shape ``(B, n)``, optional
        Real atoms (``True``); padding atoms count as zero vectors.
    starts : int
        Initial rotations of the upper-bound search (more: tighter and slower).
    generator : torch.Generator or int seed
        For the random starts.

    Returns
    -------
    lower, upper : Tensor, shape ``(B,)``, in ``z1``'s dtype (detached; computed in float64).

    Example
    -------
    >>> import torch
    >>> z = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    >>> w = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    >>> lo, up = set_quotient_bounds(z, w, "1x0e + 1x1o")
    >>> bool((0 <= lo).all() and (lo <= up).all())
    True
    """
    irreps, proper = _resolve(irreps)
    check_set_latents(z1, z2, irreps, mask1, mask2)
    check_positive_int(starts, "starts")
    gen = _gen(generator)
    lower, upper, _, _ = _search(z1, z2, irreps, proper, mask1, mask2, starts, gen)
    return lower, upper


def pairwise_set_quotient_bounds(Z: torch.Tensor, irreps, mask: torch.Tensor | None = None, *, starts: int = 8,
                                 generator=0, chunk_size: int = 2048, show_progress: bool = True):
    r"""``(lower, upper)``: ``(N, N)`` matrices of :func:`set_quotient_bounds` between all pairs of ``Z``.

    The upper triangle is computed (``N (N - 1) / 2`` pairs, ``chunk_size`` at a time, with a
    progress bar) and mirrored; the diagonal is 0. Both are symmetric.

    Parameters
    ----------
    Z : Tensor, shape ``(N, n, irreps.dim)``
    irreps : e3nn Irreps or str, or an SO3/O3 group
    mask : bool Tensor, shape ``(N, n)``, optional
    starts, generator : as in :func:`set_quotient_bounds`
    chunk_size : int
        Pairs per call.
    show_progress : bool

    Returns
    -------
    lower, upper : Tensor, shape ``(N, N)``

    Example
    -------
    >>> import torch
    >>> Z = torch.randn(4, 3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> lo, up = pairwise_set_quotient_bounds(Z, "1x0e + 1x1o", show_progress=False)
    >>> lo.shape, bool(torch.equal(up, up.T)), bool((lo <= up).all())
    (torch.Size([4, 4]), True, True)
    """
    from ..utils import progress

    irreps_, proper = _resolve(irreps)
    check_tensor(Z, "Z", ndim=3, expected=f"(N, n, irreps.dim={irreps_.dim})")
    if Z.shape[2] != irreps_.dim:
        raise ValueError(f"Z has {Z.shape[2]} features per atom but irreps {irreps_} has dimension "
                         f"{irreps_.dim}; expected (N, n, {irreps_.dim}), got {tuple(Z.shape)}")
    check_mask(mask, Z, "mask", "Z")
    check_positive_int(starts, "starts")
    check_positive_int(chunk_size, "chunk_size")
    gen = _gen(generator)
    N = Z.shape[0]
    i1, i2 = torch.triu_indices(N, N, offset=1)
    lower = torch.zeros(N, N, dtype=Z.dtype)
    upper = torch.zeros(N, N, dtype=Z.dtype)
    steps = range(0, len(i1), chunk_size)
    for s in progress(steps, total=len(steps), desc="set quotient bounds", unit="chunk",
                      **({} if show_progress else {"disable": True})):
        a, b = i1[s:s + chunk_size], i2[s:s + chunk_size]
        ad, bd = a.to(Z.device), b.to(Z.device)
        lo, up, _, _ = _search(Z[ad], Z[bd], irreps_, proper, None if mask is None else mask[ad],
                               None if mask is None else mask[bd], starts, gen)
        lower[a, b] = lower[b, a] = lo.cpu()
        upper[a, b] = upper[b, a] = up.cpu()
    return lower.to(Z.device), upper.to(Z.device)
