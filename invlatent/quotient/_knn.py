r"""Exact k nearest neighbours in the quotient, pruned by cheap bounds.

For :math:`S_n` acting on node latents :math:`z\in\mathbb R^{n\times c}` the quotient distance
:math:`d(z, z')^2 = \min_{\pi\in S_n}\sum_i \lVert z_i - z'_{\pi(i)}\rVert^2` is a linear
assignment problem. Three lower bounds are cheap:

.. math::

    \lVert e(z) - e(z')\rVert^2 \;\le\; d(z, z')^2, \qquad
    R(z, z') = \sum_i \min_l \lVert z_i - z'_l\rVert^2 \;\le\; d(z, z')^2,

where :math:`e(z)` sorts every channel over the nodes separately (the sort embedding: it minimises
over more permutations, one per channel) and :math:`R` sends each node to its nearest node (a
relaxation of the permutation), taken in both directions; and the value of a feasible dual of
the assignment problem, :math:`\sum_i u_i + \sum_j v_j \le d^2` with :math:`u_i = \min_j C_{ij}`,
:math:`v_j = \min_i (C_{ij} - u_i)`. The sort embedding is a Euclidean embedding, so the triangle
inequality bounds a whole cluster of it at once:
:math:`d(z_q, z_j) \ge \lVert e_q - \mu_b\rVert - r_b` for every member ``j`` of a cluster with
centre :math:`\mu_b` and radius :math:`r_b`. The search:

0. cluster the sort embeddings (two-level k-means into clusters of about ``leaf`` latents, the
   widest split again); the queries go in blocks of one cluster;
1. for a block, the cluster bounds to every cluster (one small matmul);
2. in the block's cluster and its nearest neighbouring clusters (``m + 1`` latents at least),
   solve the assignment exactly for each query's ``m`` nearest by the sort bound; the ``k``-th
   smallest of these exact distances, :math:`u_q`, bounds the true ``k``-th distance from above;
3. the targets are the members of every cluster whose bound is :math:`\le u_q` for some query of
   the block (on clustered data a few clusters, so the cost grows about linearly with ``N``;
   on structureless data all of them, and the search is all pairs by bounds); the Chamfer bound
   :math:`\max(R(z_q, z_j), R(z_j, z_q))` for those, and the ``m`` smallest of it solved exactly
   where not yet solved (lowering :math:`u_q`);
4. every other target whose cluster bound, Chamfer bound and then dual bound are
   :math:`\le u_q` (plus a round-off margin) is solved exactly; every ``j`` left out has
   :math:`d^2 \ge` bound :math:`> u_q`, so it cannot be among the ``k`` nearest (nor tie with the
   ``k``-th);
5. the ``k`` nearest among the solved candidates, ties broken by the smaller index.

The clusters only decide how much work is done, never the result. The result is identical to sorting
the brute-force all-pairs matrix (tested). Exact distances are evaluated in float64 with a fixed
summation order (channels, then the query's rows), so a pair's value does not depend on which batch
it was solved in; the assignment solver is
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

#: Latents per cluster of the sort embedding (step 1 of the search).
_LEAF = 32


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


def _sort_embedding(Z64: torch.Tensor) -> torch.Tensor:
    r"""``(N, n c)`` float64: every channel sorted over the nodes. :math:`\lVert e(z) - e(z')\rVert \le
    d(z, z')` (sorting each channel separately minimises over more permutations)."""
    return Z64.sort(dim=1).values.flatten(1)


def _sq_dist(X: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """``(N, K)`` squared distances by :math:`|x|^2 + |c|^2 - 2\langle x, c\rangle` (one matmul)."""
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


def _radii(E: torch.Tensor, labels: torch.Tensor, K: int):
    """Centres ``(K, d)`` and radii ``(K,)`` (the largest member distance) of the clusters ``labels``."""
    counts = torch.bincount(labels, minlength=K)
    centres = torch.zeros(K, E.shape[1], dtype=E.dtype).index_add_(0, labels, E) / counts[:, None]
    dist = (E - centres[labels]).norm(dim=1)
    return centres, torch.zeros(K, dtype=E.dtype).scatter_reduce_(0, labels, dist, "amax")


def _clusters(E: torch.Tensor, leaf: int, splits: int = 8):
    """Clusters of the sort embedding: labels ``(N,)``, centres ``(K, n c)`` and radii ``(K,)``
    (float64, the largest member distance, enlarged by a round-off margin that also covers the
    matmul form of :func:`_sq_dist`).

    Two levels, so that clustering costs :math:`O(N\sqrt{N/\text{leaf}})` rather than
    :math:`O(N^2/\text{leaf})`: about :math:`\sqrt{N/\text{leaf}}` clusters, each split into clusters of
    about ``leaf``; then up to ``splits`` rounds in which every cluster wider than twice the median
    radius (a few Lloyd steps can leave one straddling two groups, and one wide cluster is a
    candidate for many queries) is split in two."""
    N = E.shape[0]
    top = _kmeans(E, round(math.sqrt(N / leaf))) if N >= 4 * leaf else torch.zeros(N, dtype=torch.long)
    labels = torch.empty(N, dtype=torch.long)
    used = 0
    for t in top.unique():
        idx = (top == t).nonzero().flatten()
        K = len(idx) // leaf
        labels[idx] = used + (_kmeans(E[idx], K) if K > 1 else 0)
        used += max(K, 1)
    _, labels = torch.unique(labels, return_inverse=True)  # drop empty clusters
    K = int(labels.max()) + 1
    centres, radii = _radii(E, labels, K)
    for _ in range(splits):
        wide = ((radii > 1.5 * radii.median()) & (torch.bincount(labels, minlength=K) > 1)).nonzero().flatten()
        if len(wide) == 0:
            break
        for b in wide.tolist():
            idx = (labels == b).nonzero().flatten()
            half = _kmeans(E[idx], 2)
            labels[idx[half == 1]] = K
            K += 1
        _, labels = torch.unique(labels, return_inverse=True)
        K = int(labels.max()) + 1
        centres, radii = _radii(E, labels, K)
    scale = E.norm(dim=1).amax() + centres.norm(dim=1).amax()
    return labels, centres, radii + 1e-6 * scale


def _chamfer(Zq32: torch.Tensor, Zt32: torch.Tensor, tile: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Both Chamfer terms, ``(q, t)`` float32 each: :math:`R_{qj} = \sum_i \min_l \lVert z_{q,i} - z_{j,l}\rVert^2`
    (each query node to its nearest node of target ``j``) and :math:`R_{jq}` (each target node to its
    nearest query node), from the same ``n`` small matmuls per tile of targets: a running minimum
    over the target's nodes gives the first, a minimum over the query's nodes the second."""
    q, n, c = Zq32.shape
    t = Zt32.shape[0]
    nodes = Zt32.permute(1, 2, 0).contiguous()  # (n, c, t): node l of every target
    sq_nodes = Zt32.square().sum(-1).T.contiguous()  # (n, t)
    A = Zq32.reshape(q * n, c)
    sq_a = Zq32.square().sum(-1).reshape(q * n, 1)
    fwd = torch.empty(q, t, dtype=Zq32.dtype)
    rev = torch.empty(q, t, dtype=Zq32.dtype)
    for s in range(0, t, tile):
        e = min(t, s + tile)
        best = rev_tile = None
        for l in range(n):
            D = torch.addmm(sq_nodes[l, s:e].unsqueeze(0), A, nodes[l, :, s:e], alpha=-2.0).add_(sq_a)  # (q n, tile)
            near = D.view(q, n, e - s).amin(1)  # target node l to its nearest query node
            if best is None:
                best, rev_tile = D, near
            else:
                torch.minimum(best, D, out=best)
                rev_tile += near
        fwd[:, s:e] = best.view(q, n, e - s).sum(1)
        rev[:, s:e] = rev_tile
    return fwd, rev


def _chamfer_bound(Z32, slack, rows, T):
    """``(q, t)`` float64 lower bound on :math:`d^2` for queries ``rows`` and targets ``T`` (ascending):
    the larger Chamfer term of the two directions, less its float32 round-off ``slack[a] + slack[b]``;
    ``inf`` where ``T[j]`` is the query."""
    R = torch.maximum(*_chamfer(Z32[rows], Z32[T])).double()
    R.sub_(slack[rows, None]).sub_(slack[T][None, :])
    pos = torch.searchsorted(T, rows).clamp_max(len(T) - 1)
    hit = T[pos] == rows
    R[hit.nonzero().flatten(), pos[hit]] = math.inf  # never the query itself
    return R


def _dual_bound(zq: torch.Tensor, zt: torch.Tensor) -> torch.Tensor:
    r"""Lower bound of the assignment value from a feasible dual: :math:`u_i = \min_j C_{ij}`,
    :math:`v_j = \min_i (C_{ij} - u_i)` (and the same with rows and columns swapped); float64 ``(P,)``.
    The costs come from :math:`|a|^2 + |b|^2 - 2\langle a, b\rangle` (one batched matmul, half the
    time of exact differences); its float64 round-off, ~1e-15 of :math:`|z|^2`, is far inside the
    pruning margin ``_MARGIN``."""
    C = torch.baddbmm(zq.square().sum(-1)[:, :, None] + zt.square().sum(-1)[:, None, :], zq, zt.transpose(1, 2),
                      alpha=-2.0)
    u = C.amin(2, keepdim=True)
    b1 = u.sum((1, 2)) + (C - u).amin(1).sum(1)
    v = C.amin(1, keepdim=True)
    b2 = v.sum((1, 2)) + (C - v).amin(2).sum(1)
    return torch.maximum(b1, b2)


def _chunked(fn, zq_idx, zt_idx, Z64, chunk=1 << 13):
    if len(zq_idx) == 0:
        return Z64.new_zeros(0)
    return torch.cat([fn(Z64[zq_idx[s:s + chunk]], Z64[zt_idx[s:s + chunk]]) for s in range(0, len(zq_idx), chunk)])


def knn_permutation(Z: torch.Tensor, k: int, block: int, first: int, solver: str, stats: dict | None,
                    leaf: int = _LEAF):
    """Exact k-NN for S_n on ``(N, n, c)`` real latents by the bounds of the module docstring."""
    N, n, c = Z.shape
    Z64 = Z.detach().to(device="cpu", dtype=torch.float64)
    Z32 = Z64.float()
    nrm = Z64.square().sum((1, 2))  # |z|^2
    big = Z64.square().sum(-1).amax(1)  # max_l |z_l|^2
    # float32 round-off of a Chamfer bound: a few ulps of every |a_i|^2 + |b_l|^2 term it sums
    slack = 1e-5 * (nrm + n * big)
    E = _sort_embedding(Z64)
    labels, centres, radii = _clusters(E, leaf)
    K = len(radii)
    sizes = torch.bincount(labels, minlength=K)
    nrm_max = torch.zeros(K, dtype=torch.float64).scatter_reduce_(0, labels, nrm, "amax")
    order = torch.argsort(labels, stable=True)  # members of cluster b: order[starts[b]:starts[b] + sizes[b]]
    starts = sizes.cumsum(0) - sizes

    def members(ids: torch.Tensor) -> torch.Tensor:  # ascending indices of the members of clusters ids
        lens = sizes[ids]
        offs = torch.repeat_interleave(starts[ids] - (lens.cumsum(0) - lens), lens)
        return order[offs + torch.arange(len(offs))].sort().values

    ends = sizes.cumsum(0).tolist()
    # query blocks: the members of one cluster (at most ``block`` at a time), whose targets agree
    blocks = [(a, min(a + block, e)) for b, e in zip([0] + ends[:-1], ends) for a in range(b, e, block)]
    m = min(N - 1, first)
    exact = lambda a, b: exact_sq(a, b, solver)  # noqa: E731
    out_d = torch.empty(N, k, dtype=torch.float64)
    out_i = torch.empty(N, k, dtype=torch.long)
    counts = {"exact_pairs": 0, "dual_pairs": 0, "bound_pairs": 0, "clusters": K}
    for s, e in blocks:
        rows = order[s:e]
        q = len(rows)
        # 1. cluster bound: d(z_q, z_j) >= |e_q - e_j| >= |e_q - mu_b| - r_b for every member j of cluster b
        clb = (_sq_dist(E[rows], centres).clamp_min_(0).sqrt_() - radii).clamp_min_(0)
        # 2. the block's cluster and the clusters with the nearest centres, m + 1 points in all: for
        #    each query the m nearest there by the sort bound are solved exactly, and their k-th
        #    value u_q bounds the k-th distance from above
        near = _sq_dist(centres[labels[rows[:1]]], centres)[0].argsort()
        T0 = members(near[:int(torch.searchsorted(sizes[near].cumsum(0), m + 1)) + 1])
        lb0 = torch.cdist(E[rows], E[T0]).square_()  # the sort bound: cheap, to pick candidates only
        lb0[T0[None, :] == rows[:, None]] = math.inf
        cand = T0[torch.topk(lb0, m, dim=1, largest=False).indices]  # (q, m)
        e1 = _chunked(exact, rows[:, None].expand(q, m).reshape(-1), cand.reshape(-1), Z64).view(q, m)
        ub = e1.kthvalue(k, dim=1).values  # (q,)
        # 3. targets: members of the clusters whose bound does not exceed u_q for some query
        alive = clb.square() <= ub[:, None] + _MARGIN * (nrm[rows, None] + nrm_max[None, :])
        T = torch.cat([members(alive.any(0).nonzero().flatten()), cand.flatten()]).unique()
        lb = _chamfer_bound(Z32, slack, rows, T)
        lb[~alive[:, labels[T]]] = math.inf  # provably farther than u_q
        vals = torch.full((q, len(T)), math.inf, dtype=torch.float64)
        vals.scatter_(1, torch.searchsorted(T, cand), e1)
        # the targets' m smallest Chamfer bounds, where not yet solved, can only lower u_q
        top_m = torch.topk(lb, min(m, len(T)), dim=1, largest=False).indices
        new = torch.isinf(vals.gather(1, top_m)) & torch.isfinite(lb.gather(1, top_m))
        r1, c1 = torch.arange(q)[:, None].expand_as(top_m)[new], top_m[new]
        vals[r1, c1] = _chunked(exact, rows[r1], T[c1], Z64)
        ub = vals.kthvalue(k, dim=1).values
        margin = _MARGIN * (nrm[rows, None] + nrm[T][None, :])
        # 4. survivors of the Chamfer bound, then of the dual bound, get the exact assignment
        r2, c2 = ((lb <= ub[:, None] + margin) & torch.isinf(vals)).nonzero(as_tuple=True)
        dual = _chunked(_dual_bound, rows[r2], T[c2], Z64)
        keep = dual <= ub[r2] + margin[r2, c2]
        r3, c3 = r2[keep], c2[keep]
        vals[r3, c3] = _chunked(exact, rows[r3], T[c3], Z64)
        counts["exact_pairs"] += q * m + len(r1) + len(r3)
        counts["dual_pairs"] += len(r2)
        counts["bound_pairs"] += q * len(T)
        # 5. the k nearest among the solved candidates (every other j is provably farther); T is
        #    ascending, so ties by position are ties by index
        top, idx = _select(vals, k)
        out_d[rows] = top.clamp_min(0.0).sqrt()
        out_i[rows] = T[idx]
    if stats is not None:
        stats.update(counts)
        stats["all_pairs"] = N * (N - 1)
    return out_d, out_i


def quotient_knn(Z: torch.Tensor, k: int, group, mask: torch.Tensor | None = None, *,
                 block_size: int = 256, first_candidates: int | None = None, solver: str = "auto",
                 stats: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Exact ``k`` nearest neighbours of every latent in the quotient metric (itself excluded).

    .. math::

        \operatorname{kNN}(i) = \text{the } k \text{ indices } j\ne i \text{ with the smallest }
        d([Z_i], [Z_j]) = \min_{g\in G}\lVert Z_i - \rho(g) Z_j\rVert ,

    ties broken by the smaller index: the same lists as sorting the rows of
    :func:`~invlatent.pairwise_quotient_distance`. For :class:`~invlatent.groups.Permutation`
    the exact assignment is solved only for candidates whose lower bounds (clusters of the
    per-channel sort embedding, Chamfer, assignment dual) do not exceed the current ``k``-th exact
    distance (module ``invlatent.quotient._knn``): on clustered latents the cost grows about
    linearly with ``N``. Other groups use :func:`~invlatent.pairwise_quotient_distance` one block
    of rows at a time.

    Parameters
    ----------
    Z : Tensor, shape ``(N, n, c)`` for :class:`~invlatent.groups.Permutation`, else ``(N, *latent_shape)``
    k : int, ``1 <= k <= N - 1``
    group : group object
    mask : BoolTensor, shape ``(N, n)``, optional
        Real nodes (:class:`~invlatent.groups.Permutation` only); padded rows count as zero nodes,
        as in :class:`~invlatent.projections.MaxFilter`.
    block_size : int
        Most queries per block (:class:`~invlatent.groups.Permutation`: a block is one cluster of
        about 32 latents, split at ``block_size``; memory ``O(block_size * N)``).
    first_candidates : int, optional
        Candidates solved before the bound is applied (default ``max(2k, k + 8)``).
    solver : ``"auto"``, ``"lapx"`` or ``"scipy"``
        Assignment solver (:func:`invlatent.quotient._batched_assignment.solve_assignment`).
    stats : dict, optional
        Filled with ``exact_pairs`` (assignments solved), ``all_pairs``, and for
        :class:`~invlatent.groups.Permutation` ``bound_pairs`` (pairs given a Chamfer bound),
        ``dual_pairs`` and ``clusters``.

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
