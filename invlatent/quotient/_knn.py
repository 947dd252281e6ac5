r"""Exact k nearest neighbours in the quotient, pruned by cheap bounds.

For :math:`S_n` acting on node latents :math:`z\in\mathbb R^{n\times c}` the quotient distance
:math:`d(z, z')^2 = \min_{\pi\in S_n}\sum_i \lVert z_i - z'_{\pi(i)}\rVert^2` is a linear
assignment problem. Two lower bounds are cheap:

.. math::

    R(z, z') = \sum_i \min_l \lVert z_i - z'_l\rVert^2 \;\le\; d(z, z')^2
    \quad\text{(each node to its nearest node: a relaxation of the permutation)},

taken in both directions for all pairs (``n`` small matmuls per block), and the value of a
feasible dual of the assignment problem, :math:`\sum_i u_i + \sum_j v_j \le d^2` with
:math:`u_i = \min_j C_{ij}`, :math:`v_j = \min_i (C_{ij} - u_i)`. (Sorting every channel
separately is also a lower bound, but on QM9-shaped latents it is about half as tight and let
half of all pairs through.) For a block of queries:

1. the Chamfer bound :math:`\max(R(z_q, z_j), R(z_j, z_q))` for all ``j``;
2. solve the assignment exactly for the ``m`` candidates with the smallest bound; the ``k``-th
   smallest of these exact distances, :math:`u_q`, bounds the true ``k``-th distance from above;
3. every other ``j`` whose Chamfer bound and then dual bound are :math:`\le u_q` (plus a
   round-off margin) is solved exactly; every ``j`` left out has :math:`d^2 \ge` bound
   :math:`> u_q`, so it cannot be among the ``k`` nearest (nor tie with the ``k``-th);
4. the ``k`` nearest among the solved candidates, ties broken by the smaller index.

The result is identical to sorting the brute-force all-pairs matrix (tested). Exact distances
are evaluated in float64 with a fixed summation order (channels, then the query's rows), so a
pair's value does not depend on which batch it was solved in; the assignment solver is
:func:`invlatent.quotient._batched_assignment.solve_assignment` (lapx or scipy).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .._validation import check_tensor, describe
from ..groups.base import check_group
from ._batched_assignment import solve_assignment

__all__ = ["quotient_knn"]

#: Relative round-off margin on squared distances: a candidate is pruned only if its bound
#: exceeds the k-th upper bound by more than this times (|z_q|^2 + |z_j|^2) (float64 error is ~1e-15).
_MARGIN = 1e-9


def _seq_cost(zq: torch.Tensor, zt: torch.Tensor) -> torch.Tensor:
    """``(P, n, n)`` costs ``|zq_i - zt_j|^2`` from exact differences, summed over channels in order."""
    a = zq.permute(2, 0, 1).contiguous()  # (c, P, n): channel-major, every broadcast is contiguous
    b = zt.permute(2, 0, 1).contiguous()
    d = a[:, :, :, None] - b[:, :, None, :]  # (c, P, n, n)
    d.mul_(d)
    cost = d[0].clone()
    for ch in range(1, d.shape[0]):
        cost += d[ch]
    return cost


def exact_sq(zq: torch.Tensor, zt: torch.Tensor, solver: str = "auto") -> torch.Tensor:
    r"""Exact squared quotient distances of pairs ``(zq[p], zt[p])``, float64 ``(P,)``.

    The value is :math:`\sum_i C_{i,\pi^\star(i)}` summed over the query's rows ``i`` in order.
    """
    P, n, _ = zq.shape
    if P == 0:
        return zq.new_zeros(0)
    cost = _seq_cost(zq, zt)
    perm = torch.from_numpy(solve_assignment(cost.numpy(), solver))
    picked = cost.gather(2, perm.unsqueeze(-1)).squeeze(-1)  # (P, n)
    val = picked[:, 0].clone()
    for i in range(1, n):
        val += picked[:, i]
    return val


def _select(vals: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of ``vals (q, N)`` (inf = not a candidate): the k smallest, ties by index."""
    q, N = vals.shape
    kk = min(N, k + 8)
    top, idx = torch.topk(vals, kk, dim=1, largest=False, sorted=True)
    # re-order by (value, index): sort by index, then stable sort by value
    o = idx.argsort(dim=1)
    top, idx = top.gather(1, o), idx.gather(1, o)
    o = top.argsort(dim=1, stable=True)
    top_kk, idx = top.gather(1, o), idx.gather(1, o)
    top, idx = top_kk[:, :k].contiguous(), idx[:, :k].contiguous()
    # rows where the k-th value's tie group has members outside the kk kept: full stable sort
    if kk < N:
        kth = top[:, -1]
        unsure = (vals == kth[:, None]).sum(1) > (top_kk == kth[:, None]).sum(1)
        if bool(unsure.any()):
            rows = unsure.nonzero().flatten()
            full, fidx = vals[rows].sort(dim=1, stable=True)
            top[rows], idx[rows] = full[:, :k], fidx[:, :k]
    return top, idx


def _chamfer_rows(Z32: torch.Tensor, rows: torch.Tensor, tile: int = 256) -> torch.Tensor:
    r"""``(q, N)`` float32: :math:`R_{qj} = \sum_i \min_l \lVert z_{q,i} - z_{j,l}\rVert^2` (each query node
    to its nearest node of ``j``), by ``n`` small matmuls per tile of targets and a running minimum."""
    N, n, c = Z32.shape
    sq = Z32.square().sum(-1)  # (N, n)
    nodes = Z32.permute(1, 2, 0).contiguous()  # (n, c, N): node l of every latent
    sq_nodes = sq.T.contiguous()  # (n, N)
    q = len(rows)
    A = Z32[rows].reshape(q * n, c)
    out = torch.empty(q, N, dtype=Z32.dtype)
    for s in range(0, N, tile):
        e = min(N, s + tile)
        best = torch.addmm(sq_nodes[0, s:e].unsqueeze(0), A, nodes[0, :, s:e], alpha=-2.0)  # |b|^2 - 2<a, b>
        for l in range(1, n):
            torch.minimum(best, torch.addmm(sq_nodes[l, s:e].unsqueeze(0), A, nodes[l, :, s:e], alpha=-2.0), out=best)
        best += sq[rows].reshape(q * n, 1)
        out[:, s:e] = best.view(q, n, e - s).sum(1)
    return out


def _dual_bound(zq: torch.Tensor, zt: torch.Tensor) -> torch.Tensor:
    r"""Lower bound of the assignment value from a feasible dual: :math:`u_i = \min_j C_{ij}`,
    :math:`v_j = \min_i (C_{ij} - u_i)` (and the same with rows and columns swapped); float64 ``(P,)``."""
    C = _seq_cost(zq, zt)
    u = C.amin(2, keepdim=True)
    b1 = u.sum((1, 2)) + (C - u).amin(1).sum(1)
    v = C.amin(1, keepdim=True)
    b2 = v.sum((1, 2)) + (C - v).amin(2).sum(1)
    return torch.maximum(b1, b2)


def _chunked(fn, zq_idx, zt_idx, Z64, chunk=1 << 13):
    if len(zq_idx) == 0:
        return Z64.new_zeros(0)
    return torch.cat([fn(Z64[zq_idx[s:s + chunk]], Z64[zt_idx[s:s + chunk]]) for s in range(0, len(zq_idx), chunk)])


def knn_permutation(Z: torch.Tensor, k: int, block: int, first: int, solver: str, stats: dict | None):
    """Exact k-NN for S_n on ``(N, n, c)`` real latents by the bounds of the module docstring."""
    N, n, c = Z.shape
    Z64 = Z.detach().to(device="cpu", dtype=torch.float64)
    Z32 = Z64.float()
    nrm = Z64.square().sum((1, 2))  # |z|^2
    big = Z64.square().sum(-1).amax(1)  # max_l |z_l|^2
    # 1. Chamfer bound, both directions: R[i, j] <= d^2 and R[j, i] <= d^2 (float32, all pairs)
    R = torch.cat([_chamfer_rows(Z32, torch.arange(s, min(N, s + 128))) for s in range(0, N, 128)])
    m = min(N - 1, first)
    exact = lambda a, b: exact_sq(a, b, solver)  # noqa: E731
    dists, inds = [], []
    counts = {"exact_pairs": 0, "dual_pairs": 0}
    for s in range(0, N, block):
        rows = torch.arange(s, min(N, s + block))
        q = len(rows)
        lb = torch.maximum(R[rows], R[:, rows].T).double()  # (q, N)
        # float32 round-off of the bound: a few ulps of every |a_i|^2 + |b_l|^2 term it sums
        slack = 1e-5 * (nrm[rows, None] + nrm[None, :] + n * (big[rows, None] + big[None, :]))
        lb -= slack
        lb[torch.arange(q), rows] = math.inf  # never the query itself
        vals = torch.full((q, N), math.inf, dtype=torch.float64)
        # 2. exact for the m candidates with the smallest bounds; their k-th value bounds the k-th from above
        cand = torch.topk(lb, m, dim=1, largest=False).indices
        qi = rows[:, None].expand(q, m).reshape(-1)
        e1 = _chunked(exact, qi, cand.reshape(-1), Z64).view(q, m)
        vals.scatter_(1, cand, e1)
        ub = e1.kthvalue(k, dim=1).values  # (q,)
        margin = _MARGIN * (nrm[rows, None] + nrm[None, :])
        # 3. survivors of the Chamfer bound, then of the dual bound, get the exact assignment
        r2, c2 = ((lb <= ub[:, None] + margin) & torch.isinf(vals)).nonzero(as_tuple=True)  # lb = inf on self
        dual = _chunked(_dual_bound, rows[r2], c2, Z64)
        keep = dual <= ub[r2] + margin[r2, c2]
        r3, c3 = r2[keep], c2[keep]
        vals[r3, c3] = _chunked(exact, rows[r3], c3, Z64)
        counts["exact_pairs"] += q * m + len(r3)
        counts["dual_pairs"] += len(r2)
        # 4. the k nearest among the solved candidates (every other j is provably farther)
        top, idx = _select(vals, k)
        dists.append(top.clamp_min(0.0).sqrt())
        inds.append(idx)
    if stats is not None:
        stats.update(counts)
        stats["all_pairs"] = N * (N - 1)
    return torch.cat(dists), torch.cat(inds)


def quotient_knn(Z: torch.Tensor, k: int, group, mask: torch.Tensor | None = None, *,
                 block_size: int = 256, first_candidates: int | None = None, solver: str = "auto",
                 stats: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Exact ``k`` nearest neighbours of every latent in the quotient metric (itself excluded).

    .. math::

        \operatorname{kNN}(i) = \text{the } k \text{ indices } j\ne i \text{ with the smallest }
        d([Z_i], [Z_j]) = \min_{g\in G}\lVert Z_i - \rho(g) Z_j\rVert ,

    ties broken by the smaller index: the same lists as sorting the rows of
    :func:`~invlatent.pairwise_quotient_distance`. For :class:`~invlatent.groups.Permutation`
    the exact assignment is solved only for candidates whose per-channel-sort lower bound is
    below the current ``k``-th exact distance (module ``invlatent.quotient._knn``); other groups use
    :func:`~invlatent.pairwise_quotient_distance` one block of rows at a time.

    Parameters
    ----------
    Z : Tensor, shape ``(N, n, c)`` for :class:`~invlatent.groups.Permutation`, else ``(N, *latent_shape)``
    k : int, ``1 <= k <= N - 1``
    group : group object
    mask : BoolTensor, shape ``(N, n)``, optional
        Real nodes (:class:`~invlatent.groups.Permutation` only); padded rows count as zero nodes,
        as in :class:`~invlatent.projections.MaxFilter`.
    block_size : int
        Queries per block (memory ``O(block_size * N)``).
    first_candidates : int, optional
        Candidates solved before the bound is applied (default ``max(2k, k + 8)``).
    solver : ``"auto"``, ``"lapx"`` or ``"scipy"``
        Assignment solver (:func:`invlatent.quotient._batched_assignment.solve_assignment`).
    stats : dict, optional
        Filled with ``exact_pairs`` (assignments solved) and ``all_pairs``.

    Returns
    -------
    distances : Tensor, shape ``(N, k)``, ``Z``'s dtype, ascending per row
    indices : LongTensor, shape ``(N, k)``

    Example
    -------
    >>> import torch
    >>> from invlatent import Permutation
    >>> Z = torch.tensor([[[0., 0.], [1., 1.]], [[1., 1.], [0., 0.1]], [[3., 0.], [0., 3.]]])
    >>> d, i = quotient_knn(Z, 1, Permutation())
    >>> i.flatten().tolist(), [round(x, 3) for x in d.flatten().tolist()]
    ([1, 0, 1], [0.1, 0.1, 3.662])
    """
    check_group(group)
    check_tensor(Z, "Z", min_ndim=2, expected="(N, *latent_shape)")
    group.check_latent(Z, "Z")
    N = Z.shape[0]
    for name, v in (("k", k), ("block_size", block_size), ("first_candidates", first_candidates)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise TypeError(f"{name} must be an int, got {describe(v)}")
    if not 1 <= k <= N - 1:
        raise ValueError(f"k must be between 1 and N - 1 = {N - 1}, got {k}")
    if block_size <= 0:
        raise ValueError(f"block_size must be a positive int, got {block_size}")
    if first_candidates is None:
        first_candidates = max(2 * k, k + 8)
    if first_candidates < k:
        raise ValueError(f"first_candidates must be >= k = {k}, got {first_candidates}")
    return group.knn(Z, k, mask=mask, block_size=block_size, first_candidates=first_candidates,
                     solver=solver, stats=stats)


def knn_by_blocks(Z: torch.Tensor, k: int, distances, block_size: int, stats: dict | None = None):
    """Exact k-NN from all distances, one block of rows at a time: ``distances(rows) -> (q, N)``
    (memory ``O(block_size * N)``); ties by the smaller index."""
    N = Z.shape[0]
    dists, inds = [], []
    for s in range(0, N, block_size):
        D = distances(Z[s:s + block_size]).detach().double().cpu()
        D[torch.arange(D.shape[0]), torch.arange(s, s + D.shape[0])] = math.inf
        top, idx = _select(D, k)
        dists.append(top)
        inds.append(idx)
    if stats is not None:
        stats["exact_pairs"] = stats["all_pairs"] = N * (N - 1)
    real = Z.real.dtype if Z.is_complex() else Z.dtype
    return torch.cat(dists).to(device=Z.device, dtype=real), torch.cat(inds).to(Z.device)
