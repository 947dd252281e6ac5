"""Real benchmark sets for quotient k-NN, and a brute force written apart from the package.

* :func:`qm9_codes` -- the shipped graph VAE's posterior means of every QM9 molecule, ``(130831, 9,
  c)`` for ``c`` in 1, 2, 4, padded nodes zero, cached (float32, with a checksum) under
  ``invlatent.utils.cache_dir("knn_bench")``, never in git;
* :func:`million` -- a million real latents with a known answer: the ``c = 4`` codes of 125,000
  molecules (a seeded sample), each in 8 random node orders (the rows permuted exactly, padded
  rows included), shuffled. Every latent has 7 orbit-mates at quotient distance 0;
* :func:`brute_knn` -- exact ``k`` nearest neighbours of a few queries by a lower bound that orders
  the candidates (per-channel sorted codes, then the larger of the two nearest-node relaxations)
  and ``scipy.optimize.linear_sum_assignment`` for the exact distances, in numpy only: it shares no
  code with ``invlatent.quotient``;
* :func:`recall_at_k` -- recall by distance: a returned neighbour counts when its exact distance
  (recomputed here) is at most the true ``k``-th distance, so ties at the ``k``-th place count
  whichever index is returned.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

N_MOLECULES_MILLION = 125_000
ORDERS = 8


def _cache():
    from invlatent.utils import cache_dir

    return cache_dir("knn_bench")


def qm9_codes(c: int, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """``(Z float64 (M, 9, c), mask bool (M, 9))``: the shipped VAE's posterior means of all QM9."""
    from invlatent.data._cache import cached_arrays

    def build():
        import invlatent
        from invlatent.book import load_shipped_graph_vae
        from invlatent.utils import in_batches

        vae, _ = load_shipped_graph_vae(c)
        data = invlatent.load_qm9().dense()
        mu = in_batches(vae.encode, data["x"], data["adj"], data["mask"], batch_size=batch)[0]
        Z = mu.float().masked_fill(~data["mask"][:, :, None], 0)
        return {"Z": Z.numpy(), "mask": data["mask"].numpy()}

    arr = cached_arrays(f"qm9_codes_c{c}", build, version="1", root=_cache())
    return arr["Z"].astype(np.float64), arr["mask"].astype(bool)


def million(seed: int = 0) -> dict[str, np.ndarray]:
    """The million real latents: ``Z`` float64 ``(10^6, 9, 4)``, ``mask``, ``molecule`` (the QM9
    index each latent encodes) and ``codes`` (the 125,000 sampled codes, in sample order) with
    ``member`` (each latent's position among them)."""
    from invlatent.data._cache import cached_arrays

    def build():
        Z, mask = qm9_codes(4)
        rng = np.random.default_rng(seed)
        mols = np.sort(rng.choice(len(Z), N_MOLECULES_MILLION, replace=False))
        member = np.repeat(np.arange(N_MOLECULES_MILLION), ORDERS)
        perm = np.argsort(rng.random((len(member), Z.shape[1])), axis=1)  # a random node order each
        order = rng.permutation(len(member))  # orbit-mates scattered through the set
        member, perm = member[order], perm[order]
        Zm = np.take_along_axis(Z[mols][member], perm[:, :, None], axis=1)
        Mm = np.take_along_axis(mask[mols][member], perm, axis=1)
        return {"Z": Zm.astype(np.float32), "mask": Mm, "molecule": mols[member], "member": member,
                "codes": mols}

    arr = cached_arrays(f"million_c4_seed{seed}", build, version="1", root=_cache())
    arr["Z"] = arr["Z"].astype(np.float64)
    return arr


def _sorted(Z: np.ndarray) -> np.ndarray:
    return np.sort(Z, axis=1).reshape(len(Z), -1)


def exact_sq(zq: np.ndarray, zt: np.ndarray) -> np.ndarray:
    """Squared quotient distances of one query ``(n, c)`` to targets ``(T, n, c)`` by scipy's
    ``linear_sum_assignment`` (one call per target)."""
    cost = ((zq[None, :, None, :] - zt[:, None, :, :]) ** 2).sum(-1)  # (T, n, n)
    out = np.empty(len(zt))
    for t, C in enumerate(cost):
        r, col = linear_sum_assignment(C)
        out[t] = C[r, col].sum()
    return out


def brute_knn(Z: np.ndarray, queries: np.ndarray, k: int, *, exclude_self: bool = True,
              first: int = 256, chunk: int = 8192, batch: int = 64) -> tuple[np.ndarray, np.ndarray, dict]:
    """Exact squared ``k``-NN distances ``(Q, k)`` and indices of ``Z[queries]`` among all ``Z``.

    For each query: the per-channel sorted lower bound to every latent orders the candidates; the
    ``first`` nearest by it get ``linear_sum_assignment``, whose ``k``-th value ``u`` bounds the
    ``k``-th distance from above. Every other latent whose sorted bound is at most ``u`` gets the
    relaxation bound (each node to its nearest node, both ways, the larger), and those, in
    ascending order of it, the exact assignment while the bound does not exceed the current ``k``-th
    value. Nothing left out can be nearer. Ties at the ``k``-th place go to the smaller index.
    The bounds use numpy and ``torch.cdist`` (no code of ``invlatent``)."""
    import torch

    E = _sorted(Z)
    En = (E ** 2).sum(1)
    Zt = torch.from_numpy(Z)
    out_d = np.empty((len(queries), k))
    out_i = np.empty((len(queries), k), dtype=np.int64)
    lsa = relaxed = 0

    def merge(best_d, best_i, vals, idx):
        d = np.concatenate([best_d, vals])
        i = np.concatenate([best_i, idx])
        sel = np.lexsort((i, d))[:k]
        return d[sel], i[sel]

    for b0 in range(0, len(queries), batch):
        qs = queries[b0:b0 + batch]
        LB = En[None, :] + En[qs][:, None] - 2 * E[qs] @ E.T
        LB = np.maximum(LB - 1e-9 * (En[None, :] + En[qs][:, None]), 0)  # round-off of the expanded form
        for row, q in enumerate(qs, start=b0):
            lb = LB[row - b0]
            if exclude_self:
                lb[q] = np.inf
            start = np.argpartition(lb, first)[:first] if first < len(lb) else np.arange(len(lb))
            start = start[np.isfinite(lb[start])]
            best_d, best_i = merge(np.full(k, np.inf), np.full(k, -1), exact_sq(Z[q], Z[start]), start)
            lsa += len(start)
            rest = np.flatnonzero(np.isfinite(lb) & (lb <= best_d[-1] * (1 + 1e-12)))  # never itself
            rest = rest[~np.isin(rest, start)]
            relaxed += len(rest)
            for s in range(0, len(rest), chunk):
                idx = rest[s:s + chunk]
                cost = torch.cdist(Zt[q].expand(len(idx), -1, -1), Zt[idx]).square_().numpy()
                relax = np.maximum(cost.min(2).sum(1), cost.min(1).sum(1))
                relax -= 1e-9 * (1 + relax)  # cdist's round-off: a bound only
                for t in np.argsort(relax, kind="stable"):
                    if relax[t] > best_d[-1]:
                        break
                    C = ((Z[q][:, None, :] - Z[idx[t]][None, :, :]) ** 2).sum(-1)
                    r, col = linear_sum_assignment(C)
                    lsa += 1
                    best_d, best_i = merge(best_d, best_i, np.array([C[r, col].sum()]), idx[t:t + 1])
            out_d[row], out_i[row] = best_d, best_i
    return out_d, out_i, {"lsa_calls": lsa, "relaxation_bounds": relaxed, "queries": len(queries)}


def recall_at_k(Z: np.ndarray, queries: np.ndarray, found: np.ndarray, true_sq: np.ndarray,
                rtol: float = 1e-9) -> np.ndarray:
    """Per-query recall: the share of ``found (Q, k)`` whose exact squared distance (recomputed with
    :func:`exact_sq`) is at most the true ``k``-th, ``true_sq[:, -1]`` (``-1`` entries miss)."""
    k = found.shape[1]
    out = np.empty(len(queries))
    for row, q in enumerate(queries):
        ids = found[row][found[row] >= 0]
        d = exact_sq(Z[q], Z[ids]) if len(ids) else np.empty(0)
        edge = true_sq[row, -1]
        out[row] = float((d <= edge + rtol * (1 + edge)).sum()) / k
    return out


def sample_queries(N: int, count: int, seed: int = 1) -> np.ndarray:
    """``count`` distinct query indices out of ``N``, sorted (a seeded sample)."""
    return np.sort(np.random.default_rng(seed).choice(N, count, replace=False))


def reference(name: str, Z: np.ndarray, queries: np.ndarray, k: int = 10) -> dict:
    """The brute-force ``k``-NN of ``Z[queries]`` (itself excluded), cached beside the codes under
    ``name``: squared distances ``d``, indices ``i``, and the ``seconds`` it took."""
    import time

    from invlatent.data._cache import cached_arrays

    def build():
        t0 = time.perf_counter()
        d, i, st = brute_knn(Z, queries, k)
        return {"queries": queries, "d": d, "i": i, "seconds": np.array(time.perf_counter() - t0),
                "lsa_calls": np.array(st["lsa_calls"]), "relaxation_bounds": np.array(st["relaxation_bounds"])}

    arr = cached_arrays(f"brute_{name}_q{len(queries)}_k{k}", build, version="1", root=_cache())
    if not np.array_equal(arr["queries"], queries):
        raise ValueError(f"cached reference {name} has other queries: delete it from {_cache()}")
    return arr


def million_truth(data: dict, queries: np.ndarray, k: int = 10) -> np.ndarray:
    """True squared ``k``-th distances ``(Q,)`` of the million set's queries (``k >= 8``): a latent's 7
    orbit-mates lie at 0 and every molecule's 8 latents at the same distance, so for ``k`` from 8
    to 15 the ``k``-th distance is the distance from its code to the nearest other of the 125,000
    codes (:func:`brute_knn` on them, with ``k = 1``)."""
    if not ORDERS <= k < 2 * ORDERS:
        raise ValueError(f"k must be in [{ORDERS}, {2 * ORDERS - 1}], got {k}")
    codes = qm9_codes(4)[0][data["codes"]]
    u = np.unique(data["member"][queries])
    ref = reference("million_codes", codes, u, k=1)
    return ref["d"][np.searchsorted(u, data["member"][queries]), 0]
