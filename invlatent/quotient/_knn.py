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
   widest split again) and give every cluster ``h`` a neighbourhood: the ``L`` clusters ``b`` with the
   smallest :math:`\lVert\mu_h - \mu_b\rVert - r_b` and the next such value :math:`\rho_h`
   (one ``K x K`` pass, ``K ~ N / leaf``); the queries go in blocks of one cluster;
1. in the block's cluster and its neighbourhood (``m + 1`` latents at least), solve the assignment
   exactly for each query's ``m`` nearest by the sort bound; the ``k``-th smallest of these exact
   distances, :math:`u_q`, bounds the true ``k``-th distance from above;
2. the cluster bounds of the block's queries to the clusters of its neighbourhood: for a cluster
   ``b`` outside it, :math:`\lVert e_q - \mu_b\rVert - r_b \ge \rho_h - r_h` (triangle inequality,
   :math:`\lVert e_q - \mu_h\rVert \le r_h`), so when :math:`(\rho_h - r_h)^2 > \max_q u_q` no cluster
   outside can hold a neighbour; otherwise (a "wide" block) all ``K`` clusters get the bound
   :math:`\lVert\mu_h - \mu_b\rVert - r_h - r_b` first, and the per-query bound where that passes;
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

Memory: steps 3-5 go through the targets in chunks, keeping a running ``k`` best per query
(merged with ties by index), and the queries of a cluster in blocks; :func:`plan_memory` sizes
both from ``memory_budget`` so that the working set stays within it whatever ``N`` is (beyond
the ``O(N)`` latents, embedding, labels and result).

The clusters only decide how much work is done, never the result. The result is identical to sorting
the brute-force all-pairs matrix (tested). Exact distances are evaluated in float64 with a fixed
summation order (channels, then the query's rows), so a pair's value does not depend on which batch
it was solved in; the assignment solver is
:func:`invlatent.quotient._batched_assignment.solve_assignment` (lapx or scipy), called only for
pairs whose rows do not have ``n`` distinct nearest columns (otherwise the row minima are an optimal
matching). The blocks run with one PyTorch intra-op thread each, on ``workers`` threads
(:mod:`invlatent._threads`): their operations are small, and OpenMP's team costs more than it gains.
"""

from __future__ import annotations

import math
import time

import torch

from .._validation import check_tensor, describe
from ..groups.base import Group, check_group
from .._blockwise import knn_by_blocks  # noqa: F401 (moved there; importable here as before)
from .._threads import default_workers, intra_op_threads, map_blocks
from ._kernels import (_MARGIN, _dual_bound, _dual_of_costs, _kmeans, _select_by_index, _seq_cost,  # noqa: F401
                       _sq_dist, exact_sq)

__all__ = ["quotient_knn", "DEFAULT_MEMORY_BUDGET"]

#: Latents per cluster of the sort embedding (step 1 of the search).
_LEAF = 32

#: Clusters in a cluster's neighbourhood (:func:`_neighbourhoods`).
_HOOD = 96

#: Default working-memory budget of :func:`quotient_knn`, bytes (1 GiB), and the smallest accepted.
DEFAULT_MEMORY_BUDGET = 1 << 30
MIN_MEMORY_BUDGET = 1 << 20

#: Working bytes per (query, target) pair of a chunk: the float64 bound, value and margin, the two
#: float32 Chamfer terms and their float64 maximum, the masks (measured peak / pairs, with room).
_BYTES_PER_PAIR = 96
#: Bytes per query node and target of a Chamfer tile, per node of the target (the float32 distances
#: to every node, and the two minima).
_BYTES_PER_QUERY_NODE = 8
#: Bytes per pair, node pair and channel (+2) of a batch of exact or dual solves (float64 differences,
#: costs, the solver's copy).
_BYTES_PER_SOLVE = 32
#: Targets per Chamfer tile.
_TILE = 256


def _sort_embedding(Z64: torch.Tensor) -> torch.Tensor:
    r"""``(N, n c)`` float64: every channel sorted over the nodes. :math:`\lVert e(z) - e(z')\rVert \le
    d(z, z')` (sorting each channel separately minimises over more permutations)."""
    return Z64.sort(dim=1).values.flatten(1)


def _radii(E: torch.Tensor, labels: torch.Tensor, K: int):
    """Centres ``(K, d)`` and radii ``(K,)`` (the largest member distance) of the clusters ``labels``."""
    counts = torch.bincount(labels, minlength=K)
    centres = torch.zeros(K, E.shape[1], dtype=E.dtype).index_add_(0, labels, E) / counts[:, None]
    dist = (E - centres[labels]).norm(dim=1)
    return centres, torch.zeros(K, dtype=E.dtype).scatter_reduce_(0, labels, dist, "amax")


def _clusters(E: torch.Tensor, leaf: int, splits: int = 8, workers: int = 1):
    r"""Clusters of the sort embedding: labels ``(N,)``, centres ``(K, n c)`` and radii ``(K,)``
    (float64, the largest member distance, enlarged by a round-off margin that also covers the
    matmul form of :func:`_sq_dist`).

    Two levels, so that clustering costs :math:`O(N\sqrt{N/\text{leaf}})` rather than
    :math:`O(N^2/\text{leaf})`: about :math:`\sqrt{N/\text{leaf}}` clusters, each split into clusters of
    about ``leaf`` (the second level on ``workers`` threads); then up to ``splits`` rounds in which
    every cluster wider than twice the median radius (a few Lloyd steps can leave one straddling
    two groups, and one wide cluster is a candidate for many queries) is split in two."""
    N = E.shape[0]
    top = _kmeans(E, round(math.sqrt(N / leaf))) if N >= 4 * leaf else torch.zeros(N, dtype=torch.long)
    order = torch.argsort(top, stable=True)
    groups = [idx for idx in torch.split(order, torch.bincount(top).tolist()) if len(idx)]

    def split(idx: torch.Tensor) -> torch.Tensor:
        K = len(idx) // leaf
        return _kmeans(E[idx], K) if K > 1 else torch.zeros(len(idx), dtype=torch.long)

    labels = torch.empty(N, dtype=torch.long)
    used = 0
    for idx, sub in zip(groups, map_blocks(split, groups, workers)):
        labels[idx] = used + sub
        used += max(len(idx) // leaf, 1)
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


def _neighbourhoods(centres: torch.Tensor, radii: torch.Tensor, L: int, workers: int = 1,
                    memory_budget: int = DEFAULT_MEMORY_BUDGET) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Each cluster's neighbourhood for the cluster bound: ``hood (K, min(L, K))``, the clusters ``b``
    with the smallest :math:`\lVert\mu_h - \mu_b\rVert - r_b`, itself first, and ``rest (K,)``, the
    next smallest value (``inf`` when ``L >= K``), less a round-off margin. For a query ``q`` in
    cluster ``h`` and any cluster ``b`` outside the neighbourhood, the triangle inequality gives
    :math:`\lVert e_q - \mu_b\rVert - r_b \ge \text{rest}_h - r_h`. ``O(K^2)`` multiply-adds, once, in
    blocks of rows (within ``memory_budget``) on ``workers`` threads."""
    K = len(centres)
    L = min(L, K)
    rows = max(1, min(1024, memory_budget // (32 * K * max(1, workers))))
    scale = float(centres.norm(dim=1).amax() + radii.amax())

    def block(s: int) -> tuple[torch.Tensor, torch.Tensor]:
        key = _sq_dist(centres[s:s + rows], centres).clamp_min_(0).sqrt_().sub_(radii)
        key[torch.arange(key.shape[0]), torch.arange(s, s + key.shape[0])] = -math.inf  # itself first
        top = torch.topk(key, min(L + 1, K), dim=1, largest=False, sorted=True)
        nxt = top.values[:, L] if L < K else torch.full((key.shape[0],), math.inf, dtype=key.dtype)
        return top.indices[:, :L], nxt - 1e-6 * scale  # the matmul form's round-off, as in the radii

    parts = map_blocks(block, list(range(0, K, rows)), workers)
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _chamfer(Zq32: torch.Tensor, Zt32: torch.Tensor, tile: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Both Chamfer terms, ``(q, t)`` float32 each: :math:`R_{qj} = \sum_i \min_l \lVert z_{q,i} - z_{j,l}\rVert^2`
    (each query node to its nearest node of target ``j``) and :math:`R_{jq}` (each target node to its
    nearest query node), from one matmul of all query nodes against all nodes of a tile of targets,
    ``(q n, tile n)``: a minimum over the target's nodes gives the first, over the query's the second."""
    q, n, c = Zq32.shape
    t = Zt32.shape[0]
    nodes = Zt32.reshape(t * n, c)  # target j, node l: row j n + l
    sq_nodes = nodes.square().sum(-1)
    A = Zq32.reshape(q * n, c)
    sq_a = A.square().sum(-1, keepdim=True)
    fwd = torch.empty(q, t, dtype=Zq32.dtype)
    rev = torch.empty(q, t, dtype=Zq32.dtype)
    for s in range(0, t, tile):
        e = min(t, s + tile)
        D = torch.addmm(sq_nodes[s * n:e * n].unsqueeze(0), A, nodes[s * n:e * n].T, alpha=-2.0).add_(sq_a)
        D = D.view(q, n, e - s, n)  # (query, query node, target, target node)
        fwd[:, s:e] = D.amin(3).sum(1)
        rev[:, s:e] = D.amin(1).sum(2)
    return fwd, rev


def _chamfer_bound(Z32, slack, rows, T, tile: int = 256):
    """``(q, t)`` float64 lower bound on :math:`d^2` for queries ``rows`` and targets ``T`` (ascending):
    the larger Chamfer term of the two directions, less its float32 round-off ``slack[a] + slack[b]``;
    ``inf`` where ``T[j]`` is the query."""
    R = torch.maximum(*_chamfer(Z32[rows], Z32[T], tile)).double()
    R.sub_(slack[rows, None]).sub_(slack[T][None, :])
    pos = torch.searchsorted(T, rows).clamp_max(len(T) - 1)
    hit = T[pos] == rows
    R[hit.nonzero().flatten(), pos[hit]] = math.inf  # never the query itself
    return R


def _chunked(fn, zq_idx, zt_idx, Z64, chunk: int = 1 << 13):
    if len(zq_idx) == 0:
        return Z64.new_zeros(0)
    return torch.cat([fn(Z64[zq_idx[s:s + chunk]], Z64[zt_idx[s:s + chunk]]) for s in range(0, len(zq_idx), chunk)])


def plan_memory(memory_budget: int, N: int, n: int, c: int, block: int) -> dict:
    """How :func:`knn_permutation` splits its work to stay within ``memory_budget`` bytes of working
    memory: queries per block, targets per chunk, pairs per exact/dual batch (see ``_BYTES_PER_*``)."""
    K = max(1, N // _LEAF) * 2  # clusters (the splits of wide clusters add some)
    pairs = max(1, memory_budget // _BYTES_PER_PAIR)
    query_block = max(1, min(block, pairs // (K + _TILE), memory_budget // (_BYTES_PER_QUERY_NODE * n * n * _TILE)))
    target_chunk = max(1, min(N, pairs // query_block))
    solve_batch = max(16, min(1 << 11, memory_budget // (_BYTES_PER_SOLVE * n * n * (c + 2))))
    return {"query_block": query_block, "target_chunk": target_chunk, "solve_batch": solve_batch}


def knn_permutation(Z: torch.Tensor, k: int, block: int, first: int, solver: str, stats: dict | None,
                    leaf: int = _LEAF, memory_budget: int = DEFAULT_MEMORY_BUDGET, workers: int | None = None):
    """Exact k-NN for S_n on ``(N, n, c)`` real latents by the bounds of the module docstring, in
    blocks of queries and chunks of targets sized by ``memory_budget`` (:func:`plan_memory`); the
    blocks run with one intra-op thread each on ``workers`` threads (:func:`invlatent._threads.map_blocks`),
    each within ``memory_budget / workers``."""
    workers = default_workers() if workers is None else workers
    with intra_op_threads(1):
        return _knn_permutation(Z, k, block, first, solver, stats, leaf, memory_budget, workers)


def _knn_permutation(Z, k, block, first, solver, stats, leaf, memory_budget, workers):
    N, n, c = Z.shape
    Z64 = Z.detach().to(device="cpu", dtype=torch.float64)
    Z32 = Z64.float()
    nrm = Z64.square().sum((1, 2))  # |z|^2
    big = Z64.square().sum(-1).amax(1)  # max_l |z_l|^2
    # float32 round-off of a Chamfer bound: a few ulps of every |a_i|^2 + |b_l|^2 term it sums
    slack = 1e-5 * (nrm + n * big)
    del big
    t0 = time.perf_counter()
    E = _sort_embedding(Z64)
    labels, centres, radii = _clusters(E, leaf, workers=workers)
    t1 = time.perf_counter()
    K = len(radii)
    plan = plan_memory(memory_budget // workers, N, n, c, block)
    block, chunk_t, solve_batch = plan["query_block"], plan["target_chunk"], plan["solve_batch"]
    tile = min(_TILE, chunk_t)
    sizes = torch.bincount(labels, minlength=K)
    nrm_max = torch.zeros(K, dtype=torch.float64).scatter_reduce_(0, labels, nrm, "amax")
    nrm_all_max = float(nrm_max.max())
    order = torch.argsort(labels, stable=True)  # members of cluster b: order[starts[b]:starts[b] + sizes[b]]
    starts = sizes.cumsum(0) - sizes
    # each cluster's neighbourhood: the L clusters b with the smallest |mu_h - mu_b| - r_b, and that
    # key's next value ``rest``, so that a block measures its bounds to L clusters, not to all K
    hood, rest = _neighbourhoods(centres, radii, _HOOD, workers, memory_budget)
    def members(ids: torch.Tensor) -> torch.Tensor:  # ascending indices of the members of clusters ids
        lens = sizes[ids]
        offs = torch.repeat_interleave(starts[ids] - (lens.cumsum(0) - lens), lens)
        return order[offs + torch.arange(len(offs))].sort().values

    ends = sizes.cumsum(0).tolist()
    # query blocks: the members of one cluster (at most ``block`` at a time), whose targets agree
    blocks = [(a, min(a + block, e)) for b, e in zip([0] + ends[:-1], ends) for a in range(b, e, block)]
    m = min(N - 1, first)
    out_d = torch.empty(N, k, dtype=torch.float64)
    out_i = torch.empty(N, k, dtype=torch.long)

    def search_block(span: tuple[int, int]) -> dict:
        s, e = span
        rows = order[s:e]
        q = len(rows)
        ar = torch.arange(q)
        counts = {"exact_pairs": 0, "solver_pairs": 0, "dual_pairs": 0, "bound_pairs": 0, "target_chunks": 0,
                  "wide_blocks": 0}
        exact = lambda a, b: exact_sq(a, b, solver, counts)  # noqa: E731
        # 1-2. the block's cluster and its neighbourhood, m + 1 points in all: for each query the m
        #    nearest there by the sort bound are solved exactly, and their k-th value u_q bounds
        #    the k-th distance from above
        b0 = int(labels[rows[0]])
        near = hood[b0]
        if int(sizes[near].sum()) < m + 1:  # tiny clusters: all clusters by centre distance
            near = _sq_dist(centres[b0:b0 + 1], centres)[0].argsort()
        T0 = members(near[:int(torch.searchsorted(sizes[near].cumsum(0), m + 1)) + 1])
        lb0 = torch.cdist(E[rows], E[T0]).square_()  # the sort bound: cheap, to pick candidates only
        lb0.masked_fill_(T0[None, :] == rows[:, None], math.inf)
        cand = T0[torch.topk(lb0, m, dim=1, largest=False).indices]  # (q, m)
        del lb0, T0, near
        e1 = _chunked(exact, rows[:, None].expand(q, m).reshape(-1), cand.reshape(-1), Z64, solve_batch).view(q, m)
        ub = e1.kthvalue(k, dim=1).values  # (q,)
        counts["exact_pairs"] += q * m
        # 3. targets: members of the clusters whose bound |e_q - mu_b| - r_b does not exceed u_q for
        #    some query. Outside the neighbourhood, |e_q - mu_b| - r_b >= |mu_h - mu_b| - r_b - r_h
        #    >= rest_h - r_h (|e_q - mu_h| <= r_h): when that exceeds every u_q, the neighbourhood's
        #    clusters are all that can hold a neighbour; else all K clusters are measured from the
        #    block's centre, and those within reach from each query
        far = float((rest[b0] - radii[b0]).clamp_min(0)) ** 2
        if far > float(ub.max()) + _MARGIN * float(nrm[rows].max() + nrm_all_max):
            cl = hood[b0].sort().values
        else:  # all K clusters, first by the home centre's bound |mu_h - mu_b| - r_h - r_b
            counts["wide_blocks"] += 1
            dh = (_sq_dist(centres[b0:b0 + 1], centres)[0].clamp_min_(0).sqrt_() - radii - radii[b0]).clamp_min_(0)
            cl = (dh.square() <= float(ub.max()) + _MARGIN * float(nrm[rows].max() + nrm_all_max)).nonzero().flatten()
        clb = (_sq_dist(E[rows], centres[cl]).clamp_min_(0).sqrt_() - radii[cl]).clamp_min_(0)
        alive_cl = clb.square() <= ub[:, None] + _MARGIN * (nrm[rows, None] + nrm_max[cl][None, :])
        del clb
        T = torch.cat([members(cl[alive_cl.any(0)]), cand.flatten()]).unique()

        # alive[:, j] for targets j: cluster of j in cl and not ruled out for that query
        def alive_of(Tc: torch.Tensor) -> torch.Tensor:
            lab = labels[Tc]
            pos = torch.searchsorted(cl, lab).clamp_max_(len(cl) - 1)
            return alive_cl[:, pos] & (cl[pos] == lab)[None, :]

        best_v = torch.full((q, k), math.inf, dtype=torch.float64)
        best_i = torch.full((q, k), N, dtype=torch.long)
        for cs in range(0, len(T), chunk_t):  # chunks of targets: running k best per query
            Tc = T[cs:cs + chunk_t]
            lb = _chamfer_bound(Z32, slack, rows, Tc, tile)
            lb.masked_fill_(~alive_of(Tc), math.inf)  # provably farther than u_q
            vals = torch.full((q, len(Tc)), math.inf, dtype=torch.float64)
            pos = torch.searchsorted(Tc, cand).clamp_max_(len(Tc) - 1)
            hit = Tc[pos] == cand  # the step-2 pairs whose target lies in this chunk
            vals[ar[:, None].expand_as(cand)[hit], pos[hit]] = e1[hit]
            # the chunk's m smallest Chamfer bounds, where not yet solved, can only lower u_q
            top_m = torch.topk(lb, min(m, len(Tc)), dim=1, largest=False).indices
            new = torch.isinf(vals.gather(1, top_m)) & torch.isfinite(lb.gather(1, top_m))
            r1, c1 = ar[:, None].expand_as(top_m)[new], top_m[new]
            vals[r1, c1] = _chunked(exact, rows[r1], Tc[c1], Z64, solve_batch)
            ub = torch.minimum(ub, torch.cat([best_v, vals], 1).kthvalue(k, dim=1).values)
            margin = _MARGIN * (nrm[rows, None] + nrm[Tc][None, :])
            # 4. survivors of the Chamfer bound, then of the dual bound, get the exact assignment
            r2, c2 = ((lb <= ub[:, None] + margin) & torch.isinf(vals)).nonzero(as_tuple=True)
            del lb
            dual = _chunked(_dual_bound, rows[r2], Tc[c2], Z64, solve_batch)
            keep = dual <= ub[r2] + margin[r2, c2]
            r3, c3 = r2[keep], c2[keep]
            vals[r3, c3] = _chunked(exact, rows[r3], Tc[c3], Z64, solve_batch)
            counts["exact_pairs"] += len(r1) + len(r3)
            counts["dual_pairs"] += len(r2)
            counts["bound_pairs"] += q * len(Tc)
            counts["target_chunks"] += 1
            # 5. merge into the k nearest so far (every pruned j is provably farther), ties by index
            best_v, best_i = _select_by_index(torch.cat([best_v, vals], 1),
                                              torch.cat([best_i, Tc[None, :].expand(q, -1)], 1), k)
            del vals, margin
        out_d[rows] = best_v.clamp_min(0.0).sqrt()  # rows of different blocks are disjoint
        out_i[rows] = best_i
        return counts

    counts = {"exact_pairs": 0, "solver_pairs": 0, "dual_pairs": 0, "bound_pairs": 0, "clusters": K,
              "blocks": len(blocks), "wide_blocks": 0, "target_chunks": 0}
    for part in map_blocks(search_block, blocks, workers):
        for key, v in part.items():
            counts[key] += v
    counts["cluster_s"], counts["search_s"] = t1 - t0, time.perf_counter() - t1
    if stats is not None:
        stats.update(counts)
        stats.update(plan)
        stats["all_pairs"] = N * (N - 1)
        stats["assignment_fraction"] = counts["exact_pairs"] / max(1, N * (N - 1))
        stats["memory_budget"] = memory_budget
        stats["workers"] = workers
    return out_d, out_i


def quotient_knn(Z: torch.Tensor, k: int, group, mask: torch.Tensor | None = None, *,
                 method: str = "exact", memory_budget: int = DEFAULT_MEMORY_BUDGET, block_size: int = 256,
                 first_candidates: int | None = None, solver: str = "auto", stats: dict | None = None,
                 index_options: dict | None = None, workers: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``k`` nearest neighbours of every latent in the quotient metric (itself excluded).

    .. math::

        & \operatorname{kNN}(i) = \text{the } k \text{ indices } j\ne i \text{ with the smallest} \\
        & d([Z_i], [Z_j]) = \min_{g\in G}\lVert Z_i - \rho(g) Z_j\rVert ,

    ties broken by the smaller index: the same lists as sorting the rows of
    :func:`~invlatent.pairwise_quotient_distance`. For :class:`~invlatent.groups.Permutation`
    the exact assignment is solved only for candidates whose lower bounds (clusters of the
    per-channel sort embedding, Chamfer, assignment dual) do not exceed the current ``k``-th exact
    distance (module ``invlatent.quotient._knn``): on clustered latents the cost grows about
    linearly with ``N``. Other groups use :func:`~invlatent.pairwise_quotient_distance` one block
    of rows at a time.

    Memory: besides ``O(N (n c + k))`` for the latents, their sort embedding, cluster labels and
    the result, the search holds at most about ``memory_budget`` bytes: queries go in blocks and
    targets in chunks sized from it, whatever ``N`` is (a smaller budget means more, smaller steps).

    ``method="faiss"`` (:class:`~invlatent.groups.Permutation` only) builds a
    :class:`~invlatent.quotient.QuotientIndex` (FAISS over the sort embedding, candidates re-ranked
    by the exact distance) with ``index_options``: approximate for ``"ivf"``/``"hnsw"``, exact
    for the default ``"flat"`` index, with the recall it measured in ``stats`` for the others. It
    needs ``pip install 'invlatent[fast]'``.

    ``method="sliced"`` (:class:`~invlatent.groups.Permutation`, real latents) is exact too, for
    latents without cluster structure such as an encoder's codes, where the cluster bounds of
    ``"exact"`` prune little: every pair is bounded by the largest of ``B = 8`` sliced sort bounds
    :math:`\sum_j \lVert\operatorname{sort}(Xu_j) - \operatorname{sort}(Yu_j)\rVert^2
    \le d(X, Y)^2` (one for each random orthonormal basis :math:`(u_j)` of the channels), ``B``
    float32 matrix products per tile of pairs, and only pairs whose bound does not exceed the
    current ``k``-th exact distance get the assignment (module ``invlatent.quotient._sliced_exact``,
    which has the proof). Latents that are one point of the quotient are searched once. Its cost
    is about :math:`8 N^2 nc` multiply-adds plus the pairs kept, whatever the data; its memory
    about :math:`10 N n c \cdot 4` bytes plus 64 MiB per worker (``memory_budget`` is not used).

    Which to use: ``"exact"`` where the latents form clusters (its bounds then prune whole
    clusters); ``"sliced"`` for exact lists of an encoder's codes; ``"faiss"`` with
    ``index_options={"index": "hnsw"}`` for approximate lists at scale. The Performance appendix of
    the book has their timings on the shipped VAE's codes and on clustered latents.

    Parameters
    ----------
    Z : Tensor, shape ``(N, n, c)`` for :class:`~invlatent.groups.Permutation`, else ``(N, *latent_shape)``
    k : int, ``1 <= k <= N - 1``
    group : group object
    mask : BoolTensor, shape ``(N, n)``, optional
        Real nodes (:class:`~invlatent.groups.Permutation` only); padded rows count as zero nodes,
        as in :class:`~invlatent.projections.MaxFilter`.
    method : ``"exact"``, ``"sliced"`` or ``"faiss"``
    memory_budget : int
        Bytes of working memory (default :data:`DEFAULT_MEMORY_BUDGET`, 1 GiB; at least 1 MiB).
    block_size : int
        Most queries per block (:class:`~invlatent.groups.Permutation`: a block is one cluster of
        about 32 latents, split at ``block_size``); at most ``memory_budget // (32 N)``.
    first_candidates : int, optional
        Candidates solved before the bound is applied (default ``max(2k, k + 8)``).
    solver : ``"auto"``, ``"lapx"`` or ``"scipy"``
        Assignment solver (:func:`invlatent.quotient._batched_assignment.solve_assignment`).
    stats : dict, optional
        Filled with ``exact_pairs`` (exact distances evaluated), ``all_pairs`` ``= N (N - 1)``, and
        for :class:`~invlatent.groups.Permutation` ``assignment_fraction`` (exact over all pairs),
        ``solver_pairs`` (those that needed the assignment solver; the others had rows with distinct
        nearest columns), ``bound_pairs`` (pairs given a Chamfer bound), ``dual_pairs``,
        ``clusters``, ``groups``, the seconds of clustering and of the search (``cluster_s``,
        ``search_s``) and the memory plan (``query_block``, ``target_chunk``, ``solve_batch``,
        ``memory_budget``, ``workers``).
    index_options : dict, optional
        Keyword arguments of :class:`~invlatent.quotient.QuotientIndex` (``method="faiss"`` only).
    workers : int, optional
        :class:`~invlatent.groups.Permutation`, exact: threads that search query blocks in parallel,
        each with one PyTorch intra-op thread (its operations are small) and ``memory_budget /
        workers`` bytes (default: ``torch.get_num_threads()``). The result does not depend on it.

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
    >>> stats = {}
    >>> _ = quotient_knn(Z, 1, Permutation(), memory_budget=2**20, stats=stats)
    >>> stats["all_pairs"], 0 < stats["assignment_fraction"] <= 1
    (6, True)
    """
    check_group(group)
    check_tensor(Z, "Z", min_ndim=2, expected="(N, *latent_shape)")
    group.check_latent(Z, "Z")
    N = Z.shape[0]
    for name, v in (("k", k), ("block_size", block_size), ("first_candidates", first_candidates),
                    ("memory_budget", memory_budget), ("workers", workers)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise TypeError(f"{name} must be an int, got {describe(v)}")
    if not 1 <= k <= N - 1:
        raise ValueError(f"k must be between 1 and N - 1 = {N - 1}, got {k}")
    if block_size <= 0:
        raise ValueError(f"block_size must be a positive int, got {block_size}")
    if workers is not None and workers <= 0:
        raise ValueError(f"workers must be a positive int, got {workers}")
    if memory_budget < MIN_MEMORY_BUDGET:
        raise ValueError(f"memory_budget must be at least {MIN_MEMORY_BUDGET} bytes (1 MiB), got {memory_budget}")
    given_first = first_candidates
    if first_candidates is None:
        first_candidates = max(2 * k, k + 8)
    if first_candidates < k:
        raise ValueError(f"first_candidates must be >= k = {k}, got {first_candidates}")
    if method not in ("exact", "faiss", "sliced"):
        raise ValueError(f"method must be 'exact', 'sliced' or 'faiss', got {describe(method)}")
    if index_options is not None and method != "faiss":
        raise ValueError("index_options is only used with method='faiss'")
    if method == "sliced":
        return _sliced(Z, k, group, mask, given_first, solver, stats, workers)
    if method == "faiss":
        if type(group).knn is Group.knn:  # only groups with an embedding search (Permutation) take it
            raise ValueError(f"method='faiss' needs the group Permutation() (sort embedding), got {group!r}")
        return group.knn(Z, k, mask=mask, stats=stats, method="faiss", index_options=index_options or {},
                         workers=workers)
    # a block of rows against all N (the all-pairs path of other groups holds rows * N float64
    # distances and a few copies; the S_n search plans its own chunks within the budget)
    block_size = max(1, min(block_size, memory_budget // (32 * N)))
    extra = {} if workers is None else {"workers": workers}
    return group.knn(Z, k, mask=mask, block_size=block_size, first_candidates=first_candidates,
                     solver=solver, stats=stats, memory_budget=memory_budget, **extra)


def _sliced(Z, k, group, mask, first, solver, stats, workers):
    """``quotient_knn(method="sliced")``: :func:`invlatent.quotient._sliced_exact.sliced_exact_knn`."""
    from .._validation import check_mask
    from ._sliced_exact import sliced_exact_knn

    if type(group).knn is Group.knn:  # only groups with an embedding search (Permutation) take it
        raise ValueError(f"method='sliced' needs the group Permutation(), got {group!r}")
    if Z.is_complex():
        raise TypeError(f"method='sliced' needs real latents Z, got {Z.dtype}")
    Z64 = Z.detach().to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(Z64).all()):
        raise ValueError("Z must be finite for method='sliced' (it has NaN or inf entries)")
    if mask is not None:
        check_mask(mask, Z, z_name="Z")
        Z64 = Z64.masked_fill(~mask.to("cpu")[..., None], 0)
    d2, i = sliced_exact_knn(Z64, k, first=first, solver=solver, workers=workers, stats=stats)
    return d2.clamp_min(0).sqrt().to(device=Z.device, dtype=Z.dtype), i.to(Z.device)
