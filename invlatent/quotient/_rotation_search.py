r"""The rotation search behind the :math:`SO(3)`/:math:`O(3)` quotient distance for ``lmax >= 2``.

For irreps with :math:`l \le 1` Kabsch is exact (:func:`kabsch_align`); with higher :math:`l`
no closed form is known, and :func:`rotation_search` returns an upper bound from a few good
starting rotations (Kabsch on the ``l <= 1`` part, the latents' PCA frames, the eigenframes of
equivariant symmetric matrices built from the ``l >= 1`` copies, the identity) refined by
gradient steps on the rotation. The eigenframes (:func:`node_matrix`, :func:`eigenframe`,
:func:`frame_rotations`) also start the set search of :mod:`._set_bounds`: they need no
``l = 1`` channel.

It sits here, next to :mod:`._kabsch`, below both of its users (:class:`invlatent.groups.SO3` and
:mod:`invlatent.projections._frames`), and imports nothing from the groups or the projections.
The unchecked PCA-frame kernels (``_pca_frame``, ``_frame_set``, ``_latent_frame``) live here
for the same reason; :mod:`invlatent.projections._frames` wraps them with input checks.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import torch

from .._irreps import _cartesian_maps, float64_default, l1_blocks, parse_irreps
from .._irreps import apply_rotation as _apply_rotation
from ._kabsch import kabsch, l1_basis

__all__ = ["rotation_search", "kabsch_align"]


def _weights(points, mask=None, weights=None):
    """:func:`_moments` without input checks."""
    w = points.new_ones(points.shape[:2])
    if weights is not None:
        w = weights.to(points.dtype)
    if mask is not None:
        w = w * mask.to(points.dtype)
    wsum = w.sum(1, keepdim=True).clamp_min(torch.finfo(points.dtype).tiny)
    return w / wsum


def _sign(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x < 0, -torch.ones_like(x), torch.ones_like(x))


def _sorted_axes(points, w, center: bool):
    """Eigenvectors (B, 3, 3) as rows, by decreasing eigenvalue, of the weighted second moment."""
    if center:
        points = points - (w.unsqueeze(-1) * points).sum(1, keepdim=True)
    cov = torch.einsum("bn,bni,bnj->bij", w, points, points)
    _, vec = torch.linalg.eigh(cov)  # ascending
    axes = vec.flip(-1).transpose(1, 2)  # rows e_1, e_2, e_3 by decreasing eigenvalue
    return axes, points


def _pca_frame(points: torch.Tensor, w: torch.Tensor, proper: bool, center: bool) -> torch.Tensor:
    """:func:`pca_frame` of checked input, from the normalised weights ``w`` (:func:`_moments`)."""
    axes, centred = _sorted_axes(points, w, center)
    proj = torch.einsum("bki,bni->bnk", axes, centred)  # (B, n, 3)
    third = (w.unsqueeze(-1) * proj.pow(3)).sum(1)  # (B, 3)
    s = _sign(third)
    axes = axes * s.unsqueeze(-1)
    if proper:
        e3 = torch.linalg.cross(axes[:, 0], axes[:, 1])
        axes = torch.stack([axes[:, 0], axes[:, 1], e3], dim=1)
    return axes


@lru_cache(maxsize=None)
def _sign_patterns(proper: bool) -> torch.Tensor:
    pats = [p for p in itertools.product((1.0, -1.0), repeat=3) if not proper or p[0] * p[1] * p[2] > 0]
    return torch.tensor(pats, dtype=torch.float64)


def _frame_set(points: torch.Tensor, w: torch.Tensor, proper: bool, center: bool) -> torch.Tensor:
    """:func:`frame_set` of checked input, from the normalised weights ``w`` (:func:`_moments`)."""
    axes, _ = _sorted_axes(points, w, center)
    det = torch.linalg.det(axes)
    axes = torch.cat([axes[:, :2], axes[:, 2:] * _sign(det)[:, None, None]], dim=1)  # det = +1
    s = _sign_patterns(proper).to(device=points.device, dtype=points.dtype)  # (K, 3)
    return s[None, :, :, None] * axes[:, None]


def _vectors(z, irreps):
    """The l = 1 copies of z as (B, m, 3); at least one is needed for a frame."""
    v = l1_blocks(z, irreps)
    if v.shape[1] == 0:
        raise ValueError(f"irreps must contain l = 1 vectors to define a latent frame, got {irreps}")
    return v


def _latent_frame(z: torch.Tensor, irreps, proper: bool) -> torch.Tensor:
    """:func:`latent_frame` without the checks of ``z`` (``irreps`` parsed)."""
    V = _vectors(z, irreps)
    return _pca_frame(V, _weights(V), proper, center=False)


# --- frames from the l >= 1 channels: one equivariant symmetric 3x3 matrix per latent ---------------
@lru_cache(maxsize=None)
def _l2_to_matrix() -> torch.Tensor:
    r"""``(9, 5)`` float64: an ``l = 2`` vector :math:`y` (e3nn's basis) to the symmetric traceless
    :math:`T(y)` (row-major), with :math:`T(D^2(R)\, y) = R\, T(y)\, R^\top`.

    e3nn's :math:`Y^2(v) = M_2 \operatorname{vec}(v v^\top)`; :math:`M_2^+` maps onto the symmetric
    traceless matrices, which :math:`R \otimes R` preserves, so
    :math:`M_2^+ D^2(R) y = M_2^+ M_2 (R\otimes R) M_2^+ y = (R \otimes R) M_2^+ y`.
    """
    return _cartesian_maps(2)[1]


@lru_cache(maxsize=None)
def _quadratic_to_l2(l: int) -> torch.Tensor:
    """``(2l+1, 2l+1, 5)`` float64: e3nn's ``wigner_3j(l, l, 2)``, the quadratic map of an ``l`` copy to ``l = 2``."""
    from e3nn import o3

    with float64_default():
        return o3.wigner_3j(l, l, 2).to(torch.float64)


@lru_cache(maxsize=None)
def _mixing(count: int) -> torch.Tensor:
    """Fixed generic weights (seeded, float64, CPU) that mix the ``count`` copies into one matrix."""
    return torch.randn(count, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def sym_matrices(z: torch.Tensor, irreps, min_l: int = 1) -> torch.Tensor:
    r"""``(..., C, 3, 3)``: one symmetric traceless matrix per copy with ``l >= 1`` of ``z`` ``(..., d)``.

    :math:`T(D(R) z) = R\, T(z)\, R^\top` for proper :math:`R` (xyz coordinates, those of
    :func:`invlatent._irreps.wigner_blocks`): ``l = 1`` copies :math:`v v^\top - |v|^2 I/3`;
    ``l = 2`` copies :math:`T(y)` (:func:`_l2_to_matrix`); ``l >= 3`` copies :math:`T` of their
    quadratic ``l = 2`` part (``wigner_3j(l, l, 2)``). Parity is ignored (only proper rotations).
    Copies with ``l < min_l`` are left out.
    """
    lead = z.shape[:-1]
    out = []
    for (mul, ir), sl in zip(irreps, irreps.slices()):
        if ir.l == 0 or ir.l < min_l:
            continue
        x = z[..., sl].reshape(*lead, mul, ir.dim)
        if ir.l == 1:
            v = x @ l1_basis().to(device=z.device, dtype=z.dtype)  # xyz: D^1 = P R P^T, so v_xyz = P^T v
            eye = torch.eye(3, dtype=z.dtype, device=z.device)
            T = v.unsqueeze(-1) * v.unsqueeze(-2) - v.square().sum(-1)[..., None, None] / 3 * eye
        else:
            y = x if ir.l == 2 else torch.einsum(
                "...a,...b,abk->...k", x, x, _quadratic_to_l2(ir.l).to(device=z.device, dtype=z.dtype))
            T = (y @ _l2_to_matrix().to(device=z.device, dtype=z.dtype).T).reshape(*lead, mul, 3, 3)
            T = (T + T.transpose(-1, -2)) / 2  # symmetric up to the last bits of M_2^+
        out.append(T)
    if not out:
        return z.new_zeros(*lead, 0, 3, 3)
    return torch.cat(out, dim=-3)


def node_matrix(z: torch.Tensor, irreps) -> torch.Tensor:
    """``(..., 3, 3)``: the copies' :func:`sym_matrices` mixed with fixed generic weights (equivariant too).

    Only the ``l >= 2`` copies when there are any (an ``l = 1`` copy's matrix has a double eigenvalue,
    and the vectors have Kabsch of their own).
    """
    T = sym_matrices(z, irreps, min_l=2 if irreps.lmax >= 2 else 1)
    return torch.einsum("...cij,c->...ij", T, _mixing(T.shape[-3]).to(device=z.device, dtype=z.dtype))


def eigenframe(T: torch.Tensor):
    """``(F, lam)``: rows of ``F`` the eigenvectors of the symmetric ``T`` by ascending eigenvalue ``lam``, ``det F = +1``.

    Sorting by eigenvalue is equivariant; what is left is one sign per axis (:func:`frame_rotations`).
    """
    lam, vec = torch.linalg.eigh(T)
    F = vec.transpose(-1, -2)
    F = torch.cat([F[..., :2, :], F[..., 2:, :] * _sign(torch.linalg.det(F))[..., None, None]], dim=-2)
    return F, lam


def frame_rotations(Fa: torch.Tensor, Fb: torch.Tensor) -> torch.Tensor:
    r"""``(..., 4, 3, 3)``: :math:`R = F_a^\top S F_b` for the four proper sign patterns :math:`S`.

    If :math:`T_a = R_0 T_b R_0^\top` with distinct eigenvalues, one of them is :math:`R_0`: both
    frames diagonalise with the same sorted eigenvalues, and the eigenvectors agree up to sign.
    """
    S = _sign_patterns(True).to(device=Fa.device, dtype=Fa.dtype)  # (4, 3)
    return Fa.transpose(-1, -2).unsqueeze(-3) @ (S[:, :, None] * Fb.unsqueeze(-3))


def eigengap(lam: torch.Tensor) -> torch.Tensor:
    """The smaller gap between sorted eigenvalues: how well the frame is defined (0 at a tie)."""
    return torch.minimum(lam[..., 1] - lam[..., 0], lam[..., 2] - lam[..., 1])


def _skew(w):
    O = torch.zeros_like(w[..., 0])
    return torch.stack([torch.stack([O, -w[..., 2], w[..., 1]], -1),
                        torch.stack([w[..., 2], O, -w[..., 0]], -1),
                        torch.stack([-w[..., 1], w[..., 0], O], -1)], -2)


def kabsch_align(z1: torch.Tensor, z2: torch.Tensor, irreps, with_inversion: bool):
    """``(aligned, g)``: the rotation ``g`` ``(B, 3, 3)`` (times the inversion when that is better and
    ``with_inversion``) by Kabsch on the ``l = 1`` copies, and :math:`D(g) z_2`. Exact for ``lmax <= 1``."""
    P = l1_basis().to(z1.device)
    B = z1.shape[0]
    signs = (1.0, -1.0) if with_inversion else (1.0,)
    candidates = []
    for s in signs:
        inv = (s * torch.eye(3, dtype=torch.float64, device=z1.device)).expand(B, 3, 3)
        z2s = _act(z2, irreps, inv) if s < 0 else z2
        D = kabsch(l1_blocks(z1, irreps).double(), l1_blocks(z2s, irreps).double())
        g = s * (P.T @ D @ P)  # rotation in xyz coordinates, times the inversion if s < 0
        candidates.append((_act(z2, irreps, g), g))
    if len(candidates) == 1:
        return candidates[0]
    d = torch.stack([(a - z1).square().sum(-1) for a, _ in candidates])  # (2, B)
    k = d.argmin(dim=0)
    g = torch.where(k.view(-1, 1, 1) == 0, candidates[0][1], candidates[1][1])
    aligned = torch.where(k.view(-1, 1) == 0, candidates[0][0], candidates[1][0])
    return aligned, g


def _act(z, irreps, g):
    """:math:`D(g) z`, computed in float64, returned in ``z``'s dtype."""
    return _apply_rotation(z.to(torch.float64), irreps, g.to(z.device)).to(z.dtype)


def _kabsch_candidate(a, b, irreps, proper):
    """The exact optimum for the ``l <= 1`` part (Kabsch, as the groups' ``align``)."""
    keep = [(mul, ir) for mul, ir in irreps if ir.l <= 1]
    idx = torch.cat([torch.arange(sl.start, sl.stop, device=a.device)
                     for (mul, ir), sl in zip(irreps, irreps.slices()) if ir.l <= 1])
    _, g = kabsch_align(a[:, idx], b[:, idx], parse_irreps(keep), not proper)
    return g.to(a.dtype)


def rotation_search(z1: torch.Tensor, z2: torch.Tensor, irreps, proper: bool, steps: int, lr: float) -> torch.Tensor:
    r"""Upper bound on :math:`\min_R \lVert z_1 - D(R) z_2\rVert` per pair, ``(P,)``, detached, in ``z1``'s dtype.

    The best of the exact Kabsch rotation of the ``l <= 1`` part, the rotations between the
    latents' PCA frames (both need ``l = 1`` copies), the rotations between the eigenframes of
    equivariant symmetric matrices (:func:`node_matrix`, from every ``l >= 1`` copy) and the
    identity, refined by ``steps`` Adam steps of rate ``lr`` on the
    rotation (``proper=False``: rotations times the inversion too). Valid input assumed: called
    by :meth:`invlatent.groups.SO3.quotient_distance` (``lmax >= 2``) and
    :func:`invlatent.projections.approx_quotient_distance`.

    Example
    -------
    >>> import torch
    >>> from invlatent._irreps import apply_rotation, parse_irreps
    >>> irreps = parse_irreps("1x0e + 2x1o + 1x2e")
    >>> z = torch.randn(2, irreps.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> R = torch.linalg.qr(torch.randn(2, 3, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64))[0]
    >>> R = R * torch.linalg.det(R).view(2, 1, 1)                   # proper rotations
    >>> bool(rotation_search(z, apply_rotation(z, irreps, R), irreps, True, 30, 0.05).max() < 1e-3)
    True
    """
    a, b = z1.detach().double(), z2.detach().double()
    P = a.shape[0]
    cands = [torch.eye(3, dtype=a.dtype, device=a.device).expand(P, 1, 3, 3)]
    if any(ir.l == 1 for _, ir in irreps):
        F1 = _latent_frame(a, irreps, proper=True)
        V2 = _vectors(b, irreps)
        F2s = _frame_set(V2, _weights(V2), proper, center=False)  # (P, K, 3, 3)
        cands.append(F1.transpose(1, 2).unsqueeze(1) @ F2s)  # (P, K, 3, 3): R with F1 R ~ F2
        cands.append(_kabsch_candidate(a, b, irreps, proper).unsqueeze(1))
    # the eigenframes of the equivariant matrices T(a) = R T(b) R^T: exact on an orbit, with or without l = 1
    # (for one l = 2 copy the best of the four is the optimum itself: von Neumann's trace inequality)
    Fa = eigenframe(node_matrix(a, irreps))[0]
    cands.append(frame_rotations(Fa, eigenframe(node_matrix(b, irreps))[0]))
    if not proper:  # g = -R: D(g) b = D(R) (D(-I) b), and R maps the frame of D(-I) b onto that of a
        inv = -torch.eye(3, dtype=a.dtype, device=a.device).expand(P, 3, 3)
        cands.append(-frame_rotations(Fa, eigenframe(node_matrix(_apply_rotation(b, irreps, inv), irreps))[0]))
    cand = torch.cat(cands, dim=1)
    d = (_apply_rotation(b, irreps, cand) - a.unsqueeze(1)).norm(dim=-1)  # (P, K+1)
    best = d.argmin(1)
    R0 = cand[torch.arange(P, device=a.device), best]
    # a tiny seeded offset keeps R away from e3nn's Euler-angle singularity at the identity; drawn
    # on the CPU (the same offsets on every device), then made the leaf on the latents' device
    w0 = 1e-3 * torch.randn(P, 3, generator=torch.Generator().manual_seed(0), dtype=a.dtype)
    w = w0.to(a.device).requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    dist = d.min(1).values
    with torch.enable_grad():  # the search needs autograd even when the caller is in no_grad mode
        for _ in range(steps):
            R = R0 @ torch.linalg.matrix_exp(_skew(w))
            cur = (_apply_rotation(b, irreps, R) - a).norm(dim=-1)
            ok = torch.isfinite(cur.detach())
            dist = torch.where(ok, torch.minimum(dist, cur.detach()), dist)
            opt.zero_grad()
            torch.where(ok, cur, 0.0).sum().backward()  # not cur[ok]: no host sync per step
            assert w.grad is not None
            w.grad.nan_to_num_(0.0, 0.0, 0.0)
            opt.step()
    return dist.to(z1.dtype)
