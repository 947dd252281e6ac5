"""Kernels of the exact S_n k-NN searches: exact squared quotient distances of pairs, the bounds
that prune them, the selection of the k smallest, and the grouping of latents into points of the
quotient (equal multisets of rows).

Below every search that uses them (:mod:`._knn`, :mod:`._index`, :mod:`._exact_rows`,
:mod:`._sliced_exact`), so that none of those imports another's module for its kernels.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._batched_assignment import solve_assignment


#: Relative round-off margin on squared distances: a candidate is pruned only if its bound
#: exceeds the k-th upper bound by more than this times (|z_q|^2 + |z_j|^2) (float64 error is ~1e-15).
_MARGIN = 1e-9
#: Rows per step of hashing and comparing canonical rows (memory: a few hundred MB at most).
_HASH_ROWS = 1 << 16


def _seq_cost(zq: torch.Tensor, zt: torch.Tensor) -> torch.Tensor:
    """``(P, n, n)`` costs ``|zq_i - zt_j|^2`` from exact differences, summed over channels in order."""
    a = zq.permute(2, 0, 1).contiguous()  # (c, P, n): channel-major, every broadcast is contiguous
    b = zt.permute(2, 0, 1).contiguous()
    cost = torch.sub(a[0, :, :, None], b[0, :, None, :])
    cost.mul_(cost)
    for ch in range(1, a.shape[0]):
        d = torch.sub(a[ch, :, :, None], b[ch, :, None, :])
        cost.add_(d.mul_(d))
    return cost


def exact_sq(zq: torch.Tensor, zt: torch.Tensor, solver: str = "auto", counts: dict | None = None,
             below: torch.Tensor | None = None) -> torch.Tensor:
    r"""Exact squared quotient distances of pairs ``(zq[p], zt[p])``, float64 ``(P,)``.

    The value is :math:`\sum_i C_{i,\pi^\star(i)}` summed over the query's rows ``i`` in order; for
    one channel the optimal matching pairs sorted with sorted (rearrangement inequality), summed over
    the sorted rows in order (no solver). For ``c > 1`` a pair whose rows have ``n`` distinct nearest
    columns needs no solver either: that matching attains :math:`\sum_i \min_j C_{ij}`, a lower bound
    of every assignment (near neighbours are mostly such pairs); the others go to
    :func:`~invlatent.quotient._batched_assignment.solve_assignment` (their number is added to
    ``counts["solver_pairs"]`` when ``counts`` is given).

    With ``below`` ``(P,)``, a pair that needs the solver is first given the dual bound of
    :func:`_dual_bound` from the same costs, and is left unsolved, ``inf``, where that exceeds
    ``below`` (its distance is then provably larger; ``counts["dual_pairs"]`` counts the bounds).
    """
    P, n, c = zq.shape
    if P == 0:
        return zq.new_zeros(0)
    if c == 1:
        d = zq[..., 0].sort(dim=1).values - zt[..., 0].sort(dim=1).values
        d.mul_(d)
        val = d[:, 0].clone()
        for i in range(1, n):
            val += d[:, i]
        return val
    cost = _seq_cost(zq, zt)
    # every row's nearest column; where these are n distinct columns they form a permutation that
    # attains the lower bound sum_i min_j C_ij of every assignment, so it is optimal (no solver)
    u, perm = cost.min(2)  # (P, n)
    used = torch.zeros(P, n, dtype=torch.int32).scatter_add_(1, perm, torch.ones(P, n, dtype=torch.int32))
    rest = (used != 1).any(1).nonzero().flatten()
    out = None
    if below is not None and len(rest):
        far = _dual_of_costs(cost[rest], u[rest]) > below[rest]
        if counts is not None:
            counts["dual_pairs"] = counts.get("dual_pairs", 0) + len(rest)
        if bool(far.any()):
            out = rest[far]
            rest = rest[~far]
    if len(rest):
        perm[rest] = torch.from_numpy(solve_assignment(cost[rest].numpy(), solver))
    if counts is not None:
        counts["solver_pairs"] = counts.get("solver_pairs", 0) + len(rest)
    picked = cost.gather(2, perm.unsqueeze(-1)).squeeze(-1)  # (P, n)
    val = picked[:, 0].clone()
    for i in range(1, n):
        val += picked[:, i]
    if out is not None:
        val[out] = math.inf
    return val


def _sq_dist(X: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    r"""``(N, K)`` squared distances by :math:`|x|^2 + |c|^2 - 2\langle x, c\rangle` (one matmul)."""
    return torch.addmm(X.square().sum(1, keepdim=True), X, centres.T, alpha=-2.0).add_(centres.square().sum(1))


def _kmeans(E: torch.Tensor, K: int, iters: int = 6, chunk: int = 1 << 14) -> torch.Tensor:
    """Cluster labels ``(N,)`` of the rows of ``E`` by a few seeded Lloyd steps in float32, in chunks
    of rows (only the speed of the search depends on them, never its result)."""
    N = E.shape[0]
    X = E.float()
    centres = X[torch.randperm(N, generator=torch.Generator().manual_seed(0))[:K]].clone()
    labels = torch.empty(N, dtype=torch.long)
    for _ in range(iters):
        for s in range(0, N, chunk):
            labels[s:s + chunk] = _sq_dist(X[s:s + chunk], centres).argmin(1)
        sums = torch.zeros_like(centres).index_add_(0, labels, X)
        counts = torch.bincount(labels, minlength=K).to(X.dtype)
        centres = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centres)
    return labels


def _dual_bound(zq: torch.Tensor, zt: torch.Tensor) -> torch.Tensor:
    r"""Lower bound of the assignment value from a feasible dual: :math:`u_i = \min_j C_{ij}`,
    :math:`v_j = \min_i (C_{ij} - u_i)` (and the same with rows and columns swapped); float64 ``(P,)``.
    The costs come from :math:`|a|^2 + |b|^2 - 2\langle a, b\rangle` (one batched matmul, half the
    time of exact differences); its float64 round-off, ~1e-15 of :math:`|z|^2`, is far inside the
    pruning margin ``_MARGIN``."""
    C = torch.baddbmm(zq.square().sum(-1)[:, :, None] + zt.square().sum(-1)[:, None, :], zq, zt.transpose(1, 2),
                      alpha=-2.0)
    return _dual_of_costs(C)


def _dual_of_costs(C: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
    """The dual bound of :func:`_dual_bound` from costs ``C (P, n, n)`` (``u``: their row minima
    ``(P, n)``, when already computed)."""
    u = C.amin(2) if u is None else u
    v = C.amin(1)
    return torch.maximum(u.sum(1) + (C - u[:, :, None]).amin(1).sum(1),
                         v.sum(1) + (C - v[:, None, :]).amin(2).sum(1))


def canonical_rows(Z64: torch.Tensor) -> torch.Tensor:
    """``(N, n c)`` float64: each latent of ``Z64 (N, n, c)`` with its rows in lexicographic order,
    flattened (``-0.0`` made ``0.0``). Two latents are one point of the :math:`S_n` quotient exactly
    when their canonical rows are equal."""
    N, n, c = Z64.shape
    order = torch.arange(n, device=Z64.device).expand(N, n)
    for ch in reversed(range(c)):  # stable sorts, last channel first: lexicographic order of rows
        key = Z64[..., ch].gather(1, order)
        order = order.gather(1, key.argsort(dim=1, stable=True))
    return Z64.gather(1, order[..., None].expand(N, n, c)).flatten(1) + 0.0


def _hash_rows(canon: torch.Tensor) -> np.ndarray:
    """``(N,)`` uint64 hash of each row of the float64 ``canon (N, D)`` (its bit pattern times fixed odd
    multipliers, summed modulo :math:`2^{64}` and mixed): equal rows get equal hashes; unequal rows
    collide rarely, and every use checks the rows themselves."""
    x = canon.contiguous().numpy().view(np.uint64)
    mult = np.random.default_rng(0x1A7E).integers(1, 2 ** 63, size=x.shape[1], dtype=np.uint64) | np.uint64(1)
    out = np.empty(len(x), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for s in range(0, len(x), _HASH_ROWS):
            h = (x[s:s + _HASH_ROWS] * mult).sum(1, dtype=np.uint64)
            h ^= h >> np.uint64(31)
            h *= np.uint64(0x9E3779B97F4A7C15)
            out[s:s + _HASH_ROWS] = h ^ (h >> np.uint64(29))
    return out


def _mismatch(canon: torch.Tensor, ref: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Rows ``r`` where ``canon[r] != ref[rows[r]]`` (a hash collision of different points)."""
    bad = [(canon[s:s + _HASH_ROWS] != ref[rows[s:s + _HASH_ROWS]]).any(1).nonzero().flatten() + s
           for s in range(0, len(canon), _HASH_ROWS)]
    return torch.cat(bad) if bad else torch.zeros(0, dtype=torch.long)


def distinct_rows(canon: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct rows of the CPU tensor ``canon (N, D)`` (hashed in NumPy): ``first (U,)``, the first
    row of each, ascending, and ``inv (N,)``, each row's place in ``first`` (compared exactly; a
    hash collision of different rows leaves equal rows apart, never unequal rows together)."""
    _, first, inv = np.unique(_hash_rows(canon), return_index=True, return_inverse=True)
    first = torch.from_numpy(first).long()
    inv = torch.from_numpy(inv.reshape(-1)).long()
    bad = _mismatch(canon, canon, first[inv])
    if len(bad):  # a 64-bit collision of different points
        inv[bad] = len(first) + torch.arange(len(bad))
        first = torch.cat([first, bad])
    order = first.argsort()  # numbered by their first row
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order))
    return first[order], rank[inv]


def quotient_classes(Z64: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents of the CPU tensor ``Z64 (N, n, c)`` that are one point of the quotient (equal multisets of rows,
    compared exactly after sorting each latent's rows lexicographically): ``first (M,)``, the smallest
    index of each class, ascending, and ``label (N,)``, each latent's class."""
    return distinct_rows(canonical_rows(Z64))


def class_members(label: torch.Tensor, M: int, width: int) -> torch.Tensor:
    """``(M + 1, width)``: the first ``width`` members of each class, ascending (padding ``N``; row
    ``M`` is all padding)."""
    N = len(label)
    order = torch.argsort(label, stable=True)  # members of each class, ascending indices
    cnt = torch.bincount(label, minlength=M)
    pos = torch.arange(N, device=label.device) - (cnt.cumsum(0) - cnt)[label[order]]
    out = torch.full((M + 1, width), N, dtype=torch.long, device=label.device)
    keep = pos < width
    out[label[order][keep], pos[keep]] = order[keep]
    return out


def _select_by_index(vals: torch.Tensor, ids: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of ``vals (q, W)`` with target indices ``ids (q, W)``: the ``k`` smallest values,
    ties broken by the smaller index (not by position)."""
    W = vals.shape[1]
    kk = min(W, k + 8)
    top, pos = torch.topk(vals, kk, dim=1, largest=False, sorted=True)
    tid = ids.gather(1, pos)
    o = tid.argsort(dim=1)  # order by (value, index): by index, then stably by value
    top, tid = top.gather(1, o), tid.gather(1, o)
    o = top.argsort(dim=1, stable=True)
    top_kk, tid = top.gather(1, o), tid.gather(1, o)
    top, tid = top_kk[:, :k].contiguous(), tid[:, :k].contiguous()
    if kk < W:  # the k-th value's tie group may have members outside the kk kept: sort those rows fully
        kth = top[:, -1]
        unsure = (vals == kth[:, None]).sum(1) > (top_kk == kth[:, None]).sum(1)
        if bool(unsure.any()):
            rows = unsure.nonzero().flatten()
            o = ids[rows].argsort(dim=1)
            v, i = vals[rows].gather(1, o), ids[rows].gather(1, o)
            o = v.argsort(dim=1, stable=True)[:, :k]
            top[rows], tid[rows] = v.gather(1, o), i.gather(1, o)
    return top, tid
