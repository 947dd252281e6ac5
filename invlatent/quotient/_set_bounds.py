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
    \;\ge\; \min_{\pi\in S_n} \sum_i \lVert f(z_i) - f(z'_{\pi(i)})\rVert^2 =: L^2 ,

and taking the minimum over :math:`(\sigma, R)` on the left gives :math:`d \ge L`. :math:`L` is
one exact linear assignment problem per pair.

**Upper bound** (alternating assignment and rotation fit). Any :math:`(\sigma, R)` gives
:math:`d \le \bigl(\sum_i \lVert z_i - D(R) z'_{\sigma(i)}\rVert^2\bigr)^{1/2}`. From ``starts``
initial rotations -- the Kabsch rotation between the atom sums of the ``l = 1`` channels (the sum
over atoms is permutation invariant, so it needs no matching), the identity, the Kabsch rotation
after the lower bound's matching, and random rotations -- alternate

1. :math:`\sigma \leftarrow` the optimal assignment for the current :math:`R` (Hungarian / subset
   dynamic program on :math:`C_{ij} = \lVert z_i - D(R) z'_j\rVert^2`);
2. :math:`R \leftarrow` the best rotation for the current :math:`\sigma`: Kabsch on all ``l = 1``
   copies (exact when :math:`l_{\max}\le 1`), then, with ``l >= 2`` channels, Riemannian gradient
   ascent with backtracking on :math:`\sum_l \langle M_l, D^l(R)\rangle_F`,
   :math:`M_l = \sum_{i,u} z^{(l)}_{i,u} {z'^{(l)}_{\sigma(i),u}}^\top`;

until the value stops decreasing. Each step never increases the objective, and the returned
value is the exact distance at the best :math:`(\sigma, R)` found, so it is a valid upper bound
whatever the search misses. The tests compare both bounds with brute force (every permutation
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

import torch

from .._irreps import parse_irreps, wigner_blocks
from .._validation import check_mask, check_positive_int, check_same_shape, check_tensor, describe
from ._assignment import _batched_assignment
from ._kabsch import l1_basis

__all__ = ["set_quotient_bounds"]


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
    fa, fb = invariant_features(a, irreps, proper), invariant_features(b, irreps, proper)
    value, perm = _batched_assignment(_exact_sq_cost(fa, fb))
    # the value from the chosen matching, from exact differences
    diff = fa - fb.gather(1, perm.unsqueeze(-1).expand_as(fb))
    return diff.square().sum((1, 2)).clamp_min(0).sqrt(), perm


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
    """Exact :math:`\\sum_i \\lVert a_i - D(R) b_{\\sigma(i)}\\rVert^2`, ``(P,)``."""
    bs = b.gather(1, sigma.unsqueeze(-1).expand_as(b))
    return (a - _rotate(bs, irreps, R)).square().sum((1, 2))


def _assign(a, b, irreps, R):
    """The optimal matching for fixed ``R`` (costs by the expansion: they only choose ``sigma``)."""
    Db = _rotate(b, irreps, R)
    cost = a.square().sum(-1).unsqueeze(2) + Db.square().sum(-1).unsqueeze(1) - 2 * a @ Db.transpose(1, 2)
    return _batched_assignment(cost.clamp_min(0))[1]


def _max_trace_rotation(H):
    """:math:`\\arg\\max_{R\\in SO(3)} \\langle H, R\\rangle_F` (Kabsch), ``H`` ``(P, 3, 3)``."""
    U, _, Vh = torch.linalg.svd(H)
    d = torch.sign(torch.linalg.det(U @ Vh))
    d = torch.where(d == 0, torch.ones_like(d), d)
    E = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=1))
    return U @ E @ Vh


def _kabsch_l1(M1):
    """The rotation maximising :math:`\\langle M_1, D^1(R)\\rangle` (``D^1 = P R P^T`` in e3nn's basis)."""
    P = l1_basis().to(device=M1.device, dtype=M1.dtype)
    return _max_trace_rotation(P.T @ M1 @ P)


def _moments(a, b, irreps, sigma):
    """:math:`M_l = \\sum_{i,u} a^{(l)}_{i,u} b^{(l)\\top}_{\\sigma(i),u}` for every ``l >= 1``."""
    bs = b.gather(1, sigma.unsqueeze(-1).expand_as(b))
    A, B = _by_l(a, irreps), _by_l(bs, irreps)
    return {l: torch.einsum("pnma,pnmb->pab", A[l], B[l]) for l in A}


def _objective(M, irreps, R):
    blocks, _ = wigner_blocks(irreps, R)
    return sum((M[l] * blocks[l].to(M[l].dtype)).sum((1, 2)) for l in M)


def _skew(w):
    z = torch.zeros_like(w[:, 0])
    return torch.stack([torch.stack([z, -w[:, 2], w[:, 1]], -1),
                        torch.stack([w[:, 2], z, -w[:, 0]], -1),
                        torch.stack([-w[:, 1], w[:, 0], z], -1)], -2)


def _refine(M, irreps, R, iters: int):
    r"""Riemannian gradient ascent with backtracking on :math:`f(R) = \sum_l \langle M_l, D^l(R)\rangle`.

    A step is accepted only if it increases ``f`` (so the result is never worse than ``R``);
    the step size grows by 1.5 after an accepted step and halves after a rejected one.
    """
    scale = sum(M[l].flatten(1).norm(dim=1) * (l * (l + 1)) for l in M)
    alpha = 1.0 / scale.clamp_min(torch.finfo(R.dtype).tiny)
    f = _objective(M, irreps, R)
    for _ in range(iters):
        with torch.enable_grad():
            w = torch.zeros(R.shape[0], 3, dtype=R.dtype, device=R.device, requires_grad=True)
            val = _objective(M, irreps, R + R @ _skew(w))
            (g,) = torch.autograd.grad(val.sum(), w)
        R_new = R @ torch.linalg.matrix_exp(_skew(alpha.unsqueeze(1) * g))
        f_new = _objective(M, irreps, R_new)
        ok = f_new > f
        R = torch.where(ok.view(-1, 1, 1), R_new, R)
        f = torch.where(ok, f_new, f)
        alpha = torch.where(ok, alpha * 1.5, alpha * 0.5)
    return R


def _fit_rotation(a, b, irreps, sigma, R, refine_iters: int):
    """The better of ``R``, the Kabsch rotation on the ``l = 1`` copies, and (``lmax >= 2``) its refinement."""
    M = _moments(a, b, irreps, sigma)
    if not M:  # scalars only: the rotation does not matter
        return R
    cands = [R]
    if 1 in M:
        cands.append(_kabsch_l1(M[1]))
    vals = torch.stack([_objective(M, irreps, c) for c in cands])  # (K, P), larger is better
    best = vals.argmax(0)
    R = torch.stack(cands)[best, torch.arange(R.shape[0], device=R.device)]
    if irreps.lmax >= 2 or 1 not in M:
        R = _refine(M, irreps, R, refine_iters)
    return R


def _starts(a, b, irreps, sigma_lb, starts: int, gen):
    """``(P, S, 3, 3)`` initial rotations: atom-sum Kabsch, identity, Kabsch after the lower bound's matching, random."""
    from ..groups._rotation import _random_rotation

    P = a.shape[0]
    cands = []
    sums = _by_l(a.sum(1, keepdim=True), irreps), _by_l(b.sum(1, keepdim=True), irreps)
    if 1 in sums[0]:
        M1 = torch.einsum("pnma,pnmb->pab", sums[0][1], sums[1][1])
        cands.append(_kabsch_l1(M1))
    cands.append(torch.eye(3, dtype=a.dtype, device=a.device).expand(P, 3, 3))
    if 1 in sums[0]:
        cands.append(_kabsch_l1(_moments(a, b, irreps, sigma_lb)[1]))
    cands = cands[:starts]
    k = starts - len(cands)
    if k > 0:
        cands.append(_random_rotation(P * k, gen, a.dtype, a.device).view(P, k, 3, 3))
    return torch.cat([c.unsqueeze(1) if c.dim() == 3 else c for c in cands], dim=1)


def _upper(a, b, irreps, sigma_lb, starts: int, gen, max_rounds: int = 20, refine_iters: int = 30):
    """Best ``(sq_value, sigma, R)`` of the alternating search from ``starts`` initial rotations."""
    P, n, d = a.shape
    R0 = _starts(a, b, irreps, sigma_lb, starts, gen)  # (P, S, 3, 3)
    S = R0.shape[1]
    A = a.repeat_interleave(S, 0)
    Bz = b.repeat_interleave(S, 0)
    R = R0.reshape(P * S, 3, 3)
    best = torch.full((P * S,), float("inf"), dtype=a.dtype, device=a.device)
    best_sigma = torch.zeros(P * S, n, dtype=torch.long, device=a.device)
    best_R = R.clone()
    for _ in range(max_rounds):
        sigma = _assign(A, Bz, irreps, R)
        R = _fit_rotation(A, Bz, irreps, sigma, R, refine_iters)
        val = _sq_dist(A, Bz, irreps, sigma, R)
        improved = val < best * (1 - 1e-12)
        best_sigma = torch.where(improved.unsqueeze(1), sigma, best_sigma)
        best_R = torch.where(improved.view(-1, 1, 1), R, best_R)
        best = torch.where(improved, val, best)
        if not bool(improved.any()):
            break
    best = best.view(P, S)
    k = best.argmin(1)
    ar = torch.arange(P, device=a.device)
    return best[ar, k], best_sigma.view(P, S, n)[ar, k], best_R.view(P, S, 3, 3)[ar, k]


def _search(z1, z2, irreps, proper, mask1, mask2, starts, gen):
    """``(lower, upper, sigma, R)`` on validated input; ``R`` may be improper for O(3)."""
    a = _zero_padding(z1.detach(), mask1).double()
    b = _zero_padding(z2.detach(), mask2).double()
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
