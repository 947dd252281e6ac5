r"""The rotation search behind the :math:`SO(3)`/:math:`O(3)` quotient distance for ``lmax >= 2``.

For irreps with :math:`l \le 1` Kabsch is exact (:func:`kabsch_align`); with higher :math:`l`
no closed form is known, and :func:`rotation_search` returns an upper bound from a few good
starting rotations (Kabsch on the ``l <= 1`` part, the latents' PCA frames, the identity)
refined by gradient steps on the rotation.

It sits here, next to :mod:`._kabsch`, below both of its users (:class:`invlatent.groups.SO3` and
:mod:`invlatent.projections._frames`), and imports nothing from the groups or the projections.
The unchecked PCA-frame kernels (``_pca_frame``, ``_frame_set``, ``_latent_frame``) live here
for the same reason; :mod:`invlatent.projections._frames` wraps them with input checks.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import torch

from .._irreps import apply_rotation as _apply_rotation
from .._irreps import l1_blocks, parse_irreps
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
    latents' PCA frames and the identity, refined by ``steps`` Adam steps of rate ``lr`` on the
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
    F1 = _latent_frame(a, irreps, proper=True)
    V2 = _vectors(b, irreps)
    F2s = _frame_set(V2, _weights(V2), proper, center=False)  # (P, K, 3, 3)
    cand = F1.transpose(1, 2).unsqueeze(1) @ F2s  # (P, K, 3, 3): R with F1 R ~ F2
    eye = torch.eye(3, dtype=a.dtype, device=a.device).expand(P, 1, 3, 3)
    cand = torch.cat([cand, eye, _kabsch_candidate(a, b, irreps, proper).unsqueeze(1)], dim=1)
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
