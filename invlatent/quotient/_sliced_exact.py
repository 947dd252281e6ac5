r"""Exact quotient k-NN on real codes: every pair bounded by sliced sort bounds, in matrix products.

For :math:`S_n` acting on node latents :math:`X\in\mathbb R^{n\times c}` the squared quotient
distance is :math:`d^2(X, Y) = \min_{P}\lVert X - PY\rVert_F^2` over permutation matrices
:math:`P`. For **any** orthonormal basis :math:`U = (u_1, \dots, u_c)` of :math:`\mathbb R^c`,

.. math::

    \lVert X - PY\rVert_F^2 = \sum_{j=1}^{c} \lVert (X - PY) u_j\rVert^2
    = \sum_{j=1}^{c} \lVert X u_j - P\, Y u_j\rVert^2
    \;\ge\; \sum_{j=1}^{c} \lVert \operatorname{sort}(X u_j) - \operatorname{sort}(Y u_j)\rVert^2
    =: \mathrm{LB}_U(X, Y)^2 ,

because for vectors :math:`a, b\in\mathbb R^n` the rearrangement inequality gives
:math:`\min_P \lVert a - Pb\rVert = \lVert\operatorname{sort} a - \operatorname{sort} b\rVert`,
and each column may take its own permutation. The bound holds for every ``U``, so the maximum
over ``B`` random orthonormal bases :math:`U_1, \dots, U_B` is a lower bound too:

.. math::

    \mathrm{LB}(X, Y)^2 = \max_{b\le B} \mathrm{LB}_{U_b}(X, Y)^2 \;\le\; d^2(X, Y).

With :math:`e_b(X) = \operatorname{sort}(XU_b)\in\mathbb R^{nc}` (each column sorted over the
nodes, flattened), :math:`\lVert e_b(X)\rVert = \lVert X\rVert`, so
:math:`\mathrm{LB}_{U_b}^2 = \lVert X\rVert^2 + \lVert Y\rVert^2 - 2\langle e_b(X), e_b(Y)\rangle`:
``B`` matrix products of ``(q, nc)`` by ``(nc, t)`` and a running minimum of the inner products
bound a ``q x t`` tile of pairs at once. On the shipped VAE's ``c = 4`` QM9 codes the maximum over
8 bases leaves about 1/6 of the candidates the average over the same 8 bases leaves (the average
is the tight-frame embedding of :class:`~invlatent.quotient.QuotientIndex`).

The search (:func:`sliced_exact_knn`):

0. latents that are the same point of the quotient (equal multisets of rows, found exactly by
   sorting each latent's rows lexicographically) are merged into classes, searched once;
1. the classes are clustered (k-means on :math:`(e_1, \dots, e_B)/\sqrt B`, only to order the
   work); the queries go in blocks of one cluster, and each block first bounds the members of
   the nearest clusters (at least ``hood`` targets): the exact distances of each query's
   ``first`` nearest by the bound give an upper bound :math:`u_q` on its ``k``-th distance;
2. then every target, ``chunk`` at a time: a pair is kept only where
   :math:`\mathrm{LB}^2 \le u_q` plus a round-off margin; kept pairs get the exact distance
   (:func:`~invlatent.quotient._kernels.exact_sq`; where the nodes do not have distinct nearest
   nodes, its assignment-dual bound skips the solver when it already exceeds :math:`u_q`), the
   ``k`` best so far are kept (ties by the smaller index) and :math:`u_q` falls to their ``k``-th;
3. every pair left out has :math:`d^2 \ge \mathrm{LB}^2 > u_q \ge` the final ``k``-th distance,
   so it is neither among the ``k`` nearest nor tied with the ``k``-th: the lists are exact;
4. each latent's list: its class-mates (distance 0), then the members of the nearest classes,
   ties by the smaller index. Where the ``k``-th distance equals that of the last class found
   (an exact tie at the edge), the row is searched again over all latents
   (:func:`~invlatent.quotient._exact_rows.exact_rows`).

Round-off: the bounds are computed in float32. For embeddings of dimension :math:`D = nc`, the
rounding of :math:`e_b` to float32 and any summation order of the products change
:math:`2\langle e_b(X), e_b(Y)\rangle` by at most :math:`(D + 3)\,u\,(\lVert X\rVert^2 +
\lVert Y\rVert^2)` with :math:`u = 2^{-24}`, and forming the bound adds :math:`3u` of the same;
a pair is pruned only when its bound exceeds :math:`u_q` by :math:`\tau(\lVert X\rVert^2 +
\lVert Y\rVert^2)`, :math:`\tau = 4(D + 8)u`. The cost is about :math:`N^2 B nc` multiply-adds
of float32 matrix products (all pairs are bounded; on real codes no cheaper bound prunes
whole clusters), plus the exact distances of the pairs kept.
"""

from __future__ import annotations

import math
import threading
import time

import torch

from .._threads import default_workers, map_blocks
from ._kernels import _MARGIN, _kmeans, _select_by_index, class_members, exact_sq, quotient_classes

__all__ = ["sliced_exact_knn"]

#: Random orthonormal bases of the bound (its cost grows with them; the pairs kept fall).
_BASES = 8
#: Queries per block (a cluster of the bound's embedding, split beyond twice this).
_LEAF = 256
#: Targets of the nearest clusters searched first (they set the first upper bounds).
_HOOD = 16384
#: Targets per tile of bounds (memory: two float32 ``(block, chunk)`` tiles per worker).
_CHUNK = 8192
#: Targets per float32 product of the bound (its tile, ``_ROWS x block``, stays in cache).
_ROWS = 512
#: Pairs per call of the exact distance (memory: ~``n^2 (c + 3) * 8`` bytes per pair).
_SOLVE = 1 << 14
_U = 2.0 ** -24


def _bases(c: int, B: int, seed: int) -> torch.Tensor:
    """``(B, c, c)`` float64: ``B`` seeded random orthonormal bases (``c = 1``: one, ``[[1]]``)."""
    if c == 1:
        return torch.ones(1, 1, 1, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.linalg.qr(torch.randn(c, c, generator=g, dtype=torch.float64))[0]
                        for _ in range(B)])


def _embeddings(X: torch.Tensor, U: torch.Tensor, chunk: int = 1 << 15) -> torch.Tensor:
    """``(B, M, n c)`` float32: :math:`e_b(X) = \\operatorname{sort}(X U_b)` over the nodes, flattened."""
    M, n, c = X.shape
    out = torch.empty(U.shape[0], M, n * c, dtype=torch.float32)
    for b in range(U.shape[0]):
        for s in range(0, M, chunk):
            out[b, s:s + chunk] = (X[s:s + chunk] @ U[b]).sort(dim=1).values.flatten(1)
    return out


def _dual32(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    r"""Lower bound ``(P,)`` of the squared quotient distance of float32 pairs given channel-major,
    ``A, B (c, n, P)`` (node ``i`` of pair ``p``'s query: ``A[:, i, p]``): the larger of the two
    assignment duals of :func:`~invlatent.quotient._kernels._dual_of_costs`
    (:math:`u_i = \min_l C_{il}`, :math:`v_l = \min_i (C_{il} - u_i)`, :math:`\sum u + \sum v`, and
    the same with rows and columns swapped), from float32 costs
    :math:`C_{il} = |a_i|^2 + |b_l|^2 - 2\langle a_i, b_l\rangle`, laid out ``(l, i, P)`` so that
    every step runs along the pairs.

    Round-off: each cost is within :math:`(2c + 8)u(\lVert x\rVert^2 + \lVert y\rVert^2)` of the
    exact one (:math:`u = 2^{-24}`; the inputs' rounding, the ``c``-term norms and inner product,
    the sums); the bound adds ``2n`` terms, each within twice that, and their sum (at most
    :math:`2(\lVert x\rVert^2 + \lVert y\rVert^2)` in size, up to those errors) rounds by
    ``2n u`` of itself: in all within :math:`n(6c + 30)u(\lVert x\rVert^2 + \lVert y\rVert^2)`
    of the exact dual value, to first order in :math:`u`."""
    na = A.square().sum(0)  # (n, P)
    nb = B.square().sum(0)
    C = nb[:, None, :] + na[None, :, :]  # (l, i, P)
    for ch in range(A.shape[0]):
        C.addcmul_(B[ch][:, None, :], A[ch][None, :, :], value=-2.0)
    u = C.amin(0)
    rows = u.sum(0) + (C - u[None]).amin(1).sum(0)
    v = C.amin(1)
    return torch.maximum(rows, v.sum(0) + (C - v[:, None]).amin(0).sum(0))


def _merge(best_v, best_i, r, j, v, k):
    """Merge exact squared distances ``v`` of pairs (row ``r``, target ``j``) into the running ``k``
    best ``best_v, best_i (q, k)``, ties by the smaller index."""
    ok = torch.isfinite(v)
    r, j, v = r[ok], j[ok], v[ok]
    if len(r) == 0:
        return best_v, best_i
    q = best_v.shape[0]
    cnt = torch.bincount(r, minlength=q)
    o = torch.argsort(r, stable=True)
    r, j, v = r[o], j[o], v[o]
    pos = torch.arange(len(r)) - (cnt.cumsum(0) - cnt)[r]
    V = torch.full((q, int(cnt.max())), math.inf, dtype=torch.float64)
    Id = torch.full((q, int(cnt.max())), torch.iinfo(torch.long).max, dtype=torch.long)
    V[r, pos], Id[r, pos] = v, j
    return _select_by_index(torch.cat([best_v, V], 1), torch.cat([best_i, Id], 1), k)


def _core(X: torch.Tensor, k: int, B: int, seed: int, first: int, workers: int, solver: str,
          counts: dict, show_progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact squared ``k``-NN ``(M, k)`` of the distinct points ``X (M, n, c)`` among themselves."""
    M, n, c = X.shape
    D = n * c
    E = _embeddings(X, _bases(c, B, seed))
    B = E.shape[0]
    nrm = X.square().sum((1, 2))
    tau = 4 * (D + 8) * _U
    ntm = (nrm * (1 - tau)).float()
    XT = X.float().transpose(1, 2).reshape(M, c * n)  # channel-major rows for the float32 dual
    tau_d = 4 * n * (2 * c + 9) * _U  # > the float32 dual's round-off, n (6c + 30) u (|x|^2 + |y|^2)
    # clusters of the bound's embedding: which queries go together, and which targets come first
    K = max(1, -(-M // _LEAF))
    t0 = time.perf_counter()
    F = E.permute(1, 0, 2).reshape(M, B * D)
    labels = _kmeans(F, K) if K > 1 else torch.zeros(M, dtype=torch.long)
    sizes = torch.bincount(labels, minlength=K)
    centres = torch.zeros(K, B * D).index_add_(0, labels, F) / sizes.clamp_min(1)[:, None]
    del F
    dc = torch.cdist(centres, centres)
    near = dc.argsort(dim=1)  # (K, K): clusters by centre distance
    order = torch.argsort(labels, stable=True)
    starts = (sizes.cumsum(0) - sizes).tolist()
    # the targets in cluster order (``order[p]``: the latent at position p), so that a chunk of
    # positions is a few whole clusters; each block visits the chunks nearest first (its upper
    # bounds fall early, and the far chunks keep few pairs)
    E = E[:, order]
    ntm = ntm[order]
    pos = torch.empty(M, dtype=torch.long)
    pos[order] = torch.arange(M)
    nchunk = -(-M // _CHUNK)
    chunk_key = torch.full((K, nchunk), math.inf).scatter_reduce_(
        1, (torch.tensor(starts) // _CHUNK)[None, :].expand(K, K), dc.float(), "amin")
    chunk_order = chunk_key.argsort(dim=1)
    del dc
    blocks = [order[s + a:s + min(a + 2 * _LEAF, int(sizes[h]))]
              for h, s in enumerate(starts) for a in range(0, int(sizes[h]), 2 * _LEAF)]
    counts["cluster_s"] = time.perf_counter() - t0
    out_v = torch.empty(M, k, dtype=torch.float64)
    out_i = torch.empty(M, k, dtype=torch.long)
    from ..utils import progress

    bar = progress(total=len(blocks), desc="sliced exact k-NN", unit="block",
                   **({} if show_progress and len(blocks) >= 8 else {"disable": True}))
    lock = threading.Lock()

    def bound_tile(EqT, idx, t):
        """``A (q, t)`` float32 for the ``t`` targets ``idx`` (a slice or an index tensor):
        :math:`\\max_b(-2\\langle e_b(x), e_b(y)\\rangle) + (1 - \\tau)\\lVert y\\rVert^2`. A pair can be
        nearer than :math:`u_q` only where ``A <= u_q - (1 - tau) |x_q|^2``. Computed as its transpose,
        ``_ROWS`` targets at a time (a tile that stays in cache while the bases' maximum is taken)."""
        Et, nt = E[:, idx], ntm[idx, None]  # a view for a slice
        AT = torch.empty(t, EqT.shape[2])
        buf = torch.empty(min(_ROWS, t), EqT.shape[2])
        for a in range(0, t, _ROWS):
            out = AT[a:a + _ROWS]
            w = out.shape[0]
            torch.addmm(nt[a:a + w], Et[0, a:a + w], EqT[0], alpha=-2.0, out=out)
            for b in range(1, B):
                torch.maximum(out, torch.addmm(nt[a:a + w], Et[b, a:a + w], EqT[b], alpha=-2.0, out=buf[:w]),
                              out=out)
        return AT.T

    def exact(rows, r, j, part, ub=None):
        """Exact squared distances of the pairs ``(rows[r], j)`` (``ub``: per-row upper bounds; a
        pair whose dual bound exceeds its row's is left ``inf``, unsolved)."""
        vals = []
        for a in range(0, len(r), _SOLVE):
            rr, jj = r[a:a + _SOLVE], j[a:a + _SOLVE]
            if ub is None:
                vals.append(exact_sq(X[rows[rr]], X[jj], solver, part))
                continue
            # the assignment dual of float32 costs, less its round-off, first
            nsum = nrm[rows[rr]] + nrm[jj]
            v = torch.full((len(rr),), math.inf, dtype=torch.float64)
            a = XT[rows[rr]].T.contiguous().view(c, n, -1)  # (c, n, P): the pairs along the last axis
            b = XT[jj].T.contiguous().view(c, n, -1)
            near = _dual32(a, b).double() <= ub[rr] + tau_d * nsum
            part["dual32_pairs"] += len(rr)
            v[near] = exact_sq(X[rows[rr[near]]], X[jj[near]], solver, part,
                               ub[rr[near]] + _MARGIN * nsum[near])
            part["exact_pairs"] += int(near.sum())
            vals.append(v)
        return torch.cat(vals) if vals else torch.zeros(0, dtype=torch.float64)

    def search(rows: torch.Tensor) -> dict:
        part = dict.fromkeys(("exact_pairs", "solver_pairs", "dual_pairs", "dual32_pairs", "bound_pairs",
                              "kept_pairs"), 0)
        q = len(rows)
        ar = torch.arange(q)
        EqT = E[:, pos[rows]].transpose(1, 2).contiguous()  # (B, n c, q)
        rhs = lambda ub: (ub - nq * (1 - tau)).float()[:, None]  # noqa: E731
        nq = nrm[rows]
        # 1. the nearest clusters first: the exact distances of each query's ``first`` nearest by
        #    the bound there set the first upper bounds u_q, then the rest of them within reach
        h = int(labels[rows[0]])
        cl = near[h][:int(torch.searchsorted(sizes[near[h]].cumsum(0), min(M, _HOOD))) + 1]
        hood = torch.cat([torch.arange(starts[b], starts[b] + int(sizes[b])) for b in cl.tolist()])  # positions
        A = bound_tile(EqT, hood, len(hood))
        A[pos[rows][:, None] == hood[None, :]] = math.inf  # itself
        m = min(first, len(hood) - 1)
        top = torch.topk(A, m, dim=1, largest=False).indices
        r, t = ar[:, None].expand(q, m).reshape(-1), top.reshape(-1)
        best_v = torch.full((q, k), math.inf, dtype=torch.float64)
        best_i = torch.full((q, k), torch.iinfo(torch.long).max, dtype=torch.long)
        j = order[hood[t]]
        best_v, best_i = _merge(best_v, best_i, r, j, exact(rows, r, j, part), k)
        part["exact_pairs"] += len(r)
        A[r, t] = math.inf  # done
        ub = best_v[:, -1]
        r, t = (A <= rhs(ub)).nonzero(as_tuple=True)
        del A
        j = order[hood[t]]
        best_v, best_i = _merge(best_v, best_i, r, j, exact(rows, r, j, part, ub), k)
        ub = best_v[:, -1]
        part["bound_pairs"] += q * len(hood)
        part["kept_pairs"] += q * m + len(r)
        in_hood = torch.zeros(M, dtype=torch.bool)
        in_hood[hood] = True
        # 2. every other target, a chunk of positions at a time, nearest chunks first, against
        #    the falling upper bounds
        qpos = pos[rows]
        for ch in chunk_order[h].tolist():
            s, e = ch * _CHUNK, min(M, (ch + 1) * _CHUNK)
            A = bound_tile(EqT, slice(s, e), e - s)
            A[:, in_hood[s:e]] = math.inf
            mine = (qpos >= s) & (qpos < e)
            A[ar[mine], qpos[mine] - s] = math.inf  # itself
            r, t = (A <= rhs(ub)).nonzero(as_tuple=True)
            del A
            j = order[t + s]
            best_v, best_i = _merge(best_v, best_i, r, j, exact(rows, r, j, part, ub), k)
            ub = best_v[:, -1]
            part["bound_pairs"] += q * (e - s - int(in_hood[s:e].sum()))
            part["kept_pairs"] += len(r)
        out_v[rows], out_i[rows] = best_v, best_i  # rows of different blocks are disjoint
        with lock:
            bar.update(1)
        return part

    t0 = time.perf_counter()
    try:
        for part in map_blocks(search, blocks, workers):
            for key, v in part.items():
                counts[key] = counts.get(key, 0) + v
    finally:
        bar.close()
    counts["search_s"] = time.perf_counter() - t0
    counts.update(bases=B, blocks=len(blocks), clusters=K)
    return out_v, out_i


def sliced_exact_knn(Z64: torch.Tensor, k: int, *, bases: int = _BASES, seed: int = 0,
                     first: int | None = None, solver: str = "auto", workers: int | None = None,
                     stats: dict | None = None, show_progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Exact :math:`S_n` quotient ``k``-NN of every latent of ``Z64`` (float64 ``(N, n, c)``, padded
    nodes already zero; itself excluded) by the sliced sort bounds of the module docstring.

    Returns squared distances ``(N, k)`` float64, ascending, and indices ``(N, k)``, ties by the
    smaller index: the lists of sorting the brute-force all-pairs matrix. ``bases``: random
    orthonormal bases of the bound (seeded by ``seed``); ``first``: exact distances per query
    that set its first upper bound (default ``max(6k, 40)``); ``workers``: threads, each
    with one PyTorch intra-op thread. ``stats`` gets ``classes`` (distinct quotient points),
    ``bound_pairs`` (pairs bounded), ``kept_pairs`` (pairs whose bound did not exceed the upper
    bound), ``exact_pairs``, ``solver_pairs``, ``dual_pairs``, ``refined_rows`` (rows searched
    again for a tie at the edge) and the seconds of each step.

    Example
    -------
    >>> import torch
    >>> Z = torch.tensor([[[0., 0.], [1., 1.]], [[1., 1.], [0., 0.1]], [[1., 1.], [0., 0.]],
    ...                   [[3., 0.], [0., 3.]]], dtype=torch.float64)
    >>> d2, i = sliced_exact_knn(Z, 1, show_progress=False)
    >>> i.flatten().tolist(), [round(x, 4) for x in d2.flatten().tolist()]
    ([2, 0, 0, 1], [0.0, 0.01, 0.0, 13.41])
    """
    N, n, c = Z64.shape
    workers = default_workers() if workers is None else workers
    first = max(6 * k, 40) if first is None else first
    counts: dict = {}
    t0 = time.perf_counter()
    rep, label = quotient_classes(Z64)
    M = len(rep)
    counts["classes_s"] = time.perf_counter() - t0
    ku = min(M - 1, k + 1)  # classes per row: k of them hold at least k latents; one more shows a tie
    if ku > 0:
        cv, ci = _core(Z64[rep], ku, bases, seed, max(first, ku), workers, solver, counts, show_progress)
    else:
        cv, ci = torch.zeros(M, 0, dtype=torch.float64), torch.zeros(M, 0, dtype=torch.long)
    t0 = time.perf_counter()
    # 4. each latent: its class-mates at 0, then the members of its class's nearest classes
    mem = class_members(label, M, k + 1)  # no row needs more than k + 1 members of one class
    out_v = torch.empty(N, k, dtype=torch.float64)
    out_i = torch.empty(N, k, dtype=torch.long)
    refine = torch.zeros(N, dtype=torch.bool)
    step = max(1, (1 << 22) // ((ku + 1) * (k + 1)))
    for s in range(0, N, step):
        lat = torch.arange(s, min(N, s + step))
        a = label[lat]
        cls = torch.cat([a[:, None], ci[a]], 1)  # (L, ku + 1)
        ids = mem[cls].flatten(1)  # (L, (ku + 1) (k + 1))
        vals = torch.cat([torch.zeros(len(lat), 1, dtype=torch.float64), cv[a]], 1)
        vals = vals.repeat_interleave(k + 1, dim=1)
        vals = torch.where((ids == N) | (ids == lat[:, None]), torch.full_like(vals, math.inf), vals)
        v, i = _select_by_index(vals, ids, k)
        out_v[lat], out_i[lat] = v, i
        if ku < M - 1:  # classes left out lie at or beyond the last one found: a tie there is unsure
            refine[lat] = v[:, -1] >= cv[a, -1]
    counts["refined_rows"] = int(refine.sum())
    if bool(refine.any()):
        from ._exact_rows import exact_rows

        rows = refine.nonzero().flatten()
        nrm = Z64.square().sum((1, 2))
        for a in range(0, len(rows), 256):
            rr = rows[a:a + 256]
            out_v[rr], out_i[rr] = exact_rows(Z64[rr], Z64, nrm, k, out_v[rr], out_i[rr], rr, solver)
    counts["expand_s"] = time.perf_counter() - t0
    if stats is not None:
        stats.update(counts)
        stats.update(classes=M, all_pairs=N * (N - 1), workers=workers)
    return out_v, out_i
