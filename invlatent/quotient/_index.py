r"""Quotient nearest neighbours at scale: a FAISS index over a sliced sort embedding, re-ranked exactly.

For :math:`S_n` acting on node latents :math:`z\in\mathbb R^{n\times c}`, project the nodes on
the ``m`` directions of a tight frame :math:`W\in\mathbb R^{c\times m}` (:math:`WW^\top = I`: ``B``
random orthonormal bases side by side, scaled by :math:`1/\sqrt B`) and sort each projection over
the nodes: :math:`e(z)\in\mathbb R^{nm}`. For every permutation :math:`\pi`,
:math:`\sum_i \lVert W^\top (z_i - z'_{\pi(i)})\rVert^2 = \lVert z - \pi z'\rVert^2`, and sorting
each projection separately minimises over more permutations, so

.. math::

    \lVert e(z) - e(z')\rVert \;\le\; d(z, z') = \min_{\pi\in S_n}\lVert z - \pi z'\rVert ,

with equality for :math:`c = 1` (sorted codes are an isometric cross-section of the quotient).
With the coordinate axes alone (``m = c``) this is the per-channel sort; on real encoder codes
(``c = 4``) it is a loose bound, and 32 directions order the true neighbours far better (on
the shipped VAE's QM9 codes the exact 10 nearest are among the 40 nearest by the bound for 0.91
of them instead of 0.58).
:class:`QuotientIndex` stores :math:`e(z)` in a FAISS index (exact ``IndexFlatL2``, inverted
lists ``IndexIVFFlat``, or the graph ``IndexHNSWFlat``), asks it for ``k * k_factor`` candidates
per query (as FAISS's ``IndexRefine`` does) and re-ranks them by the exact quotient distance
(:func:`invlatent.quotient._kernels.exact_sq`, the value :func:`~invlatent.quotient_knn` reports):
every candidate's cost matrix gives its exact value where the nodes have distinct nearest nodes
and an assignment-dual bound otherwise; the ``k`` smallest then get the solver, and the others
only where their bound does not exceed the ``k``-th exact distance. Every reported distance is an
exact quotient distance; the approximation is only in which candidates are looked at.

With ``index="flat"`` the search is exact for every ``c``: the candidates are the ``k'`` nearest
by the lower bound, so when the ``k``-th exact distance is below the ``k'``-th bound (less
FAISS's float32 round-off) no other latent can be closer; rows where that certificate fails are
searched again with twice as many candidates. For ``c = 1`` the bound is the distance, so a few
candidates beyond ``k`` suffice. The approximate indexes measure their own recall on a sample of
the queries, and raise their candidate count until it meets ``target_recall``.

Latents that are one point of the quotient (the same multiset of rows: node orders of one latent,
exact duplicates) are stored once: :meth:`QuotientIndex.add` finds them exactly (each latent's rows
in lexicographic order, hashed, and compared), FAISS holds one embedding per distinct point, and
searches run over the distinct points of the queries and expand each point found into its latents,
ties by index: the latents of ``N`` molecules, each in several atom orders, cost what ``N`` latents
cost.

FAISS is optional: ``pip install 'invlatent[fast]'`` (``faiss-cpu``; ``faiss-gpu`` is used instead
when installed and ``faiss.get_num_gpus() > 0``).
"""

from __future__ import annotations

import json
import math
import time
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .._validation import check_mask, check_tensor, describe
from .._threads import default_workers, intra_op_threads, map_blocks
from ._kernels import (_MARGIN, _dual_of_costs, _hash_rows, _mismatch, _select_by_index, _seq_cost,
                       canonical_rows, class_members, distinct_rows, exact_sq)

__all__ = ["QuotientIndex", "have_faiss"]

_INDEXES = ("flat", "ivf", "hnsw")
#: Relative round-off of FAISS's float32 squared distances |x|^2 + |y|^2 - 2<x, y> in a few hundred
#: dimensions, times (|x|^2 + |y|^2), with room: subtracted wherever they serve as bounds.
_F32_TOL = 1e-4
#: Candidate pairs per search batch, and pairs per exact-distance call (memory: a few hundred bytes
#: per candidate pair, ~n^2 (c + 2) * 8 bytes per pair of a call).
_BATCH_PAIRS = 1 << 18
_SOLVE_CHUNK = 1 << 14
#: ``target_recall`` raises ``k_factor`` to at most this many times the one given.
_MAX_WIDEN = 8
_FORMAT = "invlatent.QuotientIndex/3"
_FORMATS = ("invlatent.QuotientIndex/2", _FORMAT)  # /2: one stored point per latent, no classes
#: Latent entries per step of expanding classes into latents (memory: a few hundred MB at most).
_ROWS = 1 << 16


def _faiss():
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - exercised only without faiss
        raise ImportError("QuotientIndex needs FAISS, an optional dependency: pip install 'invlatent[fast]' "
                          "(or pip install faiss-cpu)") from err
    return faiss


@contextmanager
def faiss_threads(faiss, n: int | None) -> Iterator[None]:
    """FAISS's OpenMP thread count set to ``n`` inside the block (``None``: unchanged)."""
    if n is None or not hasattr(faiss, "omp_get_max_threads"):
        yield
        return
    old = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(old)


def have_faiss() -> bool:
    """Whether FAISS is importable (``pip install 'invlatent[fast]'``)."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _directions(c: int, m: int, seed: int) -> torch.Tensor:
    r"""``(c, B c)`` float64: ``B = ceil(m / c)`` random orthonormal bases of :math:`\mathbb R^c`, side by
    side, scaled by :math:`1/\sqrt B`, so that :math:`W W^\top = I` (a tight frame). ``c = 1``: ``[[1]]``."""
    if c == 1:
        return torch.ones(1, 1, dtype=torch.float64)
    B = max(1, -(-m // c))
    g = torch.Generator().manual_seed(seed)
    bases = [torch.linalg.qr(torch.randn(c, c, generator=g, dtype=torch.float64))[0] for _ in range(B)]
    return torch.cat(bases, 1) / math.sqrt(B)


def _embed64(Z64: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    r"""``(N, n m)`` float64 sliced sort embedding: the nodes' projections on every direction of
    ``W (c, m)``, each sorted over the nodes. With :math:`WW^\top = I`, :math:`\lVert e(z) - e(z')\rVert
    \le d(z, z')` and :math:`\lVert e(z)\rVert = \lVert z\rVert`."""
    return (Z64 @ W).sort(dim=1).values.flatten(1)


def _embed(Z64: torch.Tensor, W: torch.Tensor, chunk: int = 1 << 16) -> np.ndarray:
    """:func:`_embed64` as float32, C-contiguous (FAISS's input), in chunks of latents."""
    out = np.empty((Z64.shape[0], Z64.shape[1] * W.shape[1]), dtype=np.float32)
    for s in range(0, Z64.shape[0], chunk):
        out[s:s + chunk] = _embed64(Z64[s:s + chunk], W).numpy()
    return out


def _int_option(name: str, value, minimum: int = 1, optional: bool = False):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {describe(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _cheap(zq: torch.Tensor, zt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pair: the exact squared distance where the rows of the cost matrix have distinct nearest
    columns (that matching is optimal; summed over the rows in order, as
    :func:`~invlatent.quotient._kernels.exact_sq` does), else ``inf``; and a lower bound (the
    assignment dual, or that exact value)."""
    if zq.shape[2] == 1:
        v = exact_sq(zq, zt)
        return v, v
    cost = _seq_cost(zq, zt)
    u, perm = cost.min(2)
    P, n = u.shape
    used = torch.zeros(P, n, dtype=torch.int32).scatter_add_(1, perm, torch.ones(P, n, dtype=torch.int32))
    free = (used == 1).all(1)
    val = u[:, 0].clone()
    for i in range(1, n):
        val += u[:, i]
    bound = _dual_of_costs(cost, u)
    return torch.where(free, val, torch.full_like(val, math.inf)), torch.where(free, val, bound)


def _recall_option(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"target_recall must be a float in (0, 1] or None, got {describe(value)}")
    if not 0 < value <= 1:
        raise ValueError(f"target_recall must be in (0, 1], got {value}")
    return float(value)


def _recall_rows(got: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per-row recall of squared distances ``got (q, k)`` (``inf``: missing) against the exact ``truth
    (q, k)``: the share of ``got`` at most the true ``k``-th value (ties at the ``k``-th place count,
    whichever index was returned; both come from the same exact evaluation, so equal pairs give
    equal values)."""
    edge = truth[:, -1:]
    return (got <= edge + _MARGIN * (1 + edge)).double().mean(1)


def _expand(cv: torch.Tensor, ci: torch.Tensor, members: torch.Tensor, N: int, exclude, k: int):
    """Latent lists ``(R, k)`` from class lists: squared distances ``cv (R, kc)`` of classes ``ci (R,
    kc)`` (``-1``: none), each class standing for its members ``members (M + 1, w)`` (ascending;
    padding ``N``, the latents stored); ``exclude (R,)``: a latent never returned. Ties by index."""
    M = members.shape[0] - 1
    cls = torch.where(ci >= 0, ci, torch.full_like(ci, M))
    ids = members[cls].flatten(1)
    vals = cv.repeat_interleave(members.shape[1], dim=1)
    drop = ids == N
    if exclude is not None:
        drop |= ids == exclude[:, None]
    v, i = _select_by_index(vals.masked_fill(drop, math.inf), ids, k)
    return v, torch.where(torch.isinf(v), torch.full_like(i, -1), i)


class QuotientIndex:
    r"""Nearest neighbours in the :math:`S_n` quotient of ``(N, n, c)`` node latents, through FAISS.

    Parameters
    ----------
    index : str
        ``"flat"`` (exact, ``IndexFlatL2``), ``"ivf"`` (``IndexIVFFlat``) or ``"hnsw"``
        (``IndexHNSWFlat``). The other parameters are named after FAISS's.
    nlist : int, optional
        IVF lists (default :math:`4\sqrt N` at the first :meth:`add`, which also trains the
        quantizer on at most ``256 * nlist`` latents).
    nprobe : int
        IVF lists visited per query (default 16).
    M : int
        HNSW neighbours per node (default 32).
    efConstruction, efSearch : int
        HNSW candidate-list sizes when building and searching (defaults 64 and 160; the search
        uses at least ``k * k_factor``).
    k_factor : int
        FAISS is asked for ``k * k_factor`` candidates, re-ranked exactly (default 16).
    gpu : bool, optional
        Move ``flat``/``ivf`` indexes to the first GPU (default: when ``faiss.get_num_gpus() > 0``).
    solver : ``"auto"``, ``"lapx"`` or ``"scipy"``
        Assignment solver of the exact re-ranking.
    seed : int
        Seed of the directions, of the IVF training sample, of FAISS's k-means and of the recall sample.
    directions : int
        Directions of the sliced sort embedding (default 32, rounded up to whole orthonormal bases
        of :math:`\mathbb R^c`; ``c = 1`` uses one): the embedding has ``n * directions`` coordinates.
    target_recall : float or None
        ``"ivf"``/``"hnsw"``: before searching all queries, the candidate count (``k_factor``, and
        ``efSearch``) grows by half at a time until the recall measured on the recall sample reaches
        it (default 0.99; ``None``: search with the options as given).
    recall_sample : int
        Queries of each :meth:`search` whose exact lists measure the recall (default 200; 0: none).

    Notes
    -----
    Latents that are one point of the quotient share one FAISS entry (:attr:`nclasses` of them for
    :attr:`ntotal` latents; module docstring).
    Distances are exact quotient distances of the returned pairs, ascending, ties by index; the
    lists are exact for ``"flat"`` and approximate for ``"ivf"`` and ``"hnsw"``, which estimate
    their own recall: ``stats["recall_estimate"]`` is the recall@k on a seeded sample of the
    queries, whose exact lists :func:`._exact_rows.exact_rows` finds (every stored latent whose
    embedding bound does not exceed the ``k``-th distance found gets the exact distance), with
    its standard error ``stats["recall_estimate_se"]``.

    Example
    -------
    >>> import torch
    >>> from invlatent.quotient import QuotientIndex
    >>> Z = torch.tensor([[[0., 0.], [1., 1.]], [[1., 1.], [0., 0.1]], [[3., 0.], [0., 3.]],
    ...                   [[1., 1.], [0., 0.]]])  # the last: the first in the other node order
    >>> index = QuotientIndex("flat")
    >>> index.add(Z)
    >>> index.ntotal, index.nclasses
    (4, 3)
    >>> d, i = index.search(Z[:1], 3)
    >>> i.tolist(), [round(x, 3) for x in d.flatten().tolist()]
    ([[0, 3, 1]], [0.0, 0.0, 0.1])
    """

    def __init__(self, index: str = "flat", *, nlist: int | None = None, nprobe: int = 16, M: int = 32,
                 efConstruction: int = 64, efSearch: int = 160, k_factor: int = 16, gpu: bool | None = None,
                 solver: str = "auto", seed: int = 0, directions: int = 32,
                 target_recall: float | None = 0.99, recall_sample: int = 200):
        if index not in _INDEXES:
            raise ValueError(f"index must be 'flat', 'ivf' or 'hnsw', got {describe(index)}")
        if solver not in ("auto", "lapx", "scipy"):
            raise ValueError(f"solver must be 'auto', 'lapx' or 'scipy', got {describe(solver)}")
        if gpu is not None and not isinstance(gpu, bool):
            raise TypeError(f"gpu must be a bool or None, got {describe(gpu)}")
        self.options = {"index": index, "nlist": _int_option("nlist", nlist, optional=True),
                        "nprobe": _int_option("nprobe", nprobe), "M": _int_option("M", M, 2),
                        "efConstruction": _int_option("efConstruction", efConstruction),
                        "efSearch": _int_option("efSearch", efSearch), "k_factor": _int_option("k_factor", k_factor),
                        "gpu": gpu, "solver": solver, "seed": _int_option("seed", seed, 0),
                        "directions": _int_option("directions", directions),
                        "target_recall": _recall_option(target_recall),
                        "recall_sample": _int_option("recall_sample", recall_sample, 0)}
        self._faiss = _faiss()
        self._index = None  # built at the first add, when n * c is known
        self._gpu = False
        # the distinct points of the quotient among the latents stored ("classes"): FAISS holds one
        # embedding per class, searches run over classes, and each class stands for its members
        self._Z = torch.empty(0, 0, 0, dtype=torch.float64)  # (M, n, c) canonical rows of each class
        self._nrm = torch.empty(0, dtype=torch.float64)  # their squared norms
        self._label = torch.empty(0, dtype=torch.long)  # (N,) each stored latent's class
        self._hash_class: dict[int, int] = {}  # row hash of a class's canonical rows -> the class
        self._members_cache = None
        self._W = None  # (c, m) directions of the sliced sort embedding, fixed at the first add

    def __repr__(self) -> str:
        return f"QuotientIndex({self.options['index']!r}, ntotal={self.ntotal}, classes={self.nclasses})"

    @property
    def ntotal(self) -> int:
        """Number of latents stored."""
        return int(self._label.shape[0])

    @property
    def nclasses(self) -> int:
        """Number of distinct points of the quotient among the latents stored (latents whose rows are
        the same multiset are one point; FAISS holds one embedding for each)."""
        return int(self._Z.shape[0])

    # -- building -------------------------------------------------------------------------------
    def _check(self, Z, mask, name: str) -> torch.Tensor:
        check_tensor(Z, name, ndim=3, expected="(N, n, c)")
        if Z.is_complex():
            raise TypeError(f"{name} must be real, got {Z.dtype}")
        if self.ntotal and tuple(Z.shape[1:]) != tuple(self._Z.shape[1:]):
            raise ValueError(f"{name} must have shape (N, {self._Z.shape[1]}, {self._Z.shape[2]}) like the "
                             f"latents already added, got {tuple(Z.shape)}")
        check_mask(mask, Z, z_name=name)
        Z64 = Z.detach().to(device="cpu", dtype=torch.float64)
        if mask is not None:
            Z64 = Z64.masked_fill(~mask.to("cpu")[..., None], 0)
        return Z64

    def _build(self, d: int, E: np.ndarray):
        faiss, o = self._faiss, self.options
        if o["index"] == "flat":
            index = faiss.IndexFlatL2(d)
        elif o["index"] == "hnsw":
            index = faiss.IndexHNSWFlat(d, o["M"])
            index.hnsw.efConstruction = o["efConstruction"]
        else:
            N = len(E)
            nlist = o["nlist"] or max(1, min(int(4 * math.sqrt(N)), N // 39 or 1))
            if nlist > N:
                raise ValueError(f"nlist must be <= the number of distinct latents (points of the quotient) "
                                 f"of the first add ({N}), got {nlist}")
            o["nlist"] = nlist
            index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist)
            index.cp.seed = o["seed"]
            rng = np.random.default_rng(o["seed"])
            sample = E if N <= 256 * nlist else E[np.sort(rng.choice(N, 256 * nlist, replace=False))]
            index.train(sample)
        self._index = self._to_device(index)

    def _to_device(self, index):
        faiss, want = self._faiss, self.options["gpu"]
        gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        if want and gpus == 0:
            raise ValueError("gpu=True but FAISS sees no GPU (faiss.get_num_gpus() == 0): install faiss-gpu "
                             "on a CUDA machine or pass gpu=None")
        if self.options["index"] != "hnsw" and gpus > 0 and want is not False:  # pragma: no cover - no GPU here
            self._res = faiss.StandardGpuResources()
            self._gpu = True
            return faiss.index_cpu_to_gpu(self._res, 0, index)
        return index

    def _set_search_params(self, params: dict, kp: int):
        o = self.options
        if o["index"] == "ivf":
            self._index.nprobe = min(params["nprobe"], o["nlist"])
        elif o["index"] == "hnsw":
            self._index.hnsw.efSearch = max(params["efSearch"], kp)

    def add(self, Z: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Store latents ``Z (N, n, c)`` (padded nodes of ``mask (N, n)`` count as zero nodes); they
        get the indices ``ntotal .. ntotal + N - 1``. Latents that are one point of the quotient (the
        same multiset of rows, compared exactly), here or in earlier adds, share one FAISS entry."""
        Z64 = self._check(Z, mask, "Z")
        n, c = Z64.shape[1:]
        if self._W is None:
            self._W = _directions(c, self.options["directions"], self.options["seed"])
        canon = canonical_rows(Z64)
        del Z64
        label, new = self._classes(canon)
        reps = canon[new].view(-1, n, c)
        E = _embed(reps, self._W)
        if self._index is None:
            self._build(E.shape[1], E)
        self._index.add(E)
        del E
        self._Z = reps if self.nclasses == 0 else torch.cat([self._Z, reps])
        self._nrm = self._Z.square().sum((1, 2))
        self._label = torch.cat([self._label, label])
        self._members_cache = None

    def _classes(self, canon: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each new latent's class ``(B,)`` from its canonical rows ``canon (B, D)``, and the rows that
        open new classes (numbered from :attr:`nclasses` in that order)."""
        M0 = self.nclasses
        first, inv = distinct_rows(canon)
        hashes = _hash_rows(canon[first]).tolist()
        cls = torch.tensor([self._hash_class.get(h, -1) for h in hashes], dtype=torch.long)
        hit = (cls >= 0).nonzero().flatten()
        if len(hit):  # a point stored before, unless its hash collides with another point's
            cls[hit[_mismatch(canon[first[hit]], self._Z.flatten(1), cls[hit])]] = -1
        fresh = (cls < 0).nonzero().flatten()
        cls[fresh] = M0 + torch.arange(len(fresh))
        for t, j in zip(fresh.tolist(), cls[fresh].tolist()):
            self._hash_class.setdefault(hashes[t], j)
        return cls[inv], first[fresh]

    def _members(self, width: int) -> torch.Tensor:
        """``(M + 1, width)``: the first ``width`` latents of each class, ascending (padding ``N``)."""
        if self._members_cache is None or self._members_cache.shape[1] != width:
            self._members_cache = class_members(self._label, self.nclasses, width)
        return self._members_cache

    # -- searching ------------------------------------------------------------------------------
    def search(self, Z: torch.Tensor, k: int, mask: torch.Tensor | None = None, *,
               exclude: torch.Tensor | None = None, stats: dict | None = None,
               batch: int = 4096, workers: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The ``k`` nearest stored latents of each query in the quotient metric.

        Parameters
        ----------
        Z : Tensor, shape ``(Q, n, c)``; mask : BoolTensor ``(Q, n)``, optional
        k : int, ``1 <= k <= ntotal`` (``ntotal - 1`` with ``exclude``)
        exclude : LongTensor, shape ``(Q,)``, optional
            One stored index per query never to return (its own index, for a k-NN graph).
        stats : dict, optional
            Filled with ``classes`` (distinct points stored), ``query_classes`` (distinct query
            points, each searched once), ``candidates`` (pairs FAISS returned), ``exact_pairs``
            (exact distances evaluated in re-ranking), ``solver_pairs`` (those that needed the
            assignment solver), ``widened`` (flat: query points searched again with more
            candidates), the recall estimate (class docstring) and the seconds spent finding the
            query points (``classes_s``), in FAISS (``faiss_s``) and in re-ranking (``rerank_s``),
            both summed over the workers, and in expanding classes into latents (``expand_s``).
        batch : int
            Queries per FAISS call and re-ranking step (memory ``O(batch * k * k_factor * n^2 c)``).
        workers : int, optional
            Threads that search batches in parallel, each with one PyTorch and one FAISS thread
            (default: ``torch.get_num_threads()``); the result does not depend on it.

        Returns
        -------
        distances : Tensor ``(Q, k)`` in ``Z``'s dtype (exact quotient distances, ascending; ``inf``
        where an approximate index found fewer than ``k`` candidates), indices : LongTensor ``(Q, k)``
        (``-1`` there); both on ``Z``'s device (the search itself runs on the CPU).
        """
        if self.ntotal == 0:
            raise ValueError("the index is empty: add latents before searching")
        Zq = self._check(Z, mask, "Z")
        Q = Zq.shape[0]
        _int_option("k", k)
        _int_option("batch", batch)
        if exclude is not None:
            check_tensor(exclude, "exclude", ndim=1, floating=False, allow_empty=True, expected="(Q,)")
            if exclude.dtype not in (torch.int32, torch.int64) or exclude.shape[0] != Q:
                raise ValueError(f"exclude must be a LongTensor of shape (Q,) = ({Q},), got {exclude.dtype} "
                                 f"{tuple(exclude.shape)}")
            exclude = exclude.to("cpu", torch.long)
        top = self.ntotal - (exclude is not None)
        if not 1 <= k <= top:
            raise ValueError(f"k must be between 1 and {top} (the latents stored{', less the excluded one' if exclude is not None else ''}), got {k}")
        workers = default_workers() if workers is None else _int_option("workers", workers)
        o = self.options
        params = {"k_factor": o["k_factor"], "efSearch": o["efSearch"], "nprobe": o["nprobe"]}
        counts = {"candidates": 0, "exact_pairs": 0, "solver_pairs": 0, "dual_pairs": 0, "widened": 0,
                  "faiss_s": 0.0, "rerank_s": 0.0}
        # the queries' distinct points are searched once, among the classes. Classes are numbered by
        # their first latent, so each of the kc nearest classes (ties by number) has a first latent
        # that ranks, by (distance, index), before every latent of the classes not found: with
        # kc = k (one more for the excluded latent) the k nearest latents are among their members,
        # ties by index included
        t0 = time.perf_counter()
        first, qcls = distinct_rows(canonical_rows(Zq))
        Zu = Zq[first]
        del Zq
        M = self.nclasses
        kc = min(M, k + (exclude is not None))
        members = self._members(k + 1)
        counts["classes_s"] = time.perf_counter() - t0

        def lists(rows, cv, ci):  # latent lists of query rows from their points' class lists
            ex = None if exclude is None else exclude[rows]
            return _expand(cv, ci, members, self.ntotal, ex, k)

        def sample_truth(cv_s, ci_s):  # exact latent lists of the sample, from its points' lists
            v, i = self._truth(Zu[su], kc, cv_s, ci_s, counts)
            return lists(sample, v[s_at], i[s_at])[0]

        t_est = 0.0
        met = None
        sample = self._sample(Q)
        su, s_at = torch.unique(qcls[sample], return_inverse=True)
        truth = None
        rounds = 0
        if o["target_recall"] is not None and o["index"] != "flat" and len(sample):
            # raise the candidate count on the sample until its measured recall meets the target
            while True:
                rounds += 1
                cv, ci = self._run(Zu[su], k, kc, params, counts, batch, workers)
                d, _ = lists(sample, cv[s_at], ci[s_at])
                t0 = time.perf_counter()
                if truth is None:
                    truth = sample_truth(cv, ci)
                t_est += time.perf_counter() - t0
                met = float(_recall_rows(d, truth).mean()) >= o["target_recall"]
                if met or params["k_factor"] >= _MAX_WIDEN * o["k_factor"] or not self._widen(params, k):
                    break
        cv, ci = self._run(Zu, k, kc, params, counts, batch, workers)
        t0 = time.perf_counter()
        out_d = torch.empty(Q, k, dtype=torch.float64)
        out_i = torch.empty(Q, k, dtype=torch.long)
        step = max(1, _ROWS // kc)
        for s in range(0, Q, step):
            rows = torch.arange(s, min(Q, s + step))
            out_d[rows], out_i[rows] = lists(rows, cv[qcls[rows]], ci[qcls[rows]])
        counts["expand_s"] = time.perf_counter() - t0
        estimate = se = math.nan
        if o["index"] == "flat":
            estimate, se = 1.0, 0.0  # exact by its certificate
        elif len(sample):
            t0 = time.perf_counter()
            if truth is None:
                truth = sample_truth(cv[su], ci[su])
            per = _recall_rows(out_d[sample], truth)
            estimate = float(per.mean())
            se = float(per.std() / math.sqrt(len(per))) if len(per) > 1 else math.nan
            t_est += time.perf_counter() - t0
        if stats is not None:
            stats.update(counts)
            stats["rerank_fraction"] = counts["exact_pairs"] / max(1, counts["candidates"])
            stats.update(classes=M, query_classes=len(first), recall_estimate=estimate,
                         recall_estimate_se=se, recall_sample=len(sample), estimate_s=t_est,
                         tuning_rounds=rounds, target_met=met,
                         **{f"{key}_used": v for key, v in params.items()})
        return out_d.sqrt().to(device=Z.device, dtype=Z.dtype), out_i.to(Z.device)

    def _sample(self, Q: int) -> torch.Tensor:
        """Query rows whose exact lists measure the recall (a seeded sample of ``recall_sample``)."""
        m = min(Q, self.options["recall_sample"])
        if self.options["index"] == "flat" or m == 0:
            return torch.zeros(0, dtype=torch.long)
        g = torch.Generator().manual_seed(self.options["seed"] + 1)
        return torch.randperm(Q, generator=g)[:m].sort().values

    def _truth(self, Zu, kc, cv, ci, counts) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact ``kc`` nearest classes ``(q, kc)`` (squared distances, classes) of the distinct query
        points ``Zu``, from the class lists ``cv, ci`` already found (their ``kc``-th value bounds the
        search, :func:`._exact_rows.exact_rows`)."""
        from ._exact_rows import exact_rows

        part = {}
        with intra_op_threads(1):
            v, i = exact_rows(Zu, self._Z, self._nrm, kc, cv, ci, None, self.options["solver"],
                              embed=lambda z: _embed64(z, self._W), counts=part)
        counts["estimate_pairs"] = counts.get("estimate_pairs", 0) + part.get("estimate_pairs", 0)
        counts["estimate_solver_pairs"] = counts.get("estimate_solver_pairs", 0) + part.get("solver_pairs", 0)
        return v, i

    def _widen(self, params: dict, k: int) -> bool:
        """1.5 times the candidates (``k_factor``, ``efSearch``), twice ``nprobe``; ``False`` when
        nothing more can be asked for."""
        if k * params["k_factor"] >= self.nclasses:
            return False
        params["k_factor"] = -(-3 * params["k_factor"] // 2)
        params["efSearch"] = max(-(-3 * params["efSearch"] // 2), k * params["k_factor"])
        params["nprobe"] = min(2 * params["nprobe"], self.options["nlist"] or 2 * params["nprobe"])
        return True

    def _run(self, Zu, k, kc, params, counts, batch, workers):
        """The ``kc`` nearest classes ``(q, kc)`` (squared distances, classes; ``inf``/``-1`` where
        FAISS found fewer) of the distinct query points ``Zu``: ``k * k_factor`` FAISS candidates
        (and the ``kc - k`` classes more), re-ranked exactly."""
        Q, M = Zu.shape[0], self.nclasses
        kp0 = min(M, k * params["k_factor"] + kc - k)
        self._set_search_params(params, kp0)
        # queries per batch: at most _BATCH_PAIRS candidates
        batch = max(1, min(batch, _BATCH_PAIRS // (kp0 + 1)))
        out_d = torch.full((Q, kc), math.inf, dtype=torch.float64)
        out_i = torch.full((Q, kc), -1, dtype=torch.long)

        def search_batch(s: int) -> dict:
            part = dict.fromkeys(counts, 0)
            rows = torch.arange(s, min(Q, s + batch))
            kp = kp0
            while len(rows):
                d, i, ok = self._search_rows(Zu[rows], kc, kp, part)
                out_d[rows], out_i[rows] = d, i  # rows of different batches are disjoint
                if self.options["index"] != "flat" or kp >= M:
                    break
                rows = rows[~ok]  # flat: rows whose certificate failed, again with twice the candidates
                part["widened"] += len(rows)
                kp = min(M, 2 * kp)
            return part

        with faiss_threads(self._faiss, 1 if workers > 1 else None):
            for part in map_blocks(search_batch, list(range(0, Q, batch)), workers):
                for key, v in part.items():
                    counts[key] = counts.get(key, 0) + v
        return out_d, out_i

    def _search_rows(self, Zq: torch.Tensor, k: int, kp: int, counts: dict):
        """FAISS's ``kp`` candidates, re-ranked exactly: ``(q, k)`` squared distances, indices and the
        flat certificate (``True`` where no other stored latent can be nearer)."""
        q = Zq.shape[0]
        t0 = time.perf_counter()
        D32, I = self._index.search(_embed(Zq, self._W), kp)
        t1 = time.perf_counter()
        counts["faiss_s"] += t1 - t0
        I = torch.from_numpy(I).long()
        valid = I >= 0
        Ic = I.clamp_min(0)
        Zt = self._Z
        # the embedding bound of every candidate, from FAISS's float32 distances less their round-off
        # (|e|^2 = |z|^2 for the tight frame): the order of re-ranking and a pruning bound
        nq = Zq.square().sum((1, 2))
        lb = torch.from_numpy(D32).double() - _F32_TOL * (nq[:, None] + self._nrm[Ic])
        lb[~valid] = math.inf
        lb, o = lb.sort(dim=1, stable=True)
        Ic, valid = Ic.gather(1, o), valid.gather(1, o)
        margin = _MARGIN * (nq[:, None] + self._nrm[Ic])
        vals = torch.full((q, kp), math.inf, dtype=torch.float64)
        solver = self.options["solver"]
        # 1. every candidate's cost matrix once: the exact value where the rows have distinct
        #    nearest columns (no solver), else the assignment-dual bound (>= the Chamfer sums)
        r, c = valid.nonzero(as_tuple=True)
        for a in range(0, len(r), _SOLVE_CHUNK):
            rr, cc = r[a:a + _SOLVE_CHUNK], c[a:a + _SOLVE_CHUNK]
            v, bound = _cheap(Zq[rr], Zt[Ic[rr, cc]])
            vals[rr, cc] = v
            lb[rr, cc] = torch.maximum(lb[rr, cc], bound)
        counts["exact_pairs"] += int(torch.isfinite(vals).sum())
        counts["bounded_pairs"] = counts.get("bounded_pairs", 0) + len(r)

        def solve(r, c, below=None):
            for a in range(0, len(r), _SOLVE_CHUNK):  # pairs at a time: O(chunk n^2) memory
                rr, cc = r[a:a + _SOLVE_CHUNK], c[a:a + _SOLVE_CHUNK]
                vals[rr, cc] = exact_sq(Zq[rr], Zt[Ic[rr, cc]], solver, counts,
                                        None if below is None else below[a:a + _SOLVE_CHUNK])
            counts["exact_pairs"] += len(r)

        # 2. the k candidates with the smallest bounds (exact values where known) get the exact
        #    value: their k-th bounds the k-th distance; 3. then every other candidate whose bound
        #    does not exceed it (for a pair that needs the solver, the dual bound decides first)
        key = torch.where(torch.isfinite(vals), vals, lb)
        key[~valid] = math.inf
        first = torch.zeros_like(valid)
        first.scatter_(1, torch.topk(key, min(k, kp), dim=1, largest=False).indices, True)
        solve(*(first & valid & torch.isinf(vals)).nonzero(as_tuple=True))
        ub = torch.where(valid, vals, torch.full_like(vals, math.inf)).kthvalue(min(k, kp), dim=1).values
        r, c = (valid & torch.isinf(vals) & (lb <= ub[:, None] + margin)).nonzero(as_tuple=True)
        solve(r, c, ub[r] + margin[r, c])
        counts["candidates"] += int(valid.sum())
        ids = torch.where(valid, Ic, torch.full_like(Ic, self.nclasses))
        best, idx = _select_by_index(vals, ids, k)
        idx = torch.where(torch.isinf(best), torch.full_like(idx, -1), idx)
        # certificate (flat): every stored latent not returned has a float32 bound >= the kp-th one;
        # FAISS's float32 distances are within ~1e-6 (|e_q|^2 + |e_j|^2) of the true ones
        big = float(self._nrm.max())
        tol = _F32_TOL * (nq + big) + _MARGIN * (nq + big)
        edge = torch.from_numpy(D32[:, -1]).double()
        ok = (best[:, -1] + tol < edge - tol) | (valid.sum(1) >= self.nclasses)
        counts["rerank_s"] += time.perf_counter() - t1
        return best, idx, ok

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the index, the stored classes (canonical rows), each latent's class and the options to
        one ``.npz`` file (no pickle)."""
        if self._index is None:
            raise ValueError("the index is empty: nothing to save")
        faiss = self._faiss
        index = faiss.index_gpu_to_cpu(self._index) if self._gpu else self._index
        meta = json.dumps({"format": _FORMAT, "options": self.options})
        with open(Path(path), "wb") as fh:
            np.savez(fh, index=faiss.serialize_index(index), Z=self._Z.numpy(), label=self._label.numpy(),
                     W=self._W.numpy(), meta=np.array(meta))

    @classmethod
    def load(cls, path, *, gpu: bool | None = None) -> QuotientIndex:
        """Read an index written by :meth:`save` (moved to a GPU as ``gpu`` says, default: if any).

        Raises ``ValueError`` naming the file when it is empty, truncated or corrupted, not a
        :class:`QuotientIndex` file, or when its parts disagree (the FAISS index does not hold one
        embedding per stored latent, or the directions do not fit the latents); a missing file
        raises ``FileNotFoundError``."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                names = set(data.files)
                if not {"meta", "Z", "W", "index"} <= names:
                    raise ValueError(f"it has the entries {sorted(names)}, not meta, Z, W and index")
                meta = json.loads(str(data["meta"]))
                if not isinstance(meta, dict) or meta.get("format") not in _FORMATS:
                    fmt = meta.get("format") if isinstance(meta, dict) else None
                    raise ValueError(f"format {fmt!r}, expected {_FORMAT!r}")
                Z, W, blob = data["Z"], data["W"], data["index"]
                if meta["format"] == _FORMAT and "label" not in names:
                    raise ValueError(f"it has the entries {sorted(names)}, not label")
                label = data["label"] if "label" in names else np.arange(len(Z))
        except FileNotFoundError:
            raise
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as err:
            raise ValueError(f"{path} is not a QuotientIndex file, or it is empty, truncated or "
                             f"corrupted: {err}") from err
        if Z.ndim != 3 or Z.dtype != np.float64 or W.ndim != 2 or W.shape[0] != Z.shape[2]:
            raise ValueError(f"{path}: stored latents {Z.shape} {Z.dtype} and directions {W.shape} do not fit "
                             "together (expected float64 (N, n, c) and (c, m))")
        try:
            options = dict(meta["options"], gpu=gpu)
            self = cls(**options)
            index = self._faiss.deserialize_index(blob)
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"{path} is not a QuotientIndex file, or its options or FAISS index are "
                             f"corrupted: {err}") from err
        N, n, _ = Z.shape
        if index.ntotal != N or index.d != n * W.shape[1]:
            raise ValueError(f"{path}: the FAISS index holds {index.ntotal} embeddings of dimension {index.d}, "
                             f"but the file stores {N} latents of {n} nodes and {W.shape[1]} directions "
                             f"(expected {N} of dimension {n * W.shape[1]})")
        if (label.ndim != 1 or label.dtype != np.int64 or len(label) < N
                or (len(label) and (label.min() < 0 or label.max() >= N))):
            raise ValueError(f"{path}: the latents' classes ({label.shape} {label.dtype}) do not fit the {N} "
                             "stored classes (expected int64 (ntotal,), each in 0 .. classes - 1)")
        self._Z = canonical_rows(torch.from_numpy(Z.copy())).view(Z.shape)  # /2 stored the latents as given
        self._nrm = self._Z.square().sum((1, 2))
        self._label = torch.from_numpy(label.copy())
        for j, h in enumerate(_hash_rows(self._Z.flatten(1)).tolist()):
            self._hash_class.setdefault(h, j)
        self._W = torch.from_numpy(W.copy())
        self._index = self._to_device(index)
        return self
