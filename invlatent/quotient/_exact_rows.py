r"""Exact quotient k-NN of a few query rows against all stored latents, from known upper bounds.

Used by :class:`~invlatent.quotient.QuotientIndex` to measure its own recall on a sample of
queries. For a query ``q`` with an upper bound :math:`u_q` on its ``k``-th squared distance (the
``k``-th exact distance among candidates already ranked), every stored ``j`` with
:math:`d^2(q, j) \le u_q` has a per-channel sorted bound :math:`\lVert e_q - e_j\rVert^2 \le u_q`
(one matmul against all stored sort embeddings); those get the exact distance
(:func:`~invlatent.quotient._kernels.exact_sq` with ``below = u_q``: its assignment-dual bound
skips the solver where it already exceeds :math:`u_q`). No other latent can be among the ``k``
nearest, so the result is exact.
"""

from __future__ import annotations

import math

import torch

from ._kernels import _MARGIN, _select_by_index, exact_sq

__all__ = ["exact_rows"]


def exact_rows(Zq: torch.Tensor, Z: torch.Tensor, nrm: torch.Tensor, k: int,
               cand_v: torch.Tensor, cand_i: torch.Tensor, exclude: torch.Tensor | None = None,
               solver: str = "auto", embed=None, chunk: int = 1 << 14, counts: dict | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact ``k`` nearest squared distances and indices ``(q, k)`` of the float64 queries ``Zq (q, n,
    c)`` among ``Z (N, n, c)`` (squared norms ``nrm (N,)``), ties by index, given exact squared
    distances ``cand_v (q, W)`` of known candidates ``cand_i (q, W)`` (``-1``: none); ``exclude
    (q,)``: a stored index never returned per query. ``embed``: a float64 embedding whose Euclidean
    distance bounds the quotient distance from below (default: every channel sorted), computed
    for ``chunk`` stored latents at a time."""
    q = Zq.shape[0]
    N = Z.shape[0]
    embed = embed or (lambda z: z.sort(dim=1).values.flatten(1))
    Eq = embed(Zq)
    nq = Zq.square().sum((1, 2))
    ids = torch.where(cand_i >= 0, cand_i, torch.full_like(cand_i, N))
    vals = torch.where(cand_i >= 0, cand_v, torch.full_like(cand_v, math.inf))
    if ids.shape[1] < k:  # fewer known candidates than k: pad (the bound is then inf)
        ids = torch.cat([ids, torch.full((q, k - ids.shape[1]), N, dtype=torch.long)], 1)
        vals = torch.cat([vals, torch.full((q, k - vals.shape[1]), math.inf, dtype=vals.dtype)], 1)
    best_v, best_i = _select_by_index(vals, ids, k)
    ub = best_v[:, -1].clone()
    new_v, new_i = [], []
    for s in range(0, N, chunk):
        e = min(N, s + chunk)
        Ec = embed(Z[s:e])
        En = Ec.square().sum(1)
        lb = torch.addmm(En[None, :] + Eq.square().sum(1)[:, None], Eq, Ec.T, alpha=-2.0)
        margin = _MARGIN * (nq[:, None] + nrm[s:e][None, :]) + 1e-12 * (Eq.square().sum(1)[:, None] + En[None, :])
        live = lb <= ub[:, None] + margin
        rows = torch.arange(q)
        if exclude is not None:
            hit = (exclude >= s) & (exclude < e)
            live[rows[hit], exclude[hit] - s] = False
        live &= ~_known(ids, s, e)  # already ranked
        r, j = live.nonzero(as_tuple=True)
        if counts is not None:
            counts["estimate_pairs"] = counts.get("estimate_pairs", 0) + len(r)
        if len(r) == 0:
            continue
        j = j + s
        v = torch.cat([exact_sq(Zq[r[a:a + 4096]], Z[j[a:a + 4096]], solver, counts,
                                ub[r[a:a + 4096]] + _MARGIN * (nq[r[a:a + 4096]] + nrm[j[a:a + 4096]]))
                       for a in range(0, len(r), 4096)])
        ok = torch.isfinite(v)
        new_v.append((r[ok], j[ok], v[ok]))
    if new_v:
        r = torch.cat([a[0] for a in new_v])
        j = torch.cat([a[1] for a in new_v])
        v = torch.cat([a[2] for a in new_v])
        width = int(torch.bincount(r, minlength=q).max()) if len(r) else 0
        if width:
            order = torch.argsort(r, stable=True)
            r, j, v = r[order], j[order], v[order]
            start = torch.bincount(r, minlength=q).cumsum(0) - torch.bincount(r, minlength=q)
            pos = torch.arange(len(r)) - start[r]
            V = torch.full((q, width), math.inf, dtype=torch.float64)
            I = torch.full((q, width), N, dtype=torch.long)
            V[r, pos], I[r, pos] = v, j
            best_v, best_i = _select_by_index(torch.cat([best_v, V], 1), torch.cat([best_i, I], 1), k)
    best_i = torch.where(torch.isinf(best_v), torch.full_like(best_i, -1), best_i)
    return best_v, best_i


def _known(ids: torch.Tensor, s: int, e: int) -> torch.Tensor:
    """``(q, e - s)``: whether stored index ``s + t`` is among row ``q``'s known candidates ``ids``."""
    out = torch.zeros(ids.shape[0], e - s, dtype=torch.bool)
    inside = (ids >= s) & (ids < e)
    r, c = inside.nonzero(as_tuple=True)
    out[r, ids[r, c] - s] = True
    return out
