r"""Quotient nearest neighbours at scale: a FAISS index over the sort embedding, re-ranked exactly.

For :math:`S_n` acting on node latents :math:`z\in\mathbb R^{n\times c}`, sorting every channel over
the nodes gives a Euclidean embedding :math:`e(z)\in\mathbb R^{nc}` with

.. math::

    \lVert e(z) - e(z')\rVert \;\le\; d(z, z') = \min_{\pi\in S_n}\lVert z - \pi z'\rVert ,

with equality for :math:`c = 1` (sorted codes are an isometric cross-section of the quotient).
:class:`QuotientIndex` stores :math:`e(z)` in a FAISS index (exact ``IndexFlatL2``, inverted
lists ``IndexIVFFlat``, or the graph ``IndexHNSWFlat``), asks it for ``k * k_factor`` candidates
per query (as FAISS's ``IndexRefine`` does) and re-ranks them by the exact quotient distance
(:func:`invlatent.quotient._knn.exact_sq`, the value :func:`~invlatent.quotient_knn` reports),
solving the assignment only for candidates whose embedding bound, then assignment-dual bound, does
not exceed the current ``k``-th exact distance. Every reported distance is an exact quotient
distance; the approximation is only in which candidates are looked at.

With ``index="flat"`` the search is exact for every ``c``: the candidates are the ``k'`` nearest
by the lower bound, so when the ``k``-th exact distance is below the ``k'``-th bound (less
FAISS's float32 round-off) no other latent can be closer; rows where that certificate fails are
searched again with twice as many candidates. For ``c = 1`` the bound is the distance, so a few
candidates beyond ``k`` suffice.

FAISS is optional: ``pip install 'invlatent[fast]'`` (``faiss-cpu``; ``faiss-gpu`` is used instead
when installed and ``faiss.get_num_gpus() > 0``).
"""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .._validation import check_mask, check_tensor, describe
from .._threads import default_workers, map_blocks
from ._knn import _MARGIN, _select_by_index, exact_sq

__all__ = ["QuotientIndex", "have_faiss"]

_INDEXES = ("flat", "ivf", "hnsw")
_FORMAT = "invlatent.QuotientIndex/1"


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


def _embed(Z64: torch.Tensor) -> np.ndarray:
    """``(N, n c)`` float32, C-contiguous: every channel sorted over the nodes (FAISS's input)."""
    return np.ascontiguousarray(Z64.sort(dim=1).values.flatten(1).numpy(), dtype=np.float32)


def _int_option(name: str, value, minimum: int = 1, optional: bool = False):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {describe(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


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
        HNSW candidate-list sizes when building and searching (defaults 64 and 128).
    k_factor : int
        FAISS is asked for ``k * k_factor`` candidates, re-ranked exactly (default 4).
    gpu : bool, optional
        Move ``flat``/``ivf`` indexes to the first GPU (default: when ``faiss.get_num_gpus() > 0``).
    solver : ``"auto"``, ``"lapx"`` or ``"scipy"``
        Assignment solver of the exact re-ranking.
    seed : int
        Seed of the IVF training sample and of FAISS's k-means.

    Distances are exact quotient distances of the returned pairs, ascending, ties by index; the
    lists are exact for ``"flat"`` and approximate (measure the recall) for ``"ivf"`` and ``"hnsw"``.

    Example
    -------
    >>> import torch
    >>> from invlatent.quotient import QuotientIndex
    >>> Z = torch.tensor([[[0., 0.], [1., 1.]], [[1., 1.], [0., 0.1]], [[3., 0.], [0., 3.]]])
    >>> index = QuotientIndex("flat")
    >>> index.add(Z)
    >>> d, i = index.search(Z[:1], 2)
    >>> i.tolist(), [round(x, 3) for x in d.flatten().tolist()]
    ([[0, 1]], [0.0, 0.1])
    """

    def __init__(self, index: str = "flat", *, nlist: int | None = None, nprobe: int = 16, M: int = 32,
                 efConstruction: int = 64, efSearch: int = 128, k_factor: int = 4, gpu: bool | None = None,
                 solver: str = "auto", seed: int = 0):
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
                        "gpu": gpu, "solver": solver, "seed": _int_option("seed", seed, 0)}
        self._faiss = _faiss()
        self._index = None  # built at the first add, when n * c is known
        self._gpu = False
        self._Z = torch.empty(0, 0, 0, dtype=torch.float64)  # masked latents, float64 (exact re-ranking)
        self._nrm = torch.empty(0, dtype=torch.float64)  # their squared norms
        self._E = torch.empty(0, 0, dtype=torch.float64)  # their sort embeddings, float64

    def __repr__(self) -> str:
        return f"QuotientIndex({self.options['index']!r}, ntotal={self.ntotal})"

    @property
    def ntotal(self) -> int:
        """Number of latents stored."""
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
                raise ValueError(f"nlist must be <= the number of latents of the first add ({N}), got {nlist}")
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

    def _set_search_params(self):
        o = self.options
        if o["index"] == "ivf":
            self._index.nprobe = min(o["nprobe"], o["nlist"])
        elif o["index"] == "hnsw":
            self._index.hnsw.efSearch = o["efSearch"]

    def add(self, Z: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Store latents ``Z (N, n, c)`` (padded nodes of ``mask (N, n)`` count as zero nodes); they
        get the indices ``ntotal .. ntotal + N - 1``."""
        Z64 = self._check(Z, mask, "Z")
        E = _embed(Z64)
        if self._index is None:
            self._build(E.shape[1], E)
        self._index.add(E)
        self._Z = Z64 if self.ntotal == 0 else torch.cat([self._Z, Z64])
        self._nrm = self._Z.square().sum((1, 2))
        self._E = self._Z.sort(dim=1).values.flatten(1)

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
            Filled with ``candidates`` (pairs FAISS returned), ``exact_pairs`` (exact distances
            evaluated in re-ranking), ``solver_pairs`` (those that needed the assignment solver), ``widened`` (flat: query rows searched again with more candidates) and the
            seconds spent in FAISS (``faiss_s``) and in re-ranking (``rerank_s``), summed over
            the workers.
        batch : int
            Queries per FAISS call and re-ranking step (memory ``O(batch * k * k_factor * n^2 c)``).
        workers : int, optional
            Threads that search batches in parallel, each with one PyTorch and one FAISS thread
            (default: ``torch.get_num_threads()``); the result does not depend on it.

        Returns
        -------
        distances : Tensor ``(Q, k)`` in ``Z``'s dtype (exact quotient distances, ascending; ``inf``
        where an approximate index found fewer than ``k`` candidates), indices : LongTensor ``(Q, k)``
        (``-1`` there).
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
        self._set_search_params()
        out_d = torch.full((Q, k), math.inf, dtype=torch.float64)
        out_i = torch.full((Q, k), -1, dtype=torch.long)

        def search_batch(s: int) -> dict:
            part = {"candidates": 0, "exact_pairs": 0, "solver_pairs": 0, "dual_pairs": 0, "widened": 0, "faiss_s": 0.0, "rerank_s": 0.0}
            rows = torch.arange(s, min(Q, s + batch))
            kp = min(self.ntotal, k * self.options["k_factor"] + (exclude is not None))
            while len(rows):
                ex = None if exclude is None else exclude[rows]
                d, i, ok = self._search_rows(Zq[rows], k, kp, ex, part)
                out_d[rows], out_i[rows] = d, i  # rows of different batches are disjoint
                if self.options["index"] != "flat" or kp >= self.ntotal:
                    break
                rows = rows[~ok]  # flat: rows whose certificate failed, again with twice the candidates
                part["widened"] += len(rows)
                kp = min(self.ntotal, 2 * kp)
            return part

        counts = {"candidates": 0, "exact_pairs": 0, "solver_pairs": 0, "dual_pairs": 0, "widened": 0, "faiss_s": 0.0, "rerank_s": 0.0}
        workers = default_workers() if workers is None else _int_option("workers", workers)
        with faiss_threads(self._faiss, 1 if workers > 1 else None):
            for part in map_blocks(search_batch, list(range(0, Q, batch)), workers):
                for key, v in part.items():
                    counts[key] += v
        if stats is not None:
            stats.update(counts)
            stats["rerank_fraction"] = counts["exact_pairs"] / max(1, counts["candidates"])
        return out_d.sqrt().to(Z.dtype), out_i

    def _search_rows(self, Zq: torch.Tensor, k: int, kp: int, exclude, counts: dict):
        """FAISS's ``kp`` candidates, re-ranked exactly: ``(q, k)`` squared distances, indices and the
        flat certificate (``True`` where no other stored latent can be nearer)."""
        q = Zq.shape[0]
        t0 = time.perf_counter()
        D32, I = self._index.search(_embed(Zq), kp)
        t1 = time.perf_counter()
        counts["faiss_s"] += t1 - t0
        I = torch.from_numpy(I).long()
        valid = I >= 0
        if exclude is not None:
            valid &= I != exclude[:, None]
        Ic = I.clamp_min(0)
        Zt = self._Z
        # float64 sort bound of every candidate (FAISS's is float32): the order of re-ranking
        Eq = Zq.sort(dim=1).values.flatten(1)
        lb = (self._E[Ic] - Eq[:, None, :]).square().sum(-1)
        lb[~valid] = math.inf
        lb, o = lb.sort(dim=1, stable=True)
        Ic, valid = Ic.gather(1, o), valid.gather(1, o)
        nq = Zq.square().sum((1, 2))
        margin = _MARGIN * (nq[:, None] + self._nrm[Ic])
        vals = torch.full((q, kp), math.inf, dtype=torch.float64)
        solver = self.options["solver"]

        def solve(r, c, below=None):
            if len(r):
                vals[r, c] = exact_sq(Zq[r], Zt[Ic[r, c]], solver, counts, below)
            counts["exact_pairs"] += len(r)

        # the k candidates with the smallest bounds, then the others whose bounds do not exceed
        # the k-th exact value so far (embedding bound, then, for pairs that need the assignment
        # solver, its dual bound)
        first = torch.zeros_like(valid)
        first[:, :k] = True
        solve(*(first & valid).nonzero(as_tuple=True))
        ub = vals.kthvalue(k, dim=1).values
        r, c = (~first & valid & (lb <= ub[:, None] + margin)).nonzero(as_tuple=True)
        solve(r, c, ub[r] + margin[r, c])
        counts["candidates"] += int(valid.sum())
        ids = torch.where(valid, Ic, torch.full_like(Ic, self.ntotal))
        best, idx = _select_by_index(vals, ids, k)
        idx = torch.where(torch.isinf(best), torch.full_like(idx, -1), idx)
        # certificate (flat): every stored latent not returned has a float32 bound >= the kp-th one;
        # FAISS's float32 distances are within ~1e-6 (|e_q|^2 + |e_j|^2) of the true ones
        big = float(self._nrm.max())
        tol = 1e-5 * (nq + big) + _MARGIN * (nq + big)
        edge = torch.from_numpy(D32[:, -1]).double()
        ok = (best[:, -1] + tol < edge - tol) | (valid.sum(1) >= self.ntotal - (exclude is not None))
        counts["rerank_s"] += time.perf_counter() - t1
        return best, idx, ok

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the index, the stored latents and the options to one ``.npz`` file (no pickle)."""
        if self._index is None:
            raise ValueError("the index is empty: nothing to save")
        faiss = self._faiss
        index = faiss.index_gpu_to_cpu(self._index) if self._gpu else self._index
        meta = json.dumps({"format": _FORMAT, "options": self.options})
        with open(Path(path), "wb") as fh:
            np.savez(fh, index=faiss.serialize_index(index), Z=self._Z.numpy(), meta=np.array(meta))

    @classmethod
    def load(cls, path, *, gpu: bool | None = None) -> QuotientIndex:
        """Read an index written by :meth:`save` (moved to a GPU as ``gpu`` says, default: if any)."""
        with np.load(Path(path), allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != _FORMAT:
                raise ValueError(f"{path} is not a QuotientIndex file (format {meta.get('format')!r})")
            options = dict(meta["options"], gpu=gpu)
            self = cls(**options)
            self._Z = torch.from_numpy(data["Z"].copy())
            self._nrm = self._Z.square().sum((1, 2))
            self._E = self._Z.sort(dim=1).values.flatten(1)
            self._index = self._to_device(self._faiss.deserialize_index(data["index"]))
        return self
