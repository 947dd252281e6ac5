"""Exact k nearest neighbours from a distance function, one block of rows at a time.

Generic and below both of its users: :meth:`invlatent.groups.Group.knn` (any group) and
:mod:`invlatent.quotient._knn` (which keeps the name importable). It imports nothing from the
rest of the package.
"""

from __future__ import annotations

import math

import torch

__all__ = ["knn_by_blocks"]


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


def knn_by_blocks(Z: torch.Tensor, k: int, distances, block_size: int, stats: dict | None = None):
    """Exact k-NN from all distances, one block of rows at a time: ``distances(rows) -> (q, N)``
    (memory ``O(block_size * N)``); ties by the smaller index. Returns ``(N, k)`` distances and indices.

    Example
    -------
    >>> import torch
    >>> Z = torch.tensor([[0.0], [1.0], [3.0]])
    >>> d, i = knn_by_blocks(Z, 1, lambda rows: torch.cdist(rows, Z), block_size=2)
    >>> d[:, 0].tolist(), i[:, 0].tolist()
    ([1.0, 1.0, 2.0], [1, 0, 1])
    """
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
